"""The timing table as a person reads it: one unit for the whole table (seconds once a median
passes 1 s), rows numbered so that "too close to rank" is a short list of numbers, blanks
instead of None, and the rows whose spread is too wide to trust named. No streamlit here."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd

NOISY_SPREAD = 0.5  # (q3 - q1) / median above this: too noisy to rank on (re-time)


def _number(v) -> float:
    return float("nan") if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def spread(record: Mapping) -> float:
    """(q3 - q1) / median of one timing row; NaN when a quartile is missing (timed once)."""
    m, q1, q3 = (_number(record.get(k)) for k in ("median_ms", "q1_ms", "q3_ms"))
    return (q3 - q1) / m if m > 0 else float("nan")


def noisy_rows(records: Sequence[Mapping], limit: float = NOISY_SPREAD) -> list[str]:
    """'method (variant)' of each row whose interquartile range exceeds ``limit`` x its median."""
    return [f"{r['method']} ({r['variant']})" for r in records if spread(r) > limit]


def timing_unit(records: Sequence[Mapping]) -> str:
    """'s' when any median reaches 1 s (no '2.12e+03 ms'), else 'ms'."""
    return "s" if max((_number(r.get("median_ms")) for r in records), default=0) >= 1000 else "ms"


def display_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """The rows as shown: numbered, times in one unit, ratios blank where there is nothing to
    compare with, and 'too close to rank' as row numbers."""
    unit = timing_unit(records)
    scale = 1e-3 if unit == "s" else 1.0
    number = {f"{r['method']} ({r['variant']})": k for k, r in enumerate(records, start=1)}
    rows = []
    for k, r in enumerate(records, start=1):
        close = [s.strip() for s in (r.get("too_close_to_rank") or "").split(", ") if s.strip()]
        rows.append({
            "method": r["method"], "#": k, "variant": r["variant"],
            f"median ({unit})": _number(r.get("median_ms")) * scale,
            f"q1 ({unit})": _number(r.get("q1_ms")) * scale,
            f"q3 ({unit})": _number(r.get("q3_ms")) * scale,
            "rounds": _number(r.get("rounds")),
            "forward passes": _number(r.get("forward_passes")),
            "backward passes": _number(r.get("backward_passes")),
            "x the one-pass limit": _number(r.get("x_limit")),
            "x faster than IG": _number(r.get("speedup_vs_ig")),
            "too close to rank against": ", ".join(f"#{number[c]}" if c in number else c
                                                   for c in close)})
    return pd.DataFrame(rows)
