"""The tables every surface shows (app, command line, files), built once here.

``run_checked`` explains a batch and measures what the tables need besides the map: the passes
actually made, the wall time of that one call, and completeness against the method's own
references. ``completeness_row`` and
``timing_row`` turn results into the rows the app renders and the command line writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import time

import torch

from explorer.checks import DEFAULT_RTOL, CompletenessReport, completeness
from explorer.methods import METHODS, Explanation, explain, method_label
from explorer.timing import count_passes, synchronize


@dataclass
class CheckedResult:
    """One method on one batch: the explanation, passes per input, completeness (or None), and
    the wall time of the one call that made the map (not a median: no warm-up, no repeats)."""

    method: str
    bias_free: bool
    explanation: Explanation
    forward_per_input: float
    backward_per_input: float
    completeness: CompletenessReport | None
    seconds: float = float("nan")

    @property
    def label(self) -> str:
        return method_label(self.method, self.bias_free)


def run_checked(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
                bias_free: bool = False, baseline: torch.Tensor | None = None,
                **hparams: Any) -> CheckedResult:
    """``explain`` with its passes counted, its one call timed and its completeness measured."""
    with count_passes(model) as counts:
        synchronize(x.device)
        start = time.perf_counter()
        e = explain(method, model, x, target, baseline=baseline, **hparams)
        synchronize(x.device)
        seconds = time.perf_counter() - start
    report = None
    if e.references is not None:
        report = completeness(model, x, e.attributions, target, e.references)
    n = x.shape[0]
    return CheckedResult(method, bias_free, e, counts.forward / n, counts.backward / n, report,
                         seconds)


def verdict(rel_error: float, rtol: float, promise: str) -> str:
    """A word for a completeness result, given what the method promises."""
    if rel_error != rel_error:  # NaN
        return "not finite"
    if rel_error <= rtol:
        return "complete"
    return {"expectation": "off by sampling noise (more samples)",
            "quadrature": "off by quadrature error (more steps)"}.get(promise, "NOT complete")


def completeness_row(method: str, bias_free: bool, report: dict | None,
                     rtol: float = DEFAULT_RTOL) -> dict:
    """One table row from ``CompletenessReport.rows()[i]`` (or None when nothing is promised)."""
    promise = METHODS[method].completeness
    row = {"method": method_label(method, bias_free),
           "model": "bias-free" if bias_free else "regular", "promise": promise}
    if report is None:
        nan = float("nan")
        row.update({"attribution sum": nan, "F(x) - F(ref)": nan, "abs error": nan,
                    "rel error": nan, "result": "not promised"})
    else:
        row.update({"attribution sum": report["attribution_sum"], "F(x) - F(ref)": report["delta"],
                    "abs error": report["abs_error"], "rel error": report["rel_error"],
                    "result": verdict(report["rel_error"], rtol, promise)})
    return row


def timing_row(method: str, bias_free: bool, *, median_ms: float, forward_passes: float,
               backward_passes: float, device: str, ig_median_ms: float | None = None) -> dict:
    """One timing row; ``ig_median_ms`` (IG on the same variant) gives the speed-up column."""
    return {"method": method_label(method, bias_free),
            "variant": "bias-free" if bias_free else "regular",
            "median_ms": median_ms, "forward_passes": forward_passes,
            "backward_passes": backward_passes,
            "speedup_vs_ig": (ig_median_ms / median_ms) if ig_median_ms else None,
            "device": device}
