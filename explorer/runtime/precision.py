"""The precision policy: every attribution and every analysis runs in a named number format.

By default that is full float32: TF32 off for cuDNN convolutions and for matmuls, and float32
matmul precision "highest". PyTorch's own default lets cuDNN run convolutions in TF32 (a 10-bit
mantissa) on Ampere and newer GPUs, which makes X-Gradient look incomplete on a bias-free network
where it is exact (relative errors of 1e-4 instead of 1e-7). Faster math is a named choice::

    with explorer.runtime.precision.precision_scope("tf32"):
        ...                                     # TF32 allowed for the duration
    explorer.explain(..., precision="bf16")     # bf16 autocast where it applies

Choices (``PRECISIONS``): "float32" (default), "tf32", "bf16", "float64" (the model and input are
copied to float64 for the call: the exact-arithmetic reference of the Precision lesson).

Threads. The TF32 flags and the matmul precision are process-global, while the app serves several
sessions from threads of one process. So a scope is a shared hold on one *flag setting*: calls that
need the same setting run together (a counter of holders), a call that needs a different setting
waits until the last holder of the current one has left, and the last holder restores the flags
that were there before the first one came. No call ever computes under flags it did not ask for,
and the caller's flags are back afterwards. float32, bf16 and float64 share one setting (TF32 off);
only "tf32" differs, so waits happen only when some caller opted into TF32. Autocast (bf16) is
thread-local in torch and needs no lock. Within one thread a nested scope with ``None`` inherits
the enclosing choice; a nested scope that asks for a different one raises ``InputError``, because
waiting for itself would deadlock.
"""
from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable

import torch

from explorer.errors import InputError

DEFAULT = "float32"


@dataclass(frozen=True)
class Precision:
    """A named number format: the global flags it needs, autocast, and the dtype it computes in."""

    name: str
    label: str
    tf32: bool                       # cuDNN and matmul TF32 allowed
    matmul: str                      # torch.set_float32_matmul_precision
    autocast: torch.dtype | None     # autocast dtype, or None
    dtype: torch.dtype | None        # model and input cast to this (float64), or None: as given
    description: str

    @property
    def flags(self) -> tuple[bool, str]:
        """The process-global setting it needs (the key threads share by)."""
        return (self.tf32, self.matmul)


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("float32", "float32 (full)", False, "highest", None, None,
              "IEEE float32 everywhere: TF32 off for convolutions and matmuls (the default)."),
    Precision("tf32", "TF32", True, "high", None, None,
              "TensorFloat-32 allowed for cuDNN convolutions and matmuls (10-bit mantissa) on "
              "NVIDIA Ampere and newer; faster, about 1e-3 relative error per operation."),
    Precision("bf16", "bf16 autocast", False, "highest", torch.bfloat16, None,
              "bfloat16 autocast (8-bit mantissa) for the operations autocast covers "
              "(convolutions, matmuls); the rest and the gradients' accumulation in float32."),
    Precision("float64", "float64", False, "highest", None, torch.float64,
              "The model and input copied to float64 for the call: the reference for how far "
              "each format is from exact arithmetic. Slow; not on MPS."),
)}


def get_precision(name: str | None) -> Precision:
    """The named precision (None: the enclosing scope's in this thread, else the default)."""
    if name is None:
        name = active() or DEFAULT
    if isinstance(name, Precision):
        return name
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; choose one of {list(PRECISIONS)}")
    return PRECISIONS[name]


def availability(name: str, device: torch.device | str) -> str:
    """What the precision really does on ``device``, in a sentence (for labels and the lesson)."""
    p = get_precision(name)
    device = torch.device(device)
    if p.name == "tf32":
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
            return "TF32 in cuDNN convolutions and matmuls (Ampere or newer)"
        return (f"not available on {device.type}: TF32 is an NVIDIA Ampere+ format; "
                "the numbers are float32's")
    if p.name == "bf16":
        if device.type == "cuda":
            return "bf16 autocast on CUDA"
        if device.type == "cpu":
            return ("emulated: CPU autocast runs convolutions and matmuls in bf16 (oneDNN), "
                    "slowly on CPUs without native bf16")
        return f"bf16 autocast on {device.type}"
    if p.name == "float64" and device.type == "mps":
        return "not available on MPS (no float64)"
    return p.description


def is_default(name: str | None) -> bool:
    return get_precision(name).name == DEFAULT


def badge(name: str | None) -> str:
    """"" for the default, else a label to put beside every number computed in it."""
    p = get_precision(name)
    return "" if p.name == DEFAULT else f"[{p.label}]"


# ---- the process-wide gate over the global flags -------------------------------------------

_gate = threading.Condition()
_holders = 0                                   # scopes inside, all threads
_current: tuple[bool, str] | None = None       # the setting they share
_saved: tuple[bool, bool, str] | None = None   # the flags before the first holder came
_local = threading.local()                     # this thread's stack of precision names


