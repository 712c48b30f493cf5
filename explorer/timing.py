"""Honest timing: warm-up, CUDA synchronisation, several repeats, the median; pass counting."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from explorer.errors import InputError
from explorer.methods.core import this_thread_only


@dataclass
class PassCount:
    """Samples that went forward / backward through the model (a batch of 8 counts 8)."""

    forward: int = 0
    backward: int = 0


@contextlib.contextmanager
def count_passes(model: torch.nn.Module) -> Iterator[PassCount]:
    """Count forward and backward passes through ``model`` while the block runs.

    Hooks sit on the model's root module only, count this thread's passes only, and are
    removed on exit, also on error.
    """
    counts = PassCount()

    def on_backward(grad):
        counts.backward += grad.shape[0] if grad.dim() else 1

    @this_thread_only
    def on_forward(module, inputs, output):
        if isinstance(output, torch.Tensor):
            counts.forward += output.shape[0] if output.dim() else 1
            if output.requires_grad:
                output.register_hook(on_backward)

    handle = model.register_forward_hook(on_forward)
    try:
        yield counts
    finally:
        handle.remove()


def synchronize(device: torch.device | str | None) -> None:
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()


@dataclass
class Timing:
    median_s: float
    times_s: list[float]
    warmup: int
    device: str


def time_call(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
              device: torch.device | str | None = None) -> Timing:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    if repeats < 1 or warmup < 0:
        raise InputError(f"time_call needs repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), times, warmup, str(device or "cpu"))


@dataclass
class Measurement:
    method: str
    timing: Timing
    forward_per_input: float
    backward_per_input: float
    result: Any = field(repr=False, default=None)


def measure_method(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
                   baseline: torch.Tensor | None = None, repeats: int = 3, warmup: int = 1,
                   once_above_s: float | None = None, **hparams: Any) -> Measurement:
    """Time ``explorer.explain`` for one method and count the passes it really made.

    The first of the ``warmup`` untimed runs is the one whose passes are counted and whose
    result is returned, so nothing is computed only to be thrown away. When that run took more
    than ``once_above_s`` seconds it is the timing (one cold call): a long call is never repeated.
    """
    from explorer.methods import explain

    def run():
        return explain(method, model, x, target, baseline=baseline, **hparams)

    n = x.shape[0]
    with count_passes(model) as counts:
        synchronize(x.device)
        start = time.perf_counter()
        result = run()
        synchronize(x.device)
        first = time.perf_counter() - start
    if once_above_s is not None and first > once_above_s:
        return Measurement(method, Timing(first, [first], 0, str(x.device)),
                           counts.forward / n, counts.backward / n, result)
    timing = time_call(run, repeats=repeats, warmup=max(0, warmup - 1), device=x.device)
    timing.warmup = max(1, warmup)
    return Measurement(method, timing, counts.forward / n, counts.backward / n, result)
