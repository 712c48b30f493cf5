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
    parser.add_argument("--only", choices=("walk", "layered"), default=None,
                        help="time one algorithm (no interleaving)")
    args = parser.parse_args()
    model = explorer.load_model("digits-cnn").module
    x = digits_for("digits-cnn", args.inputs)
    with torch.no_grad():
        target = model(x).argmax(1)
    base = torch.zeros_like(x)
    seconds: dict[str, list[float]] = {a: [] for a in ("walk", "layered")
                                       if args.only in (None, a)}
    ratios: dict[str, list[float]] = {a: [] for a in seconds}
    for rep in range(args.repeats):
        maps = {}
        one_pass = pass_seconds(model, x)
        for algorithm in seconds:
            start = time.perf_counter()
            total, info = exact_ig(model, x, target, base, 100_000, 256,
                                   float64=not args.float32, algorithm=algorithm)
            took = time.perf_counter() - start
            seconds[algorithm].append(took / args.inputs)
            # Seconds per region in float32 forward+backward passes of one input, measured
            # next to it: the budget's cost model (explorer.methods.budget.EXACT_*_PASSES).
            ratios[algorithm].append(took / float(info["regions"].sum()) / one_pass)
            maps[algorithm] = total
            print(f"repeat {rep} {algorithm:8s} {took / args.inputs:6.1f} s per digit "
                  f"({ratios[algorithm][-1]:.1f} passes per region), regions "
                  f"{info['regions'].tolist()}, passes {info['passes'].tolist()}, completeness "
                  f"error {float(info['completeness_error'].max()):.1e}", flush=True)
        if len(maps) < 2:
            continue
        diff = (maps["walk"] - maps["layered"]).flatten(1).norm(dim=1) \
            / maps["walk"].flatten(1).norm(dim=1)
        print(f"repeat {rep} map difference (relative L2) {float(diff.max()):.1e}", flush=True)
    for algorithm, s in seconds.items():
        print(f"{algorithm:8s} median {statistics.median(s):.1f} s per digit "
              f"(range {min(s):.1f} to {max(s):.1f}, {len(s)} runs, "
              f"{'float32' if args.float32 else 'float64'}, {torch.get_num_threads()} threads); "
              f"{statistics.median(ratios[algorithm]):.1f} float32 passes per region "
              f"(range {min(ratios[algorithm]):.1f} to {max(ratios[algorithm]):.1f})")


def pass_seconds(model: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> float:
    """Seconds of one float32 forward+backward of one input (median of 5, batch 256)."""
    points = x[:1].expand(batch, *x.shape[1:]).clone().requires_grad_(True)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        torch.autograd.grad(model(points)[:, 0].sum(), points)
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


if __name__ == "__main__":
    main()
