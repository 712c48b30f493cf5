"""How many steps does Integrated Gradients need? Map error against exact IG, and completeness
error, against steps, per rule.

The map error is ||IG_rule,steps - IG_exact|| / ||IG_exact|| (L2 over the input), with exact IG
(``explorer.methods.exact``) as the truth on piecewise-linear networks; on other networks it is
absent and says why. Completeness only needs, at each path node alpha, the scalar s(alpha) = sum_i (x_i - x'_i)
dF/dx_i(x' + alpha (x - x')): IG's attribution sum is sum_j w_j s(alpha_j). So every distinct node
of every requested (rule, steps) is evaluated once, in large batches (``points_per_chunk``), and
each rule's sum is a dot product. The left/right/middle nodes of steps 8..512 all lie on the grid k/1024, so the
default table (5 rules x 7 step counts, 5,080 IG passes if run one by one) needs about 3,000
evaluations per input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from explorer.errors import InputError
from explorer.analyses.integration_path import points_per_chunk
from explorer.methods.core import (check_input, check_target, chunked_pairs, input_gradients,
                                   run_model, select_target)
from explorer.runtime.tensors import check_baseline
from explorer.methods.exact import DEFAULT_MAX_REGIONS, piecewise_linear_reason
from explorer.methods.path import RULES, quadrature
from explorer.runtime.precision import under_precision

DEFAULT_STEPS = (8, 16, 32, 64, 128, 256, 512)


@dataclass
class Convergence:
    """IG's completeness per (rule, steps) and input; X-Gradient's single-pass error beside it."""

    rules: tuple[str, ...]
    steps: tuple[int, ...]
    attribution_sum: torch.Tensor   # [R, K, N] IG's attribution sum (float64)
    delta: torch.Tensor             # [N] F(x) - F(x')
    rel_error: torch.Tensor         # [R, K, N] |attribution_sum - delta| / |delta|
    x_gradient_error: torch.Tensor  # [N] |sum x * dF/dx(x) - (F(x) - F(0))| / |F(x) - F(0)|
    evaluations: int                # distinct path points evaluated per input
    map_error: torch.Tensor | None = None  # [R, K, N] ||IG - exact IG|| / ||exact IG||
    exact_regions: torch.Tensor | None = None  # [N] linear regions exact IG crossed
    exact_note: str | None = None   # why there is no map error (None when there is)
    exact_source: str | None = None  # "walked now" or "cached exact reference (...)"

    def rows(self) -> list[dict]:
        """One row per (rule, steps, sample), then X-Gradient's (rule "x_gradient", 1 pass)."""
        out = []
        for r, rule in enumerate(self.rules):
            for k, steps in enumerate(self.steps):
                for i in range(self.delta.shape[0]):
                    out.append({"rule": rule, "steps": steps, "passes": steps, "sample": i,
                                "attribution_sum": float(self.attribution_sum[r, k, i]),
                                "delta": float(self.delta[i]),
                                "rel_error": float(self.rel_error[r, k, i]),
                                "map_error": (float("nan") if self.map_error is None
                                              else float(self.map_error[r, k, i]))})
        for i in range(self.delta.shape[0]):
            out.append({"rule": "x_gradient", "steps": 1, "passes": 1, "sample": i,
                        "attribution_sum": float("nan"), "delta": float("nan"),
                        "rel_error": float(self.x_gradient_error[i]),
                        "map_error": float("nan")})
        return out


