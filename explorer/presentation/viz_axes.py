"""Axes that read: log axes labelled with the values drawn, errors without SI prefixes, and an
exact zero drawn as "exact" instead of as an invisible tiny number. Plotly only, no streamlit."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

# Dash patterns and marker symbols cycled per line, so that lines lying on top of each other
# (rules that share their nodes, IxG under IG) stay visible as distinct strokes.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star", "triangle-down")
EXACT_SYMBOL = "star"
EXACT_TEXT = "exact"


def line_style(k: int) -> dict:
    """The k-th line's dash pattern and marker symbol (with the colour it already has)."""
    return {"dash": DASHES[k % len(DASHES)]}


def marker_style(k: int, size: int = 7) -> dict:
    return {"symbol": SYMBOLS[k % len(SYMBOLS)], "size": size}


def value_ticks(values: Iterable[float], most: int = 10) -> dict:
    """Axis ticks at the values themselves ("8 16 32 ... 512" on a log axis of steps rather than
    plotly's "10 2 5 100 2 5"), every k-th one when there are more than ``most``."""
    vals = sorted({float(v) for v in values if v is not None and np.isfinite(v) and v > 0})
    if len(vals) > most:
        k = math.ceil(len(vals) / most)
        vals = vals[::k] + ([vals[-1]] if (len(vals) - 1) % k else [])
    return dict(tickmode="array", tickvals=vals, ticktext=[f"{v:g}" for v in vals])


def decade_ticks(lo: float, hi: float) -> dict:
    """Ticks on the 1-2-5 grid between ``lo`` and ``hi`` (> 0) written as plain numbers, for log
    axes of times and ratios."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    grid = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    vals = [g for g in grid if lo / 1.001 <= g <= hi * 1.001] or [lo, hi]
    if len(vals) > 9:  # long ranges: the powers of ten only
        vals = [g for g in vals if math.isclose(math.log10(g) % 1, 0, abs_tol=1e-9)] or vals
    return dict(tickmode="array", tickvals=vals, ticktext=[f"{v:g}" for v in vals])


def _power(k: int) -> str:
    return "1" if k == 0 else f"10<sup>{k}</sup>"


@dataclass(frozen=True)
class ErrorAxis:
    """A log axis for a dimensionless error: powers of ten (no SI prefixes) and, one decade below
    the smallest non-zero value, a row labelled "exact" where exact zeros are drawn."""

    floor: float
    tickvals: tuple[float, ...]
    ticktext: tuple[str, ...]

    def y(self, values: Sequence[float]) -> list[float]:
        """The values to plot: exact zeros on the "exact" row, the others as they are."""
        return [self.floor if v == 0 else float(v) for v in values]

    def layout(self) -> dict:
        return dict(type="log", tickmode="array", tickvals=list(self.tickvals),
                    ticktext=list(self.ticktext), range=[math.log10(self.floor) - 0.3,
                                                         math.log10(max(self.tickvals)) + 0.3])


def error_axis(values: Iterable[float]) -> ErrorAxis:
    """The ``ErrorAxis`` for every value a figure draws on it (zeros, NaN and None allowed)."""
    vals = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
    positive = [v for v in vals if v > 0]
    lo = min(positive) if positive else 1e-7
    hi = max(positive) if positive else lo
    k0, k1 = math.floor(math.log10(lo)), max(math.ceil(math.log10(hi)), math.floor(math.log10(lo)))
    floor = 10.0 ** (k0 - 1)
    step = max(1, math.ceil((k1 - k0 + 1) / 8))  # at most about eight decades labelled
    decades = list(range(k0, k1 + 1, step))
    return ErrorAxis(floor, (floor, *(10.0 ** k for k in decades)),
                     (EXACT_TEXT, *(_power(k) for k in decades)))


def exact_marker(values: Sequence[float]) -> dict:
    """Per-point marker symbols: a star where the value is an exact zero."""
    return {"symbol": [EXACT_SYMBOL if v == 0 else "circle" for v in values],
            "size": [12 if v == 0 else 7 for v in values]}
