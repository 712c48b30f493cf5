"""The command line: ``explorer <command>`` (installed) or ``python -m explorer <command>``.

Each command is one module under ``explorer/cli/`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). Modules are imported only
when their command runs, so ``python -m explorer methods`` stays fast. Adding a command is one
module and one line in ``COMMANDS``. A module with ``PASS_THROUGH = True`` receives the options
it does not know in ``args.extra`` (``app`` hands them to streamlit).
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

COMMANDS = {
    "app": "explorer.cli.app",
    "bench": "explorer.cli.bench",
    "attribute": "explorer.cli.attribute",
    "convergence": "explorer.cli.convergence",
    "axioms": "explorer.cli.axioms",
    "evaluate": "explorer.cli.evaluate",
    "exact-cache": "explorer.cli.exact_cache",
    "methods": "explorer.cli.listing",
    "models": "explorer.cli.listing",
    "samples": "explorer.cli.samples",
    "precision": "explorer.cli.precision",
    "train": "explorer.cli.train",
}


def main(argv: list[str] | None = None) -> int:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    prog = "explorer" if Path(sys.argv[0]).name == "explorer" else "python -m explorer"
    parser = argparse.ArgumentParser(
        prog=prog, description="Axiomatic feature attribution: the app and the batch commands.",
        epilog="commands: " + ", ".join(sorted(COMMANDS)) + f". '{prog} COMMAND --help' for one.")
    parser.add_argument("command", choices=sorted(COMMANDS))
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # prints usage (or --help) and exits
    name = argv[0]
    module = importlib.import_module(COMMANDS[name])
    sub = argparse.ArgumentParser(prog=f"{prog} {name}", description=module.HELP)
    module.add_arguments(sub, name)
    if getattr(module, "PASS_THROUGH", False):
        args, extra = sub.parse_known_args(argv[1:])
        args.extra = extra
    else:
        args = sub.parse_args(argv[1:])
    args.command = name
    return int(module.run(args) or 0)
