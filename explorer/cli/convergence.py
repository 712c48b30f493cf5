"""``convergence``: IG's relative completeness error against steps, per rule, on a sample input."""
from __future__ import annotations

import argparse

HELP = "IG's completeness error vs steps for every quadrature rule (and X-Gradient's)"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", default="digits-cnn", help="a model spec (zoo name, file.py:function, timm/<name>, file.onnx; default: digits-cnn)")
    parser.add_argument("--bias-free", action="store_true", help="the bias-free variant")
    parser.add_argument("--sample", type=int, default=0,
                        help="index of the bundled test digit (or sample photo)")
    parser.add_argument("--baseline", default="zero", help="named baseline (default: zero)")
    parser.add_argument("--steps", default="8,16,32,64,128,256,512", help="comma-separated")
    parser.add_argument("--rules", default="left,right,middle,trapezoid,gauss_legendre")


def _sample(entry, index: int):
    import torch

    from explorer.inputs.data import sample_digits, sample_photos
    if entry.spec.channels == 1:
        d = sample_digits()
        i = index % len(d["labels"])
        return torch.from_numpy(d["clean"][i:i + 1]).float() / 255, f"test digit #{d['test_index'][i]}"
    photos = sorted(sample_photos().items())
    name, path = photos[index % len(photos)]
    return entry.preprocess(path.read_bytes())[None], name


def run(args: argparse.Namespace) -> int:
    import torch

    import explorer
    try:
        steps = tuple(int(s) for s in args.steps.split(","))
    except ValueError:
        raise SystemExit(f"--steps must be comma-separated integers, got {args.steps!r}")
    entry = explorer.load_model(args.model, bias_free=args.bias_free)
    x, name = _sample(entry, args.sample)
    x = x.to(entry.device)
    with torch.no_grad():
        target = int(entry.module(x).argmax(1)[0])
    base = explorer.make_baseline(args.baseline, x, input_space=entry.input_space)
    try:
        c = explorer.convergence(entry.module, x, target, baseline=base, steps=steps,
                                 rules=tuple(args.rules.split(",")), exact=False)
    except explorer.InputError as err:
        raise SystemExit(f"error: {err}")
    print(f"{entry.title}, {name}, class {entry.labels[target]} (predicted), "
          f"baseline {args.baseline}; F(x) - F(x') = {float(c.delta[0]):.4g}")
    print(f"relative completeness error |sum - (F(x) - F(x'))| / |F(x) - F(x')|, "
          f"{c.evaluations} distinct path points evaluated")
    print(f"{'rule':<16}" + "".join(f"{s:>10}" for s in c.steps))
    for r, rule in enumerate(c.rules):
        print(f"{rule:<16}" + "".join(f"{float(e):>10.2e}" for e in c.rel_error[r, :, 0]))
    print(f"{'X-Gradient':<16}{float(c.x_gradient_error[0]):>10.2e}  (1 pass; against the zero "
          "baseline, exact only on a bias-free network)")
    return 0
