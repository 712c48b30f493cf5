"""Input validation and the gradient machinery the methods share."""
from __future__ import annotations

import contextlib
import gc
import math
import threading
from typing import Any, Callable

import torch

from explorer.errors import InputError
from explorer.runtime.heap import steady_heap
from explorer.runtime.tensors import all_finite, on_model_device, seeded_generator


def check_input(x: object, model: torch.nn.Module | None = None) -> torch.Tensor:
    """A detached, finite float batch [N, ...]; on ``model``'s device when a model is given."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"x must be a torch.Tensor batch [N, ...], got {type(x).__name__}")
    if x.dim() < 2:
        raise InputError(f"x must be a batch [N, ...] with N >= 1, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise InputError("x is an empty batch (N = 0)")
    if not x.is_floating_point():
        raise InputError(f"x must be a floating-point tensor, got {x.dtype}")
    x = x.detach() if x.requires_grad else x
    if not all_finite(x):
        raise InputError("x contains NaN or infinite values")
    return x if model is None else on_model_device(model, x)


def check_target(target: object, n: int, device: torch.device) -> torch.Tensor:
    """An int or a LongTensor [N] -> LongTensor [N]; a float weighting of the logits
    ([classes] or [N, classes], F = sum_k w_k logit_k) -> float [N, classes].

    The upper bound of class indices and the weighting's length are checked at the output.
    """
    return checked_target(target, n, device)[0]


def checked_target(target: object, n: int,
                   device: torch.device) -> tuple[torch.Tensor, int | None]:
    """``check_target``'s tensor and the largest class index (None for a weighting), read
    without touching the device where it can be: an int is its own bound, a CPU tensor is
    read before it is moved, a device tensor's min and max come back in one read."""
    if isinstance(target, bool):
        raise InputError(f"target must be a class index, got {target!r}")
    if isinstance(target, int):
        if not -(2 ** 63) <= target < 2 ** 63:
            raise InputError(f"target {target} is out of range: a class index is a small "
                             "non-negative int")
        if target < 0:
            raise InputError(f"target class indices must be >= 0, got {[target] * n}")
        return torch.full((n,), target, dtype=torch.long, device=device), target
    elif isinstance(target, torch.Tensor) and target.is_floating_point():
        return _check_weighting(target, n, device), None
    elif isinstance(target, torch.Tensor):
        if target.dtype == torch.bool or target.is_complex():
            raise InputError(f"target must hold integer class indices, got {target.dtype}")
        # Each torch call costs microseconds on a one-pass method: skip the no-op ones.
        t = target
        if t.dim() != 1:
            t = t.reshape(-1)
        if t.numel() != n and t.numel() != 1:
            raise InputError(f"target has {t.numel()} entries for a batch of {n} inputs")
        # One read of both bounds, on the tensor as given (a CPU target never waits for a GPU).
        low, high = torch.aminmax(t) if t.numel() > 1 else (t[0], t[0])
        low, high = (int(v) for v in torch.stack((low, high)).tolist())
        if low < 0:
            got = t.tolist() * (n if t.numel() == 1 else 1)
            raise InputError(f"target class indices must be >= 0, got {got}")
        if t.dtype != torch.long or t.device != device:
            t = t.to(device=device, dtype=torch.long)
        if t.numel() == 1 and n > 1:
            t = t.expand(n).clone()
        return t, high
    raise InputError(f"target must be an int, a LongTensor [N] or a float weighting of the "
                     f"logits [classes] / [N, classes], got {type(target).__name__}")


