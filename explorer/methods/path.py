"""Path methods: Integrated Gradients (straight line, chosen quadrature) and Expected Gradients."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from explorer.errors import InputError
from explorer.methods.core import (check_baseline, path_gradients, path_integral, run_model,
                                   seeded_generator, select_target)
from explorer.methods.gradients import BATCH_SIZE
from explorer.methods.registry import Cost, MethodOutput, Param, register_method

RULES = ("left", "right", "middle", "trapezoid", "gauss_legendre")


@functools.lru_cache(maxsize=64)  # Gauss-Legendre nodes cost an eigensolve (ms at 128 steps)
def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in [0, 1] and weights summing to 1 for integrating over alpha (read-only)."""
    if rule in ("left", "right", "middle"):
        offset = {"left": 0.0, "right": 1.0, "middle": 0.5}[rule]
        nodes, weights = (np.arange(steps) + offset) / steps, np.full(steps, 1.0 / steps)
    elif rule == "trapezoid":
        if steps < 2:
            raise InputError("integrated_gradients: the trapezoid rule needs steps >= 2")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] *= 0.5
        nodes = np.linspace(0.0, 1.0, steps)
    elif rule == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        nodes, weights = 0.5 * (nodes + 1.0), 0.5 * weights
    else:
        raise InputError(f"integrated_gradients: unknown rule {rule!r}; choose one of {list(RULES)}")
    nodes.flags.writeable = weights.flags.writeable = False  # shared through the cache
    return nodes, weights


# Gauss-Kronrod pair on [-1, 1]: 7 Kronrod nodes holding the 3 Gauss nodes (odd positions).
# A low order suits ReLU networks, whose path gradient is piecewise constant: an interval
# without a kink is exact at any order, and one with a kink is fixed by splitting, not by order.
_K = (0.960491268708020283423507092629080, 0.774596669241483377035853079956480,
      0.434243749346802558002071502844628)
KRONROD_NODES = np.array([-_K[0], -_K[1], -_K[2], 0.0, _K[2], _K[1], _K[0]])
_W = (0.104656226026467265193823857192073, 0.268488089868333440728569280666710,
      0.401397414775962222905051818618432, 0.450916538658474142345110087045571)
KRONROD_WEIGHTS = np.array([_W[0], _W[1], _W[2], _W[3], _W[2], _W[1], _W[0]])
GAUSS_WEIGHTS = np.array([0.0, 5.0 / 9.0, 0.0, 8.0 / 9.0, 0.0, 5.0 / 9.0, 0.0])
PER_INTERVAL = len(KRONROD_NODES)  # gradient evaluations per sub-interval
MAX_TOLERANCE = 0.5
# Split the worst interval and near-ties only: fewer passes than splitting all above half
# the worst (measured on digits-cnn), at the price of more rounds.
SPLIT_FRACTION = 0.99


def _ig_cost(p, shape) -> Cost:
    # Adaptive: at most `steps` gradient passes, plus two forward passes for F(x) - F(baseline).
    return Cost(p["steps"] + (2 if p.get("tolerance", 0.0) > 0 else 0), p["steps"])


@register_method(
    "integrated_gradients", label="Integrated Gradients", uses_baseline=True,
    completeness="quadrature",
    params=(
        Param("steps", int, 32, 1, 4096, help="Points on the straight path from baseline to x "
                                              "(with a tolerance: the most points per input)."),
        Param("rule", str, "gauss_legendre", choices=RULES,
              help="Quadrature rule. Note: left/trapezoid evaluate the baseline itself, where a "
                   "ReLU network's gradient is often zero. Ignored with a tolerance."),
        Param("tolerance", float, 0.0, 0.0, MAX_TOLERANCE,
              help="0: off (fixed steps). Otherwise the relative error of the attribution map "
                   "(L2) to accept: adaptive Gauss-Kronrod refines where the path needs it, "
                   f"with steps as the cap (at least {PER_INTERVAL})."),
        BATCH_SIZE,
    ),
    cost=_ig_cost,
    cost_exact=lambda p: not p.get("tolerance", 0.0) > 0,
    description="(x - x') * integral of dF/dx along the straight path (Sundararajan et al. 2017).",
    baseline_help="One baseline per input, or one for all (default: zeros).",
)
def integrated_gradients(model, x, target, *, baseline=None, steps, rule, batch_size,
                         tolerance=0.0) -> MethodOutput:
    base = check_baseline(baseline, x, "integrated_gradients")
    if tolerance > 0:
        attributions, info = adaptive_integrated_gradients(model, x, target, base, tolerance,
                                                           steps, batch_size)
        return MethodOutput(attributions, references=base.unsqueeze(1), info=info)
    alphas, weights = quadrature(rule, steps)
    starts = base.unsqueeze(1).expand(-1, steps, *x.shape[1:])
    attributions = path_integral(model, x, target, starts, torch.tensor(alphas),
                                 torch.tensor(weights), batch_size)
    return MethodOutput(attributions, references=base.unsqueeze(1))


