"""Honest timing: interleaved rounds, warm-up, auto-ranging, CUDA/MPS sync, quartiles; pass counting."""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from explorer.errors import InputError
from explorer.runtime.tensors import this_thread_only


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


Clock = Callable[[], float]

# Named clocks for ``compare``. "process" is this process's CPU time: time other processes take
# on a shared machine is not counted (CPU work only; with one torch thread it is the work).
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "process": time.process_time}


@dataclass
class Call:
    """A named call to time; with ``model`` its passes are counted on the warm-up run.

    ``batch`` is the number of inputs one call explains, so passes are per input.
    """

    name: str
    fn: Callable[[], Any]
    model: torch.nn.Module | None = None
    batch: int = 1


@dataclass
class Row:
    """One call's timings: per-call seconds for each round (a measurement / its inner repeats)."""

    name: str
    times_s: list[float]
    repeats: int                      # calls inside one measurement (auto-ranged)
    forward_passes: float | None = None   # per input, counted on the warm-up run
    backward_passes: float | None = None

    @property
    def rounds(self) -> int:
        return len(self.times_s)

    @property
    def median_s(self) -> float:
        return quantile(self.times_s, 0.5)

    @property
    def q1_s(self) -> float:
        return quantile(self.times_s, 0.25)

    @property
    def q3_s(self) -> float:
        return quantile(self.times_s, 0.75)

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, 'inclusive')."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Comparison:
    """The interleaved result: one ``Row`` per call, in the order given."""

    rows: dict[str, Row]
    rounds: int
    elapsed_s: float
    device: str

    def verdict(self, a: str, b: str) -> str:
        return verdict(self.rows[a], self.rows[b])

    def inseparable(self, name: str) -> list[str]:
        """The other rows whose spread overlaps this one's too much to rank them."""
        return [o for o in self.rows if o != name and not separable(self.rows[name], self.rows[o])]


def separable(a: Row, b: Row) -> bool:
    """True when the quartile ranges [q1, q3] of the two rows do not overlap."""
    return a.q3_s < b.q1_s or b.q3_s < a.q1_s


def verdict(a: Row, b: Row) -> str:
    """'A is faster than B (x1.8)', or that their spreads overlap too much to rank them."""
    if not separable(a, b):
        return f"{a.name} and {b.name}: spreads overlap, too noisy to rank"
    fast, slow = (a, b) if a.median_s < b.median_s else (b, a)
    return f"{fast.name} is faster than {slow.name} (x{slow.median_s / fast.median_s:.2f})"


AUTORANGE_STEPS = (1, 2, 5)


def autorange(fn: Callable[[], Any], *, min_time_s: float, clock: Clock, sync: Callable[[], None],
              first_s: float | None = None, max_repeats: int = 10_000) -> int:
    """Calls per measurement so that one measurement lasts at least ``min_time_s``.

    The rule of ``torch.utils.benchmark.Timer.autorange`` (1, 2, 5, 10, 20, 50, ... calls); it is
    re-implemented because Timer can take neither our clock nor an interleaved schedule.
    ``first_s``, the warm-up call's time, saves the probes when one call is clearly long enough
    (five times ``min_time_s``: a warm-up slowed by one-off costs or by a busy machine must not
    decide alone that a short call needs no repeats).
    """
    if first_s is not None and first_s >= 5 * min_time_s:
        return 1
    scale = 1
    while True:
        for step in AUTORANGE_STEPS:
            n = step * scale
            if n > max_repeats:
                return max_repeats
            if measure(fn, n, clock, sync) >= min_time_s:
                return n
        scale *= 10


def measure(fn: Callable[[], Any], n: int, clock: Clock, sync: Callable[[], None]) -> float:
    """Seconds for ``n`` back-to-back calls, synchronised before and after."""
    sync()
    start = clock()
    for _ in range(n):
        fn()
    sync()
    return clock() - start


