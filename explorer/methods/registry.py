"""The method registry: every attribution method registers itself here with its metadata.

The shared contract of a registered method function::

    fn(model, x, target, *, baseline, **hparams) -> MethodOutput

- ``x`` is a batch [N, ...] (already validated), ``target`` a LongTensor [N] on x's device;
- ``baseline`` is None or a tensor the method documents (a baseline broadcastable to x, or a
  background set for expected gradients);
- the attributions have x's shape and dtype, are detached and live on x's device;
- ``MethodOutput.references`` [N, R, ...] holds the points F(x) is compared against for
  completeness (their mean output is the reference value), a ``ReferenceValue`` when the
  reference is an output value no input reaches (B-cos: 0), or None when the method promises none;
- the model is never changed: no hooks left behind, no parameters touched, no train/eval flip,
  and random draws depend on ``seed`` alone, never on a sample's position in the batch;
- temporary hooks act only in the calling thread (``core.this_thread_only``), so one module can
  serve several threads at once (the app shares each model between sessions);
- a method that needs a kind of model (B-cos layers, attention blocks, piecewise-linear ops)
  says so with ``applies_to(model) -> None | reason``: ``explain`` raises ``InputError(reason)``
  before running, the app names the reason instead of a map, and the contract tests run the
  method only on models it applies to (``applicability``).

The UI builds its widgets from ``MethodSpec.params`` and the tests are parametrised over
``METHODS``; adding a method is one decorated function plus its reference test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from explorer.errors import InputError


@dataclass(frozen=True)
class Param:
    """A hyper-parameter: type, default, range or choices, and a one-line help text."""

    name: str
    kind: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""

    def validate(self, value: Any, method: str) -> Any:
        where = f"{method}: parameter '{self.name}'"
        if self.choices is not None:
            if value not in self.choices:
                raise InputError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise InputError(f"{where} must be text, got {value!r}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise InputError(f"{where} must be True or False, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InputError(f"{where} must be finite, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise InputError(f"{where} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.min is not None and value < self.min:
            raise InputError(f"{where} must be at least {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise InputError(f"{where} must be at most {self.max}, got {value!r}")
        return value


@dataclass(frozen=True)
class Cost:
    """Forward and backward passes per explained input (one sample through the network = 1)."""

    forward: float
    backward: float
    # > 0: the passes come in this many rounds, each sending the whole batch (in chunks of
    # batch_size), because each round needs the last one's gradients (Guided IG's path)
    rounds: int = 0


# What a method promises about sum(attributions) == F(x) - F(reference).
COMPLETENESS = {
    "exact": "complete for any baseline",
    "homogeneous": "complete against the zero baseline on a bias-free (homogeneous) network",
    "quadrature": "complete up to the quadrature error, which shrinks as steps grow",
    "expectation": "complete in expectation over the references (error shrinks with samples)",
    "none": "promises no completeness",
}


@dataclass(frozen=True)
class ReferenceValue:
    """A completeness reference given by its output value, not by input points: used where no
    input reaches it (B-cos contributions sum to F(x) - 0, yet the model's [x, 1 - x] encoding
    maps no input to zero). ``output`` is [N], one value per explained input."""

    output: torch.Tensor

    def detach(self) -> "ReferenceValue":
        return ReferenceValue(self.output.detach())

    def to(self, device) -> "ReferenceValue":
        return ReferenceValue(self.output.to(device))


@dataclass
class MethodOutput:
    attributions: torch.Tensor
    # [N, R, ...]: completeness holds against their mean F; or a ReferenceValue
    references: torch.Tensor | ReferenceValue | None = None
    info: dict = field(default_factory=dict)  # method-specific facts (e.g. MFABA's steps taken)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    fn: Callable[..., MethodOutput]
    params: tuple[Param, ...]
    uses_baseline: bool
    completeness: str
    cost: Callable[[Mapping[str, Any], Sequence[int]], Cost]
    description: str = ""
    bias_free_label: str | None = None
    stochastic: bool = False
    baseline_help: str = ""
    # False, or a function of the params returning False: the cost is an upper bound (early stop)
    cost_exact: bool | Callable[[Mapping[str, Any]], bool] = True
    # None: runs on any model; else model -> None (it applies) or why it cannot run on it
    applies_to: Callable[[torch.nn.Module], str | None] | None = None

    def applicability(self, model: torch.nn.Module) -> str | None:
        """None when this method can run on ``model``, else a sentence saying why not."""
        return None if self.applies_to is None else self.applies_to(model)

    def is_cost_exact(self, params: Mapping[str, Any]) -> bool:
        """Whether ``cost(params, shape)`` is the exact pass count, not an upper bound."""
        return bool(self.cost_exact(params) if callable(self.cost_exact) else self.cost_exact)

    def label_for(self, bias_free: bool) -> str:
        return self.bias_free_label if (bias_free and self.bias_free_label) else self.label

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``hparams``, each validated; unknown names are an error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(hparams) - set(known))
        if unknown:
            raise InputError(
                f"{self.name}: unknown parameter(s) {unknown}; it takes {sorted(known) or 'none'}"
            )
        values = self.defaults()
        for key, value in hparams.items():
            values[key] = known[key].validate(value, self.name)
        return values


METHODS: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    *,
    label: str,
    params: Sequence[Param] = (),
    uses_baseline: bool = False,
    completeness: str = "none",
    cost: Callable[[Mapping[str, Any], Sequence[int]], Cost] = lambda p, shape: Cost(1, 1),
    description: str = "",
    bias_free_label: str | None = None,
    stochastic: bool = False,
    baseline_help: str = "",
    cost_exact: bool | Callable[[Mapping[str, Any]], bool] = True,
    applies_to: Callable[[torch.nn.Module], str | None] | None = None,
):
    """Decorator adding a method function to ``METHODS`` under ``name``."""
    if completeness not in COMPLETENESS:
        raise ValueError(f"unknown completeness kind {completeness!r}")

    def decorate(fn: Callable[..., MethodOutput]) -> Callable[..., MethodOutput]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        METHODS[name] = MethodSpec(
            name=name, label=label, fn=fn, params=tuple(params), uses_baseline=uses_baseline,
            completeness=completeness, cost=cost, description=description,
            bias_free_label=bias_free_label, stochastic=stochastic, baseline_help=baseline_help,
            cost_exact=cost_exact, applies_to=applies_to,
        )
        return fn

    return decorate


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None


def not_applicable(methods: Sequence[str], models: Sequence[torch.nn.Module]) -> dict[str, str]:
    """Each method of ``methods`` that cannot run on one of ``models`` (``applies_to``), with
    the first reason given; the methods that apply to all of them are absent."""
    reasons = {}
    for m in methods:
        for model in models:
            reason = get_method(m).applicability(model)
            if reason is not None:
                reasons[m] = reason
                break
    return reasons


def left_out_note(reasons: Mapping[str, str]) -> str:
    """One line naming the methods left out and why: "Left out on this model: epsilon-LRP (no
    modified-gradient rule for LayerNorm ...); ..."."""
    return "Left out on this model: " + "; ".join(
        f"{METHODS[m].label} ({why})" for m, why in reasons.items()) + "."
