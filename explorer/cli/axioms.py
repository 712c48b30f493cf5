"""``axioms``: the axiom lab's tables for bundled sample inputs, printed or written as CSV."""
from __future__ import annotations

import argparse

HELP = "check the attribution axioms of methods on a model and a sample input"
DEFAULT_METHODS = "input_x_gradient,integrated_gradients,saliency,deeplift,epsilon_lrp,occlusion"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", default="digits-cnn", help="a model spec (zoo name, file.py:function, timm/<name>, file.onnx; default: digits-cnn)")
    parser.add_argument("--bias-free", action="store_true", help="check the bias-free variant")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated method names")
    parser.add_argument("--sample", type=int, default=0,
                        help="index of the bundled test digit (or sample photo) to explain")
    parser.add_argument("--target", type=int, default=None, help="class (default: predicted)")
    parser.add_argument("--max-features", type=int, default=4096,
                        help="compare Occlusion-1 with Sensitivity-1 up to this many pixels")
    parser.add_argument("--csv", default=None, help="also write the axiom table to this CSV file")


def _sample(entry, index: int):
    import torch

    from explorer.inputs.data import sample_digits, sample_photos
    from explorer.errors import InputError
    if entry.spec.channels == 1:
        images = sample_digits()["clean"]
        if not 0 <= index < len(images):
            raise InputError(f"--sample must be in 0..{len(images) - 1}, got {index}")
        return torch.from_numpy(images[index:index + 1]).float() / 255
    photos = list(sample_photos().values())
    if not 0 <= index < len(photos):
        raise InputError(f"--sample must be in 0..{len(photos) - 1}, got {index}")
    return entry.preprocess(photos[index].read_bytes())[None]


def run(args: argparse.Namespace) -> int:
    import sys

    import pandas as pd
    import torch

    import explorer
    from explorer.analyses.axioms import axiom_table
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        for m in methods:
            explorer.methods.get_method(m)
        entries = {v: explorer.load_model(args.model, bias_free=v == "bias-free", device="cpu")
                   for v in ("regular", "bias-free")}
        entry = entries["bias-free" if args.bias_free else "regular"]
        x = _sample(entry, args.sample)
        with torch.no_grad():
            target = int(entry.module(x).argmax()) if args.target is None else args.target
        results = {}
        for m in methods:
            label = explorer.method_label(m, args.bias_free)
            print(f"checking {label}...", file=sys.stderr, flush=True)
            results[label] = explorer.check_axioms(m, entry.module, x, target)
        unified = explorer.unified_view({v: e.module for v, e in entries.items()}, x, target,
                                         max_features=args.max_features)
    except explorer.InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame(axiom_table(results)).set_index("axiom")
    variant = "bias-free" if args.bias_free else "regular"
    print(f"{entry.spec.label} ({variant}), sample {args.sample}, target class {target}")
    with pd.option_context("display.width", 250, "display.max_columns", None,
                           "display.max_colwidth", 48):
        print(table.to_string())
        print()
        print(pd.DataFrame(unified).set_index("pair").to_string(float_format="{:.2e}".format))
    if args.csv:
        table.to_csv(args.csv)
    return 0
