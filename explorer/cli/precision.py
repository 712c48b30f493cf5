"""``precision``: the Precision lesson on the command line (float64/float32/TF32/bf16 side by side)."""
from __future__ import annotations

import argparse

HELP = "X-Gradient's and IG's completeness and map error in float64, float32, TF32 and bf16"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", default="digits-cnn", help="zoo model (default digits-cnn); "
                        "its bias-free variant is used")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--batch", type=int, default=4, help="inputs (bundled samples, default 4)")
    parser.add_argument("--size", type=int, default=None, help="input side for ImageNet models")
    parser.add_argument("--steps", type=int, default=32, help="IG steps (default 32)")
    parser.add_argument("--random-weights", action="store_true", help="no trained weights")


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from explorer.bench import BenchConfig
    from explorer.bench.common import batch, load
    from explorer.errors import InputError
    from explorer.analyses.precision_lesson import precision_lesson
    try:
        cfg = BenchConfig(model=args.model, device=args.device, batch=args.batch, size=args.size,
                          pretrained=not args.random_weights)
        entry = load(cfg, True)
        x, target = batch(cfg, entry)
        rows = precision_lesson(entry.module, x, target, steps=args.steps)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name(x.device) if x.device.type == "cuda" else "CPU"
    print(f"{entry.title}, input {list(x.shape)}, IG {args.steps} steps, on {x.device} "
          f"({where}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'format':16s} {'here':14s} {'X-Grad compl.':>13s} {'IG compl.':>10s} "
          f"{'X-Grad vs f64':>13s} {'IG vs f64':>10s} {'ms/pass':>8s}")
    num = lambda v, f="{:.2e}": "n/a" if v is None else f.format(v)  # noqa: E731
    for r in rows:
        print(f"{r.label:16s} {r.status:14s} {num(r.xgrad_completeness):>13s} "
              f"{num(r.ig_completeness):>10s} {num(r.xgrad_max_diff):>13s} "
              f"{num(r.ig_max_diff):>10s} {num(r.ms_per_pass, '{:.3g}'):>8s}")
    for r in rows:
        if r.status != "computed":
            print(f"  {r.label}: {r.note}")
    return 0
