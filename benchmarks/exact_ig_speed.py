"""Exact IG's two algorithms, timed interleaved on the regular bundled digits CNN.

The probe walk (``algorithm="walk"``: one forward with tangents and one backward per region)
and the layer-by-layer ExactLine split (``"layered"``) run alternately on the same digits (the
machine is shared and noisy: interleaving exposes both to the same load), zero baseline, the
predicted class. Prints per run the seconds, regions, passes and the map difference between
the two, then the median and range of the seconds per digit.

Run: ``python benchmarks/exact_ig_speed.py [--repeats 3] [--inputs 1] [--float32]``.
"""
import argparse
import statistics
import time

import torch

import explorer
from explorer.bench.adaptive import digits_for
from explorer.methods.exact import exact_ig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=1, help="bundled test digits (1..20)")
    parser.add_argument("--float32", action="store_true", help="walk in float32 (no copy)")
    args = parser.parse_args()
    model = explorer.load_model("digits-cnn").module
    x = digits_for("digits-cnn", args.inputs)
    with torch.no_grad():
        target = model(x).argmax(1)
    base = torch.zeros_like(x)
    seconds: dict[str, list[float]] = {"walk": [], "layered": []}
    for rep in range(args.repeats):
        maps = {}
        for algorithm in seconds:
            start = time.perf_counter()
            total, info = exact_ig(model, x, target, base, 100_000, 256,
                                   float64=not args.float32, algorithm=algorithm)
            took = time.perf_counter() - start
            seconds[algorithm].append(took / args.inputs)
            maps[algorithm] = total
            print(f"repeat {rep} {algorithm:8s} {took / args.inputs:6.1f} s per digit, regions "
                  f"{info['regions'].tolist()}, passes {info['passes'].tolist()}, completeness "
                  f"error {float(info['completeness_error'].max()):.1e}", flush=True)
        diff = (maps["walk"] - maps["layered"]).flatten(1).norm(dim=1) \
            / maps["walk"].flatten(1).norm(dim=1)
        print(f"repeat {rep} map difference (relative L2) {float(diff.max()):.1e}", flush=True)
    for algorithm, s in seconds.items():
        print(f"{algorithm:8s} median {statistics.median(s):.1f} s per digit "
              f"(range {min(s):.1f} to {max(s):.1f}, {len(s)} runs, "
              f"{'float32' if args.float32 else 'float64'}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
