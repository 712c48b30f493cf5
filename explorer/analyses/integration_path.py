"""Integrated Gradients' straight path, point by point: F, the gradient and the running sum.

``path_trace`` evaluates the path x' + alpha (x - x') at alpha = 1/S, 2/S, ..., 1 (the nodes of
IG's right-Riemann rule) and accumulates the attribution with that rule, so the map accumulated up
to alpha = 1 *is* ``integrated_gradients(rule="right", steps=S)``. Why the right rule: it never
evaluates alpha = 0, where on a bias-free ReLU network from the zero baseline every ReLU sits
exactly at its kink and autograd returns a zero gradient (the left and trapezoid rules under-count
there); with the right rule an X-DNN's running sum ends exactly at F(x) - F(0).

Memory: ``gradients`` and ``accumulated`` each hold S maps of the input's size per input: for a
28x28 digit at 64 steps that is 200 KB; for a 224x224 RGB image at 64 steps about 38.5 MB each
(77 MB per input for both, float32).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.errors import InputError
from explorer.methods.core import (check_input, check_target, chunked_pairs, input_gradients,
                                   select_target)
from explorer.runtime.tensors import check_baseline
from explorer.runtime.precision import under_precision


def points_per_chunk(x: torch.Tensor, values: int = 2**22, most: int = 512) -> int:
    """Path points per chunk so one chunk holds about ``values`` input values: 512 digits,
    27 ImageNet images (whose activations and gradients take far more memory than the input)."""
    return max(1, min(most, values // max(1, x[0].numel())))


@dataclass
class PathTrace:
    """F, its gradient and the accumulated attribution at S points of the straight path."""

    alphas: torch.Tensor            # [S] 1/S, 2/S, ..., 1
    outputs: torch.Tensor           # [N, S] F(x' + alpha (x - x'))
    attribution_sums: torch.Tensor  # [N, S] sum of the attribution accumulated up to alpha
    gradients: torch.Tensor         # [N, S, ...] dF/dx at each point
    accumulated: torch.Tensor       # [N, S, ...] (x - x') * (1/S) * sum of gradients up to alpha
    inputs: torch.Tensor            # [N, ...] x
    baseline: torch.Tensor          # [N, ...] x'
    baseline_output: torch.Tensor   # [N] F(x')
    baseline_gradient: torch.Tensor  # [N, ...] dF/dx at x' (alpha = 0; not used by the sum)
    delta: torch.Tensor             # [N] F(x) - F(x')

    @property
    def output(self) -> torch.Tensor:
        """F(x), the last point of the path [N]."""
        return self.outputs[:, -1]

    @property
    def completeness_error(self) -> torch.Tensor:
        """Relative gap at alpha = 1: |attribution sum - (F(x) - F(x'))| / |F(x) - F(x')| [N]."""
        gap = (self.attribution_sums[:, -1] - self.delta).abs()
        return gap / self.delta.abs().clamp_min(torch.finfo(self.delta.dtype).tiny)

    def points(self, index: int) -> torch.Tensor:
        """The interpolated inputs x' + alpha_index (x - x') [N, ...]."""
        alpha = self.alphas[index].to(self.inputs.dtype)
        return self.baseline + alpha * (self.inputs - self.baseline)

    def linearity_error(self) -> torch.Tensor:
        """Largest deviation of F from the straight line F(x') + alpha (F(x) - F(x')), relative
        to |F(x) - F(x')|, per input [N]. About 1e-7 (float32) on a bias-free ReLU network from
        the zero baseline (homogeneity), far larger on a network with biases."""
        line = self.baseline_output[:, None] + self.alphas.to(self.outputs)[None] * self.delta[:, None]
        scale = self.delta.abs().clamp_min(torch.finfo(self.delta.dtype).tiny)
        return (self.outputs - line).abs().amax(1) / scale

    def gradient_spread(self) -> torch.Tensor:
        """Largest change of the gradient along the path, relative to its largest value, per
        input [N]: 0 when the gradient is constant (one pass then gives the whole integral)."""
        g = self.gradients.flatten(2)
        spread = (g - g[:, -1:]).abs().amax((1, 2))
        return spread / g.abs().amax((1, 2)).clamp_min(torch.finfo(g.dtype).tiny)


@under_precision
def path_trace(model: torch.nn.Module, x: torch.Tensor, target, *,
               baseline: torch.Tensor | None = None, steps: int = 64,
               batch_size: int | None = None) -> PathTrace:
    """F, dF/dx and the right-Riemann running attribution at alpha = k/steps, k = 1..steps.

    All N*steps path points go through the network in chunks of ``batch_size`` (default: about
    4M input values per chunk, at most 512 points; one forward and one backward pass per point,
    plus one for F(x') and the gradient at x'). See the module docstring for the
    quadrature and memory.
    """
    x = check_input(x, model)
    if model.training:
        raise InputError("the model is in training mode: call model.eval() first")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"path_trace: steps must be a positive integer, got {steps!r}")
    t = check_target(target, x.shape[0], x.device)
    base = check_baseline(baseline, x, "path_trace")
    n, s = x.shape[0], steps
    alphas = torch.arange(1, s + 1, dtype=torch.float64, device=x.device) / s
    diff = x - base
    view = (-1,) + (1,) * (x.dim() - 1)
    gradients = x.new_zeros((n, s) + x.shape[1:])
    outputs = x.new_zeros(n, s)
    for i, j in chunked_pairs(n, s, batch_size or points_per_chunk(x), x.device):
        points = base[i] + alphas[j].to(x.dtype).view(view) * diff[i]
        grad, logits = input_gradients(model, points, t[i])
        gradients[i, j] = grad
        outputs[i, j] = select_target(logits, t[i])
    # F(x') comes with the gradient at alpha = 0 from the same pass, for display only
    baseline_gradient, logits = input_gradients(model, base, t)
    baseline_output = select_target(logits, t)
    accumulated = gradients.cumsum(1) * (diff.unsqueeze(1) / s)
    return PathTrace(alphas=alphas, outputs=outputs,
                     attribution_sums=accumulated.flatten(2).sum(2), gradients=gradients,
                     accumulated=accumulated, inputs=x, baseline=base,
                     baseline_output=baseline_output, baseline_gradient=baseline_gradient,
                     delta=outputs[:, -1] - baseline_output)


@dataclass
class Regions:
    """Where the gradient can change along the path: exact IG's linear regions of one input."""

    boundaries: torch.Tensor | None  # [B] alphas in (0, 1), float64; None when not walked
    count: int | None                # regions crossed (B + 1), None when not walked
    note: str | None                 # why not walked (a model that is not piecewise linear...)


def linear_regions(model: torch.nn.Module, x: torch.Tensor, target, *,
                   baseline: torch.Tensor | None = None,
                   max_regions: int | None = None) -> list[Regions]:
    """The linear regions of the straight path of each input, from exact IG's walk; on a model
    the walk refuses (or past ``max_regions``) every entry carries the reason instead."""
    from explorer.methods.exact_cache import exact_ig_cached
    from explorer.methods.exact import DEFAULT_MAX_REGIONS, piecewise_linear_reason
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    base = check_baseline(baseline, x, "linear_regions")
    note = piecewise_linear_reason(model)
    if note is None:
        try:
            _, info = exact_ig_cached(model, x, t, base, max_regions or DEFAULT_MAX_REGIONS,
                                      points_per_chunk(x))
            return [Regions(b, int(r), None) for b, r in zip(info["boundaries"], info["regions"])]
        except InputError as err:
            note = str(err)
    return [Regions(None, None, note) for _ in range(x.shape[0])]