def _check_weighting(w: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """A weighting of the logits: [classes] (one for all inputs) or [N, classes]."""
    if w.dim() == 1:
        w = w.unsqueeze(0).expand(n, -1)
    if w.dim() != 2 or w.shape[0] != n:
        raise InputError(
            f"a weighted target must have shape [classes] or [N={n}, classes], got "
            f"{list(w.shape)}; for class indices give an int or an integer tensor"
        )
    if not all_finite(w):
        raise InputError("the target weighting contains NaN or infinite values")
    return w.detach().to(device).contiguous()


def is_weighted(target: torch.Tensor) -> bool:
    """Whether a checked target is a weighting of the logits rather than class indices."""
    return target.is_floating_point()


def select_target(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """output[i, target[i]], or sum_k target[i, k] output[i, k] for a weighting; checks that
    the model returned logits [N, classes]."""
    if output.dim() != 2 or output.shape[0] != target.shape[0]:
        raise InputError(
            f"the model returned shape {list(output.shape)} for a batch of {target.shape[0]}; "
            "attributions are taken on logits [N, classes]. Is x batched ([N, C, H, W])?"
        )
    classes = output.shape[1]
    if is_weighted(target):
        if target.shape[1] != classes:
            raise InputError(
                f"the target weighting has {target.shape[1]} weights but the model has {classes} "
                "classes; give one weight per class, or integer class indices"
            )
        return (output * target.to(output.dtype)).sum(1)
    # The largest index, known once per call (``known_target_max``), so that chunked loops do
    # not synchronise with the device on every chunk to read it back.
    largest = getattr(_target_max, "value", None)
    if largest is None:
        largest = target.max().item()
    if largest >= classes:
        raise InputError(
            f"target {largest} is out of range: the model has {classes} classes "
            f"(valid: 0..{classes - 1})"
        )
    return output.gather(1, target[:, None])[:, 0]


_target_max = threading.local()


@contextlib.contextmanager
def known_target_max(target: torch.Tensor, largest: int | None = None):
    """Within the block, ``select_target`` in this thread takes ``target``'s largest class
    index (``largest`` when the caller knows it, else read once, here) as the bound of every
    index it is given: they are subsets of it."""
    previous = getattr(_target_max, "value", None)
    if is_weighted(target):
        largest = None
    elif largest is None:
        largest = target.max().item()
    _target_max.value = largest
    try:
        yield
    finally:
        _target_max.value = previous


class OutOfMemory(InputError):
    """A chunk of points did not fit in memory; chunked loops retry it in smaller pieces."""


def is_out_of_memory(err: BaseException) -> bool:
    """torch's device OOM, or the CPU allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


class out_of_memory_as_input_error:  # noqa: N801 (used as a function: ``with ...(rows):``)
    """Turn any allocator failure inside the block into ``OutOfMemory`` (an InputError).

    A class rather than a generator context manager: it is entered twice per gradient call."""

    __slots__ = ("rows",)

    def __init__(self, rows: int):
        self.rows = rows

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, traceback) -> bool:
        if (err is None or isinstance(err, OutOfMemory)
                or not isinstance(err, (RuntimeError, MemoryError)) or not is_out_of_memory(err)):
            return False
        raise OutOfMemory(f"out of memory on a batch of {self.rows} points: lower batch_size") \
            from err


_finite_watch = threading.local()


class watch_outputs:  # noqa: N801 (used as a function: ``with watch_outputs() as records:``)
    """Within the block, ``run_model`` in this thread records each output's largest |value|
    (0-dim tensors, NaN if any entry is NaN; no device synchronisation); the caller reduces them
    at the end: all outputs were finite iff every record is. (A class: entered on every call.)"""

    __slots__ = ("previous", "flags")

    def __enter__(self) -> list:
        self.previous, self.flags = getattr(_finite_watch, "flags", None), []
        _finite_watch.flags = self.flags
        return self.flags

    def __exit__(self, *exc) -> bool:
        _finite_watch.flags = self.previous
        return False


def run_model(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x), with the model's own shape errors and out-of-memory turned into InputError."""
    try:
        with out_of_memory_as_input_error(x.shape[0]):
            out = model(x)
        flags = getattr(_finite_watch, "flags", None)
        if flags is not None and isinstance(out, torch.Tensor) and out.is_floating_point():
            flags.append(torch.linalg.vector_norm(out.detach(), math.inf))
        return out
    except InputError:
        raise
    except (RuntimeError, ValueError) as err:
        raise InputError(
            f"the model could not run on an input of shape {list(x.shape)}: {err}. "
            "Is x batched ([N, C, H, W]) and of the size the model expects?"
        ) from err


def input_gradients(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor):
    """d logit[target] / d x for each row, and all the logits [N, classes] (both detached)."""
    with torch.enable_grad(), out_of_memory_as_input_error(x.shape[0]):
        x = x.detach().requires_grad_(True)
        logits = run_model(model, x)
        (grad,) = torch.autograd.grad(select_target(logits, target).sum(), x)
    return grad, logits.detach()  # grad has no graph (create_graph is off)


_progress = threading.local()


@contextlib.contextmanager
def reporting_progress(callback: Callable[[int, int], None]):
    """Call ``callback(done, total)`` before each chunk of ``chunked_pairs``/``run_in_chunks``.

    Lets a caller show progress, or stop a long computation between chunks by raising."""
    previous = getattr(_progress, "callback", None)
    _progress.callback = callback
    try:
        yield
    finally:
        _progress.callback = previous


def report_progress(done: int, total: int) -> None:
    """Tell this thread's ``reporting_progress`` callback, if any, how far a loop has come."""
    callback = getattr(_progress, "callback", None)
    if callback is not None:
        callback(done, total)


def chunked_pairs(n: int, r: int, batch_size: int, device: torch.device):
    """Yield index tensors (i, j) over all n*r (input, point) pairs, ``batch_size`` at a time."""
    for lo in range(0, n * r, batch_size):
        report_progress(lo, n * r)
        pairs = torch.arange(lo, min(lo + batch_size, n * r), device=device)
        yield pairs // r, pairs % r


def run_in_chunks(count: int, batch_size: int, work: Callable[[int, int], Any]):
    """Yield (lo, hi, work(lo, hi)) over [0, count) in chunks of at most ``batch_size``.

    A chunk that runs out of memory is retried in halves (and the smaller size kept); one that
    fails even alone raises InputError. ``work`` must not change state before it returns.
    With ``EXPLORER_STEADY_HEAP=1`` on glibc the first call fixes malloc's mmap threshold
    (``heap.steady_heap``), so the resident peak does not grow with the number of chunks.
    """
    steady_heap()
    lo, size = 0, max(1, int(batch_size))
    while lo < count:
        report_progress(lo, count)
        hi = min(lo + size, count)
        try:
            result = work(lo, hi)
        except OutOfMemory as err:
            if hi - lo == 1:
                raise InputError(
                    f"out of memory even one point at a time (batch_size={batch_size} was "
                    "retried down to 1): use a smaller input or model, or a device with more "
                    "memory") from err
            size = (hi - lo) // 2
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        yield lo, hi, result
        del result  # the caller has used it: not alive while the next chunk runs
        lo = hi


def path_gradients(model: torch.nn.Module, x: torch.Tensor, base: torch.Tensor,
                   target: torch.Tensor, rows: torch.Tensor, alphas: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
    """(x - base)[rows] * grad F(base + alpha (x - base))[rows] for each (row, alpha) pair [P, ...].

    The points are made one chunk at a time, so only the result scales with P.
    """
    out = torch.empty((rows.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    alphas = alphas.to(device=x.device, dtype=x.dtype)
    view = (-1,) + (1,) * (x.dim() - 1)

    def work(lo: int, hi: int):
        with out_of_memory_as_input_error(hi - lo):  # delta and the points are the chunk's too
            i = rows[lo:hi]
            delta = x[i] - base[i]
            grad, _ = input_gradients(model, base[i] + alphas[lo:hi].view(view) * delta, target[i])
            return delta * grad

    for lo, hi, g in run_in_chunks(rows.shape[0], batch_size, work):
        out[lo:hi] = g
    return out


def path_integral(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    starts: torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    alphas: torch.Tensor,
    weights: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """sum_j w_j (x - s_j) * grad F(s_j + a_j (x - s_j)) for each input, chunked.

    ``starts`` is [N, R, ...] (one start point per input and path node, views are fine), or a
    function (i, j) -> start points [P, ...] so that they are made one chunk at a time;
    ``alphas``/``weights`` are [R]. The N*R evaluation points go through the network in chunks
    of ``batch_size`` rows (halved on out-of-memory), so memory stays bounded whatever R is.
    """
    n, r = x.shape[0], alphas.shape[0]
    total = torch.zeros_like(x)
    alphas = alphas.to(device=x.device, dtype=x.dtype)
    weights = weights.to(device=x.device, dtype=x.dtype)
    view = (-1,) + (1,) * (x.dim() - 1)
    start_of = starts if callable(starts) else (lambda i, j: starts[i, j])

    def work(lo: int, hi: int):
        # The guard covers the chunk's own tensors too (start, delta, points): any allocation
        # failure in the chunk, the CPU allocator's RuntimeError included, retries in halves.
        with out_of_memory_as_input_error(hi - lo):
            pairs = torch.arange(lo, hi, device=x.device)
            i, j = pairs // r, pairs % r
            start = start_of(i, j)
            # In place where the tensor is the chunk's own: two point-sized tensors live through
            # the forward and backward pass instead of four. The same operations in the same
            # order as out of place: bit-identical results. (This alone did not flatten expected
            # gradients' resident peak on ResNet-18: that growth was glibc's dynamic mmap
            # threshold, which EXPLORER_STEADY_HEAP=1 fixes: see heap.py, docs/classroom.md.)
            delta = x[i].sub_(start)  # x[i] is a copy (advanced indexing)
            points = (alphas[j].view(view) * delta).add_(start)
            del start
            grad, _ = input_gradients(model, points, target[i])
            del points
            return i, delta.mul_(weights[j].view(view)).mul_(grad)

    for _, _, (i, contribution) in run_in_chunks(n * r, batch_size, work):
        total.index_add_(0, i, contribution)
        del i, contribution
    return total


DEVICE_DRAW_ROWS = 16  # rows per draw on an accelerator: fixed, so batch_size never changes them


def noise_rows(seed: int, rows: int, shape: tuple, block_rows: int, device: torch.device,
               dtype: torch.dtype):
    """Standard normal blocks [<= block_rows, *shape] on ``device`` in ``dtype``, from the seed.

    On the CPU: ``normal_rows`` of a CPU generator (float64, then cast), the stream of one big
    draw. On an accelerator the noise is drawn there, by a generator of that device, in fixed
    draws of ``DEVICE_DRAW_ROWS`` rows: no host-side sampling and no host-to-device copy (on a
    GPU this was half of SmoothGrad's time). The rows then depend on the seed, the device type
    and the dtype alone, not on ``block_rows``; they differ from the CPU's stream, so CUDA and
    CPU maps of SmoothGrad agree in distribution, not draw for draw.
    """
    device = torch.device(device)
    if device.type == "cpu":
        for block in normal_rows(seeded_generator(seed), rows, shape, block_rows):
            yield block.to(dtype)
        return
    yield from fixed_draw_rows(torch.Generator(device=device).manual_seed(int(seed)), rows,
                               shape, block_rows, dtype)


def fixed_draw_rows(gen: torch.Generator, rows: int, shape: tuple, block_rows: int,
                    dtype: torch.dtype):
    """Blocks [<= block_rows, *shape] of ``gen``'s device, cut from draws of DEVICE_DRAW_ROWS
    rows each: row k is the same whatever ``block_rows`` is."""
    device = gen.device
    pending: list[torch.Tensor] = []
    have, left = 0, rows
    while have or left:
        while have < block_rows and left:
            take = min(DEVICE_DRAW_ROWS, left)
            pending.append(torch.randn((DEVICE_DRAW_ROWS,) + tuple(shape), generator=gen,
                                       device=device, dtype=dtype)[:take])
            have, left = have + take, left - take
        buffer = pending[0] if len(pending) == 1 else torch.cat(pending)
        count = min(block_rows, have)
        yield buffer[:count]
        pending, have = ([buffer[count:]] if have > count else []), have - count


def normal_rows(gen: torch.Generator, rows: int, shape: tuple, block_rows: int):
    """Yield float64 blocks [<= block_rows, *shape] whose concatenation is exactly
    ``torch.randn((rows, *shape), generator=gen, dtype=torch.float64)``.

    torch's CPU normal sampler fills 16 numbers at a time and redraws the last 16 when the size
    is not a multiple of 16, so flat draws of multiples of 16 (the last one >= 16, holding the
    tail) consume the stream exactly as one big draw does. Memory stays at about one block.
    """
    per_row = 1
    for d in shape:
        per_row *= int(d)
    total = rows * per_row
    piece = 16 * -(-max(1, block_rows) * per_row // 16)
    buffer = torch.empty(0, dtype=torch.float64)
    left = total
    while buffer.numel() or left:
        while buffer.numel() < min(block_rows * per_row, buffer.numel() + left) and left:
            take = piece if left - piece >= 16 else left
            draw = torch.randn(take, generator=gen, dtype=torch.float64)
            buffer = torch.cat([buffer, draw]) if buffer.numel() else draw  # no copy when empty
            left -= take
        count = min(block_rows, buffer.numel() // per_row)
        yield buffer[:count * per_row].reshape((count,) + tuple(shape))
        buffer = buffer[count * per_row:]


def limit_call(model: torch.nn.Module, x: torch.Tensor, target) -> Callable[[], Any]:
    """The one-pass limit: one forward and one backward to the input, at the same batch."""
    t = check_target(target, x.shape[0], x.device)
    return lambda: input_gradients(model, x, t)
