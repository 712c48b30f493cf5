"""``train``: train the bundled models into assets/ with their manifests."""
from __future__ import annotations

import argparse
import json

HELP = "train the bundled models into assets/"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", choices=["all", "digits-cnn", "decoy-digits-cnn"], default="all")


def run(args: argparse.Namespace) -> int:
    from explorer.train import BUNDLED, write_bundled
    for name in BUNDLED if args.model == "all" else (args.model,):
        for bias_free in (False, True):
            manifest = write_bundled(name, bias_free)
            print(json.dumps({k: manifest[k] for k in ("file", "accuracy", "training_seconds")}))
    return 0
