"""Occlusion: the drop in the target logit when a window is replaced by the baseline."""
from __future__ import annotations

import math

import torch

from explorer.errors import InputError
from explorer.methods.core import check_baseline, chunked_pairs, run_model, select_target
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
    n, w = x.shape[0], positions.shape[0]

    def mask_of(pos) -> torch.Tensor:
        mask = torch.zeros(x.shape[1:], dtype=torch.bool, device=x.device)
        index = [slice(None)] * (x.dim() - 1)
        for d, start in zip(dims, pos.tolist()):
            index[d - 1] = slice(start, start + window)
        mask[tuple(index)] = True
        return mask

    with torch.no_grad():
        clean = select_target(run_model(model, x), target)
        total = torch.zeros_like(x)
        count = torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device)
        for i, k in chunked_pairs(n, w, batch_size, x.device):
            masks = torch.stack([mask_of(positions[kk]) for kk in k.tolist()])
            occluded = torch.where(masks, base[i], x[i])
            drop = clean[i] - select_target(run_model(model, occluded), target[i])
            view = (-1,) + (1,) * (x.dim() - 1)
            total.index_add_(0, i, drop.view(view) * masks.to(x.dtype))
        for kk in range(w):
            count += mask_of(positions[kk]).to(x.dtype)
    # Features no window reaches keep 0 instead of 0/0.
    return MethodOutput(total / count.clamp(min=1))
