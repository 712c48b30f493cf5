"""``methods`` and ``models``: list the registries."""
from __future__ import annotations

import argparse

HELP = "list the registered attribution methods or the model zoo"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    if args.command == "methods":
        from explorer import METHODS
        for spec in METHODS.values():
            print(f"{spec.name:22s} {spec.label:22s} completeness: {spec.completeness}")
    else:
        from explorer.models import MODELS
        for spec in MODELS.values():
            print(f"{spec.name:18s} {spec.family:9s} {spec.label}")
        print("\nAny command's --model also takes a model spec: path/to/file.py:function, "
              "package.module:function, timm/<name> or file.onnx (see docs/your-model.md).")
    return 0