def _accessors():
    """Getters and setters of (cuDNN TF32, matmul TF32, float32 matmul precision).

    torch's own C functions behind ``torch.backends.cudnn.allow_tf32`` and friends (the same
    calls, without a property lookup: a scope is entered on every attribution, so its cost
    shows on one-pass methods); the public attributes where a torch build lacks them."""
    c = torch._C
    names = ("_get_cudnn_allow_tf32", "_get_cublas_allow_tf32", "_get_float32_matmul_precision",
             "_set_cudnn_allow_tf32", "_set_cublas_allow_tf32", "_set_float32_matmul_precision")
    if all(hasattr(c, n) for n in names):
        return tuple(getattr(c, n) for n in names)
    return (lambda: torch.backends.cudnn.allow_tf32,
            lambda: torch.backends.cuda.matmul.allow_tf32,
            torch.get_float32_matmul_precision,
            lambda v: setattr(torch.backends.cudnn, "allow_tf32", v),
            lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v),
            torch.set_float32_matmul_precision)


_GET_CUDNN, _GET_MATMUL, _GET_PRECISION, _SET_CUDNN, _SET_MATMUL, _SET_PRECISION = _accessors()


def read_flags() -> tuple[bool, bool, str]:
    """(cuDNN allow_tf32, matmul allow_tf32, float32 matmul precision) as they are now."""
    return (_GET_CUDNN(), _GET_MATMUL(), _GET_PRECISION())


def _write_flags(cudnn: bool, matmul: bool, precision: str) -> None:
    # The matmul precision last: torch keeps it and matmul allow_tf32 as one setting, and the
    # last write decides (so "medium" with TF32 allowed reads back as written).
    _SET_CUDNN(cudnn)
    _SET_MATMUL(matmul)
    _SET_PRECISION(precision)


def active() -> str | None:
    """The precision of the innermost scope in this thread, or None outside any."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def _acquire(setting: tuple[bool, str]) -> None:
    global _holders, _current, _saved
    with _gate:
        while _holders and _current != setting:
            _gate.wait()
        if not _holders:
            _saved = read_flags()
            if _saved != (setting[0], setting[0], setting[1]):
                _write_flags(setting[0], setting[0], setting[1])
            _current = setting
        _holders += 1


def _release() -> None:
    global _holders, _current, _saved
    with _gate:
        _holders -= 1
        if not _holders:
            if read_flags() != _saved:
                _write_flags(*_saved)
            _current, _saved = None, None
            _gate.notify_all()


class precision_scope:  # noqa: N801 (used as a function: ``with precision_scope("tf32"):``)
    """Run the block in precision ``name`` (None: inherit this thread's, else "float32").

    Sets the TF32 flags and matmul precision it needs (waiting while other threads compute under
    a different setting), enters bf16 autocast on ``device``'s type for "bf16", and restores
    everything on exit, also on error. ``as`` gives the ``Precision``. (A class, not a generator
    context manager: it is entered on every attribution.)"""

    __slots__ = ("precision", "device", "outer", "autocast")

    def __init__(self, name: str | None = None, device: torch.device | str = "cpu"):
        self.precision = get_precision(name)
        self.device = device

    def __enter__(self) -> Precision:
        p = self.precision
        self.outer = outer = active()
        if outer is not None and outer != p.name:
            raise InputError(f"precision {p.name!r} asked for inside a {outer!r} computation in "
                             f"the same thread; pass precision=None (inherit) or {outer!r}")
        stack = _local.__dict__.setdefault("stack", [])
        if outer is None:
            _acquire(p.flags)
        stack.append(p.name)
        self.autocast = None
        if p.autocast is not None:
            try:
                self.autocast = _autocast(p, self.device)
                self.autocast.__enter__()
            except BaseException:
                self._leave()
                raise
        return p

    def __exit__(self, *exc) -> bool:
        try:
            if self.autocast is not None:
                self.autocast.__exit__(*exc)
        finally:
            self._leave()
        return False

    def _leave(self) -> None:
        _local.stack.pop()
        if self.outer is None:
            _release()


def _autocast(p: Precision, device: torch.device | str):
    kind = torch.device(device).type
    return torch.autocast(kind if kind in ("cuda", "cpu", "mps", "xpu") else "cpu", dtype=p.autocast)


def full_float32(device: torch.device | str = "cpu"):
    """``precision_scope("float32")``: the default, TF32 off, matmul precision "highest"."""
    return precision_scope("float32", device)


# ---- float64: a copy of the model and the tensors --------------------------------------------

def cast(value: Any, dtype: torch.dtype) -> Any:
    """A module copied to ``dtype`` (the caller's is untouched), a floating tensor cast, else as is."""
    if isinstance(value, torch.nn.Module):
        first = next(iter(value.parameters()), None)
        if first is not None and first.dtype == dtype:
            return value
        return copy.deepcopy(value).to(dtype)
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    return value


def device_of(args: tuple, kwargs: dict) -> torch.device:
    """Where an analysis computes: its model's device (inputs are moved there), else the first
    tensor's, else the CPU."""
    values = list(args) + list(kwargs.values())
    for v in values:
        if isinstance(v, torch.nn.Module):
            first = next(iter(v.parameters()), None)
            if first is not None:
                return first.device
    for v in values:
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")


def under_precision(fn: Callable) -> Callable:
    """Give an analysis a ``precision=`` keyword (None: inherit, else "float32") and run it inside
    ``precision_scope``; for "float64" its module and floating tensor arguments are cast first."""

    @functools.wraps(fn)
    def wrapped(*args, precision: str | None = None, **kwargs):
        p = get_precision(precision)
        with precision_scope(p.name, device_of(args, kwargs)):
            if p.dtype is not None:
                args = tuple(cast(a, p.dtype) for a in args)
                kwargs = {k: cast(v, p.dtype) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

    return wrapped
