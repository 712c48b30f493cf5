"""The public entry points: ``attribute`` (a tensor) and ``explain`` (tensor plus references)."""
from __future__ import annotations

from dataclasses import dataclass
import math
import warnings
from typing import Any

import torch

from explorer.errors import InputError, NumericalWarning
from explorer.methods.core import check_input, checked_target, known_target_max, watch_outputs
from explorer.runtime.tensors import all_finite
from explorer.methods.registry import MethodSpec, ReferenceValue, get_method
from explorer.runtime.precision import cast, get_precision, precision_scope


@dataclass
class Explanation:
    method: str
    params: dict[str, Any]
    attributions: torch.Tensor          # x's shape, detached, on x's device
    references: torch.Tensor | ReferenceValue | None  # [N, R, ...] reference points, a value, None
    spec: MethodSpec
    info: dict                          # method-specific facts, e.g. MFABA's steps_taken


def explain(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
            baseline: torch.Tensor | None = None, budget_s: float | None = None,
            precision: str | None = None, **hparams: Any) -> Explanation:
    """Run a registered method; also return where its completeness is measured from.

    ``budget_s`` (None: unlimited) refuses, with ``explorer.BudgetExceeded``, a request whose
    estimated seconds (``explorer.methods.budget``) are above it, before any of it runs.
    ``precision`` (``explorer.runtime.precision.PRECISIONS``; None: the enclosing scope's, else
    "float32" with TF32 off) is the number format it runs in; ``info["precision"]`` names it.
    For "float64" the model and input are copied to float64 and the result is float64."""
    prec = get_precision(precision)
    spec = get_method(method)
    params = spec.resolve(hparams)
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        # Flipping the mode would change the caller's model; running in train mode would update
        # batch-norm statistics and randomise dropout. Neither is an explanation.
        raise InputError("the model is in training mode: call model.eval() before attributing "
                         "(batch norm would update its statistics, dropout would randomise)")
    reason = spec.applicability(model)
    if reason is not None:
        raise InputError(f"{spec.label} cannot run on this model: {reason}")
    home = x.device if isinstance(x, torch.Tensor) else None
    x = check_input(x, model)  # on the model's device; the results go back to ``home``
    t, largest = checked_target(target, x.shape[0], x.device)
    if budget_s is not None:
        from explorer.methods.budget import check_request
        check_request(method, model, x, params, budget_s)
    with precision_scope(prec.name, x.device), watch_outputs() as output_maxima, \
            known_target_max(t, largest):
        if prec.dtype is not None:
            model, x, baseline = (cast(v, prec.dtype) for v in (model, x, baseline))
            t = t.to(prec.dtype) if t.is_floating_point() else t
        out = spec.fn(model, x, t, baseline=baseline, **params)
    attributions = _detached(out.attributions)
    _warn_non_finite(method, attributions, output_maxima)  # where the maxima are: one read
    attributions = attributions.to(home)  # no copy when already there
    refs = None if out.references is None else _detached(out.references).to(home)
    return Explanation(method, params, attributions, refs, spec, dict(out.info, precision=prec.name))


def _detached(t: torch.Tensor | ReferenceValue) -> torch.Tensor | ReferenceValue:
    """t without its graph (methods return detached tensors; a call saved when they do)."""
    if isinstance(t, ReferenceValue):
        return t.detach()
    return t.detach() if t.requires_grad or t.grad_fn is not None else t


def _warn_non_finite(method: str, attributions: torch.Tensor, output_maxima: list) -> None:
    """A NumericalWarning when attributions, or the logits the method evaluated, are NaN/Inf.

    ``output_maxima``: each evaluated output's largest |value| (from ``watch_outputs``)."""
    largest = None
    if output_maxima:
        largest = output_maxima[0] if len(output_maxima) == 1 else torch.stack(output_maxima).amax()
    # The common case in one read from the device (a sync per call costs a launch-bound GPU
    # its overlap with the next call): NaN/Inf in either propagates into the sum.
    total = attributions.detach().sum()
    if largest is not None:
        total = total + largest.to(total)
    if math.isfinite(total.item()):
        return
    problems = []
    if not all_finite(attributions):
        bad = ~torch.isfinite(attributions.reshape(attributions.shape[0], -1)).all(1)
        problems.append(f"the attributions of sample(s) {bad.nonzero().flatten().tolist()[:8]} "
                        "are NaN or Inf")
    if largest is not None and not math.isfinite(largest.item()):
        problems.append("the model's logits were NaN or Inf on inputs it evaluated")
    if problems:
        warnings.warn(f"{method}: {'; '.join(problems)}: the weights or the method's settings "
                      "overflow, and the result is not meaningful", NumericalWarning, stacklevel=4)


def attribute(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
              baseline: torch.Tensor | None = None, budget_s: float | None = None,
              precision: str | None = None, **hparams: Any) -> torch.Tensor:
    """Attributions of ``model``'s logit ``target`` for the batch ``x`` by ``method``.

    ``target`` is an int, a LongTensor [N], or a float weighting of the logits ([classes] or
    [N, classes]: F = sum_k w_k logit_k); hyper-parameters not given take the registry's
    defaults. The result has x's shape, is detached and lives on x's device.
    Raises ``explorer.InputError`` for bad input, ``explorer.BudgetExceeded`` (an InputError)
    when the estimated time is above ``budget_s`` seconds. ``precision``: see ``explain``
    (default full float32, TF32 off for the call, the caller's flags restored after).
    """
    return explain(method, model, x, target, baseline=baseline, budget_s=budget_s,
                   precision=precision, **hparams).attributions


def method_label(method: str, bias_free: bool = False) -> str:
    """Display name; input x gradient on a bias-free model is the paper's X-Gradient."""
    return get_method(method).label_for(bias_free)
