"""Thin entry point: the benchmark lives in ``python -m explorer bench`` (explorer/bench/).

    python -m benchmarks.bench_attribution --model digits-cnn --rounds 30
is the same as
    python -m explorer bench --model digits-cnn --rounds 30
"""
import sys

from explorer.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
