"""Completeness: does sum(attributions) equal F(x) - F(baseline)?"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from explorer.errors import InputError
from explorer.methods.core import (check_input, check_target, chunked_pairs, run_model,
                                   select_target)
from explorer.methods.api import Explanation, explain, method_label
from explorer.runtime.precision import under_precision
from explorer.runtime.timing import count_passes, synchronize
from explorer.methods.registry import ReferenceValue

DEFAULT_RTOL = 1e-3


@dataclass
class CompletenessReport:
    """Per sample: the attribution sum against F(x) - F(reference)."""

    attribution_sum: torch.Tensor   # [N]
    output: torch.Tensor            # [N] F(x) (target logit)
    reference_output: torch.Tensor  # [N] F(baseline), or the mean over several references
    delta: torch.Tensor             # [N] output - reference_output
    abs_error: torch.Tensor         # [N] |attribution_sum - delta|
    rel_error: torch.Tensor         # [N] abs_error / |delta|; NaN (undefined) where delta == 0

    def relative_undefined(self) -> torch.Tensor:
        """[N] True where F(x) - F(reference) is exactly 0: no relative error exists there."""
        return (self.delta == 0) & torch.isfinite(self.abs_error)

    def passed(self, rtol: float = DEFAULT_RTOL) -> torch.Tensor:
        """rel_error <= rtol; where the relative error is undefined, abs_error <= rtol."""
        return torch.where(self.relative_undefined(), self.abs_error <= rtol, self.rel_error <= rtol)

    def rows(self) -> list[dict]:
        keys = ("attribution_sum", "output", "reference_output", "delta", "abs_error", "rel_error")
        return [{k: float(getattr(self, k)[i]) for k in keys} for i in range(self.delta.shape[0])]


@under_precision
@torch.no_grad()
def completeness(model: torch.nn.Module, x: torch.Tensor, attributions: torch.Tensor, target,
                 baseline: torch.Tensor | ReferenceValue | None = None, *,
                 batch_size: int = 256) -> CompletenessReport:
    """Completeness of ``attributions`` for ``model``'s logit ``target``.

    ``baseline``: None (zeros), a tensor shaped like x (or one sample, or [1, ...]), or
    references [N, R, ...] per input, whose mean output is the reference value (expected
    gradients' draws, ``Explanation.references``), or a ``ReferenceValue`` (the reference
    output itself, [N]: B-cos contributions are complete against 0).
    """
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    if not isinstance(attributions, torch.Tensor) or attributions.shape != x.shape:
        got = list(attributions.shape) if isinstance(attributions, torch.Tensor) else type(attributions).__name__
        raise InputError(f"attributions must have the input's shape {list(x.shape)}, got {got}")
    n = x.shape[0]
    output = select_target(run_model(model, x), t)
    if isinstance(baseline, ReferenceValue):
        reference_output = baseline.output.detach().to(device=x.device, dtype=output.dtype)
        return _report(attributions, output, reference_output.expand(n))
    if baseline is None:
        refs = torch.zeros_like(x).unsqueeze(1)
    else:
        b = baseline.detach().to(device=x.device, dtype=x.dtype)
        if b.dim() == x.dim() + 1 and b.shape[0] == n and b.shape[2:] == x.shape[1:]:
            refs = b
        elif b.shape == x.shape[1:]:
            refs = b.expand(n, 1, *b.shape)
        elif b.dim() == x.dim() and b.shape[1:] == x.shape[1:] and b.shape[0] in (1, n):
            refs = b.expand_as(x).unsqueeze(1)
        else:
            raise InputError(
                f"completeness: baseline of shape {list(b.shape)} does not fit the input "
                f"{list(x.shape)}; give [N, ...], one sample's shape, or references [N, R, ...]"
            )
    r = refs.shape[1]
    ref_total = torch.zeros(n, dtype=output.dtype, device=x.device)
    for i, j in chunked_pairs(n, r, batch_size, x.device):
        ref_total.index_add_(0, i, select_target(run_model(model, refs[i, j]), t[i]))
    return _report(attributions, output, ref_total / r)


def _report(attributions: torch.Tensor, output: torch.Tensor,
            reference_output: torch.Tensor) -> CompletenessReport:
    n = output.shape[0]
    attribution_sum = attributions.detach().reshape(n, -1).sum(1).to(output)  # its device too
    delta = output - reference_output
    abs_error = (attribution_sum - delta).abs()
    # F(x) - F(reference) exactly 0: a relative error is undefined (NaN), not 1/tiny = 3e35;
    # the report's readers then judge the absolute error.
    rel_error = torch.where(delta == 0, torch.nan, abs_error / delta.abs())
    return CompletenessReport(attribution_sum, output, reference_output, delta, abs_error, rel_error)


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


UNDEFINED_NOTE = "F(x) - F(ref) = 0: relative error undefined, judged by the absolute error"


def relative_undefined(delta: float, abs_error: float) -> bool:
    """F(x) - F(reference) is exactly 0 (and the sum finite): no relative error exists."""
    return delta == 0 and math.isfinite(abs_error)


def verdict(rel_error: float, rtol: float, promise: str, *, delta: float | None = None,
            abs_error: float | None = None) -> str:
    """A word for a completeness result, given what the method promises. Given ``delta`` and
    ``abs_error``, a zero F(x) - F(ref) is judged by the absolute error against ``rtol``."""
    if delta is not None and abs_error is not None and relative_undefined(delta, abs_error):
        word = "complete" if abs_error <= rtol else "NOT complete"
        return f"{word} ({UNDEFINED_NOTE})"
    if not math.isfinite(rel_error):  # NaN or Inf: no verdict about completeness
        return "not finite"
    if rel_error <= rtol:
        return "complete"
    return {"expectation": "off by sampling noise (more samples)",
            "quadrature": "off by quadrature error (more steps)"}.get(promise, "NOT complete")
