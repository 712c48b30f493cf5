"""Exact Integrated Gradients on piecewise-linear networks (ExactLine, Sotoudeh & Thakur 2019).

Along the straight path p(a) = x' + a (x - x') a network made of affine layers (linear,
convolution, batch norm in eval mode, average pooling, reshapes, sums), ReLUs and max-pools is
piecewise linear in a: the gradient is constant between the alphas where some ReLU input
changes sign or some max-pool window's arg-max changes. IG is then a finite sum,

    IG(x) = (x - x') * sum_k (a_(k+1) - a_k) * grad F(region k).

The walk keeps, per input, a stack of alpha intervals not yet covered (at first [0, 1]). A
*probe* at an interval's midpoint m is one forward pass with forward-mode tangents (the slope
d/da of every value, exact) and one backward pass (the gradient at m). Within m's region every
ReLU input is v + s (a - m) and every max-pool entry too, so the region around m ends at the
nearest a > m where a ReLU input crosses zero or another window entry meets the window's
maximum, and starts at the nearest such a < m. That region, clipped to the interval, is added
with the gradient at m, and the parts of the interval left and right of it are pushed back.
Each probe finds a new region: the passes are the regions plus the probes that landed exactly
on a boundary (moved once within their interval).

Kinks are found by a ``TorchFunctionMode`` that sees every torch call of the forward pass,
functional ones included (``F.relu`` inside a custom ``forward``, ``x.relu()``, ``torch.relu``,
``F.max_pool2d``). A call that touches a path-dependent tensor must be affine, a ReLU or a 2-d
max-pool; any other (GELU, sigmoid, softmax, tanh, SiLU, LayerNorm, a product of two
path-dependent tensors, ...) raises InputError naming the op and the module it ran in. The
walk never returns an approximation of a network it cannot walk.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from explorer.errors import InputError
from explorer.methods.core import out_of_memory_as_input_error, run_model, select_target
from explorer.runtime.tensors import check_baseline, this_thread_only
from explorer.methods.exact_layered import layered_exact_ig, layer_chain
from explorer.methods.gradients import BATCH_SIZE
from explorer.methods.registry import Cost, MethodOutput, Param, register_method

# Torch calls that are affine in their path-dependent tensor arguments (by __name__).
AFFINE = frozenset("""
conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d linear bilinear_no
avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
flatten reshape view view_as unflatten squeeze unsqueeze permute transpose t contiguous clone
expand expand_as repeat narrow select split chunk unbind cat concat concatenate stack
__getitem__ add __add__ __radd__ __iadd__ add_ sub __sub__ __rsub__ __isub__ sub_ neg __neg__
sum mean to float double type_as detach identity pad __get__ size dim numel __len__ dtype
shape device is_floating_point __format__ __repr__ requires_grad_ zero_pad2d
register_hook retain_grad data_ptr stride is_contiguous element_size storage_offset
""".split())  # the last line: bookkeeping that computes nothing (hooks that count passes...)
# Affine when at most one factor depends on the path (a product of two is quadratic).
PRODUCTS = frozenset("mul __mul__ __rmul__ __imul__ mul_ matmul __matmul__ __rmatmul__ mm bmm "
                     "einsum div __truediv__ __itruediv__ div_".split())
RELU = frozenset("relu relu_".split())
MAX_POOL_2D = (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d)
_POOL_SIGNATURE = inspect.signature(F.max_pool2d_with_indices)

# torch.nn layers the walk handles (their calls are checked again at run time).
LAYERS_OK = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
             nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
             nn.Dropout3d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
             nn.Sequential, nn.ModuleList, nn.ModuleDict)


def piecewise_linear_reason(model: nn.Module) -> str | None:
    """None when no torch.nn layer of ``model`` stops the exact walk, else which one and why.

    Custom modules are checked when the walk runs (every torch call they make is seen)."""
    for name, module in model.named_modules():
        kind = type(module)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if not module.track_running_stats:
                return (f"layer '{name}' ({kind.__name__}) normalises with batch statistics: "
                        "not an affine map of one input")
            continue
        if kind.__module__.startswith("torch.nn.") and not isinstance(module, LAYERS_OK):
            return (f"layer '{name or type(model).__name__}' is {kind.__name__}, not piecewise "
                    "linear (exact IG walks ReLU, 2-d max-pool and affine layers only: linear, "
                    "convolution, batch norm in eval mode, average pooling, reshapes, sums)")
    return None


@dataclass
class Probe:
    """What one probe learned for each row: the region around its alpha and the gradient."""

    left: torch.Tensor     # [P] float64: the region's start (alpha)
    right: torch.Tensor    # [P] float64: the region's end
    on_boundary: torch.Tensor  # [P] bool: some kink sits exactly at the probe's alpha
    ties: torch.Tensor     # [P] int: ReLU inputs / pool pairs equal along the whole region
    gradient: torch.Tensor  # [P, ...] (x - x') * grad F at the probe, float64


class _KinkRecorder(TorchFunctionMode):
    """Sees every torch call of a forward pass with tangents: refuses the non-affine ones and
    keeps, per row, the nearest kink on each side of the probe (as an offset in alpha)."""

    def __init__(self, rows: int, device: torch.device, layer_stack: list[str]):
        super().__init__()
        self.right = torch.full((rows,), float("inf"), dtype=torch.float64, device=device)
        self.left = torch.full((rows,), float("-inf"), dtype=torch.float64, device=device)
        self.on_boundary = torch.zeros(rows, dtype=torch.bool, device=device)
        self.ties = torch.zeros(rows, dtype=torch.long, device=device)
        self.layers = layer_stack

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        moving = [t for t in tensors if fwAD.unpack_dual(t).tangent is not None]
        if moving:
            name = getattr(func, "__name__", str(func))
            if func in MAX_POOL_2D:
                self._max_pool(*args, **kwargs)
            elif name in RELU or func is F.relu:
                self._kinks(*fwAD.unpack_dual(args[0])[:2])
            elif name in PRODUCTS:
                divisor = args[1] if len(args) > 1 else None
                by_moving = (name.startswith(("div", "__truediv", "__itruediv"))
                             and isinstance(divisor, torch.Tensor)
                             and fwAD.unpack_dual(divisor).tangent is not None)
                if len(moving) > 1 or by_moving:
                    self._refuse(f"{name} of two path-dependent tensors (not linear in alpha)")
            elif name == "batch_norm":
                training = kwargs.get("training", args[5] if len(args) > 5 else False)
                if training:
                    self._refuse("batch_norm with batch statistics")
            elif name == "dropout" or name.startswith("dropout") or name.endswith("dropout"):
                if kwargs.get("training", args[2] if len(args) > 2 else False):
                    self._refuse("dropout in training mode")
            elif name == "pad":
                mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
                if mode != "constant":
                    self._refuse(f"pad with mode {mode!r}")
            elif name not in AFFINE:
                self._refuse(f"{name} (not piecewise linear, or not walked by exact IG)")
        return func(*args, **kwargs)

    def _refuse(self, what: str) -> None:
        where = self.layers[-1] if self.layers else "the model"
        raise InputError(f"exact IG cannot walk {what} in layer {where}: it only handles ReLU, "
                         "2-d max-pool and affine ops (linear, convolution, batch norm in eval "
                         "mode, average pooling, reshapes, sums); use integrated_gradients with "
                         "a quadrature rule on this model")

    def _kinks(self, value: torch.Tensor, slope: torch.Tensor) -> None:
        """Record where v + s t = 0 for each row (t: alpha offset from the probe)."""
        v = value.detach().reshape(value.shape[0], -1).double()
        s = slope.detach().reshape(slope.shape[0], -1).double()
        # Where s == 0, -v / s is +-inf (never a nearest kink: the identity of amin/amax) or
        # nan when v == 0 too (a tie, never compared true): no masking pass needed.
        self._offsets(-v / s, ((v == 0) & (s == 0)).sum(1))

    def _offsets(self, t: torch.Tensor, tied: torch.Tensor) -> None:
        """Fold the offsets ``t`` [P, M] (nan: no kink) and the tie counts ``tied`` [P] in."""
        inf = torch.tensor(float("inf"), dtype=t.dtype, device=t.device)
        self.right = torch.minimum(self.right, torch.where(t > 0, t, inf).amin(1))
        self.left = torch.maximum(self.left, torch.where(t < 0, t, -inf).amax(1))
        self.on_boundary |= (t == 0).any(1)
        self.ties += tied

    def _max_pool(self, *args, **kwargs) -> None:
        """Where another entry of a window meets the window's maximum (both affine in t)."""
        bound = _POOL_SIGNATURE.bind(*args, **kwargs)
        bound.apply_defaults()
        p = bound.arguments
        if p["ceil_mode"]:
            self._refuse("max_pool2d with ceil_mode=True")
        value, slope = fwAD.unpack_dual(p["input"])[:2]
        if value.dim() != 4:  # an unbatched pool would mix the probes' rows
            self._refuse(f"max_pool2d on a {value.dim()}-d input (batched [N, C, H, W] only)")
        kernel = p["kernel_size"]
        stride = p["stride"] if p["stride"] not in (None, []) else kernel
        pads = p["padding"]
        v, s = value.detach().double(), slope.detach().double()
        pair = (lambda a: (a, a) if isinstance(a, int) else tuple(a))
        (kh, kw), (step_h, step_w) = pair(kernel), pair(stride)
        (ph, pw), (dh, dw) = pair(pads), pair(p["dilation"])
        if ph or pw:  # padded entries never win: -inf value, zero slope
            v = F.pad(v, (pw, pw, ph, ph), value=float("-inf"))
            s = F.pad(s, (pw, pw, ph, ph), value=0.0)

        def windows(t: torch.Tensor) -> torch.Tensor:  # [n, c, oh, ow, kh * kw], a view
            t = t.unfold(2, (kh - 1) * dh + 1, step_h).unfold(3, (kw - 1) * dw + 1, step_w)
            return t[..., ::dh, ::dw].flatten(-2)

        vw, sw = windows(v), windows(s)
        top = vw.argmax(-1, keepdim=True)
        v_top, s_top = vw.gather(-1, top), sw.gather(-1, top)
        gap, closing = v_top - vw, sw - s_top  # gap >= 0; it closes at t = gap / closing
        # closing == 0 gives +-inf (never nearest) or nan (gap 0 too: a tie); a padded entry
        # (gap inf) gives +-inf or nan: no masking pass needed.
        t = gap / closing
        # Each window's top entry is tied with itself (0 gap, 0 closing): not a tie.
        tied = ((gap == 0) & (closing == 0)).flatten(1).sum(1) - top[0].numel()
        self._offsets(t.flatten(1), tied)


