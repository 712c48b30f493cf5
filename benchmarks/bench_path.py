"""How long the Path and Convergence pages take to compute their zero-click defaults.

    python -m benchmarks.bench_path --runs 5 [--naive]

Through streamlit's AppTest on the default selection (digits-cnn, regular + bias-free, first test
digit, zero baseline). Each round clears the result cache and reruns each page in turn
(interleaved, so drift hits both alike); models and imports are warm, browser drawing is not
included. "slider" moves the alpha slider (everything cached). ``--naive`` also times, on the
same machine, the convergence table computed as 35 separate ``integrated_gradients`` calls plus
``completeness`` each, against ``explorer.convergence`` (shared nodes), as a ratio.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

SCRIPT = """
from explorer.ui import context
from explorer.ui.pages import {page}
context.build()
{page}.render()
"""


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):6.2f} s  (min {min(values):.2f}, "
            f"max {max(values):.2f}, n={len(values)})")


def naive_ratio(runs: int) -> str:
    import explorer
    from explorer.inputs.data import sample_digits
    from explorer.methods.path import RULES
    from explorer.analyses.quadrature_convergence import DEFAULT_STEPS

    d = sample_digits()
    x, t = torch.from_numpy(d["clean"][:1]).float() / 255, int(d["labels"][0])
    model = explorer.load_model("digits-cnn").module

    def one_by_one():
        for rule in RULES:
            for s in DEFAULT_STEPS:
                ig = explorer.attribute("integrated_gradients", model, x, t, steps=s, rule=rule,
                                        batch_size=512)
                explorer.completeness(model, x, ig, t)

    shared, naive = [], []
    for _ in range(runs):
        for fn, out in ((lambda: explorer.convergence(model, x, t), shared), (one_by_one, naive)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    ratios = sorted(n / s for n, s in zip(naive, shared))
    return (f"convergence, shared nodes   {spread(shared)}\n"
            f"35 IG calls one by one      {spread(naive)}\n"
            f"one by one / shared: median {statistics.median(ratios):.2f}x "
            f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}), regular digits-cnn")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--naive", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("EXPLORER_OFFLINE", "1")
    load = os.getloadavg()[0]
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    apps = {page: AppTest.from_string(SCRIPT.format(page=page), default_timeout=600)
            for page in ("path", "convergence")}
    for at in apps.values():  # imports and model loading, not measured
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    compute = {page: [] for page in apps}
    slider = []
    for k in range(args.runs):
        for page, at in apps.items():
            st.cache_data.clear()
            start = time.perf_counter()
            at.run()
            compute[page].append(time.perf_counter() - start)
            assert not at.exception, [e.value for e in at.exception]
            if page == "path":  # before the next page clears the cache
                at.slider(key="path-alpha").set_value([0.25, 0.75][k % 2])
                start = time.perf_counter()
                at.run()
                slider.append(time.perf_counter() - start)
    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"load average at start: {load:.1f}, after: {os.getloadavg()[0]:.1f}")
    print("default selection: digits-cnn, regular + bias-free, zero baseline")
    print(f"Path page, compute        {spread(compute['path'])}")
    print(f"Convergence page, compute {spread(compute['convergence'])}")
    print(f"Path page, move slider    {spread(slider)}")
    if args.naive:
        print(naive_ratio(max(1, args.runs // 2)))


if __name__ == "__main__":
    main()