def compare(calls: Mapping[str, Callable[[], Any]] | Sequence[Call], *, min_rounds: int = 10,
            max_rounds: int = 1000, budget_s: float = 0.0, min_time_s: float = 0.01,
            device: torch.device | str | None = None, clock: Clock = time.perf_counter,
            sync: Callable[[], None] | None = None,
            progress: Callable[[int, float], None] | None = None,
            once_above_s: float | None = None) -> Comparison:
    """Time several calls interleaved, so whatever else the machine does hits all of them alike.

    Each call runs once untimed (warm-up; passes counted where a model is given), then is
    auto-ranged (repeated inside one measurement until it lasts ``min_time_s``). Then rounds run:
    in each, every call is measured once, in the given order. Rounds go on while fewer than
    ``min_rounds`` have run or the elapsed time (warm-up included) is under ``budget_s``, and stop
    at ``max_rounds``. ``clock`` and ``sync`` can be injected (tests); ``sync`` defaults to the
    device's synchronisation (CUDA, MPS). ``progress(rounds_done, fraction)`` is called after
    each round, the fraction being of the rounds the budget allows as estimated so far.
    A call whose warm-up took longer than ``once_above_s`` is timed by that run alone (one
    round): repeating a long call would multiply it, and its spread would not change the ranking.
    Comparisons run one at a time in a process (``MEASURING``): a second waits for the first.
    """
    if isinstance(calls, Mapping):
        calls = [Call(name, fn) for name, fn in calls.items()]
    calls = list(calls)
    if not calls:
        raise InputError("compare needs at least one call to time")
    names = [c.name for c in calls]
    if len(set(names)) != len(names):
        raise InputError(f"compare: call names must differ, got {names}")
    if min_rounds < 1 or max_rounds < min_rounds or budget_s < 0 or min_time_s < 0:
        raise InputError("compare needs 1 <= min_rounds <= max_rounds, budget_s >= 0, "
                         f"min_time_s >= 0; got {min_rounds}, {max_rounds}, {budget_s}, {min_time_s}")
    if sync is None:
        sync = functools.partial(synchronize, device)
    # Bounded wait: a comparison holding the lock may itself wait on something this caller
    # holds (the app's precision scopes); rather than deadlock, overlap after a while.
    locked = MEASURING.acquire(timeout=MEASURING_WAIT_S)
    try:
        return _compare(calls, min_rounds, max_rounds, budget_s, min_time_s, device, clock, sync,
                        progress, once_above_s)
    finally:
        if locked:
            MEASURING.release()


# One measurement at a time in this process: the app's sessions share one server, and two
# comparisons running together would each time the other (and both take twice as long).
MEASURING = threading.Lock()
MEASURING_WAIT_S = 120.0


def _compare(calls, min_rounds, max_rounds, budget_s, min_time_s, device, clock, sync, progress,
             once_above_s) -> Comparison:
    start = clock()
    rows: dict[str, Row] = {}
    for c in calls:
        if c.model is not None:
            with count_passes(c.model) as counts:
                first = measure(c.fn, 1, clock, sync)
            fwd, bwd = counts.forward / c.batch, counts.backward / c.batch
        else:
            first, fwd, bwd = measure(c.fn, 1, clock, sync), None, None
        if once_above_s is not None and first > once_above_s:
            rows[c.name] = Row(c.name, [first], 1, fwd, bwd)
            continue
        n = autorange(c.fn, min_time_s=min_time_s, clock=clock, sync=sync, first_s=first)
        rows[c.name] = Row(c.name, [], n, fwd, bwd)
    repeated = [c for c in calls if not rows[c.name].times_s]
    rounds = 0
    while repeated and rounds < max_rounds:
        round_start = clock()
        for c in repeated:
            row = rows[c.name]
            row.times_s.append(measure(c.fn, row.repeats, clock, sync) / row.repeats)
        rounds += 1
        elapsed = clock() - start
        if progress is not None:
            per_round = (clock() - round_start) or 1e-9
            left = max(min_rounds - rounds, (budget_s - elapsed) / per_round, 0)
            progress(rounds, min(1.0, rounds / (rounds + left)))
        if rounds >= min_rounds and elapsed >= budget_s:
            break
    return Comparison(rows, rounds, clock() - start, str(device or "cpu"))


