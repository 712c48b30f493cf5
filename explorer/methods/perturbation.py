"""Occlusion: the drop in the target logit when a window is replaced by the baseline."""
from __future__ import annotations

import math

import torch

from explorer.errors import InputError
from explorer.methods.core import chunked_pairs, run_model, select_target
from explorer.runtime.tensors import check_baseline
from explorer.methods.gradients import BATCH_SIZE
from explorer.methods.registry import Cost, MethodOutput, Param, register_method


def _spatial_dims(ndim: int) -> tuple[int, ...]:
    """Dims the window slides over: all but batch and channel ([N, C, ...]), or the features."""
    return tuple(range(2, ndim)) if ndim >= 3 else (1,)


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Window offsets along one dim; the last window is clipped at the edge so all is covered.

    A stride larger than the window would skip the features between windows (never occluded,
    attribution 0 by default, not by evidence): refused, as Captum does, unless one window
    spans the whole dim."""
    if window > size:
        raise InputError(f"occlusion: window {window} is larger than the input ({size})")
    if stride > window and window < size:
        raise InputError(f"occlusion: stride {stride} is larger than the window {window}, so "
                         f"features between windows would never be occluded; use a stride of "
                         f"at most {window} or a larger window")
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


def _occlusion_cost(p, shape) -> Cost:
    dims = _spatial_dims(len(shape))
    return Cost(1 + math.prod(len(window_starts(shape[d], p["window"], p["stride"])) for d in dims), 0)


@register_method(
    "occlusion", label="Occlusion", uses_baseline=True,
    params=(
        Param("window", int, 4, 1, 512, help="Side of the square window (all channels at once)."),
        Param("stride", int, 2, 1, 512, help="Step between window positions."),
        BATCH_SIZE,
    ),
    cost=_occlusion_cost,
    description=(
        "F(x) - F(x with a window set to the baseline), averaged over the windows covering each "
        "feature (Zeiler & Fergus 2014). Forward passes only; no completeness."
    ),
    baseline_help="The fill value of occluded windows (default: zeros).",
)
def occlusion(model, x, target, *, baseline=None, window, stride, batch_size) -> MethodOutput:
    base = check_baseline(baseline, x, "occlusion")
    dims = _spatial_dims(x.dim())
    grids = [window_starts(x.shape[d], window, stride) for d in dims]
    positions = torch.cartesian_prod(*[torch.tensor(g) for g in grids]).reshape(-1, len(dims))
    positions = positions.to(x.device)
    n, w = x.shape[0], positions.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    # Per window dim d: index_d [size_d] shaped to broadcast along d of a [windows, *x.shape[1:]]
    # mask; channels (and any other dim) are always inside the window.
    index = []
    for d in dims:
        shape = [1] * x.dim()
        shape[d] = x.shape[d]
        index.append(torch.arange(x.shape[d], device=x.device).view(shape))

    def masks_of(k: torch.Tensor) -> torch.Tensor:
        """The windows k as boolean masks [len(k), *x.shape[1:]], made in one go."""
        mask = None
        for a, idx in enumerate(index):
            start = positions[k, a].view(view)
            inside = (idx >= start) & (idx < start + window)  # clipped at the edge, as slicing
            mask = inside if mask is None else mask & inside
        return mask.expand((k.shape[0],) + tuple(x.shape[1:]))

    with torch.no_grad():
        clean = select_target(run_model(model, x), target)
        total = torch.zeros_like(x)
        for i, k in chunked_pairs(n, w, batch_size, x.device):
            masks = masks_of(k)
            occluded = torch.where(masks, base[i], x[i])
            drop = clean[i] - select_target(run_model(model, occluded), target[i])
            total.index_add_(0, i, drop.view(view) * masks.to(x.dtype))
        # How many windows cover each feature: the grid is a product, so the count is the
        # product of per-dim counts (small integers, exact in floating point).
        count = torch.ones((), dtype=x.dtype, device=x.device)
        for d, grid, idx in zip(dims, grids, index):
            starts = torch.tensor(grid, device=x.device).view((-1,) + (1,) * (x.dim() - 1))
            count = count * ((idx >= starts) & (idx < starts + window)).sum(0).to(x.dtype)
    # Features no window reaches keep 0 instead of 0/0.
    return MethodOutput(total / count.clamp(min=1))