@contextlib.contextmanager
def _layer_names(model: nn.Module):
    """A stack of the modules running now (for messages), kept by temporary hooks."""
    stack: list[str] = []
    handles = []

    def enter(name):
        return this_thread_only(lambda module, inputs: stack.append(
            f"'{name or type(model).__name__}' ({type(module).__name__})"))

    @this_thread_only
    def leave(module, inputs, output):
        if stack:
            stack.pop()

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
        yield stack
    finally:
        for h in handles:
            h.remove()


def probe(model: nn.Module, x: torch.Tensor, base: torch.Tensor, target: torch.Tensor,
          rows: torch.Tensor, alphas: torch.Tensor) -> Probe:
    """One forward pass with tangents and one backward pass at base + alpha (x - base)."""
    delta = x[rows] - base[rows]
    view = (-1,) + (1,) * (x.dim() - 1)
    a = alphas.to(x.device)
    points = (base[rows] + a.to(x.dtype).view(view) * delta).detach().requires_grad_(True)
    with _layer_names(model) as layers, torch.enable_grad(), fwAD.dual_level(), \
            out_of_memory_as_input_error(len(rows)):
        recorder = _KinkRecorder(len(rows), x.device, layers)
        with recorder:
            out = run_model(model, fwAD.make_dual(points, delta))
        logits = fwAD.unpack_dual(out).primal
        (grad,) = torch.autograd.grad(select_target(logits, target[rows]).sum(), points)
        grad = fwAD.unpack_dual(grad).primal.detach()
    return Probe(a + recorder.left, a + recorder.right, recorder.on_boundary, recorder.ties,
                 (delta * grad).double())


