"""``attribute``: every image in a folder (or glob) through chosen methods, into files.

Runs unchanged under ``torchrun --nproc_per_node=N -m explorer attribute ...`` (one shard of the
images per rank, rows merged by rank 0). The work is ``explorer.cli.batch``; this module parses,
reports and sets the exit status: 0 all done, 1 some files or methods failed (see
OUT/errors.csv), 2 bad arguments or an incompatible output folder.
"""
from __future__ import annotations

import argparse
import shlex
import sys

HELP = "attribute a folder of images with chosen methods into .npy, PNG and results.csv"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", required=True, help="a model spec: zoo name (explorer models), path/to/file.py:function, package.module:function, timm/<name> or file.onnx")
    parser.add_argument("--bias-free", action="store_true", help="the model's bias-free variant")
    parser.add_argument("--checkpoint", help="weights to load instead: a path, URL or 'paper'")
    parser.add_argument("--methods", required=True,
                        help="comma-separated method names (python -m explorer methods)")
    parser.add_argument("--input", required=True, help="a folder of images, or a glob ('imgs/**/*.jpg')")
    parser.add_argument("--out", required=True, help="output folder (created; resumable)")
    parser.add_argument("--baseline", default="zero", help="named baseline (default: zero)")
    parser.add_argument("--baseline-image", help="the image for --baseline image")
    parser.add_argument("--target", default="predicted",
                        help="'predicted' (default) or a class index for every image")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", default="float32",
                        help="number format: float32 (default, TF32 off), tf32, bf16 (autocast), "
                             "float64; non-default is labelled in results.csv")
    parser.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a hyper-parameter, e.g. integrated_gradients.steps=64 (repeatable)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo everything in --out, also when its settings differ")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def command_line(args: argparse.Namespace, world_size: int) -> str:
    """The command as one could type it again (from the parsed arguments)."""
    words = ["python", "-m", "explorer", "attribute"]
    if world_size > 1:
        words = ["torchrun", f"--nproc_per_node={world_size}", "-m", "explorer", "attribute"]
    for name in ("model", "checkpoint", "methods", "input", "out", "baseline", "baseline_image",
                 "target", "batch_size", "device"):
        value = getattr(args, name)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    if getattr(args, "precision", "float32") != "float32":
        words += ["--precision", args.precision]
    for item in args.param:
        words += ["--param", item]
    words += [f"--{flag.replace('_', '-')}" for flag in ("bias_free", "overwrite") if getattr(args, flag)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from explorer.cli.batch import check_device, make_settings, parse_params, run_batch
    from explorer.runtime.distributed import world
    from explorer.errors import InputError
    try:
        settings = make_settings(
            args.model, args.methods, params=parse_params(args.param), bias_free=args.bias_free,
            checkpoint=args.checkpoint, baseline=args.baseline, baseline_image=args.baseline_image,
            target=args.target, batch_size=args.batch_size, precision=args.precision)
        with world(check_device(args.device)) as w:
            summary = run_batch(settings, args.input, args.out, world=w, overwrite=args.overwrite,
                                command=command_line(args, w.size), progress=not args.no_progress)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not w.is_main:
        return 0  # rank 0 has every rank's counts and reports the status for all
    print(summary.text())
    return 0 if summary.ok else 1
