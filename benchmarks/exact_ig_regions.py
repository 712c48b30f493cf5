"""Exact IG's linear regions on the bundled digits CNNs (first bundled test digit, zero baseline).

Run: ``python benchmarks/exact_ig_regions.py [--inputs N] [--float32]``. Prints, per model and
variant, the regions crossed, the probes used, the completeness error and the wall time.
"""
import argparse
import time

import torch

import explorer
from explorer.bench.adaptive import BUNDLED, digits_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1)
    parser.add_argument("--float32", action="store_true", help="walk in float32 (not a copy)")
    args = parser.parse_args()
    for name in BUNDLED:
        for bias_free in (False, True):
            model = explorer.load_model(name, bias_free=bias_free).module
            x = digits_for(name, args.inputs)
            with torch.no_grad():
                target = model(x).argmax(1)
            start = time.perf_counter()
            e = explorer.explain("exact_ig", model, x, target, max_regions=100_000,
                                 batch_size=256, float64=not args.float32)
            info = {k: v.tolist() for k, v in e.info.items()
                    if isinstance(v, torch.Tensor)}
            print(f"{name} bias_free={bias_free}: {time.perf_counter() - start:.1f} s, {info}",
                  flush=True)


if __name__ == "__main__":
    main()