GOLDEN = 0.6180339887498949  # where a probe moves in its interval after landing on a kink


class RegionCapReached(InputError):
    """The walk met more linear regions than ``max_regions`` allows on some input."""


def resolution(dtype: torch.dtype) -> float:
    """Gaps in alpha narrower than this are rounding, not regions (64 ulps of 1)."""
    return 64 * torch.finfo(dtype).eps


def exact_ig(model: nn.Module, x: torch.Tensor, target: torch.Tensor, base: torch.Tensor,
             max_regions: int, batch_size: int, float64: bool = True,
             algorithm: str = "auto") -> tuple[torch.Tensor, dict]:
    """Exact IG of each row of ``x`` from ``base`` (both [N, ...]); returns (map, info).

    With ``float64`` (default) the walk runs on a float64 copy of the model (the caller's model
    is not touched), so kinks are placed to ~1e-14 in alpha; otherwise in x's dtype, where
    float32 resolves kinks to ~1e-5 and narrower regions are left out (``sliver_length``).
    The map is float64 either way.

    info: ``regions`` [N] (linear regions crossed), ``passes`` [N] (probes: one forward with
    tangents and one backward each), ``boundaries`` (per input, the sorted alphas in (0, 1)
    where the gradient may change), ``boundary_probes`` [N] (probes that fell exactly on a
    kink and were moved once), ``probe_ties`` [N] (probes on a kink again after the move:
    values equal in x's dtype over a stretch of alpha, where that kink's place is below the
    dtype's resolution; the region is taken with torch's gradient at the probe), ``slivers`` [N] and ``sliver_length`` [N] (gaps narrower than
    ``resolution`` left out, and their total length in alpha), ``ties`` [N] (most ReLU inputs
    or max-pool pairs equal along a whole region in one region: there the gradient is torch's
    convention, as for every sampled IG), ``completeness_error`` [N] (float64).
    Raises RegionCapReached when an input needs more than ``max_regions`` probes.

    ``algorithm``: "layered" finds the breakpoints a layer at a time
    (``explorer.methods.exact_layered``, a plain chain of torch.nn layers only: the same regions
    and map, several times faster); "walk" probes region by region (any piecewise-linear
    forward); "auto" (default) takes "layered" where it applies. info["algorithm"] says which.
    """
    if algorithm not in ("auto", "walk", "layered"):
        raise InputError(f"algorithm must be 'auto', 'walk' or 'layered', not {algorithm!r}")
    if float64 and x.dtype != torch.float64:
        model = copy.deepcopy(model).double()
        x, base = x.double(), base.double()
        if target.is_floating_point():
            target = target.double()
    chain = layer_chain(model, x[:1]) if algorithm != "walk" else None
    if chain is None and algorithm == "layered":
        raise InputError("exact IG's layered algorithm needs a model whose forward is a plain "
                         "chain of torch.nn layers (ReLU, MaxPool2d without padding, affine "
                         "layers); use algorithm='walk'")
    if chain is not None:
        return _exact_ig_layered(model, chain, x, target, base, max_regions)
    n = x.shape[0]
    eps = resolution(x.dtype)
    total = torch.zeros((n,) + tuple(x.shape[1:]), dtype=torch.float64, device=x.device)
    regions = [0] * n
    passes = [0] * n
    on_boundary = [0] * n
    probe_ties = [0] * n
    slivers = [0] * n
    sliver_length = [0.0] * n
    ties = [0] * n
    cuts: list[list[float]] = [[] for _ in range(n)]
    # (row, lo, hi, where in the interval to probe: 0.5, or elsewhere after a boundary hit)
    todo = [(i, 0.0, 1.0, 0.5) for i in range(n)]
    while todo:
        batch, todo = todo[:batch_size], todo[batch_size:]
        rows = torch.tensor([b[0] for b in batch], device=x.device)
        lo = torch.tensor([b[1] for b in batch], dtype=torch.float64)
        hi = torch.tensor([b[2] for b in batch], dtype=torch.float64)
        at = lo + torch.tensor([b[3] for b in batch], dtype=torch.float64) * (hi - lo)
        found = probe(model, x, base, target, rows, at)
        left = torch.maximum(found.left.cpu(), lo)
        right = torch.minimum(found.right.cpu(), hi)
        hit = found.on_boundary.cpu()
        for k, (i, a, b, where) in enumerate(batch):
            passes[i] += 1
            if passes[i] > max_regions:
                _cap_report(n, i, max_regions, regions, cuts)
            if bool(hit[k]) and where == 0.5:  # on a kink (or a tie in the dtype): move once
                on_boundary[i] += 1
                todo.append((i, a, b, GOLDEN))
                continue
            # Still on a kink: values equal in this dtype over a stretch of alpha (float32
            # rounding hides a small term). The crossings at the probe are left out of the
            # region's ends and the gradient is torch's at the tie; counted in probe_ties.
            probe_ties[i] += bool(hit[k])
            lk, rk = float(left[k]), float(right[k])
            regions[i] += 1
            ties[i] = max(ties[i], int(found.ties[k]))
            total[i] += (rk - lk) * found.gradient[k]
            for end, gap_lo, gap_hi in ((lk, a, lk), (rk, rk, b)):
                if gap_hi - gap_lo > eps:
                    todo.append((i, gap_lo, gap_hi, 0.5))
                elif gap_hi > gap_lo:
                    slivers[i] += 1
                    sliver_length[i] += gap_hi - gap_lo
            cuts[i].extend(c for c in (lk, rk) if 0.0 < c < 1.0)
    info = {
        "algorithm": "walk",
        "regions": torch.tensor(regions),
        "passes": torch.tensor(passes),
        "boundaries": [_merged(c, eps) for c in cuts],
        "boundary_probes": torch.tensor(on_boundary),
        "probe_ties": torch.tensor(probe_ties),
        "slivers": torch.tensor(slivers),
        "sliver_length": torch.tensor(sliver_length, dtype=torch.float64),
        "ties": torch.tensor(ties),
        "completeness_error": completeness_gap(model, x, base, target, total),
        "max_regions": max_regions,
    }
    return total, info


