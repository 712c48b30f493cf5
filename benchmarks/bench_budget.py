"""How close the compute budget's estimates come to the time requests really take.

    python -m benchmarks.bench_budget --model digits-cnn
    python -m benchmarks.bench_budget --model resnet18 --rounds 2

For each request: the estimate (``explorer.estimate``: cost model x per-pass time measured once
by ``explorer.pass_time``), then the measured wall time, round-robin over the requests after one
warm-up call each so that drift hits them alike. Prints the median and the spread (min-max) of
measured / estimated per request. Nothing is asserted; the machine is printed with the numbers.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import explorer
from benchmarks.bench_attribution import load, sample_input
from explorer.runtime.timing import synchronize

REQUESTS = [
    ("gradient", {}),
    ("integrated_gradients", {"steps": 8}),
    ("integrated_gradients", {"steps": 64}),
    ("integrated_gradients", {"steps": 64, "batch_size": 8}),
    ("smoothgrad", {"samples": 16}),
    ("occlusion", {"window": 8, "stride": 8}),
    ("mfaba", {"steps": 10}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="digits-cnn", choices=sorted(explorer.MODELS))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    entry = load(args.model, False, explorer.default_device())
    x = sample_input(entry).to(entry.device)
    start = time.perf_counter()
    per_pass = explorer.pass_time(entry.module, x.shape[1:])
    took = time.perf_counter() - start
    print(f"{args.model} on {entry.device}, {platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"per input: forward {per_pass.forward_s * 1e3:.3g} ms, backward "
          f"{per_pass.backward_s * 1e3:.3g} ms; per call {per_pass.call_s * 1e3:.3g} ms "
          f"(measured in {took:.2f} s)")
    requests = REQUESTS
    estimates = [explorer.estimate(m, params, x.shape, per_pass) for m, params in requests]
    times = [[] for _ in requests]
    for k in range(args.rounds + 1):  # round 0 is the warm-up
        for i, (m, params) in enumerate(requests):
            synchronize(x.device)
            t0 = time.perf_counter()
            explorer.attribute(m, entry.module, x, 0, **params)
            synchronize(x.device)
            if k:
                times[i].append(time.perf_counter() - t0)
    print(f"{'request':42s} {'estimate s':>11s} {'measured s':>11s} {'measured/estimate':>26s}")
    for (m, params), est, ts in zip(requests, estimates, times):
        ratios = [t / est.seconds for t in ts]
        name = m + (" " + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
        print(f"{name:42s} {est.seconds:11.3g} {statistics.median(ts):11.3g} "
              f"{statistics.median(ratios):8.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
