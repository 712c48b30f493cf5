"""Exact IG on a chain of torch.nn layers, layer by layer (ExactLine, Sotoudeh & Thakur 2019).

The probe walk (``explorer.methods.exact``) pays, per linear region, one forward pass with
forward-mode tangents and one backward pass through the whole network, in small batches. When
the model is a plain chain of known layers (what ``torch.fx`` traces as call_module nodes, each
feeding only the next: the bundled digits CNNs), the breakpoints can be found a layer at a time
instead:

- Keep the sorted alphas found so far and the current layer's values at each of them. Between
  two neighbouring alphas every earlier layer is affine, so the values in between are the
  linear interpolation of the two rows: exact, not an approximation.
- At a ReLU a unit whose value changes sign between two neighbours crosses zero at the
  interpolated root; at a 2-d max-pool another entry of a window overtakes the window's top
  where the two interpolated lines meet (repeated until no window changes its top inside any
  interval). Those alphas are inserted with interpolated rows, then the layer is applied.
- Affine layers are applied to all rows at once, in chunks. The first affine block (everything
  before the first ReLU or max-pool) is evaluated at alpha 0 and 1 only.

The gradient needs no second forward pass: each ReLU keeps its mask and each max-pool its
arg-max at the midpoint of every interval it saw (the midpoint's values are the mean of the two
ends). The backward sweep starts from the final regions (each weighted by its length) and,
before each layer, sums the regions that lie inside one interval that layer saw: everything at
and below that layer is affine there, so the sum can go through it once. The convolutions'
backward thus runs once per interval of its layer, not once per region, and the first affine
block (before the first ReLU or max-pool) once in all.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from explorer.errors import InputError
from explorer.methods.core import select_target

# Layers that are affine in their input (in eval mode) and that the chain applies as they are.
CHAIN_AFFINE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Flatten, nn.Unflatten,
                nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.ZeroPad2d, nn.ConstantPad1d,
                nn.ConstantPad2d, nn.ConstantPad3d, nn.BatchNorm1d, nn.BatchNorm2d,
                nn.BatchNorm3d)
CHUNK = 512  # rows per affine call / gradient batch (memory, not speed: large is fine)


def _pair(a) -> tuple[int, int]:
    return (a, a) if isinstance(a, int) else tuple(a)


def _chain_layer_ok(module: nn.Module) -> bool:
    """Exact types only: a subclass may override forward with anything."""
    kind = type(module)
    if kind is nn.ReLU:
        return True
    if kind is nn.MaxPool2d:  # the plain form; others go to the probe walk
        return (not module.ceil_mode and not module.return_indices
                and _pair(module.padding) == (0, 0) and _pair(module.dilation) == (1, 1))
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return not module.training and module.track_running_stats
    if kind in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d):
        return not module.training
    return kind in CHAIN_AFFINE


# Calls that only read a tensor's metadata: allowed between the layers of a chain.
_METADATA = frozenset("size dim numel __len__ __get__ shape dtype device is_floating_point "
                      "stride is_contiguous".split())


class _OutsideLayers(TorchFunctionMode):
    """Notes whether a torch call that computes something runs outside every leaf layer."""

    def __init__(self, depth: list[int]):
        super().__init__()
        self.depth, self.outside = depth, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if self.depth[0] == 0 and name not in _METADATA:
            self.outside.append(name)
        return func(*args, **(kwargs or {}))


def layer_chain(model: nn.Module, example: torch.Tensor) -> list[nn.Module] | None:
    """The model's layers in order when its forward on ``example`` [1, ...] is a plain chain of
    known torch.nn layers (each leaf layer takes the previous one's output, nothing is computed
    between them), else None (then the probe walk runs).

    Found by running it once with temporary hooks (acting in this thread only: the model may be
    shared) and a torch-function mode that sees any computation outside the layers."""
    from explorer.runtime.tensors import this_thread_only
    calls: list[tuple[nn.Module, object, object]] = []
    depth = [0]
    bad = []

    @this_thread_only
    def enter(module, args, kwargs):
        depth[0] += 1
        if depth[0] == 1:
            if kwargs or len(args) != 1:
                bad.append(module)
            calls.append((module, args[0] if args else None, None))

    @this_thread_only
    def leave(module, args, kwargs, output):
        depth[0] -= 1
        if depth[0] == 0 and calls and calls[-1][0] is module:
            calls[-1] = (module, calls[-1][1], output)

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = []
    try:
        for m in leaves:
            handles.append(m.register_forward_pre_hook(enter, with_kwargs=True))
            handles.append(m.register_forward_hook(leave, with_kwargs=True))
        mode = _OutsideLayers(depth)
        with torch.no_grad(), mode:
            out = model(example)
    except Exception:  # the walk will say what is wrong, with its own messages
        return None
    finally:
        for h in handles:
            h.remove()
    if bad or mode.outside or not calls or calls[-1][2] is not out or calls[0][1] is not example:
        return None
    for (_, _, before), (_, after, _) in zip(calls, calls[1:]):
        if after is not before:
            return None
    layers = [m for m, _, _ in calls]
    return layers if all(_chain_layer_ok(m) for m in layers) else None


def _apply(layer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([layer(z[i:i + CHUNK]) for i in range(0, z.shape[0], CHUNK)])


def _insert(alphas: torch.Tensor, z: torch.Tensor, interval: torch.Tensor, frac: torch.Tensor,
            eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Insert the alphas at ``frac`` (in (0, 1)) of the intervals ``interval`` with rows
    interpolated from the interval's ends. Points within ``eps`` of a known one (or of each
    other) are the same kink, rounded: dropped and counted. Returns (alphas, z, the new
    intervals that touch an inserted point, dropped)."""
    lo, hi = alphas[interval], alphas[interval + 1]
    new = lo + frac.double() * (hi - lo)
    keep = (new - lo > eps) & (hi - new > eps)
    new, interval = new[keep], interval[keep]
    order = torch.argsort(new)
    new, interval = new[order], interval[order]
    if new.numel() > 1:
        distinct = torch.cat([torch.ones(1, dtype=torch.bool), new[1:] - new[:-1] > eps])
        new, interval = new[distinct], interval[distinct]
    dropped = int(keep.numel() - new.numel())
    if new.numel() == 0:
        return alphas, z, torch.zeros(0, dtype=torch.long), dropped
    lo, hi = alphas[interval], alphas[interval + 1]
    t = ((new - lo) / (hi - lo)).to(z.dtype).view((-1,) + (1,) * (z.dim() - 1))
    # Where each old and new row goes: old row j after the new points before it.
    old_at = torch.arange(alphas.numel()) + torch.searchsorted(new, alphas)
    new_at = torch.arange(new.numel()) + torch.searchsorted(alphas, new)
    out = z.new_empty((alphas.numel() + new.numel(),) + tuple(z.shape[1:]))
    out.index_copy_(0, old_at, z)
    for i in range(0, new.numel(), CHUNK):  # interpolated rows, in chunks (memory)
        k = interval[i:i + CHUNK]
        out.index_copy_(0, new_at[i:i + CHUNK], torch.lerp(z[k], z[k + 1], t[i:i + CHUNK]))
    merged = alphas.new_empty(out.shape[0])
    merged[old_at], merged[new_at] = alphas, new
    touched = torch.cat([new_at - 1, new_at]).unique()
    return merged, out, touched, dropped