@torch.no_grad()
def completeness_gap(model, x, base, target, total: torch.Tensor) -> torch.Tensor:
    """|sum of each map - (F(x) - F(base))| per input, in float64, on the CPU."""
    n = x.shape[0]
    ends = select_target(run_model(model, torch.cat([x, base])), target.repeat(
        (2,) + (1,) * (target.dim() - 1))).double()  # a weighting [N, classes] too
    return (total.flatten(1).sum(1) - (ends[:n] - ends[n:])).abs().cpu()


def _exact_ig_layered(model, chain, x, target, base, max_regions) -> tuple[torch.Tensor, dict]:
    """exact_ig's result and info from the layer-by-layer algorithm, one input at a time."""
    n = x.shape[0]
    eps = resolution(x.dtype)
    maps, infos = [], []
    for i in range(n):
        def cap(found, i=i):
            raise RegionCapReached(
                f"exact IG: input {i} of {n} needs more than max_regions={max_regions} linear "
                f"regions (it had found {found} so far): raise max_regions, or use "
                "integrated_gradients with a quadrature rule and enough steps")
        with out_of_memory_as_input_error(1):
            total, info = layered_exact_ig(chain, x[i:i + 1], base[i:i + 1], target[i],
                                           eps, max_regions, cap)
        maps.append(total)
        infos.append(info)
    total = torch.cat(maps)
    regions = torch.tensor([f["regions"] for f in infos])
    zeros = torch.zeros(n, dtype=torch.long)
    info = {
        "algorithm": "layered",
        "regions": regions,
        "passes": regions.clone(),  # one gradient (forward and backward) per region
        "forward_rows": torch.tensor([f["rows"] for f in infos]),
        "boundaries": [f["boundaries"] for f in infos],
        "boundary_probes": zeros,
        "probe_ties": zeros.clone(),
        "slivers": torch.tensor([f["slivers"] for f in infos]),
        "sliver_length": torch.zeros(n, dtype=torch.float64),
        "ties": torch.tensor([f["ties"] for f in infos]),
        "completeness_error": completeness_gap(model, x, base, target, total),
        "max_regions": max_regions,
    }
    return total, info


