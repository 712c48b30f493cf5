"""Do the app's timing ratios agree with the benchmark's? (issue 8's target: within 25%.)

    python -m benchmarks.app_vs_bench --runs 2 [--threads 1] [--clock process] [--bench FILE.json]

Each run starts a fresh Python process that renders the default Explore page through
streamlit's AppTest (its live, interleaved timing included) and prints the page's timing table.
Every pair of rows shared with the benchmark's "methods" section (same method and variant; the
app's IG at its default 32 steps is the bench's "Integrated Gradients (32 steps)") gives a ratio
in each; printed: each pair's ratio in the app and in the bench, and how far apart (app / bench - 1).
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, torch
os.environ.setdefault("EXPLORER_OFFLINE", "1")
if {threads}:
    torch.set_num_threads({threads})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=600)
at.session_state["explore-timing-clock"] = {clock!r}
at.run()
assert not at.exception, [e.value for e in at.exception]
from explorer.presentation.viz import parse_markdown_table
tables = [parse_markdown_table(m.value) for m in at.markdown]
table = next(t for t in tables if t is not None and "x the one-pass limit" in t.columns)
print(json.dumps([{{"method": m, "variant": r["variant"], "median_ms": float(r["median (ms)"])}}
                  for m, r in table.iterrows()]))
"""

SAME = {"Integrated Gradients": "Integrated Gradients (32 steps)",
        "Expected Gradients": "Expected Gradients (64 samples)"}


def app_rows(threads: int, clock: str) -> dict:
    code = CHILD.format(app=str(ROOT / "streamlit_app.py"), threads=threads, clock=clock)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.strip().splitlines()[-1]
    return {(SAME.get(r["method"], r["method"]), r["variant"]): r["median_ms"] for r in json.loads(out)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads in the app (0: torch's)")
    p.add_argument("--clock", default="wall", choices=["wall", "process"],
                   help="the Explore page's timing clock (use the bench run's for like with like)")
    p.add_argument("--bench", type=Path, default=ROOT / "benchmarks/results/bench-digits-cnn-cpu.json")
    args = p.parse_args()
    bench = json.loads(args.bench.read_text())
    ref = {(r["method"], r["variant"]): r["median_ms"] for r in bench["sections"]["methods"]["rows"]}
    for run in range(1, args.runs + 1):
        app = app_rows(args.threads, args.clock)
        shared = [k for k in app if k in ref]
        worst = 0.0
        print(f"\nfresh app run {run}: {len(shared)} rows shared with {args.bench.name}")
        for a, b in itertools.combinations(shared, 2):
            ra, rb = app[a] / app[b], ref[a] / ref[b]
            off = ra / rb - 1
            worst = max(worst, abs(off))
            print(f"  {a[0]} [{a[1]}] / {b[0]} [{b[1]}]: app {ra:.3g}, bench {rb:.3g}, off {off:+.0%}")
        print(f"  largest disagreement: {worst:.0%} (target: within 25%)")


if __name__ == "__main__":
    main()