def adaptive_note(info: dict) -> str | None:
    """A sentence for the app when adaptive IG hit its cap before the tolerance, else None."""
    hit = info.get("cap_hit")
    if hit is None or not bool(hit.any()):
        return None
    worst = float(info["map_error"][hit].max())
    return (f"adaptive IG used all {int(info['steps_used'][hit].max())} steps before reaching "
            f"the map error tolerance {info['tolerance']:g} (estimated error {worst:.3g}): "
            "raise steps or the tolerance")


def _kronrod_points(lefts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Alphas of the Kronrod nodes on each interval [left, left + width]: [intervals, 7]."""
    return lefts[:, None] + widths[:, None] * 0.5 * (KRONROD_NODES[None, :] + 1.0)


def adaptive_integrated_gradients(model, x, target, base, tolerance: float, cap: int,
                                  batch_size: int):
    """IG refined until the estimated relative L2 error of each sample's map is <= tolerance.

    Each sample keeps its own sub-intervals of [0, 1]. On each, the 7-point Kronrod rule gives
    the estimate and the 3-point Gauss rule on the same points a second, cruder one. The error
    estimate is of the map, not of the completeness gap (which can be small while pixels are
    wrong): ||Kronrod map - Gauss map||_2 / ||Kronrod map||_2, the error of the cruder map, which
    bounds the returned one's in practice. The interval with the largest difference (and any
    within 1% of it) is split in two while the cap of ``cap`` gradient evaluations per sample
    allows; each sample refines on its own numbers only. Returns (map, info).
    """
    n = x.shape[0]
    if cap < PER_INTERVAL:
        raise InputError(f"integrated_gradients: a tolerance needs steps >= {PER_INTERVAL} "
                         f"(one {PER_INTERVAL}-point Gauss-Kronrod estimate), got steps={cap}")
    kw = torch.tensor(KRONROD_WEIGHTS * 0.5, dtype=x.dtype, device=x.device)
    gw = torch.tensor(GAUSS_WEIGHTS * 0.5, dtype=x.dtype, device=x.device)
    # Per sample: interval lefts and widths (float64, exact dyadic), Kronrod - Gauss per interval.
    lefts = [np.zeros(1) for _ in range(n)]
    widths = [np.ones(1) for _ in range(n)]
    estimates: list[torch.Tensor] = [None] * n
    errors: list[torch.Tensor] = [None] * n
    used = np.zeros(n, dtype=np.int64)
    map_error = np.zeros(n)
    cap_hit = np.zeros(n, dtype=bool)
    todo = {i: np.array([0]) for i in range(n)}  # sample -> indices of intervals to (re)compute
    while todo:
        rows, alphas, spans = [], [], []
        for i, new in todo.items():
            pts = _kronrod_points(lefts[i][new], widths[i][new])
            rows.append(np.full(pts.size, i))
            alphas.append(pts.reshape(-1))
            spans.append((i, new))
        g = path_gradients(model, x, base, target, torch.as_tensor(np.concatenate(rows)),
                           torch.as_tensor(np.concatenate(alphas)), batch_size)
        g = g.view(-1, PER_INTERVAL, *x.shape[1:])
        at = 0
        for i, new in spans:
            block = g[at:at + len(new)]
            at += len(new)
            w = torch.as_tensor(widths[i][new], dtype=x.dtype, device=x.device)
            w = w.view((-1,) + (1,) * (x.dim() - 1))
            kron = w * torch.einsum("k,ik...->i...", kw, block)
            gauss = w * torch.einsum("k,ik...->i...", gw, block)
            used[i] += PER_INTERVAL * len(new)
            keep = np.setdiff1d(np.arange(len(lefts[i])), new)
            est = torch.cat([estimates[i][keep], kron]) if estimates[i] is not None else kron
            err = torch.cat([errors[i][keep], kron - gauss]) if errors[i] is not None \
                else kron - gauss
            order = np.concatenate([keep, new])
            lefts[i], widths[i] = lefts[i][order], widths[i][order]
            estimates[i], errors[i] = est, err
        todo = {}
        for i in range(n):
            total = float(estimates[i].sum(0).norm())
            diff = float(errors[i].sum(0).norm())
            map_error[i] = diff / total if total > 0 else (0.0 if diff == 0 else float("inf"))
            if map_error[i] <= tolerance:
                continue
            affordable = (cap - used[i]) // (2 * PER_INTERVAL)
            if affordable < 1:
                cap_hit[i] = True
                continue
            sizes = errors[i].flatten(1).norm(dim=1).cpu().numpy()
            worst = np.argsort(-sizes, kind="stable")
            chosen = worst[sizes[worst] >= SPLIT_FRACTION * sizes[worst[0]]][:affordable]
            halves = widths[i][chosen] * 0.5
            lefts[i] = np.concatenate([lefts[i], lefts[i][chosen] + halves])
            widths[i][chosen] = halves
            widths[i] = np.concatenate([widths[i], halves])
            added = np.arange(len(lefts[i]) - len(chosen), len(lefts[i]))
            todo[i] = np.concatenate([chosen, added])
    attributions = torch.stack([estimates[i][np.argsort(lefts[i], kind="stable")].sum(0)
                                for i in range(n)])
    with torch.no_grad():
        gap = (select_target(run_model(model, x), target)
               - select_target(run_model(model, base), target))
    completeness_error = (attributions.flatten(1).sum(1) - gap).abs()
    info = {
        "steps_used": torch.as_tensor(used),
        "map_error": torch.as_tensor(map_error),
        "completeness_error": completeness_error.detach().cpu().double(),
        "cap_hit": torch.as_tensor(cap_hit),
        "tolerance": tolerance,
    }
    if cap_hit.any():
        warnings.warn(
            f"integrated_gradients: {int(cap_hit.sum())} of {n} input(s) reached the cap of "
            f"steps={cap} before the map error tolerance {tolerance:g} (estimated relative map "
            f"error up to {map_error[cap_hit].max():.3g}): raise steps or the tolerance",
            UserWarning, stacklevel=4)
    return attributions, info


def draw_references(background_size: int, samples: int, seed: int):
    """Reference indices and path positions for expected gradients, from the seed alone."""
    gen = seeded_generator(seed)
    index = torch.randint(background_size, (samples,), generator=gen)
    alphas = torch.rand(samples, generator=gen, dtype=torch.float64)
    return index, alphas


@register_method(
    "expected_gradients", label="Expected Gradients", uses_baseline=True, stochastic=True,
    completeness="expectation",
    params=(
        Param("samples", int, 64, 1, 4096, help="(reference, alpha) draws per input."),
        Param("seed", int, 0, 0, 2**31 - 1, help="Seed of the draws; same seed, same map."),
        BATCH_SIZE,
    ),
    cost=lambda p, shape: Cost(p["samples"], p["samples"]),
    description=(
        "IG averaged over baselines drawn from a background set, one random alpha per draw "
        "(Erion et al. 2021). Complete in expectation: sum = F(x) - mean F(references) "
        "(the draws, or the whole background when there are more draws than rows)."
    ),
    baseline_help="A background set [M, ...] of references (default: the zero input alone).",
)
def expected_gradients(model, x, target, *, baseline=None, samples, seed, batch_size) -> MethodOutput:
    if baseline is None:
        background = torch.zeros_like(x[:1])
    else:
        if not isinstance(baseline, torch.Tensor):
            raise InputError("expected_gradients: the background must be a tensor [M, ...]")
        background = baseline.detach().to(device=x.device, dtype=x.dtype)
        if background.shape == x.shape[1:]:
            background = background.unsqueeze(0)
        if background.dim() != x.dim() or background.shape[1:] != x.shape[1:]:
            raise InputError(
                f"expected_gradients: background has shape {list(baseline.shape)}; expected "
                f"[M, {', '.join(map(str, x.shape[1:]))}]"
            )
        if background.shape[0] == 0 or not torch.isfinite(background).all():
            raise InputError("expected_gradients: background is empty or not finite")
    index, alphas = draw_references(background.shape[0], samples, seed)
    index = index.to(x.device)
    weights = torch.full((samples,), 1.0 / samples, dtype=torch.float64)
    # References are gathered per chunk, so the path work is bounded by batch_size.
    attributions = path_integral(model, x, target, lambda i, j: background[index[j]], alphas,
                                 weights, batch_size)
    # Completeness references, never larger than the background the caller holds: the draws
    # themselves, or, with more draws than background rows, the background set (a view), whose
    # mean output is the expectation the draws estimate.
    refs = background[index] if samples <= background.shape[0] else background
    return MethodOutput(attributions, references=refs.unsqueeze(0).expand(x.shape[0], *refs.shape))