def _merged(cuts: list[float], eps: float) -> torch.Tensor:
    """Sorted region ends, the two sides of one boundary (equal up to rounding) counted once."""
    out: list[float] = []
    for c in sorted(cuts):
        if not out or c - out[-1] > eps:
            out.append(c)
    return torch.tensor(out, dtype=torch.float64)


def _cap_report(n: int, i: int, cap: int, regions: list[int], cuts: list[list[float]]) -> None:
    raise RegionCapReached(
        f"exact IG: input {i} of {n} needs more than max_regions={cap} probes (it had found "
        f"{regions[i]} linear regions so far, and more remain along the path): raise "
        "max_regions, or use integrated_gradients with a quadrature rule and enough steps")


def exact_cost(max_regions: int) -> Cost:
    """An upper bound on exact IG's passes per input. The walk: per region a forward pass
    carrying tangents (about two) and a backward. The layered split computes less (each layer
    once per interval it sees, the first block twice), never more. Two more forward passes
    give the completeness gap."""
    return Cost(2 * max_regions + 2, max_regions)


DEFAULT_MAX_REGIONS = 16384  # the bundled digits CNN meets about 5,000 from the zero baseline


@register_method(
    "exact_ig", label="Exact IG", uses_baseline=True, completeness="exact",
    params=(
        Param("max_regions", int, DEFAULT_MAX_REGIONS, 1, 1_000_000,
              help="The most linear regions (probes) per input before the walk stops with an "
                   "error; the cost is one forward with tangents and one backward per region."),
        Param("float64", bool, True,
              help="Walk a float64 copy of the model: kinks placed to ~1e-14 in alpha. Off: "
                   "the model's dtype (float32 places them to ~1e-5; narrower regions are left "
                   "out and reported in info['sliver_length'])."),
        Param("algorithm", str, "auto", choices=("auto", "layered", "walk"),
              help="How the regions are found: 'layered' splits the path a layer at a time "
                   "(a plain chain of torch.nn layers only, several times faster); 'walk' "
                   "probes region by region (any piecewise-linear forward); 'auto' takes "
                   "'layered' where it applies. Same regions and map either way."),
        BATCH_SIZE,
    ),
    cost=lambda p, shape: exact_cost(p["max_regions"]),
    cost_exact=False,
    applies_to=piecewise_linear_reason,
    description=(
        "Integrated Gradients computed exactly on a piecewise-linear network (ReLU, max-pool, "
        "affine layers): the straight path is cut where a ReLU or max-pool switches (found "
        "from forward-mode slopes), one gradient per linear region (ExactLine, Sotoudeh & "
        "Thakur 2019). No quadrature error: complete for any baseline up to rounding."),
    baseline_help="One baseline per input, or one for all (default: zeros).",
)
def exact_integrated_gradients(model, x, target, *, baseline=None, max_regions, float64,
                               batch_size, algorithm="auto") -> MethodOutput:
    base = check_baseline(baseline, x, "exact_ig")
    total, info = exact_ig(model, x, target, base, max_regions, batch_size, float64, algorithm)
    return MethodOutput(total.to(x.dtype), references=base.unsqueeze(1), info=info)
