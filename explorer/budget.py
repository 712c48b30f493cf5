"""A compute budget: a request's seconds estimated before it runs.

The estimate is the method's cost model (``METHODS[m].cost``: forward and backward passes per
input; an upper bound where ``cost_exact`` is False) times a per-pass time measured once on the
current device: forward, and forward plus backward, of one input and of a batch of 4 through the
model (the best of a few alternating rounds), split into a time per input and a fixed time per
call (what a chunk of the methods' batched loops pays once); a model whose one-input pass takes
over 0.25 s is timed on one input only, as compute then dominates. Cached per (model object, input shape, dtype,
device). Other work on the machine only slows a request down from its estimate.
"""
from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from explorer.errors import InputError
from explorer.methods.registry import MethodSpec, get_method
from explorer.timing import synchronize


@dataclass(frozen=True)
class PassTime:
    """Seconds for one input: a forward pass, and the backward pass that follows it."""

    forward_s: float
    backward_s: float
    device: str = "cpu"
    call_s: float = 0.0  # fixed seconds per call (forward + backward), whatever its batch


@dataclass(frozen=True)
class Estimate:
    """A request's passes (all inputs together) and its estimated seconds."""

    method: str
    forward: float
    backward: float
    calls: int           # calls through the model: batches of batch_size, or one per pass
    seconds: float
    exact: bool          # False: the cost model is an upper bound (early stopping)
    pass_time: PassTime

    def describe(self) -> str:
        bound = "" if self.exact else "at most "
        pt = self.pass_time
        per_pass = (pt.forward_s + pt.backward_s) * 1e3
        return (f"{bound}{_seconds(self.seconds)} ({self.forward:,.0f} forward + "
                f"{self.backward:,.0f} backward passes at {per_pass:.3g} ms per forward+backward "
                f"and {self.calls:,} calls at {pt.call_s * 1e3:.3g} ms each, on {pt.device})")


class BudgetExceeded(InputError):
    """The estimated time of a request is above the budget it was given."""

    def __init__(self, message: str, estimate: Estimate, budget_s: float):
        super().__init__(message)
        self.estimate = estimate
        self.budget_s = budget_s


def _seconds(s: float) -> str:
    return f"{s:.3g} s" if s < 120 else f"{s / 60:.3g} min"