def _relative(gap: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return gap.abs() / scale.abs().clamp_min(torch.finfo(scale.dtype).tiny)


@under_precision
def convergence(model: torch.nn.Module, x: torch.Tensor, target, *,
                baseline: torch.Tensor | None = None, steps: Sequence[int] = DEFAULT_STEPS,
                rules: Sequence[str] = RULES, batch_size: int | None = None,
                exact: bool = True, max_regions: int = DEFAULT_MAX_REGIONS) -> Convergence:
    """IG's map error against exact IG and relative completeness error for every rule and step
    count, from shared evaluations.

    The completeness numbers equal ``completeness`` of ``integrated_gradients(rule=...,
    steps=...)`` (up to float rounding); the maps are kept per (rule, steps) in float64 (35
    maps per input with the defaults). ``x_gradient_error`` is Input x Gradient's error against
    the zero baseline, the one it promises on a bias-free network (X-Gradient), whatever
    ``baseline`` is. With ``exact`` (and a piecewise-linear model whose walk needs at most
    ``max_regions`` regions per input) ``map_error`` is filled; otherwise ``exact_note`` says
    why not.
    """
    x = check_input(x, model)
    if model.training:
        raise InputError("the model is in training mode: call model.eval() first")
    t = check_target(target, x.shape[0], x.device)
    base = check_baseline(baseline, x, "convergence")
    rules, steps = tuple(rules), tuple(steps)
    if not rules or not steps:
        raise InputError("convergence: give at least one rule and one step count")
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise InputError(f"convergence: steps must be positive integers, got {s!r}")
    grids = {(r, s): quadrature(r, int(s)) for r in rules for s in steps}  # checks the rules
    nodes, inverse = np.unique(np.concatenate([a for a, _ in grids.values()]), return_inverse=True)

    n, u = x.shape[0], nodes.shape[0]
    diff = x - base
    view = (-1,) + (1,) * (x.dim() - 1)
    alphas = torch.from_numpy(nodes).to(device=x.device)
    # Each (rule, steps) as a row of weights over the distinct nodes.
    node_weights = torch.zeros(len(rules) * len(steps), u, dtype=torch.float64)
    lo = 0
    for (r, s), (_, weights) in grids.items():
        idx = torch.from_numpy(inverse[lo:lo + weights.shape[0]])
        lo += weights.shape[0]
        node_weights[rules.index(r) * len(steps) + steps.index(s)].index_add_(
            0, idx, torch.tensor(weights, dtype=torch.float64))  # a copy: the grids are read-only
    node_weights = node_weights.to(x.device)
    maps = torch.zeros((node_weights.shape[0], n) + tuple(x.shape[1:]), dtype=torch.float64,
                       device=x.device)
    for i, j in chunked_pairs(n, u, batch_size or points_per_chunk(x), x.device):
        points = base[i] + alphas[j].to(x.dtype).view(view) * diff[i]
        grad, _ = input_gradients(model, points, t[i])
        term = (diff[i] * grad).double()
        for g in range(node_weights.shape[0]):
            maps[g].index_add_(0, i, node_weights[g, j].view(view) * term)
    sums = maps.flatten(2).sum(2).view(len(rules), len(steps), n)
    map_error, regions, note, source = None, None, "not asked for (exact=False)", None
    if exact:
        note = piecewise_linear_reason(model)
        if note is None:
            try:
                from explorer.methods.exact_cache import exact_ig_cached
                truth, info = exact_ig_cached(model, x, t, base, max_regions, batch_size or 64)
                norm = truth.flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
                map_error = ((maps - truth).flatten(2).norm(dim=2) / norm).view(
                    len(rules), len(steps), n)
                regions, source = info["regions"], info["source"]
            except InputError as err:  # a functional op the walk refuses, or the region cap
                note = str(err)

    grad_x, logits = input_gradients(model, x, t)
    with torch.no_grad():
        ends = select_target(run_model(model, torch.cat([base, torch.zeros_like(x)])), t.repeat(2))
    out = select_target(logits, t).double()
    delta = out - ends[:n].double()
    delta_zero = out - ends[n:].double()
    x_gradient_sum = (x * grad_x).flatten(1).sum(1).double()
    return Convergence(rules, steps, sums, delta, _relative(sums - delta, delta),
                       _relative(x_gradient_sum - delta_zero, delta_zero), u, map_error, regions,
                       None if map_error is not None else note, source)
