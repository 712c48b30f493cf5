"""Time from navigation to the first heatmap of the default page, in Debian's chromium.

    python -m benchmarks.bench_browser --fresh 3 --warm 5

"fresh": a new streamlit server per load (models loaded, nothing cached, browser cache empty);
"warm": reloads against one server that has already served the page (everything cached).
Each load opens a new browser context and measures until the first plotly heatmap is drawn
(the image of the Attributions grid visible). Prints medians and ranges, and writes JSON with --json.
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
def streamlit_server(timeout_s: float = 60.0, options: tuple[str, ...] = ()):
    """A headless streamlit server of the app on a free loopback port; yields its URL.
    ``options``: more command-line options, e.g. ("--runner.postScriptGC", "true")."""
    port = free_port()
    env = {**os.environ, "EXPLORER_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.port", str(port),
         "--server.address", "127.0.0.1", *options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
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


def time_to_first_heatmap(browser, url: str, trace: str | None = None) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    if trace:
        browser.start_tracing(page=page, path=trace, screenshots=False)
    start = time.perf_counter()
    page.goto(url)
    page.locator(FIRST_HEATMAP).first.wait_for(state="visible", timeout=180_000)
    elapsed = time.perf_counter() - start
    if trace:
        browser.stop_tracing()
    # The maps show before the timing is done: leave only when the run has finished, so the
    # next load neither shares the CPU with this one's timing nor finds its cache half filled.
    page.locator(LAST_ELEMENT).wait_for(state="attached", timeout=600_000)
    context.close()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fresh", type=int, default=3, help="loads, each on a fresh server")
    p.add_argument("--warm", type=int, default=5, help="reloads against one warm server")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--trace", type=Path, help="write a chromium performance trace of a warm load")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    fresh, warm = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        for _ in range(args.fresh):
            with streamlit_server() as url:
                fresh.append(time_to_first_heatmap(browser, url))
        with streamlit_server() as url:
            time_to_first_heatmap(browser, url)  # fills the server's caches
            for i in range(args.warm):
                trace = str(args.trace) if (args.trace and i == args.warm - 1) else None
                warm.append(time_to_first_heatmap(browser, url, trace))
        browser.close()
    result = {
        "fresh_s": fresh, "warm_s": warm,
        "fresh_median_s": statistics.median(fresh) if fresh else None,
        "warm_median_s": statistics.median(warm) if warm else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    for kind in ("fresh", "warm"):
        values = result[f"{kind}_s"]
        if values:
            print(f"{kind:5s}: median {statistics.median(values):.2f} s "
                  f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
