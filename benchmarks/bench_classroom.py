"""A class opening the link together: N browser contexts load the default page at once.

    python -m benchmarks.bench_classroom --visitors 1 4 8 20 --json benchmarks/results/classroom.json

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

from benchmarks.bench_browser import CHROMIUM, FIRST_HEATMAP, LAST_ELEMENT, streamlit_server

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def one_visitor(browser, url: str, start: asyncio.Event) -> float:
    context = await browser.new_context(viewport={"width": 1400, "height": 1800})
    try:
        tab = await context.new_page()
        await start.wait()
        t0 = time.perf_counter()
        await tab.goto(url, timeout=600_000)  # 20 contexts on 2 cores: "load" takes a while
        await tab.locator(FIRST_HEATMAP).first.wait_for(state="visible", timeout=600_000)
        elapsed = time.perf_counter() - t0
        # the run (timing included) finishes before the next group starts
        await tab.locator(LAST_ELEMENT).wait_for(state="attached", timeout=600_000)
        return elapsed
    finally:
        await context.close()


async def group(browser, url: str, n: int) -> list[float]:
    """N contexts created first, then released together: they navigate at the same moment."""
    start = asyncio.Event()
    tasks = [asyncio.create_task(one_visitor(browser, url, start)) for _ in range(n)]
    await asyncio.sleep(0.5 + 0.05 * n)  # every context and tab exists before the start
    start.set()
    return list(await asyncio.gather(*tasks))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(visitors: list[int], repeats: int) -> tuple[dict, dict]:
    from playwright.async_api import async_playwright

    out, server_cpu, pid = {}, {}, []
    with streamlit_server(timeout_s=120, pid_out=pid) as url:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            await group(browser, url, 1)  # warm: models loaded, the default page computed once
            for n in visitors:
                times, before = [], cpu_seconds(pid[0])
                for _ in range(repeats):
                    times += await group(browser, url, n)
                out[n] = times
                # what the server spent (its script runs): the rest of the machine's CPU went
                # to the browsers, which on loopback share the server's cores
                server_cpu[n] = (cpu_seconds(pid[0]) - before) / repeats
                print(f"{n:3d} together: median {statistics.median(times):.2f} s, "
                      f"largest {max(times):.2f} s (n={len(times)}); server CPU "
                      f"{server_cpu[n]:.2f} s per group", flush=True)
            await browser.close()
    return out, server_cpu


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--visitors", type=int, nargs="+", default=[1, 4, 8, 20])
    p.add_argument("--repeats", type=int, default=1, help="groups per N")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    times, server_cpu = asyncio.run(run(args.visitors, args.repeats))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": "python -m benchmarks.bench_classroom "
                         + " ".join(["--visitors", *map(str, args.visitors)]),
              "groups": {str(n): {"first_map_s": t, "median_s": statistics.median(t),
                                  "largest_s": max(t), "server_cpu_s": server_cpu[n]}
                         for n, t in times.items()}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
