"""Expected gradients' peak resident memory against its sample count (issue 21).

    python -m benchmarks.bench_eg_memory --samples 16 256 1024
    python -m benchmarks.bench_eg_memory --samples 16 256 1024 --steady-heap
    python -m benchmarks.bench_eg_memory --samples --chunk-time 2

ResNet-18 at 224 x 224 with random weights, one input, the four sample photos as background,
``batch_size=16``: each configuration in a fresh process (``explorer.bench.memory``), its peak
RSS, and "added" over a process that makes one forward+backward. ``--steady-heap`` runs the
children with ``EXPLORER_STEADY_HEAP=1``: glibc's mmap threshold fixed
(``explorer.runtime.heap``); without it, glibc's dynamic threshold (the library's default). ``--chunk-time N``: the time that costs, N interleaved pairs of
fresh processes (fixed threshold, then kept malloc), each timing ``explain`` with 64 samples
(4 chunks) after a one-chunk warm-up call: CPU and wall seconds and page faults per chunk.
Slow on 2 cores (1024 samples: minutes); printed, not stored.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from explorer.bench import BenchConfig
from explorer.bench.memory import in_subprocess


CHUNK_TIME = """
import json, resource, time, torch
torch.set_num_threads(1)
import explorer
from explorer.bench import BenchConfig
from explorer.bench.common import batch, load
from explorer.inputs.data import background_set
cfg = BenchConfig(model="resnet18", size=224, pretrained=False, device="cpu")
entry = load(cfg, False)
x, target = batch(cfg, entry)
bg = torch.nn.functional.interpolate(background_set(entry), size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)
run = lambda samples: explorer.attribute("expected_gradients", entry.module, x, target,
                                         baseline=bg, samples=samples, batch_size=16)
def used():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_minflt, time.perf_counter()
run(16)
c0, f0, t0 = used()
run(64)
c1, f1, t1 = used()
print(json.dumps({"cpu_s": (c1 - c0) / 4, "wall_s": (t1 - t0) / 4, "faults": (f1 - f0) // 4}))
"""


def chunk_time(pairs: int) -> None:
    for _ in range(pairs):
        for keep in ("", "1"):
            env = {**os.environ, "EXPLORER_STEADY_HEAP": "" if keep else "1"}
            done = subprocess.run([sys.executable, "-c", CHUNK_TIME], env=env, check=True,
                                  capture_output=True, text=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{'kept malloc' if keep else 'fixed threshold'}: per chunk of 16, "
                  f"{r['cpu_s']:.2f} s CPU, {r['wall_s']:.2f} s wall, {r['faults']} page faults",
                  flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="*", default=[16, 256, 1024])
    parser.add_argument("--method", default="expected_gradients")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steady-heap", action="store_true",
                        help="children fix glibc's mmap threshold (EXPLORER_STEADY_HEAP=1)")
    parser.add_argument("--chunk-time", type=int, default=0, metavar="N",
                        help="also time a chunk with and without the fixed threshold, N pairs")
    args = parser.parse_args(argv)
    if args.chunk_time:
        chunk_time(args.chunk_time)
    if not args.samples:
        return
    if args.steady_heap:
        os.environ["EXPLORER_STEADY_HEAP"] = "1"  # the children inherit it
    cfg = BenchConfig(model="resnet18", size=224, pretrained=False, device="cpu")
    base = in_subprocess(cfg, 0, 1)["peak_rss_mb"]
    print(f"one forward+backward: peak RSS {base:.0f} MB", flush=True)
    for samples in args.samples:
        peak = in_subprocess(cfg, samples, args.batch_size, args.method)["peak_rss_mb"]
        print(f"{args.method} samples={samples} batch_size={args.batch_size}: peak RSS "
              f"{peak:.0f} MB, added {peak - base:+.0f} MB", flush=True)


if __name__ == "__main__":
    main()
