"""``train``: train the bundled models into assets/ with their manifests, or run the decoy
experiment (plain vs attribution-prior training). Runs unchanged under
``torchrun --nproc_per_node=N -m explorer train ...`` (DDP; rank 0 logs and writes)."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "train the bundled models into assets/, or run the decoy attribution-prior experiment"
PRIOR_CHOICES = ["x-gradient", "gradient", "ig", "eg", "eg1"]


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", choices=["all", "digits-cnn", "decoy-digits-cnn", "digits-bcos"],
                        default="all", help="digits-bcos: the B-cos CNN, timed per epoch "
                                            "interleaved with a regular one (one process)")
    parser.add_argument("--experiment", choices=["decoy"], default=None,
                        help="decoy: plain and prior-trained decoy models, timed interleaved")
    parser.add_argument("--priors", nargs="+", choices=PRIOR_CHOICES,
                        default=["x-gradient", "gradient", "eg1"],
                        help="attributions in the RRR prior (eg1: EG with one reference; "
                             "ig, eg: k steps/references, timed but not in the zoo)")
    parser.add_argument("--k", type=int, default=4, help="IG steps / EG references (ig, eg)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's (digits-cnn 15, decoy models 6)")
    parser.add_argument("--subset", type=int, default=None,
                        help="train on the first N training digits only (quick runs, tests)")
    parser.add_argument("--variant", choices=["both", "regular", "bias-free"], default="both")
    parser.add_argument("--out", default=None, help="directory for weights and manifests "
                                                    "(default: assets/)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: reproduces the shipped weights), cuda, auto")


def run(args: argparse.Namespace) -> int:
    from explorer.inputs.data import ASSETS
    from explorer.runtime.distributed import world
    from explorer.train.bundled import RECIPES, write_bundled
    command = "python -m explorer " + " ".join(sys.argv[1:])

    def recipe(name):
        return dict(RECIPES[name], **({"epochs": args.epochs} if args.epochs else {}))
    out = args.out or ASSETS
    with world(args.device) as w:
        log = print if w.is_main else (lambda *a, **k: None)
        if args.experiment == "decoy":
            from explorer.train.decoy import run_experiment, variants
            rows = run_experiment(variants(args.priors, args.k), recipe("decoy-digits-cnn"),
                                  out=out, world=w, command=command,
                                  subset=args.subset, log=lambda m: log(m, file=sys.stderr))
            for row in rows:
                log(json.dumps({k: row[k] for k in ("file", "accuracy", "epoch_seconds_median",
                                                    "epoch_time_vs_plain")}))
            return 0
        flags = {"both": (False, True), "regular": (False,), "bias-free": (True,)}[args.variant]
        if args.model in ("digits-bcos", "all"):
            from explorer.train.bcos import write_bcos
            if w.distributed:
                log("digits-bcos trains in one process (its epoch timing is interleaved): skipped",
                    file=sys.stderr)
            else:
                manifest = write_bcos(recipe("digits-cnn"), subset=args.subset, out=out,
                                      command=command, log=lambda m: log(m, file=sys.stderr))
                log(json.dumps({k: manifest[k] for k in ("file", "accuracy", "cost")}))
            if args.model == "digits-bcos":
                return 0
        for name in ("digits-cnn", "decoy-digits-cnn") if args.model == "all" else (args.model,):
            for bias_free in flags:
                manifest = write_bundled(name, bias_free, recipe(name), world=w,
                                         subset=args.subset, out=out, command=command)
                log(json.dumps({k: manifest[k] for k in ("file", "accuracy", "training_seconds")}))
    return 0
