"""Integrated Gradients on other paths: Guided IG, Blur IG, and IDGI on any of them.

Each method walks a path P_0 (the reference) ... P_S (the input x) in S steps and takes one
gradient g_k per step k (from P_k to P_(k+1)), as its reference implementation does:

- ``guided_ig`` (Kapishnikov et al., CVPR 2021): P_0 is the baseline. Each step first moves the
  features with the smallest |gradient| (``fraction`` of them at a time) until the L1 distance
  to x has shrunk by 1/S of the whole, never letting a feature stray more than ``max_dist`` (in
  alpha) from the straight line. The gradient is taken at P_k (a left sum), and the step
  contributes g_k * (P_(k+1) - P_k). The path ends exactly at x.
- ``blur_ig`` (Xu et al., CVPR 2020): P_k = blur(x, sigma) with sigma going from ``max_sigma``
  down to 0 (Gaussian scale space, zero padding); P_0, the most blurred image, is the
  reference. The gradient is taken at the sharper end of each step, and the step's
  displacement is -(d sigma) * d blur / d sigma by a forward difference of ``grad_step``.
- ``idgi`` (Yang, Wang & Bilen, CVPR 2023) on the path of ``base``: each step contributes
  d_k * g_k^2 / ||g_k||^2 with d_k = F(P_(k+1)) - F(P_k): only the displacement along the
  gradient, the direction that changes F, is kept. The d_k telescope, so the sum of the map is
  F(x) - F(P_0) up to rounding whatever S is. A step whose gradient is exactly zero (a ReLU
  network at its kink) spreads its d_k over the features in proportion to |displacement|.

IDGI is a registered method with a ``base`` choice rather than an ``idgi=True`` flag on each
base: the registry's completeness promise is one per method, and IDGI's (exact, by telescoping)
differs from its bases' (up to the quadrature error).

``method_path`` returns the points, F along the path and the running attribution sum, for the
Path page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.errors import InputError
from explorer.methods.core import (check_input, check_target, input_gradients, run_in_chunks,
                                   run_model, select_target)
from explorer.runtime.tensors import check_baseline
from explorer.methods.gradients import BATCH_SIZE
from explorer.methods.registry import Cost, MethodOutput, Param, get_method, register_method

GUIDED = "guided_ig"
BLUR = "blur_ig"
STRAIGHT = "integrated_gradients"
BASES = (STRAIGHT, GUIDED, BLUR)
TRUNCATE = 4.0  # Gaussian kernel radius in sigmas (scipy.ndimage's default, as Blur IG's reference)
L1_TOLERANCE = 1e-9  # Guided IG: a step is done when the L1 distance is this close to its target


# --------------------------------------------------------------------------- the walk


@dataclass
class PathWalk:
    """What one walk along a path gives (path order: P_0 the reference ... P_S = x)."""

    attributions: torch.Tensor          # [N, ...] sum of g_k * (step displacement)
    idgi: torch.Tensor | None           # [N, ...] IDGI's sum, when asked for
    outputs: torch.Tensor               # [N, S + 1] F(P_k) (float64); NaN where not evaluated
    step_sums: torch.Tensor             # [N, S] sum over features of each step's contribution
    idgi_step_sums: torch.Tensor | None  # [N, S] the same for IDGI (= d_k up to rounding)
    reference: torch.Tensor             # [N, ...] P_0
    points: torch.Tensor | None = None  # [N, S + 1, ...] the path, when asked for


def _direction(g: torch.Tensor, move: torch.Tensor) -> torch.Tensor:
    """g^2 / ||g||^2 per row, or |move| / ||move||_1 where g is zero (0 where both are)."""
    sq = g.flatten(1).double() ** 2
    norm = sq.sum(1, keepdim=True)
    am = move.flatten(1).double().abs()
    am_norm = am.sum(1, keepdim=True)
    fallback = torch.where(am_norm > 0, am / am_norm.clamp_min(1e-300), torch.zeros_like(am))
    return torch.where(norm > 0, sq / norm.clamp_min(1e-300), fallback).view(g.shape)


def _end_outputs(model, points: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """F at one point per input [N] (float64), chunked, without gradients."""
    out = torch.empty(points.shape[0], dtype=torch.float64, device=points.device)

    def work(lo, hi):
        with torch.no_grad():
            return select_target(run_model(model, points[lo:hi]), target[lo:hi])

    for lo, hi, f in run_in_chunks(points.shape[0], batch_size, work):
        out[lo:hi] = f.double()
    return out


def walk_fixed(model, x: torch.Tensor, target: torch.Tensor, steps: int, batch_size: int, *,
               point: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               move: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               at_end: bool, idgi: bool, keep_points: bool = False) -> PathWalk:
    """Walk a path whose points do not depend on the gradients (straight line, blur).

    ``point(i, k)`` gives P_k of input i (index tensors, k in 0..S); ``move(i, k)`` step k's
    displacement as the method integrates it. The gradient of step k is taken at P_k, or at
    P_(k+1) with ``at_end``. The N*S (input, step) pairs go through the network in chunks of
    ``batch_size`` (halved on out-of-memory); with ``idgi`` the one point per input whose F no
    gradient pass gives (P_S, or P_0 with ``at_end``) costs one more forward pass.
    """
    n, s = x.shape[0], steps
    dev = x.device
    view = (-1,) + (1,) * (x.dim() - 1)
    attributions = torch.zeros_like(x)
    step_sums = torch.zeros(n, s, dtype=torch.float64, device=dev)
    outputs = torch.full((n, s + 1), math.nan, dtype=torch.float64, device=dev)
    rows = torch.arange(n, device=dev)
    if idgi:  # the F no gradient pass gives
        k_other = torch.full((n,), 0 if at_end else s, device=dev)
        outputs[rows, k_other] = _end_outputs(model, point(rows, k_other), target, batch_size)
    result = torch.zeros(x.shape, dtype=torch.float64, device=dev) if idgi else None
    idgi_sums = torch.zeros(n, s, dtype=torch.float64, device=dev) if idgi else None
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (i, k, direction)
    shift = 1 if at_end else 0

    def settle(i, k, u):
        """Add d_k * u for the pairs whose two outputs are known; return the rest."""
        d = outputs[i, k + 1] - outputs[i, k]
        ok = ~torch.isnan(d)
        if ok.any():
            c = u[ok] * d[ok].view(view)
            result.index_add_(0, i[ok], c)
            idgi_sums[i[ok], k[ok]] = c.flatten(1).sum(1)
        return (i[~ok], k[~ok], u[~ok]) if (~ok).any() else None

    def work(lo, hi):
        pairs = torch.arange(lo, hi, device=dev)
        i, k = pairs // s, pairs % s
        grad, logits = input_gradients(model, point(i, k + shift), target[i])
        m = move(i, k)
        return i, k, grad, select_target(logits, target[i]), m

    for _, _, (i, k, grad, f, m) in run_in_chunks(n * s, batch_size, work):
        contribution = grad * m
        attributions.index_add_(0, i, contribution)
        step_sums[i, k] = contribution.flatten(1).double().sum(1)
        outputs[i, k + shift] = f.double()
        if idgi:
            left = [settle(*p) for p in pending]
            pending = [p for p in left if p is not None]
            rest = settle(i, k, _direction(grad, m))
            if rest is not None:
                pending.append(rest)
    if pending:  # cannot happen: every output is known once all chunks ran
        raise RuntimeError("IDGI: some path outputs were never evaluated")
    points = None
    if keep_points:
        ks = torch.arange(s + 1, device=dev)
        points = torch.stack([point(rows, ks[j].expand(n)) for j in range(s + 1)], 1)
    return PathWalk(attributions, None if result is None else result.to(x.dtype), outputs,
                    step_sums, idgi_sums, point(rows, torch.zeros(n, dtype=torch.long, device=dev)),
                    points)


# --------------------------------------------------------------------------- straight line


def straight_walk(model, x, target, base, steps, batch_size, *, idgi, keep_points=False):
    """IG's straight line x' + (k / S)(x - x'), gradient at the start of each step (left sum,
    as IDGI's reference pairs g_k with F(P_(k+1)) - F(P_k))."""
    delta = x - base
    view = (-1,) + (1,) * (x.dim() - 1)

    def point(i, k):
        return base[i] + (k.to(x.dtype) / steps).view(view) * delta[i]

    return walk_fixed(model, x, target, steps, batch_size, point=point,
                      move=lambda i, k: delta[i] / steps, at_end=False, idgi=idgi,
                      keep_points=keep_points)


# --------------------------------------------------------------------------- blur path


def blur_matrix(sigmas: torch.Tensor, size: int) -> torch.Tensor:
    """[K, size, size] matrices B with (B v) = v convolved with a normalised Gaussian of each
    sigma (radius int(4 sigma + 0.5)), zero outside: scipy.ndimage's mode="constant"."""
    sig = sigmas.to(torch.float64).cpu()
    offset = torch.arange(size, dtype=torch.float64)
    diff = offset[:, None] - offset[None, :]  # a - b
    out = torch.empty(len(sig), size, size, dtype=torch.float64)
    for j, sg in enumerate(sig.tolist()):
        if sg == 0:
            out[j] = torch.eye(size, dtype=torch.float64)
            continue
        radius = int(TRUNCATE * sg + 0.5)
        full = torch.arange(-radius, radius + 1, dtype=torch.float64)
        norm = torch.exp(-0.5 * full ** 2 / sg ** 2).sum()
        weights = torch.exp(-0.5 * diff ** 2 / sg ** 2) / norm
        out[j] = torch.where(diff.abs() <= radius, weights, torch.zeros_like(weights))
    return out


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Each image x[p] [C, H, W] blurred with sigmas[p] over H and W (zero padding) [P, C, H, W]."""
    h, w = x.shape[-2:]
    bh = blur_matrix(sigmas, h).to(device=x.device, dtype=x.dtype)
    bw = bh if w == h else blur_matrix(sigmas, w).to(device=x.device, dtype=x.dtype)
    return bh.unsqueeze(1) @ x @ bw.transpose(1, 2).unsqueeze(1)


def check_images(x: torch.Tensor, method: str) -> None:
    if x.dim() != 4:
        raise InputError(f"{method} blurs images: it needs inputs [N, C, H, W], got shape "
                         f"{list(x.shape)}")


def blur_walk(model, x, target, max_sigma, steps, grad_step, batch_size, *, idgi,
              keep_points=False):
    """Blur IG's scale-space path in path order: P_k = blur(x, sigma_(S-k)), sigma_j = j
    max_sigma / S; the gradient of step k at its sharper end P_(k+1), as the reference does."""
    check_images(x, BLUR)
    sig = torch.arange(steps + 1, dtype=torch.float64) * (max_sigma / steps)

    def sigma_of(k):  # path index -> sigma
        return sig[(steps - k).cpu()]

    def point(i, k):
        return gaussian_blur(x[i], sigma_of(k))

    def move(i, k):
        # step k runs from sigma_(S-k) to sigma_(S-k-1); the reference's derivative is taken
        # at the sharp end: (blur(sigma + grad_step) - blur(sigma)) / grad_step
        s_sharp = sigma_of(k + 1)
        here = gaussian_blur(x[i], s_sharp)
        ahead = gaussian_blur(x[i], s_sharp + grad_step)
        d_sigma = float(max_sigma) / steps
        return -(d_sigma / grad_step) * (ahead - here)

    return walk_fixed(model, x, target, steps, batch_size, point=point, move=move, at_end=True,
                      idgi=idgi, keep_points=keep_points)


# --------------------------------------------------------------------------- guided path


def _guided_step(state, x, base, grad, alpha, l1_target, fraction, max_dist):
    """Move ``state`` (float64 [N, D]) one Guided IG step, in place, for all inputs at once."""
    diff = x - base
    alpha_min, alpha_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
    x_min, x_max = base + alpha_min * diff, base + alpha_max * diff
    absg = grad.abs()
    moving = diff != 0
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    kth = int(math.floor(fraction * (x.shape[1] - 1))) + 1  # numpy's quantile, 'lower'
    for _ in range(x.shape[1] + 2):  # each round fixes at least one feature at x_max
        if not active.any():
            break
        a = torch.where(moving, (state - base) / torch.where(moving, diff, 1.0), alpha_max)
        behind = (a < alpha_min) & active[:, None]
        state[behind] = x_min[behind]
        l1 = (state - x).abs().sum(1)
        reached = torch.isclose(l1, l1_target, rtol=L1_TOLERANCE, atol=L1_TOLERANCE)
        active &= ~reached
        if not active.any():
            break
        masked = torch.where(state == x_max, math.inf, absg)
        threshold = masked.kthvalue(kth, dim=1, keepdim=True).values
        chosen = (masked <= threshold) & torch.isfinite(masked) & active[:, None]
        room = ((state - x_max).abs() * chosen).sum(1)
        gamma = torch.where(room > 0, (l1 - l1_target) / room.clamp_min(1e-300), math.inf)
        full = gamma > 1
        jump = chosen & full[:, None]
        state[jump] = x_max[jump]
        part = chosen & ~full[:, None]
        g = gamma[:, None].expand_as(state)
        state[part] = state[part] + g[part] * (x_max[part] - state[part])
        active &= full & (room > 0)  # done on a partial move; stuck when nothing can move


def guided_walk(model, x, target, base, steps, fraction, max_dist, batch_size, *, idgi,
                keep_points=False):
    """Guided IG's path, step by step for all inputs together (each step needs the last
    gradient), each step's points through the network in chunks of ``batch_size``."""
    n = x.shape[0]
    shape = x.shape
    x64, base64 = x.flatten(1).double(), base.flatten(1).double()
    state = base64.clone()
    l1_total = (x64 - base64).abs().sum(1)
    attributions = torch.zeros(n, x[0].numel(), dtype=torch.float64, device=x.device)
    step_sums = torch.zeros(n, steps, dtype=torch.float64, device=x.device)
    outputs = torch.full((n, steps + 1), math.nan, dtype=torch.float64, device=x.device)
    result = torch.zeros_like(attributions) if idgi else None
    idgi_sums = torch.zeros(n, steps, dtype=torch.float64, device=x.device) if idgi else None
    points = [state.clone()] if keep_points else None
    previous = None  # IDGI: last step's direction, waiting for F at this step's point
    for k in range(steps):
        here = state.to(x.dtype).view(shape)
        grad = torch.empty_like(x)
        for lo, hi, (g, f) in run_in_chunks(n, batch_size, lambda lo, hi: _grad_and_output(
                model, here[lo:hi], target[lo:hi])):
            grad[lo:hi], outputs[lo:hi, k] = g, f
        if previous is not None:
            _idgi_add(result, idgi_sums, previous, outputs[:, k] - outputs[:, k - 1], k - 1)
        g64 = grad.flatten(1).double()
        before = state.clone()
        _guided_step(state, x64, base64, g64, (k + 1.0) / steps,
                     l1_total * (1.0 - (k + 1.0) / steps), fraction, max_dist)
        moved = state - before
        contribution = moved * g64
        attributions += contribution
        step_sums[:, k] = contribution.sum(1)
        if idgi:
            previous = _direction(g64, moved)
        if keep_points:
            points.append(state.clone())
    if idgi:
        outputs[:, steps] = _end_outputs(model, x, target, batch_size)
        _idgi_add(result, idgi_sums, previous, outputs[:, steps] - outputs[:, steps - 1], steps - 1)
    return PathWalk(attributions.to(x.dtype).view(shape),
                    None if result is None else result.to(x.dtype).view(shape), outputs,
                    step_sums, idgi_sums, base,
                    None if points is None else torch.stack(points, 1).to(x.dtype).view(
                        (n, steps + 1) + tuple(shape[1:])))


