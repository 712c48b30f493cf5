"""The tables every surface shows (app, command line, files), built once here.

``run_checked`` explains a batch and measures what the tables need besides the map: the passes
actually made, the wall time of that one call, and completeness against the method's own
references. ``completeness_row`` and
``timing_row`` turn results into the rows the app renders and the command line writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from explorer.analyses.checks import DEFAULT_RTOL, verdict
from explorer.methods.core import limit_call
from explorer.methods import METHODS, explain, method_label
from explorer.methods.registry import get_method
from explorer.runtime.precision import under_precision
from explorer.runtime.timing import Call, Comparison, Row, compare


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
                    "result": verdict(report["rel_error"], rtol, promise,
                                      delta=report["delta"], abs_error=report["abs_error"])})
    return row


LIMIT = "limit"
LIMIT_LABEL = "one forward+backward (limit)"


@dataclass
class Run:
    """One method to time at stated settings; ``name`` (default: its label) keeps rows apart."""

    method: str
    params: dict = field(default_factory=dict)
    baseline: torch.Tensor | None = None
    name: str | None = None


def method_call(model: torch.nn.Module, x: torch.Tensor, target, run: Run) -> Callable[[], Any]:
    """A no-argument call of ``explain`` for timing (settings validated once, here)."""
    get_method(run.method).resolve(run.params)
    return lambda: explain(run.method, model, x, target, baseline=run.baseline, **run.params)


@dataclass
class TimedOnce:
    """A call already timed by the one run that made its result (a long call is never repeated):
    it joins the rows and their ratio columns without running again."""

    run: Run
    bias_free: bool
    seconds: float
    forward_passes: float
    backward_passes: float


def time_methods(models: Mapping[bool, torch.nn.Module],
                 runs: Sequence[Run] | Mapping[bool, Sequence[Run]], x: torch.Tensor, target, *,
                 limit: bool = True, timed_once: Sequence[TimedOnce] = (),
                 **compare_kwargs: Any) -> list[dict]:
    """Time every run on every variant (bias_free -> model) and, per variant, the limit (one
    forward+backward at the same batch), all interleaved in one ``timing.compare``.

    ``runs`` is one list for every variant or a list per variant. ``timed_once`` adds rows timed
    elsewhere by a single run. Returns ``timing_row`` dicts; ``compare_kwargs`` go to
    ``compare`` (rounds, budget, progress, ...).
    """
    calls, keys = [], {}
    per_variant = runs if isinstance(runs, Mapping) else {v: runs for v in models}
    for bias_free, model in models.items():
        variant = "bias-free" if bias_free else "regular"
        if limit:
            name = f"{LIMIT_LABEL} [{variant}]"
            calls.append(Call(name, limit_call(model, x, target), model, x.shape[0]))
            keys[name] = (LIMIT, bias_free, LIMIT_LABEL)
        for run in per_variant.get(bias_free, ()):
            label = run.name or method_label(run.method, bias_free)
            name = f"{label} [{variant}]"
            calls.append(Call(name, method_call(model, x, target, run), model, x.shape[0]))
            keys[name] = (run.method, bias_free, label)
    device = str(x.device)
    comparison = compare(calls, device=x.device, **compare_kwargs)
    for once in timed_once:
        label = once.run.name or method_label(once.run.method, once.bias_free)
        name = f"{label} [{'bias-free' if once.bias_free else 'regular'}]"
        comparison.rows[name] = Row(name, [once.seconds], 1, once.forward_passes,
                                    once.backward_passes)
        keys[name] = (once.run.method, once.bias_free, label)
    return comparison_rows(comparison, keys, device)


def comparison_rows(comparison: Comparison, keys: Mapping[str, tuple[str, bool, str]],
                    device: str) -> list[dict]:
    """``timing_row`` dicts for a comparison; ``keys``: call name -> (method, bias_free, label).

    The limit and IG rows of the same variant give the ratio columns (IG: its first run)."""
    def first(method, bias_free):
        return next((comparison.rows[n] for n, k in keys.items()
                     if k[0] == method and k[1] == bias_free), None)
    rows = []
    for name, (method, bias_free, label) in keys.items():
        r = comparison.rows[name]
        lim, ig = first(LIMIT, bias_free), first("integrated_gradients", bias_free)
        rows.append(timing_row(
            method, bias_free, label=label, median_ms=r.median_s * 1e3, q1_ms=r.q1_s * 1e3,
            q3_ms=r.q3_s * 1e3, rounds=r.rounds, repeats=r.repeats,
            forward_passes=r.forward_passes, backward_passes=r.backward_passes, device=device,
            ig_median_ms=ig.median_s * 1e3 if ig else None,
            limit_median_ms=lim.median_s * 1e3 if lim else None,
            inseparable=[keys[o][2] + (" (bias-free)" if keys[o][1] else " (regular)")
                         for o in comparison.inseparable(name)]))
    return rows


def timing_row(method: str, bias_free: bool, *, median_ms: float, forward_passes: float | None,
               backward_passes: float | None, device: str, ig_median_ms: float | None = None,
               q1_ms: float | None = None, q3_ms: float | None = None, rounds: int | None = None,
               repeats: int | None = None, limit_median_ms: float | None = None,
               inseparable: Sequence[str] = (), label: str | None = None) -> dict:
    """One timing row: median and quartiles, passes per input, x the one-pass limit and x faster
    than IG on the same variant, and the rows too close (overlapping spreads) to rank against."""
    if label is None:
        label = LIMIT_LABEL if method == LIMIT else method_label(method, bias_free)
    return {"method": label,
            "variant": "bias-free" if bias_free else "regular",
            "median_ms": median_ms, "q1_ms": q1_ms, "q3_ms": q3_ms,
            "rounds": rounds, "repeats": repeats,
            "forward_passes": forward_passes, "backward_passes": backward_passes,
            "x_limit": (median_ms / limit_median_ms) if limit_median_ms else None,
            "speedup_vs_ig": (ig_median_ms / median_ms) if ig_median_ms else None,
            "too_close_to_rank": ", ".join(inseparable),
            "device": device}


@under_precision
def model_facts(model: torch.nn.Module, labels: Sequence[str], x: torch.Tensor) -> dict:
    """What a model card shows for input ``x`` [1, ...]: class probabilities, the top 5,
    the homogeneity error and the layers that break homogeneity.

    In a precision scope like every analysis (default full float32): outside one, a CUDA
    forward would run in torch's default TF32 convolutions or not, depending on whether
    another session's scope held the flags off at that moment."""
    from explorer.models.homogeneous import homogeneity_error, homogeneity_obstacles
    from explorer.runtime.tensors import on_model_device
    x = on_model_device(model, x)
    with torch.no_grad():
        # float32 on the device (MPS has no float64), widened on the CPU
        probs = torch.softmax(model(x).float(), 1)[0].cpu().double()
    top = probs.topk(min(5, probs.numel()))
    return {
        "probs": probs.numpy(),
        "top": [(int(i), labels[int(i)], float(p)) for p, i in zip(top.values, top.indices)],
        "homogeneity_error": homogeneity_error(model, x),
        "obstacles": [(o.layer, o.type, o.reason) for o in homogeneity_obstacles(model)],
    }
