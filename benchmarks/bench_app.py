"""How long the app takes to compute and render its default page, through streamlit's AppTest.

    python -m benchmarks.bench_app --runs 5

"cold" is the first run in a fresh process (models loaded, nothing cached); "recompute" changes
the explained class, so every method of the default selection runs again (models cached);
"display only" toggles a display setting (everything cached). Browser drawing is not included.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("EXPLORER_OFFLINE", "1")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    assert not at.exception, [e.value for e in at.exception]

    recompute, display = [], []
    for k in range(args.runs):
        target = next(sb for sb in at.selectbox if sb.label == "Explain the logit of class")
        target.set_value(1 + k % 9)
        t = time.perf_counter()
        at.run()
        recompute.append(time.perf_counter() - t)
        at.sidebar.toggle(key="overlay").set_value(k % 2 == 0)
        t = time.perf_counter()
        at.run()
        display.append(time.perf_counter() - t)
    methods = at.sidebar.multiselect(key="methods").value
    print(f"default page: digits-cnn, regular + bias-free, methods {methods}, "
          "timing: at least 10 interleaved rounds within its 2 s budget")
    print(f"machine: {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"cold first run       {cold:6.2f} s")
    print(f"recompute (median)   {statistics.median(recompute):6.2f} s   of {args.runs}")
    print(f"display only         {statistics.median(display):6.2f} s   of {args.runs}")


if __name__ == "__main__":
    main()
