"""``samples``: write assets/samples (test digits, decoyed digits, photos)."""
from __future__ import annotations

import argparse

HELP = "write assets/samples (digits and photos)"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from explorer.train import write_samples
    write_samples()
    return 0
