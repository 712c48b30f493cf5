"""The command line: ``python -m explorer <command>``.

Each command is one module under ``explorer/cli/`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). Modules are imported only
when their command runs, so ``python -m explorer methods`` stays fast. Adding a command is one
module and one line in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "bench": "explorer.cli.bench",
    "attribute": "explorer.cli.attribute",
    "convergence": "explorer.cli.convergence",
    "axioms": "explorer.cli.axioms",
    "evaluate": "explorer.cli.evaluate",
    "methods": "explorer.cli.listing",
    "models": "explorer.cli.listing",
    "samples": "explorer.cli.samples",
    "precision": "explorer.cli.precision",
    "train": "explorer.cli.train",
}


def main(argv: list[str] | None = None) -> int:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m explorer")
    parser.add_argument("command", choices=sorted(COMMANDS))
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # prints usage and exits
    name = argv[0]
    module = importlib.import_module(COMMANDS[name])
    sub = argparse.ArgumentParser(prog=f"python -m explorer {name}", description=module.HELP)
    module.add_arguments(sub, name)
    args = sub.parse_args(argv[1:])
    args.command = name
    return int(module.run(args) or 0)
