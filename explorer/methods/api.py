"""The public entry points: ``attribute`` (a tensor) and ``explain`` (tensor plus references)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from explorer.errors import InputError
from explorer.methods.core import check_input, check_target
from explorer.methods.registry import MethodSpec, get_method


@dataclass
class Explanation:
    method: str
    params: dict[str, Any]
    attributions: torch.Tensor          # x's shape, detached, on x's device
    references: torch.Tensor | None     # [N, R, ...] completeness reference points, or None
    spec: MethodSpec
    info: dict                          # method-specific facts, e.g. MFABA's steps_taken


def explain(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
            baseline: torch.Tensor | None = None, **hparams: Any) -> Explanation:
    """Run a registered method; also return where its completeness is measured from."""
    spec = get_method(method)
    params = spec.resolve(hparams)
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        # Flipping the mode would change the caller's model; running in train mode would update
        # batch-norm statistics and randomise dropout. Neither is an explanation.
        raise InputError("the model is in training mode: call model.eval() before attributing "
                         "(batch norm would update its statistics, dropout would randomise)")
    x = check_input(x)
    t = check_target(target, x.shape[0], x.device)
    out = spec.fn(model, x, t, baseline=baseline, **params)
    refs = None if out.references is None else out.references.detach()
    return Explanation(method, params, out.attributions.detach(), refs, spec, out.info)


def attribute(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
              baseline: torch.Tensor | None = None, **hparams: Any) -> torch.Tensor:
    """Attributions of ``model``'s logit ``target`` for the batch ``x`` by ``method``.

    ``target`` is an int, a LongTensor [N], or a float weighting of the logits ([classes] or
    [N, classes]: F = sum_k w_k logit_k); hyper-parameters not given take the registry's
    defaults. The result has x's shape, is detached and lives on x's device.
    Raises ``explorer.InputError`` for bad input.
    """
    return explain(method, model, x, target, baseline=baseline, **hparams).attributions


def method_label(method: str, bias_free: bool = False) -> str:
    """Display name; input x gradient on a bias-free model is the paper's X-Gradient."""
    return get_method(method).label_for(bias_free)
