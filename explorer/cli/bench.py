"""``bench``: interleaved speed and memory of every method, ours against Captum, on one model."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "measure speed and memory (interleaved rounds, median and IQR): methods, Captum, memory, MFABA"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    from explorer.bench import SECTIONS
    parser.add_argument("--model", default="digits-cnn", help="a model spec (zoo name, file.py:function, timm/<name>, file.onnx; default digits-cnn)")
    parser.add_argument("--checkpoint", help="weights to load: .safetensors or a state dict")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--batch", type=int, default=1, help="inputs per call (default 1)")
    parser.add_argument("--size", type=int, default=None,
                        help="input side for ImageNet-size models (default: the model's, 224)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds, at least (default 10)")
    parser.add_argument("--budget", type=float, default=0.0,
                        help="seconds per section after which no new round starts (default 0: "
                             "exactly --rounds)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice). On a shared, busy "
                             "machine 1 thread is far steadier")
    parser.add_argument("--clock", default="wall", choices=["wall", "process"],
                        help="wall (default): elapsed time; process: this process's CPU time, "
                             "which other processes on a shared machine do not inflate (CPU only)")
    parser.add_argument("--precision", default="float32",
                        help="number format of every timed call, ours and Captum's: float32 "
                             "(default, TF32 off), tf32, bf16 (autocast), float64")
    parser.add_argument("--random-weights", action="store_true",
                        help="do not load trained weights (speed does not depend on them)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma list of {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"),
                        help="folder for the JSON and plots (default ./bench-out)")


def run(args: argparse.Namespace) -> int:
    import sys

    from explorer.errors import InputError
    try:
        return _run(args)
    except InputError as err:  # bad settings: a message to act on, exit status 2
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import torch

    from explorer.bench import BenchConfig, run_bench
    from explorer.bench.output import table, write
    from explorer.errors import InputError
    from explorer.models.spec import resolve
    resolve(args.model)  # InputError for an unknown or refused model spec, before any work
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise InputError(f"--device {args.device!r} is not a device: {err}") from None
    if (device.type == "cuda" and not torch.cuda.is_available()) or (
            device.type == "mps" and not torch.backends.mps.is_available()):
        raise InputError(f"--device {args.device}: not available on this machine")
    if args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(model=args.model, device=args.device, rounds=args.rounds, quick=args.quick,
                      out=args.out, batch=args.batch, size=args.size, budget_s=args.budget,
                      pretrained=not args.random_weights, clock=args.clock,
                      checkpoint=args.checkpoint, precision=args.precision,
                      sections=tuple(s.strip() for s in args.sections.split(",") if s.strip()))
    result = run_bench(cfg)
    print(table(result))
    files = write(result, args.out)
    for p in files["problems"]:
        print(p)
    print(f"wrote {len(files['written'])} files under {args.out}/ (JSON: {files['written'][0]})")
    return 0