def _grad_and_output(model, points, target):
    grad, logits = input_gradients(model, points, target)
    return grad, select_target(logits, target).double()


def _idgi_add(result, sums, direction, d, k):
    c = direction * d[:, None]
    result += c
    sums[:, k] = c.sum(1)


# --------------------------------------------------------------------------- registry


STEPS_HELP = "Steps on the path: one gradient pass each."
FRACTION = Param("fraction", float, 0.25, 0.01, 1.0,
                 help="Guided IG: share of the features (smallest |gradient| first) moved at a "
                      "time within a step.")
MAX_DIST = Param("max_dist", float, 0.02, 0.0, 1.0,
                 help="Guided IG: how far (in alpha) a feature may stray from the straight line: "
                      "0 is IG's path (left sum), 1 any path in the baseline-input box.")
MAX_SIGMA = Param("max_sigma", float, 50.0, 0.1, 1000.0,
                  help="Blur IG: the Gaussian width (pixels) of the blurred start of the path.")
GRAD_STEP = Param("grad_step", float, 0.01, 1e-4, 1.0,
                  help="Blur IG: sigma step of the forward difference d blur / d sigma.")


def _guided_cost(p, shape) -> Cost:
    return Cost(p["steps"], p["steps"], rounds=p["steps"])


@register_method(
    GUIDED, label="Guided IG", uses_baseline=True, completeness="none",
    params=(Param("steps", int, 200, 1, 4096, help=STEPS_HELP), FRACTION, MAX_DIST, BATCH_SIZE),
    cost=_guided_cost,
    description=("IG along an adaptive path from the baseline: each step moves the features with "
                 "the smallest |gradient| first (Kapishnikov et al. 2021). Promises no "
                 "completeness here: its left sum converges (error ~ 1/steps) on smooth networks, "
                 "but on ReLU networks the path keeps choosing features whose gradient is about to "
                 "jump, and the error need not shrink with steps (measured: docs/path-methods.md). "
                 "IDGI on its path is complete."),
    baseline_help="One baseline per input, or one for all (default: zeros).",
)
def guided_ig(model, x, target, *, baseline=None, steps, fraction, max_dist,
              batch_size) -> MethodOutput:
    base = check_baseline(baseline, x, GUIDED)
    w = guided_walk(model, x, target, base, steps, fraction, max_dist, batch_size, idgi=False)
    return MethodOutput(w.attributions, references=base.unsqueeze(1))


