"""A compute budget: a request's seconds estimated before it runs.

The estimate is the method's cost model (``METHODS[m].cost``: forward and backward passes per
input; an upper bound where ``cost_exact`` is False) times a per-pass time measured once on the
current device: forward, and forward plus backward, of one input and of a batch of 4 through the
model (the best of a few alternating rounds), split into a time per input and a fixed time per
call (what a chunk of the methods' batched loops pays once). The model is warmed first and the
best round of each size is kept, so a busy moment cannot inflate the estimate; a model whose
pass takes over 0.25 s gets two rounds instead of five. Cached per (model object, input shape,
dtype, device). Other work on the machine only slows a request down from its estimate.
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
from explorer.runtime.timing import synchronize


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
    # The first call warms the model (allocations, kernel choice); the best of three then
    # decides whether a pass is expensive, so one busy moment cannot shorten the measurement.
    warm = min(_round(model, one, device)[1] for _ in range(3))
    many = one.expand((SMALL_BATCH,) + one.shape[1:])
    _round(model, many, device)
    if warm > EXPENSIVE_PASS_S:
        # A long pass: fewer rounds keep the measurement short. Both sizes are still timed:
        # a small model on a busy machine also takes long per call, but a batch costs it about
        # the same as one input; priced per input, batched work would be overestimated.
        repeats = min(repeats, 2)
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
              repeats: int = 5) -> PassTime:
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


# --- a whole page's work ----------------------------------------------------------------------
# The pages other than Explore run analyses (path traces, convergence, axiom checks, metrics)
# rather than one method call each. Each piece is written as passes through the model and
# priced with the same measured PassTime as a method, so every page asks before a long run.

@dataclass(frozen=True)
class Work:
    """One piece of a page's work: what it is, its passes, and its estimated seconds."""

    label: str
    forward: float
    backward: float
    seconds: float


def passes_work(label: str, forward: float, backward: float, per_pass: PassTime,
                batch: int = 64) -> Work:
    """Work of ``forward`` passes (``backward`` of them with a backward pass) sent ``batch``
    inputs per call."""
    calls = math.ceil(max(forward, backward, 1) / batch)
    seconds = forward * per_pass.forward_s + backward * per_pass.backward_s + calls * per_pass.call_s
    return Work(label, float(forward), float(backward), seconds)


def method_work(label: str, method: str, params: Mapping[str, Any], x_shape: Sequence[int],
                per_pass: PassTime, times: int = 1) -> Work:
    """``times`` calls of ``method`` with ``params`` on a batch of ``x_shape``, from its cost model."""
    est = estimate(method, params, x_shape, per_pass)
    return Work(label, times * est.forward, times * est.backward, times * est.seconds)


def total_seconds(work: Sequence[Work]) -> float:
    return float(sum(w.seconds for w in work))


def describe_work(work: Sequence[Work]) -> str:
    """'path trace (regular) ~3.1 s; ...': the pieces, largest first."""
    return "; ".join(f"{w.label} ~{_seconds(w.seconds)}"
                     for w in sorted(work, key=lambda w: -w.seconds))


def path_page_work(variants: Sequence[str], steps: int, ig_params: Mapping[str, Any],
                   x_shape: Sequence[int], per_pass: PassTime, *, baselines: int,
                   references: int) -> list[Work]:
    """The Path page: a path trace of ``steps`` per variant (steps + 1 gradients), and IG from
    each of ``baselines`` baselines plus a mean over ``references`` (one IG per reference)."""
    out = []
    for v in variants:
        out.append(passes_work(f"path trace, {steps} steps ({v})", steps + 2, steps + 1, per_pass))
        out.append(method_work(f"IG from {baselines} baselines and {references} references ({v})",
                               "integrated_gradients", ig_params, x_shape, per_pass,
                               times=baselines + references))
    return out


def convergence_nodes(steps: Sequence[int], rules: Sequence[str]) -> int:
    """Distinct path points the convergence study evaluates (nested rules share their nodes)."""
    import numpy as np

    from explorer.methods.path import quadrature
    return int(np.unique(np.concatenate([quadrature(r, int(s))[0] for r in rules
                                         for s in steps])).shape[0])


# One probe of exact IG's walk costs this many float32 forward+backward passes of one input: it
# runs a float64 copy of the model (no float32 fast paths), carries forward-mode tangents and
# keeps per-ReLU/max-pool kink bookkeeping. Measured on the regular digits CNN, 2-core x86_64
# CPU: 5,862 regions in ~50 s (8.5 ms per probe at batch 256) against 0.32 ms per float32
# forward+backward of one input (explorer.pass_time), a ratio of ~27.
EXACT_PROBE_PASSES = 27.0
# The layer-by-layer split (explorer.methods.exact_layered, plain chains of torch.nn layers:
# the bundled CNNs) per region, in the same units: float64 still, but each layer runs once per
# interval it sees, no tangents. `python benchmarks/exact_ig_speed.py` on the regular digits
# CNN, same CPU, quiet: 4.9 (3.4-5.4 over 3 runs; the walk 13.1 in the same run).
EXACT_LAYERED_PASSES = 5.0