SMALL_BATCH = 4
EXPENSIVE_PASS_S = 0.25
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _round(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """Seconds of one forward, and of forward plus backward, of the batch ``x``."""
    with torch.enable_grad():
        xi = x.clone().requires_grad_(True)
        synchronize(device)
        t0 = time.perf_counter()
        out = model(xi)
        synchronize(device)
        t1 = time.perf_counter()
        # Gradient to the input only: parameters' .grad stay untouched.
        torch.autograd.grad(out.reshape(out.shape[0], -1)[:, 0].sum(), xi)
        synchronize(device)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def _measure(model: torch.nn.Module, shape: tuple, dtype: torch.dtype, device: torch.device,
             repeats: int) -> PassTime:
    gen = torch.Generator().manual_seed(0)
    one = torch.rand((1,) + shape, generator=gen).to(device=device, dtype=dtype)
    _, warm = _round(model, one, device)
    if warm > EXPENSIVE_PASS_S:
        # A pass this long is compute, not a call's fixed cost: one input per round suffices
        # and keeps the measurement short.
        f1, t1 = (min(v) for v in zip(*[_round(model, one, device) for _ in range(repeats)]))
        return PassTime(f1, max(t1 - f1, 0.0), str(device))
    many = one.expand((SMALL_BATCH,) + one.shape[1:])
    _round(model, many, device)
    # Alternate the two sizes so that both see the same conditions; keep the best round of
    # each: noise from other work only ever adds time.
    rounds = [(_round(model, one, device), _round(model, many, device)) for _ in range(repeats)]
    f1, t1 = (min(r[0][i] for r in rounds) for i in (0, 1))
    fk, tk = (min(r[1][i] for r in rounds) for i in (0, 1))
    # time(batch of n) = call + n * per input, from batches of 1 and SMALL_BATCH.
    k = SMALL_BATCH - 1
    per_f, per_t = max((fk - f1) / k, 0.0), max((tk - t1) / k, 0.0)
    return PassTime(per_f, max(per_t - per_f, 0.0), str(device), call_s=max(t1 - per_t, 0.0))


def pass_time(model: torch.nn.Module, input_shape: Sequence[int], *,
              dtype: torch.dtype | None = None, device: torch.device | str | None = None,
              repeats: int = 3) -> PassTime:
    """Per-input forward and backward seconds of ``model`` on inputs of ``input_shape``
    (one input, no batch dimension), measured once and cached while the model lives.

    ``dtype``/``device`` default to the model's first parameter's. The model is not changed:
    no mode flip, no hooks, gradients taken to the input only.
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    first = next(model.parameters(), None)
    dtype = dtype or (first.dtype if first is not None else torch.float32)
    device = torch.device(device) if device is not None else (
        first.device if first is not None else torch.device("cpu"))
    key = (tuple(int(s) for s in input_shape), dtype, str(device))
    with _LOCK:
        known = _CACHE.get(model, {}).get(key)
    if known is not None:
        return known
    measured = _measure(model, key[0], dtype, device, repeats)
    with _LOCK:
        return _CACHE.setdefault(model, {}).setdefault(key, measured)


def estimate(method: str, params: Mapping[str, Any], x_shape: Sequence[int],
             per_pass: PassTime) -> Estimate:
    """Seconds of ``method`` with ``params`` on a batch of ``x_shape``, from its cost model."""
    spec = get_method(method)
    resolved = spec.resolve(params)
    n = int(x_shape[0])
    cost = spec.cost(resolved, tuple(x_shape))
    forward, backward = cost.forward * n, cost.backward * n
    passes = max(cost.forward, cost.backward)
    # Chunked methods send batch_size rows per call; the others send the batch once per pass.
    if "batch_size" not in resolved:
        calls = math.ceil(passes)
    elif cost.rounds:  # sequential rounds of the whole batch: each pays its own calls
        calls = cost.rounds * math.ceil(n / resolved["batch_size"])
    else:
        calls = math.ceil(passes * n / resolved["batch_size"])
    seconds = (forward * per_pass.forward_s + backward * per_pass.backward_s
               + calls * per_pass.call_s)
    return Estimate(spec.name, forward, backward, calls, seconds, spec.is_cost_exact(resolved),
                    per_pass)


def cost_drivers(spec: MethodSpec, params: Mapping[str, Any], x_shape: Sequence[int]) -> list[str]:
    """What to change to make the request cheaper, e.g. ["lower steps"] or ["raise stride"]:
    each numeric parameter whose range end gives a smaller cost than ``params``."""
    def passes(values):
        c = spec.cost(values, tuple(x_shape))
        return c.forward + c.backward

    base = passes(params)
    out = []
    for p in spec.params:
        if p.kind not in (int, float) or p.choices is not None or p.min is None or p.max is None:
            continue
        value = params[p.name]
        # Near the current value first: a range end may be invalid with the other settings
        # (occlusion's stride may not exceed its window).
        probes = ((max(p.min, value / 2), "lower"), (p.min, "lower"),
                  (min(p.max, value * 2), "raise"), (p.max, "raise"))
        for probe, verb in probes:
            try:
                if passes(dict(params, **{p.name: p.kind(probe)})) < base:
                    out.append(f"{verb} {p.name}")
                    break
            except Exception:  # a probe the cost model cannot take says nothing
                continue
    return out


def check_budget(est: Estimate, budget_s: float, params: Mapping[str, Any] | None = None,
                 x_shape: Sequence[int] | None = None) -> None:
    """Raise ``BudgetExceeded`` when ``est`` is above ``budget_s`` seconds."""
    if est.seconds <= budget_s:
        return
    spec = get_method(est.method)
    drivers = cost_drivers(spec, spec.resolve(params or {}), x_shape) if x_shape else []
    lower = ", ".join(drivers) if drivers else "explain fewer inputs at once"
    raise BudgetExceeded(
        f"{est.method} would take {'about ' if est.exact else ''}{est.describe()}, above the budget of "
        f"{_seconds(budget_s)}: {lower}, or raise budget_s", est, budget_s)


def check_request(method: str, model: torch.nn.Module, x: torch.Tensor,
                  params: Mapping[str, Any], budget_s: float) -> Estimate:
    """Estimate ``method`` on ``model`` and ``x`` and raise ``BudgetExceeded`` above budget."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise InputError(f"budget_s must be a positive number of seconds or None, got {budget_s!r}")
    per_pass = pass_time(model, x.shape[1:], dtype=x.dtype, device=x.device)
    est = estimate(method, params, x.shape, per_pass)
    check_budget(est, float(budget_s), params, x.shape)
    return est