@register_method(
    BLUR, label="Blur IG", completeness="quadrature",
    params=(Param("steps", int, 100, 1, 4096, help=STEPS_HELP), MAX_SIGMA, GRAD_STEP, BATCH_SIZE),
    cost=lambda p, shape: Cost(p["steps"], p["steps"]),
    description=("IG along the Gaussian scale space from the input blurred with max_sigma to the "
                 "input (Xu et al. 2020): no baseline; complete against the blurred input up to "
                 "the quadrature error. Images only."),
)
def blur_ig(model, x, target, *, baseline=None, steps, max_sigma, grad_step,
            batch_size) -> MethodOutput:
    w = blur_walk(model, x, target, max_sigma, steps, grad_step, batch_size, idgi=False)
    return MethodOutput(w.attributions, references=w.reference.unsqueeze(1))


def _idgi_cost(p, shape) -> Cost:
    s = p["steps"]  # one gradient pass per step, plus F at the one point no pass gives
    return Cost(s + 1, s, rounds=s + 1 if p["base"] == GUIDED else 0)


@register_method(
    "idgi", label="IDGI", uses_baseline=True, completeness="exact",
    params=(Param("base", str, STRAIGHT, choices=BASES,
                  help="The path: IG's straight line, Guided IG's or Blur IG's (which ignores "
                       "the baseline)."),
            Param("steps", int, 128, 1, 4096, help=STEPS_HELP), FRACTION, MAX_DIST, MAX_SIGMA,
            GRAD_STEP, BATCH_SIZE),
    cost=_idgi_cost,
    description=("Important Direction Gradient Integration (Yang et al. 2023) on the base "
                 "method's path: each step adds (F(next point) - F(point)) * g^2 / ||g||^2, "
                 "keeping only the move along the gradient. The steps telescope: complete "
                 "against the path's start (baseline, or the blurred input) for any steps."),
    baseline_help="IG and Guided IG: one baseline per input, or one for all (default: zeros). "
                  "Blur IG ignores it.",
)
def idgi(model, x, target, *, baseline=None, base, steps, fraction, max_dist, max_sigma,
         grad_step, batch_size) -> MethodOutput:
    w = walk(base, model, x, target, baseline, dict(steps=steps, fraction=fraction,
                                                   max_dist=max_dist, max_sigma=max_sigma,
                                                   grad_step=grad_step, batch_size=batch_size),
             idgi=True)
    return MethodOutput(w.idgi, references=w.reference.unsqueeze(1))