def exact_walk_work(label: str, regions: int, per_pass: PassTime, batch: int = 64,
                    layered: bool = False) -> Work:
    """Exact IG over ``regions`` linear regions (all inputs together), priced at
    ``EXACT_PROBE_PASSES`` passes per region for the probe walk (a forward with tangents and a
    backward each) or ``EXACT_LAYERED_PASSES`` for the layered split (``layered``)."""
    calls = math.ceil(regions / batch)
    rate = EXACT_LAYERED_PASSES if layered else EXACT_PROBE_PASSES
    seconds = (regions * rate * (per_pass.forward_s + per_pass.backward_s)
               + calls * per_pass.call_s)
    return Work(label, 2.0 * regions, float(regions), seconds)


def convergence_page_work(variants: Sequence[str], steps: Sequence[int], rules: Sequence[str],
                          per_pass: PassTime,
                          exact_regions: Mapping[str, int] | None = None,
                          layered: Mapping[str, bool] | None = None) -> list[Work]:
    """Per variant: one gradient per distinct node, the input's gradient, two outputs; and
    exact IG over ``exact_regions[variant]`` regions (0 or absent: cached or no walk), by the
    layered split where ``layered[variant]``, else by the probe walk."""
    nodes = convergence_nodes(steps, rules)
    out = [passes_work(f"{nodes} path points ({v})", nodes + 3, nodes + 1, per_pass)
           for v in variants]
    for v in variants:
        regions = (exact_regions or {}).get(v, 0)
        if regions:
            out.append(exact_walk_work(f"exact IG walk, ~{regions:,} regions ({v})", regions,
                                       per_pass, layered=bool((layered or {}).get(v))))
    return out


# Calls of the method on the current model per axiom check: completeness 1, sensitivity 1,
# implementation invariance 2 (the model and its twin), linearity 3 (a mix and its two parts);
# plus the forward passes that pick the one feature for sensitivity (16 candidates and more).
AXIOM_METHOD_CALLS = 7
AXIOM_FORWARDS = 24
HOMOGENEITY_SCALES = 21


def axioms_page_work(methods: Mapping[str, Mapping[str, Any]], checked_variant: str,
                     variants: Sequence[str], x_shape: Sequence[int], per_pass: PassTime,
                     occlusion_max_features: int = 4096) -> list[Work]:
    """The Axiom lab: every axiom for each method on one variant; the homogeneity curve and
    the methods that should coincide (IxG, LRP, DeepLIFT, occlusion-1 on small inputs) on each."""
    out = []
    for m, params in methods.items():
        try:
            w = method_work(m, m, params, x_shape, per_pass, times=AXIOM_METHOD_CALLS)
        except InputError:  # a method whose settings fail shows its error when it runs
            continue
        out.append(Work(f"axioms of {m} ({checked_variant})", w.forward + AXIOM_FORWARDS,
                        w.backward, w.seconds + AXIOM_FORWARDS * per_pass.forward_s))
    pixels = math.prod(x_shape[2:]) if len(x_shape) > 2 else int(x_shape[-1])
    for v in variants:
        out.append(passes_work(f"homogeneity curve ({v})", HOMOGENEITY_SCALES + 1, 0, per_pass))
        single = 2 * pixels + 2 if pixels <= occlusion_max_features else 0
        out.append(passes_work(f"methods that should coincide ({v})", 3 + single, 3, per_pass,
                               batch=256))
    return out


def metrics_page_work(methods: Mapping[str, Mapping[str, Any]], variants: Sequence[str],
                      x_shape: Sequence[int], per_pass: PassTime, *, ns: int, subsets: int,
                      steps: int) -> list[Work]:
    """Per variant: each method's map, Sensitivity-n's subsets (shared by the methods) and
    insertion/deletion's 2 (steps + 1) points per method."""
    out = []
    for v in variants:
        for m, params in methods.items():
            try:
                out.append(method_work(f"{m} map ({v})", m, params, x_shape, per_pass))
            except InputError:
                continue
        out.append(passes_work(f"Sensitivity-n, {ns} n x {subsets} subsets ({v})",
                               ns * subsets + 1, 0, per_pass, batch=256))
        out.append(passes_work(f"insertion/deletion, {len(methods)} maps ({v})",
                               len(methods) * 2 * (steps + 1), 0, per_pass, batch=256))
    return out