def _relu_crossings(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(interval, fraction) of every sign change between neighbouring rows, and the most units
    that are zero at both ends of one interval (ties: torch's convention there)."""
    intervals, fracs, ties = [], [], 0
    flat = z.flatten(1)
    for i in range(0, flat.shape[0] - 1, CHUNK):
        za, zb = flat[i:i + CHUNK], flat[i + 1:i + CHUNK + 1]
        za = za[:zb.shape[0]]
        interval, unit = torch.nonzero(za * zb < 0, as_tuple=True)
        a, b = za[interval, unit], zb[interval, unit]
        intervals.append(interval + i)
        fracs.append(a / (a - b))
        ties = max(ties, int(((za == 0) & (zb == 0)).sum(1).max()))
    return torch.cat(intervals), torch.cat(fracs), ties


def _windows(z: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
    return z.unfold(-2, kh, sh).unfold(-2, kw, sw)  # [P, C, oh, ow, kh, kw] (a view)


def _pool_crossings(z: torch.Tensor, pool: nn.MaxPool2d, which: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(interval, fraction) where, in the intervals ``which``, each window's top entry at the
    interval's start is first overtaken (both entries affine there)."""
    intervals, fracs = [], []
    for i in range(0, which.numel(), CHUNK):
        idx = which[i:i + CHUNK]
        za, zb = z[idx], z[idx + 1]
        wa, wb = _windows(za, pool), _windows(zb, pool)
        # A window whose top changes inside the interval has different arg-maxes at its two
        # ends (a line that is a top at both ends is one throughout: the max of lines is
        # convex); the converse can fail on ties, which the exact test below drops.
        at_a = F.max_pool2d(za, pool.kernel_size, pool.stride, return_indices=True)[1]
        at_b = F.max_pool2d(zb, pool.kernel_size, pool.stride, return_indices=True)[1]
        k, c, h, w = torch.nonzero(at_a != at_b, as_tuple=True)
        va, vb = wa[k, c, h, w].flatten(1), wb[k, c, h, w].flatten(1)  # [M, window]
        # The top on the interval's first stretch: the largest at its start, ties broken by
        # the largest at its end (the tied line that rises fastest).
        at_max = va == va.amax(-1, keepdim=True)
        top = vb.masked_fill(~at_max, float("-inf")).argmax(-1, keepdim=True)
        gap0 = va.gather(-1, top) - va       # >= 0
        gap1 = vb.gather(-1, top) - vb       # < 0: this entry ends above the top
        frac = (gap0 / (gap0 - gap1)).masked_fill_(gap1 >= 0, float("inf")).amin(-1)
        found = torch.isfinite(frac)  # tied arg-maxes that do not cross: no kink
        intervals.append(idx[k[found]])
        fracs.append(frac[found])
    return torch.cat(intervals), torch.cat(fracs)


def _sums(z: torch.Tensor) -> torch.Tensor:
    """Twice each interval's midpoint values (their signs and arg-maxes are the midpoint's)."""
    return z[:-1] + z[1:]


def layered_exact_ig(layers: list[nn.Module], x: torch.Tensor, base: torch.Tensor,
                     target: torch.Tensor, eps: float, max_regions: int,
                     cap_report) -> tuple[torch.Tensor, dict]:
    """Exact IG of one input ``x`` [1, ...] from ``base`` [1, ...] along the chain ``layers``.

    Returns (map [1, ...] float64, info of this input: regions, boundaries, slivers (kinks
    within the dtype's resolution of another, merged), ties, rows: rows the layers after the
    first kink computed). ``cap_report(regions)`` is called (and raises) when more than
    ``max_regions`` regions are found."""
    kinks = [k for k, m in enumerate(layers) if type(m) in (nn.ReLU, nn.MaxPool2d)]
    first = kinks[0] if kinks else len(layers)
    alphas = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        ends = torch.cat([base, x])
        for layer in layers[:first]:
            ends = layer(ends)
    z, slivers, ties, rows = ends, 0, 0, 0
    seen = []  # per layer after the first kink: (alphas it saw, its input shape, what it keeps)
    for layer in layers[first:]:
        if isinstance(layer, nn.ReLU):
            interval, frac, tied = _relu_crossings(z)
            ties = max(ties, tied)
            alphas, z, _, dropped = _insert(alphas, z, interval, frac, eps)
            slivers += dropped
            seen.append((alphas, z.shape, torch.cat([_sums(z[i:i + CHUNK + 1]) > 0
                                                     for i in range(0, z.shape[0] - 1, CHUNK)])))
            z = z.clamp_min(0)
        elif isinstance(layer, nn.MaxPool2d):
            if z.dim() != 4:
                raise InputError(f"exact IG: max_pool2d on a {z.dim() - 1}-d input per point "
                                 "(only batched [N, C, H, W] inputs are walked)")
            dirty = torch.arange(alphas.numel() - 1)
            while dirty.numel():  # each round moves every window past one more change of its top
                interval, frac = _pool_crossings(z, layer, dirty)
                alphas, z, dirty, dropped = _insert(alphas, z, interval, frac, eps)
                slivers += dropped
                if alphas.numel() - 1 > max_regions:
                    cap_report(alphas.numel() - 1)
            with torch.no_grad():
                where = torch.cat([F.max_pool2d(_sums(z[i:i + CHUNK + 1]), layer.kernel_size,
                                                layer.stride, return_indices=True)[1]
                                   for i in range(0, z.shape[0] - 1, CHUNK)])
            seen.append((alphas, z.shape, where))
            z = _apply(layer, z)
        else:
            seen.append((alphas, z.shape, None))
            rows += z.shape[0]
            z = _apply(layer, z)
        if alphas.numel() - 1 > max_regions:
            cap_report(alphas.numel() - 1)
    grad = _backward_sweep(layers, first, seen, alphas, z, target)
    del z, seen
    if first:  # the first block is affine: its pull-back is the same at every point (x here)
        point = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(nn.Sequential(*layers[:first])(point), point, grad)
    info = {"regions": alphas.numel() - 1, "boundaries": alphas[1:-1].clone(),
            "slivers": slivers, "ties": ties, "rows": rows}
    return (x - base).double() * grad.double(), info


def _backward_sweep(layers, first, seen, alphas, out, target) -> torch.Tensor:
    """sum_k (a_(k+1) - a_k) grad F(region k) at the first kink layer's input [1, ...]."""
    lengths = (alphas[1:] - alphas[:-1]).to(out.dtype)
    # the checks (and messages) every method gives: a class out of range, a weighting's length
    select_target(out[:1], target.reshape(1, -1) if target.is_floating_point()
                  else target.reshape(1))
    if target.is_floating_point():  # a weighting over classes
        weight = target.to(out.dtype).expand(out.shape[1:])
    else:
        weight = torch.zeros(out.shape[1:], dtype=out.dtype)
        weight[int(target)] = 1.0
    g = lengths.view(-1, *([1] * weight.dim())) * weight  # [regions, classes]
    steps = list(zip(reversed(layers[first:]), reversed(seen)))
    whole = alphas[[0, -1]]
    for n, (layer, (saw, shape, kept)) in enumerate(steps):
        # g: one row per interval this layer saw. Its pull-back is summed straight into the
        # intervals the layer below saw (each holds whole intervals of this one).
        below = steps[n + 1][1][0] if n + 1 < len(steps) else whole
        rows = (g.shape[0],) + tuple(shape[1:])
        if below.numel() < saw.numel():
            parent = torch.searchsorted(below, (saw[:-1] + saw[1:]) / 2) - 1
            pulled = g.new_zeros((below.numel() - 1,) + rows[1:])
        else:
            parent, pulled = None, g.new_empty(rows)
        for i in range(0, g.shape[0], CHUNK):
            part = _layer_vjp(layer, g[i:i + CHUNK], shape,
                              None if kept is None else kept[i:i + CHUNK])
            if parent is None:
                pulled[i:i + CHUNK] = part
            else:
                pulled.index_add_(0, parent[i:i + CHUNK], part)
        g = pulled
    return g


def _layer_vjp(layer: nn.Module, g: torch.Tensor, shape, kept) -> torch.Tensor:
    """g [intervals, out...] pulled back through ``layer`` on each interval [intervals, in...]."""
    if isinstance(layer, nn.ReLU):
        return g * kept
    if isinstance(layer, nn.MaxPool2d):  # scatter-add: overlapping windows may share a winner
        out = g.new_zeros((g.shape[0],) + tuple(shape[1:]))
        out.flatten(2).scatter_add_(2, kept.flatten(2), g.flatten(2))
        return out
    if isinstance(layer, nn.Linear):
        return g @ layer.weight
    if isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros" \
            and not isinstance(layer.padding, str):
        return torch.nn.grad.conv2d_input((g.shape[0],) + tuple(shape[1:]), layer.weight, g,
                                          layer.stride, layer.padding, layer.dilation,
                                          layer.groups)
    if isinstance(layer, (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d,
                          nn.Dropout2d, nn.Dropout3d)):
        return g.reshape((g.shape[0],) + tuple(shape[1:]))
    # Any other affine layer: autograd through it at zeros (its bias does not matter).
    h = torch.zeros((g.shape[0],) + tuple(shape[1:]), dtype=g.dtype, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(layer(h), h, g)
    return grad