def walk(path: str, model, x, target, baseline, params: dict, *, idgi: bool,
         keep_points: bool = False) -> PathWalk:
    """Walk the path of ``path`` (one of BASES) with a method's resolved ``params``."""
    bs = params["batch_size"]
    if path == BLUR:
        return blur_walk(model, x, target, params["max_sigma"], params["steps"],
                         params["grad_step"], bs, idgi=idgi, keep_points=keep_points)
    base = check_baseline(baseline, x, path)
    if path == GUIDED:
        return guided_walk(model, x, target, base, params["steps"], params["fraction"],
                           params["max_dist"], bs, idgi=idgi, keep_points=keep_points)
    if path == STRAIGHT:
        return straight_walk(model, x, target, base, params["steps"], bs, idgi=idgi,
                             keep_points=keep_points)
    raise InputError(f"unknown path {path!r}; choose one of {list(BASES)}")


# --------------------------------------------------------------------------- path trace


@dataclass
class MethodPath:
    """A method's path for one batch, in path order (the reference first, x last)."""

    method: str
    positions: np.ndarray        # [S + 1] k / S
    points: torch.Tensor         # [N, S + 1, ...] P_k
    outputs: torch.Tensor        # [N, S + 1] F(P_k)
    attribution_sums: torch.Tensor  # [N, S + 1] the map's sum accumulated up to P_k (0 at P_0)
    straight_distance: torch.Tensor  # [N, S + 1] ||P_k - straight line point|| / ||x - P_0||

    @property
    def delta(self) -> torch.Tensor:
        """F(x) - F(P_0) [N]."""
        return self.outputs[:, -1] - self.outputs[:, 0]


