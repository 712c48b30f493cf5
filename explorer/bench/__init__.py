"""Benchmark sections of `python -m explorer bench` (speed, memory, adaptive IG)."""
