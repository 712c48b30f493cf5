"""Tensors and models: where they live, how a baseline is checked, how draws are seeded,
and hooks that stay in their thread. Every floor above runtime shares these."""
from __future__ import annotations

import functools
import math
import threading
from typing import Callable

import torch

from explorer.errors import InputError


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of a floating-point tensor is finite.

    One sum decides the common case: NaN and Inf propagate through it, so a finite sum means
    finite entries. Only a non-finite sum (which an overflow of large finite values can also
    give) pays for the elementwise test, which is several times slower on large inputs."""
    if math.isfinite((t.detach() if t.requires_grad else t).sum().item()):
        return True
    return bool(torch.isfinite(t).all())


def model_device(model: torch.nn.Module) -> torch.device | None:
    """Where ``model``'s first parameter (else buffer) lives; None for a model with neither
    (or for a callable that is not a Module: it is left to take what it is given)."""
    if not isinstance(model, torch.nn.Module):
        return None
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def on_model_device(model: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
    """``t`` moved to ``model``'s device (no copy when it is there already).

    A zoo model sits on ``default_device()`` (CUDA when there is one) while inputs usually
    come from the CPU: every entry point moves its tensors once, here, rather than each caller."""
    device = model_device(model)
    return t if device is None or t.device == device else t.to(device)


def check_baseline(baseline: object, x: torch.Tensor, method: str) -> torch.Tensor:
    """None -> zeros; a tensor shaped like x, like one sample, or [1, ...] -> x's shape."""
    if baseline is None:
        return torch.zeros_like(x)
    if not isinstance(baseline, torch.Tensor):
        raise InputError(f"{method}: baseline must be a tensor, got {type(baseline).__name__}")
    b = baseline.detach().to(device=x.device, dtype=x.dtype)
    if b.shape == x.shape[1:]:
        b = b.unsqueeze(0)
    if b.dim() != x.dim() or b.shape[1:] != x.shape[1:] or b.shape[0] not in (1, x.shape[0]):
        raise InputError(
            f"{method}: baseline has shape {list(baseline.shape)} but the input has shape "
            f"{list(x.shape)}; give one baseline per input, one for all, or one sample's shape"
        )
    if not all_finite(b):
        raise InputError(f"{method}: baseline contains NaN or infinite values")
    return b.expand_as(x).contiguous()


def this_thread_only(hook: Callable) -> Callable:
    """A module hook that acts only in the thread that made it, and is a no-op elsewhere.

    Models are shared between threads (the app caches one per process); a method's temporary
    hooks must not change what another thread computes on the same module meanwhile.
    """
    owner = threading.get_ident()

    @functools.wraps(hook)
    def guarded(*args, **kwargs):
        if threading.get_ident() != owner:
            return None
        return hook(*args, **kwargs)

    return guarded


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: draws are made on the CPU and moved, so results match across devices."""
    return torch.Generator().manual_seed(int(seed))


def default_device() -> torch.device:
    """CUDA when available, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
