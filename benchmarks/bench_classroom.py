"""A class opening the link together: N visitors load the default page at once.

    python -m benchmarks.bench_classroom --visitors 1 4 8 20 --json benchmarks/results/classroom.json
    python -m benchmarks.bench_classroom --clients protocol --visitors 1 4 8 20 \
        --json benchmarks/results/classroom-protocol.json

``--clients browser`` (default): N chromium contexts on this machine. On loopback the browsers
share the server's cores, and N chromiums rendering streamlit's front end cost far more CPU than
the server (the bench prints both), so this measures the client machine as much as the server.
``--app floor`` serves a one-image streamlit page instead of the explorer
(``benchmarks/classroom_floor``): what streamlit and the clients cost with nothing of the
explorer, measured the same way.
``--clients protocol``: what a class on its own laptops asks of the server. Each visitor is a
light client that does the server-side part of a browser's visit: it fetches the page and the
scripts it preloads, opens streamlit's websocket, asks for the script run the browser asks for,
and fetches the first map's image when its element arrives; the time is from the first request
to that image. No rendering happens on this machine.

One streamlit server on loopback, warmed by one visit (models loaded, the default page computed
once), then for each N: N new browser contexts (empty browser caches, as N students) navigate
together; each is timed from its navigation to its first map (``[data-testid='stImage'] img``),
then all wait for their page's run to finish before the next N. Prints the median and the
largest time per N; reported, never asserted (the machine and its load decide the numbers).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

from benchmarks.bench_browser import CHROMIUM, FIRST_HEATMAP, LAST_ELEMENT, ROOT, streamlit_server

# app: (the checkout whose streamlit_app.py is served, the element that ends a visit's run)
APPS = {"explorer": (ROOT, LAST_ELEMENT),
        "floor": (Path(__file__).parent / "classroom_floor", None)}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def one_visitor(browser, url: str, start: asyncio.Event, last: str | None) -> float:
    context = await browser.new_context(viewport={"width": 1400, "height": 1800})
    try:
        tab = await context.new_page()
        await start.wait()
        t0 = time.perf_counter()
        await tab.goto(url, timeout=600_000)  # 20 contexts on 2 cores: "load" takes a while
        await tab.locator(FIRST_HEATMAP).first.wait_for(state="visible", timeout=600_000)
        elapsed = time.perf_counter() - t0
        if last:  # the run (timing included) finishes before the next group starts
            await tab.locator(last).wait_for(state="attached", timeout=600_000)
        return elapsed
    finally:
        await context.close()


async def group(browser, url: str, n: int, last: str | None = LAST_ELEMENT) -> list[float]:
    """N visitors set up first, then released together: they navigate at the same moment.
    ``browser`` None: light protocol clients instead of browser contexts."""
    start = asyncio.Event()
    tasks = [asyncio.create_task(one_visitor(browser, url, start, last) if browser is not None
                                 else one_protocol_visitor(url, start)) for _ in range(n)]
    await asyncio.sleep(0.5 + 0.05 * n)  # every context and tab exists before the start
    start.set()
    return list(await asyncio.gather(*tasks))


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent so far (Linux /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text()
                                                         .split("\n", 1)[0].split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


async def one_protocol_visitor(url: str, start: asyncio.Event) -> float:
    """Seconds from a light client's first request to the first map's image (see the module)."""
    import re
    import urllib.request

    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def get(path: str) -> bytes:
        with urllib.request.urlopen(url + "/" + path.removeprefix("./").lstrip("/"),
                                    timeout=600) as r:
            return r.read()

    await start.wait()
    t0 = time.perf_counter()
    page = (await asyncio.to_thread(get, "")).decode()
    assets = [a for a in re.findall(r'(?:src|href)="\./(static/[^"]+)"', page)]
    await asyncio.gather(*(asyncio.to_thread(get, a) for a in assets))
    first = None
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=["streamlit"], origin=url, max_size=None,
                                  open_timeout=600) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        await ws.send(rerun.SerializeToString())
        while True:  # until the run ends, as a browser stays for it
            msg = ForwardMsg()
            msg.ParseFromString(await ws.recv())
            kind = msg.WhichOneof("type")
            if (first is None and kind == "delta" and msg.delta.WhichOneof("type") == "new_element"
                    and msg.delta.new_element.WhichOneof("type") == "imgs"):
                await asyncio.to_thread(get, msg.delta.new_element.imgs.imgs[0].url)
                first = time.perf_counter() - t0
            if kind == "script_finished":
                break
    if first is None:
        raise RuntimeError("the default page's run ended without a map")
    return first


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(browser, url: str, pid: int, visitors: list[int], repeats: int,
                  last: str | None) -> dict:
    """Per N: the first-map times, and the CPU seconds per group of the server and machine."""
    out = {}
    await group(browser, url, 1, last)  # warm: models loaded, the default page computed once
    for n in visitors:
        times, before, busy = [], cpu_seconds(pid), machine_busy_seconds()
        for _ in range(repeats):
            times += await group(browser, url, n, last)
        # the rest of the machine's CPU went to the clients, which share the server's cores
        server = (cpu_seconds(pid) - before) / repeats
        machine = (machine_busy_seconds() - busy) / repeats
        out[n] = {"first_map_s": times, "median_s": statistics.median(times),
                  "largest_s": max(times), "server_cpu_s": server, "machine_cpu_s": machine}
        print(f"{n:3d} together: median {statistics.median(times):.2f} s, largest "
              f"{max(times):.2f} s (n={len(times)}); CPU per group: server {server:.2f} s, "
              f"whole machine {machine:.2f} s", flush=True)
    return out


async def run(visitors: list[int], repeats: int, clients: str, app: str = "explorer") -> dict:
    pid: list[int] = []
    root, last = APPS[app]
    with streamlit_server(timeout_s=120, pid_out=pid, root=root) as url:
        if clients == "protocol":
            return await measure(None, url, pid[0], visitors, repeats, last)
        from playwright.async_api import async_playwright
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                return await measure(browser, url, pid[0], visitors, repeats, last)
            finally:
                await browser.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--visitors", type=int, nargs="+", default=[1, 4, 8, 20])
    p.add_argument("--repeats", type=int, default=1, help="groups per N")
    p.add_argument("--clients", choices=("browser", "protocol"), default="browser",
                   help="chromium contexts here, or light clients (a class on its own laptops)")
    p.add_argument("--app", choices=sorted(APPS), default="explorer",
                   help="the explorer, or the floor: a one-image streamlit page")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    load = os.getloadavg()[0]  # other work on the machine skews every figure: recorded
    groups = asyncio.run(run(args.visitors, args.repeats, args.clients, args.app))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_average_before": load,
              "command": "python -m benchmarks.bench_classroom "
                         + " ".join(["--app", args.app, "--clients", args.clients, "--visitors",
                                     *map(str, args.visitors), "--repeats", str(args.repeats)]),
              "app": args.app, "clients": args.clients,
              "groups": {str(n): g for n, g in groups.items()}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
