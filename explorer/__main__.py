"""python -m explorer {train,samples,methods,models}"""
from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the bundled models into assets/")
    train.add_argument("--model", choices=["all", "digits-cnn", "decoy-digits-cnn"], default="all")
    sub.add_parser("samples", help="write assets/samples (digits and photos)")
    sub.add_parser("methods", help="list the registered attribution methods")
    sub.add_parser("models", help="list the model zoo")
    args = parser.parse_args(argv)

    if args.command == "train":
        from explorer.train import BUNDLED, write_bundled
        for name in BUNDLED if args.model == "all" else (args.model,):
            for bias_free in (False, True):
                manifest = write_bundled(name, bias_free)
                print(json.dumps({k: manifest[k] for k in ("file", "accuracy", "training_seconds")}))
    elif args.command == "samples":
        from explorer.train import write_samples
        write_samples()
    elif args.command == "methods":
        from explorer import METHODS
        for spec in METHODS.values():
            print(f"{spec.name:22s} {spec.label:22s} completeness: {spec.completeness}")
    elif args.command == "models":
        from explorer.models import MODELS
        for spec in MODELS.values():
            print(f"{spec.name:18s} {spec.family:9s} {spec.label}")


if __name__ == "__main__":
    main()
