"""Path methods: Integrated Gradients (straight line, chosen quadrature) and Expected Gradients."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from explorer.errors import InputError
from explorer.methods.core import path_gradients, path_integral, run_model, select_target
from explorer.runtime.tensors import check_baseline, seeded_generator
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


# Adaptive IG: nested levels of the trapezoid rule in theta after alpha = (1 - cos theta) / 2.
# Level N has the N - 1 nodes theta_k = k pi / N (the Chebyshev points, clustered at both ends
# like Gauss-Legendre's, never the endpoints, where a ReLU network's gradient is often zero),
# weights proportional to sin theta_k and summing to 1, so constants are exact. Doubling N keeps
# every node with an unchanged weight before normalising: a level costs only its new nodes and
# the state is a running sum and the last few maps per input, whatever the number of steps.
FIRST_LEVEL = 8  # 7 nodes: the first estimate (levels 2 and 4 give the differences it needs)
FIRST_ESTIMATE = FIRST_LEVEL - 1  # gradient passes of the first estimate
MAX_TOLERANCE = 0.5
# error(level N) ~ ERROR_FACTOR * rms(d_N, d_{N/2} / 2), d_N = ||Q_N - Q_{N/2}|| / ||Q_N||. On a
# ReLU network the path gradient is piecewise constant. A kink at a random place adds to the
# error of a rule with local spacing h its jump times a sawtooth of mean 0 and variance h^2/12,
# and the sawtooths of spacings h and 2h correlate 0.5, so E d_N^2 = 3 E error_N^2: error_N ~
# d_N / sqrt(3) = 0.58 d_N; and d_{N/2} / 2 ~ d_N while the error halves per doubling (the rms of
# the two damps a lucky cancellation in one). It estimates the expected error: the realised one
# scatters around it, more with few kinks (see README). A smooth integrand converges faster
# (second order for this rule), so there the estimate is pessimistic.
ERROR_FACTOR = 0.6
ROMBERG_COLUMNS = 2  # extrapolated columns tried besides the rule itself (smooth integrands)
HISTORY = ROMBERG_COLUMNS + 3  # maps of the last levels kept per input


def _level_nodes(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New nodes of each level N (odd k in k pi / N): owner index, alpha, unnormalised weight."""
    owner = np.repeat(np.arange(len(levels)), levels // 2)
    k = np.concatenate([np.arange(1, n, 2) for n in levels]) if len(levels) else np.zeros(0)
    theta = k * np.pi / np.repeat(levels, levels // 2)
    return owner, 0.5 * (1.0 - np.cos(theta)), np.sin(theta)


def _weight_total(level: int) -> float:
    """Sum of sin(k pi / N) over k = 1..N-1 (the normaliser of level N)."""
    return float(np.sin(np.arange(1, level) * np.pi / level).sum())


def _ig_cost(p, shape) -> Cost:
    if p.get("rule") == "exact":  # the exact walk's bound (explorer.methods.exact)
        from explorer.methods.exact import DEFAULT_MAX_REGIONS, exact_cost
        return exact_cost(DEFAULT_MAX_REGIONS)
    # Adaptive: at most `steps` gradient passes, plus two forward passes for F(x) - F(baseline).
    return Cost(p["steps"] + (2 if p.get("tolerance", 0.0) > 0 else 0), p["steps"])


@register_method(
    "integrated_gradients", label="Integrated Gradients", uses_baseline=True,
    completeness="quadrature",
    params=(
        Param("steps", int, 32, 1, 4096, help="Points on the straight path from baseline to x "
                                              "(with a tolerance: the most points per input)."),
        Param("rule", str, "gauss_legendre", choices=RULES + ("exact",),
              help="Quadrature rule. Note: left/trapezoid evaluate the baseline itself, where a "
                   "ReLU network's gradient is often zero. Ignored with a tolerance. 'exact': "
                   "exact IG on a piecewise-linear network (the exact_ig method; steps unused)."),
        Param("tolerance", float, 0.0, 0.0, MAX_TOLERANCE,
              help="0: off (fixed steps). Otherwise the relative error of the attribution map "
                   "(L2) to accept: nested Chebyshev levels double until the estimated map "
                   f"error is below it, with steps as the cap (at least {FIRST_ESTIMATE})."),
        BATCH_SIZE,
    ),
    cost=_ig_cost,
    cost_exact=lambda p: not p.get("tolerance", 0.0) > 0 and p.get("rule") != "exact",
    description="(x - x') * integral of dF/dx along the straight path (Sundararajan et al. 2017).",
    baseline_help="One baseline per input, or one for all (default: zeros).",
)
def integrated_gradients(model, x, target, *, baseline=None, steps, rule, batch_size,
                         tolerance=0.0) -> MethodOutput:
    base = check_baseline(baseline, x, "integrated_gradients")
    if rule == "exact":  # DESIGN.md's name for exact IG: the same walk, map and info
        if tolerance > 0:
            raise InputError("integrated_gradients: rule='exact' has no quadrature error, so "
                             "no tolerance: set tolerance=0")
        from explorer.methods.exact import (DEFAULT_MAX_REGIONS, exact_integrated_gradients,
                                            piecewise_linear_reason)
        reason = piecewise_linear_reason(model)
        if reason is not None:
            raise InputError(f"integrated_gradients(rule='exact'): {reason}")
        return exact_integrated_gradients(
            model, x, target, baseline=base, max_regions=DEFAULT_MAX_REGIONS, float64=True,
            batch_size=batch_size, algorithm="auto")
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
    return (f"adaptive IG stopped at {int(info['steps_used'][hit].max())} steps (the next level "
            f"would pass the steps cap) before reaching the map error tolerance "
            f"{info['tolerance']:g} (estimated error {worst:.3g}): raise steps or the tolerance")


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> np.ndarray:
    """||new - old|| / ||new|| per sample (0 when both are zero, inf when only new is)."""
    norm = new.flatten(1).norm(dim=1).double().cpu().numpy()
    diff = (new - old).flatten(1).norm(dim=1).double().cpu().numpy()
    return np.where(norm > 0, diff / np.where(norm > 0, norm, 1.0),
                    np.where(diff == 0, 0.0, np.inf))


def _best_candidate(history: torch.Tensor, levels: np.ndarray):
    """The map with the smallest estimated error among the Romberg columns, and that estimate.

    ``history`` [samples, HISTORY, ...] holds the maps of the last levels (newest last),
    ``levels`` how many levels each sample has. Column c (c extrapolations of the h^2 error
    term, exact for smooth integrands only) at a level needs c + 1 levels; its estimate needs it
    at three levels, so column c takes c + 3 levels. Each column's estimate is the first-order
    one (pessimistic for a smooth integrand); on a ReLU network's path the extrapolated
    columns are rougher and column 0 wins.
    """
    table = [history]
    for c in range(1, ROMBERG_COLUMNS + 1):
        prev = table[-1]
        table.append((4 ** c * prev[:, 1:] - prev[:, :-1]) / (4 ** c - 1))
    best_map, best = history[:, -1], np.full(len(levels), np.inf)
    for c, col in enumerate(table):
        if col.shape[1] < 3:
            continue
        ok = levels >= c + 3
        d_new = _relative_change(col[:, -1], col[:, -2])
        d_old = _relative_change(col[:, -2], col[:, -3])
        est = np.where(ok, ERROR_FACTOR * np.sqrt(0.5 * (d_new ** 2 + (0.5 * d_old) ** 2)), np.inf)
        better = est < best
        if better.any():
            mask = torch.as_tensor(better, device=history.device)
            best_map = torch.where(mask.view((-1,) + (1,) * (col.dim() - 2)), col[:, -1], best_map)
            best = np.where(better, est, best)
    return best_map, best


def adaptive_integrated_gradients(model, x, target, base, tolerance: float, cap: int,
                                  batch_size: int):
    """IG refined until the estimated relative L2 error of each sample's map is <= tolerance.

    Each sample doubles its own level N = 8, 16, 32, ... (N - 1 gradient passes, every earlier
    node reused; see ``_level_nodes``). The error estimate is of the map, not of the
    completeness gap (which can be small while pixels are wrong): with d_N the relative L2
    difference between the maps of levels N and N/2, it is ERROR_FACTOR * rms(d_N, d_{N/2}/2),
    calibrated for first-order convergence (ReLU networks: the path gradient jumps at kinks).
    The same estimate is taken of up to ROMBERG_COLUMNS Richardson extrapolations of the levels
    (for smooth integrands, where it is pessimistic), and the map with the smallest estimate is
    returned. Refinement stops when that estimate is <= tolerance or the next level would pass
    ``cap`` passes (then cap_hit). Each sample refines on its own numbers only. The state is a
    few maps per input, whatever the cap. Returns (map, info).
    """
    n = x.shape[0]
    if cap < FIRST_ESTIMATE:
        raise InputError(f"integrated_gradients: a tolerance needs steps >= {FIRST_ESTIMATE} "
                         f"(the first estimate uses {FIRST_ESTIMATE} points), got steps={cap}")
    sums = torch.zeros_like(x)  # sum of sin(theta) * gradient term over the nodes so far
    history = torch.zeros((n, HISTORY) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    attributions = torch.zeros_like(x)
    level = np.ones(n, dtype=np.int64)  # the last level evaluated (1: none yet)
    map_error = np.full(n, np.inf)
    cap_hit = np.zeros(n, dtype=bool)
    todo = np.arange(n)
    new_levels = int(np.log2(FIRST_LEVEL))  # the first round: levels 2, 4 and 8 in one go
    view = (-1,) + (1,) * (x.dim() - 1)
    while len(todo):
        steps = level[todo, None] * 2 ** np.arange(1, new_levels + 1)  # [samples, new levels]
        owner, alphas, weights = _level_nodes(steps.reshape(-1))  # owner: (sample, level) slot
        rows = torch.as_tensor(todo[owner // new_levels])
        slots = torch.as_tensor(owner, device=x.device)
        alphas, weights = torch.as_tensor(alphas), torch.as_tensor(weights, dtype=x.dtype)
        added = torch.zeros((steps.size,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        for lo in range(0, len(rows), batch_size):  # memory: one chunk of gradients at a time
            hi = lo + batch_size
            g = path_gradients(model, x, base, target, rows[lo:hi], alphas[lo:hi], batch_size)
            added.index_add_(0, slots[lo:hi], weights[lo:hi].to(x.device).view(view) * g)
        added = added.view((len(todo), new_levels) + tuple(x.shape[1:]))
        idx = torch.as_tensor(todo, device=x.device)
        for j in range(new_levels):
            level[todo] = steps[:, j]
            sums[idx] += added[:, j]
            totals = torch.tensor([_weight_total(int(v)) for v in steps[:, j]], dtype=x.dtype,
                                  device=x.device).view(view)
            history[idx] = torch.cat([history[idx, 1:], (sums[idx] / totals).unsqueeze(1)], 1)
        maps, estimate = _best_candidate(history[idx], np.log2(level[todo]).astype(int))
        attributions[idx] = maps
        map_error[todo] = estimate
        done = estimate <= tolerance
        blocked = ~done & (2 * level[todo] - 1 > cap)
        cap_hit[todo[blocked]] = True
        todo = todo[~(done | blocked)]
        new_levels = 1
    used = level - 1
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
