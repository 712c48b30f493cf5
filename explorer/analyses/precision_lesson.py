"""The Precision lesson: one model and input in float64, float32, TF32 and bf16, side by side.

On a bias-free network X-Gradient equals Integrated Gradients from the zero baseline and is
complete: sum(x * dF/dx) = F(x) - F(0), exactly, in exact arithmetic. Each number format rounds
that identity by its own amount. For every format this measures, against the float64 run:

- X-Gradient's and IG's completeness error: |sum(map) - (F(x) - F(0))| / |F(x) - F(0)|, with
  F(x) - F(0) from float64 (the truth the identity promises, not the format's own rounding of it);
- the largest difference of each map from its float64 map, relative to the float64 map's
  largest |value|;
- the time of one pass (X-Gradient: one forward and one backward), median of a few calls.

A format the device lacks is reported as not available (TF32 off NVIDIA Ampere+, float64 on MPS)
rather than silently computed as another; bf16 on the CPU is emulated by CPU autocast and says so.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from explorer.methods.api import explain
from explorer.runtime.precision import PRECISIONS, availability, cast
from explorer.runtime.timing import synchronize

ORDER = ("float64", "float32", "tf32", "bf16")


@dataclass
class LessonRow:
    precision: str
    label: str
    status: str                        # "computed", "emulated" or "not available"
    note: str                          # what the format does on this device, in a sentence
    xgrad_completeness: float | None   # relative completeness error, against float64's F
    ig_completeness: float | None
    xgrad_max_diff: float | None       # largest |map - float64 map| / max |float64 map|
    ig_max_diff: float | None
    ms_per_pass: float | None          # one forward + one backward (X-Gradient), median

    def row(self) -> dict:
        return asdict(self)


def status_of(name: str, device: torch.device) -> str:
    note = availability(name, device)
    if note.startswith("not available"):
        return "not available"
    return "emulated" if note.startswith("emulated") else "computed"


def _timed_pass_ms(model, x, target, name: str, repeats: int) -> float:
    dtype = PRECISIONS[name].dtype
    if dtype is not None:  # copy once, outside the clock: the pass is timed, not the copy
        model, x = cast(model, dtype), x.to(dtype)
    times = []
    for _ in range(repeats + 1):                  # the first call warms up, untimed
        synchronize(x.device)
        start = time.perf_counter()
        explain("input_x_gradient", model, x, target, precision=name)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1e3


@torch.no_grad()
def _delta64(model, x, target) -> torch.Tensor:
    """F(x) - F(0) of the target logit, in float64 (the right side of the identity)."""
    from explorer.methods.core import check_target, select_target
    from explorer.runtime.precision import precision_scope
    with precision_scope("float64", x.device):
        m, x64 = cast(model, torch.float64), x.double()
        t = check_target(target, x.shape[0], x.device)
        return select_target(m(x64), t) - select_target(m(torch.zeros_like(x64)), t)


def _completeness(attributions: torch.Tensor, delta: torch.Tensor) -> float:
    sums = attributions.double().reshape(attributions.shape[0], -1).sum(1)
    return float(((sums - delta).abs() / delta.abs().clamp_min(1e-300)).max())


def _max_diff(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-300))


def precision_lesson(model: torch.nn.Module, x: torch.Tensor, target, *, steps: int = 32,
                     repeats: int = 5, precisions: tuple[str, ...] = ORDER) -> list[LessonRow]:
    """One ``LessonRow`` per format in ``precisions`` (float64 is always computed first: it is
    the reference). ``model`` should be bias-free for X-Gradient's completeness to be the
    identity's; IG uses ``steps`` Gauss-Legendre nodes from the zero baseline."""
    device = x.device
    delta = _delta64(model, x, target)
    reference = {}
    rows = []
    for name in ("float64",) + tuple(p for p in precisions if p != "float64"):
        p = PRECISIONS[name]
        status = status_of(name, device)
        if status == "not available":
            rows.append(LessonRow(name, p.label, status, availability(name, device),
                                  None, None, None, None, None))
            continue
        xg = explain("input_x_gradient", model, x, target, precision=name).attributions
        ig = explain("integrated_gradients", model, x, target, precision=name,
                     steps=steps).attributions
        if name == "float64":
            reference = {"xg": xg.double(), "ig": ig.double()}
        rows.append(LessonRow(
            name, p.label, status, availability(name, device),
            _completeness(xg, delta), _completeness(ig, delta),
            _max_diff(xg, reference["xg"]), _max_diff(ig, reference["ig"]),
            _timed_pass_ms(model, x, target, name, repeats)))
    return [r for r in rows if r.precision in precisions]