PATH_METHODS = (STRAIGHT, GUIDED, BLUR, "idgi")


def method_path(method: str, model: torch.nn.Module, x: torch.Tensor, target, *,
                baseline: torch.Tensor | None = None, **hparams) -> MethodPath:
    """The path ``method`` integrates along, F at every point and its running attribution sum.

    ``method``: integrated_gradients (S equal steps, left sum), guided_ig, blur_ig or idgi (its
    ``base``'s path). Costs the method's passes plus one forward pass per point not otherwise
    evaluated; holds S + 1 copies of x.
    """
    if method not in PATH_METHODS:
        raise InputError(f"method_path: {method!r} has no path to show; choose one of "
                         f"{list(PATH_METHODS)}")
    if model.training:
        raise InputError("the model is in training mode: call model.eval() first")
    params = get_method(method).resolve(hparams)
    if method == STRAIGHT and (params["tolerance"] > 0 or params["rule"] != "left"):
        params = dict(params, rule="left", tolerance=0.0)  # the path shown: S equal steps
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    path = params.get("base", method)
    use_idgi = method == "idgi"
    w = walk(path, model, x, t, baseline, params, idgi=True, keep_points=True)
    sums = w.idgi_step_sums if use_idgi else w.step_sums
    running = torch.cat([torch.zeros_like(sums[:, :1]), sums.cumsum(1)], 1)
    s = params["steps"]
    start, end = w.points[:, :1], w.points[:, -1:]
    alphas = torch.linspace(0, 1, s + 1, dtype=x.dtype, device=x.device)
    line = start + alphas.view((1, -1) + (1,) * (x.dim() - 1)) * (end - start)
    span = (end - start).flatten(2).norm(dim=2).clamp_min(torch.finfo(x.dtype).tiny)
    distance = (w.points - line).flatten(2).norm(dim=2) / span
    return MethodPath(method, np.arange(s + 1) / s, w.points, w.outputs, running,
                      distance.double())
