"""Path methods: Integrated Gradients (straight line, chosen quadrature) and Expected Gradients."""
from __future__ import annotations

import functools

import numpy as np
import torch

from explorer.errors import InputError
from explorer.methods.core import check_baseline, path_integral, seeded_generator
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


@register_method(
    "integrated_gradients", label="Integrated Gradients", uses_baseline=True,
    completeness="quadrature",
    params=(
        Param("steps", int, 32, 1, 4096, help="Points on the straight path from baseline to x."),
        Param("rule", str, "gauss_legendre", choices=RULES,
              help="Quadrature rule. Note: left/trapezoid evaluate the baseline itself, where a "
                   "ReLU network's gradient is often zero."),
        BATCH_SIZE,
    ),
    cost=lambda p, shape: Cost(p["steps"], p["steps"]),
    description="(x - x') * integral of dF/dx along the straight path (Sundararajan et al. 2017).",
    baseline_help="One baseline per input, or one for all (default: zeros).",
)
def integrated_gradients(model, x, target, *, baseline=None, steps, rule, batch_size) -> MethodOutput:
    base = check_baseline(baseline, x, "integrated_gradients")
    alphas, weights = quadrature(rule, steps)
    starts = base.unsqueeze(1).expand(-1, steps, *x.shape[1:])
    attributions = path_integral(model, x, target, starts, torch.tensor(alphas),
                                 torch.tensor(weights), batch_size)
    return MethodOutput(attributions, references=base.unsqueeze(1))


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
        "(Erion et al. 2021). Complete in expectation: sum = F(x) - mean F(references)."
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
    refs = background[index.to(x.device)].unsqueeze(0).expand(x.shape[0], *background[index].shape)
    weights = torch.full((samples,), 1.0 / samples, dtype=torch.float64)
    attributions = path_integral(model, x, target, refs, alphas, weights, batch_size)
    return MethodOutput(attributions, references=refs)
