"""Time from navigation to the first heatmap of the default page, in Debian's chromium.

    python -m benchmarks.bench_browser --fresh 3 --warm 5 --visitor 5

"fresh": a new streamlit server per load and an empty browser cache (models loaded, nothing
computed yet), as for the first person after a start;
"warm": reloads of one tab (as F5) against a server that has already served the page: the
server's caches are filled and the browser keeps Streamlit's scripts, which it serves as
immutable;
"visitor": a new browser context per load (empty browser cache) against the warm server, as for
a second person opening the app: the browser fetches and compiles all of Streamlit's scripts.
Each load is measured until the first heatmap is drawn (the image of the Attributions grid
visible), then waits for the page's run to finish before the next. Prints medians and ranges,
and writes JSON with --json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# The Explore page draws its maps as one image (the grid), then the colour bar.
FIRST_HEATMAP = "[data-testid='stImage'] img >> nth=0"
# The page's last element: once it shows, the script run (timing included) has finished.
LAST_ELEMENT = "[data-testid='stDownloadButton'] >> nth=2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(timeout_s: float = 60.0, options: tuple[str, ...] = (), root: Path = ROOT,
                     pid_out: list | None = None):
    """A headless streamlit server of the app on a free loopback port; yields its URL.
    ``options``: more command-line options, e.g. ("--runner.postScriptGC", "true"); ``root``:
    the checkout to serve (another worktree, to compare two versions of the app); ``pid_out``:
    a list the server's process id is appended to (to read its CPU time)."""
    port = free_port()
    env = {**os.environ, "EXPLORER_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(root / "streamlit_app.py"),
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.port", str(port),
         "--server.address", "127.0.0.1", *options],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if pid_out is not None:
        pid_out.append(proc.pid)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not become healthy: "
                                       + proc.stdout.read1(5000).decode(errors="replace"))
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    return context, context.new_page()


def time_to_first_heatmap(browser, url: str, trace: str | None = None, page=None) -> float:
    """Seconds from navigation to the first heatmap: a new context, or a reload of ``page``."""
    context, tab = (None, page) if page is not None else new_page(browser)
    if trace:
        browser.start_tracing(page=tab, path=trace, screenshots=False)
    start = time.perf_counter()
    if page is not None:
        tab.reload()
    else:
        tab.goto(url)
    tab.locator(FIRST_HEATMAP).first.wait_for(state="visible", timeout=180_000)
    elapsed = time.perf_counter() - start
    if trace:
        browser.stop_tracing()
    # The maps show before the timing is done: go on only when the run has finished, so the
    # next load neither shares the CPU with this one's timing nor finds its cache half filled.
    tab.locator(LAST_ELEMENT).wait_for(state="attached", timeout=600_000)
    if context is not None:
        context.close()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fresh", type=int, default=3, help="loads, each on a fresh server")
    p.add_argument("--warm", type=int, default=5, help="reloads of one tab against a warm server")
    p.add_argument("--visitor", type=int, default=5,
                   help="loads in a new browser context (empty cache) against a warm server")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--trace", type=Path, help="write a chromium performance trace of a warm load")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    times = {"fresh": [], "warm": [], "visitor": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        for _ in range(args.fresh):
            with streamlit_server() as url:
                times["fresh"].append(time_to_first_heatmap(browser, url))
        with streamlit_server() as url:
            context, tab = new_page(browser)
            tab.goto(url)  # fills the server's caches and this tab's
            tab.locator(LAST_ELEMENT).wait_for(state="attached", timeout=600_000)
            for i in range(max(args.warm, args.visitor)):  # alternated: the same conditions
                if i < args.warm:
                    trace = str(args.trace) if (args.trace and i == args.warm - 1) else None
                    times["warm"].append(time_to_first_heatmap(browser, url, trace, page=tab))
                if i < args.visitor:
                    times["visitor"].append(time_to_first_heatmap(browser, url))
            context.close()
        browser.close()
    result = {f"{k}_s": v for k, v in times.items()}
    result.update({f"{k}_median_s": statistics.median(v) if v else None for k, v in times.items()})
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    for kind, values in times.items():
        if values:
            print(f"{kind:7s}: median {statistics.median(values):.2f} s "
                  f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
