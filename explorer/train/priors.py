"""Attribution priors: penalties on a model's attributions, differentiable in its parameters.

loss = task loss + weight * prior(attributions), the attributions computed with
``create_graph=True`` (Ross et al. 2017; Erion et al. 2021). The registry's methods detach their
results (an explanation is not a training signal), so the attributions here have their own
differentiable form, one function per method family, tested against ``explorer.attribute``.

Attributions (of the true label's logit), from the cheapest:
  x-gradient  x * dF/dx on a bias-free model: IG from the zero baseline in one pass (X-DNN paper)
  gradient    dF/dx, Ross et al.'s "right for the right reasons" input gradient
  ig          Integrated Gradients from the zero baseline, k quadrature nodes
  eg          Expected Gradients with k references drawn from the training batch, one random
              alpha each (k = 1 is Erion et al.'s training setting)
Priors: rrr = mean over the batch of sum (mask * A)^2; tv = mean total variation of each map;
gini = minus the Gini coefficient of the batch's mean |A| (sparsity).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from explorer.errors import InputError
from explorer.models.homogeneous import is_bias_free
from explorer.methods.core import select_target
from explorer.methods.path import quadrature

ATTRIBUTIONS = {
    "x-gradient": "X-Gradient: x * dF/dx on a bias-free model (one pass)",
    "gradient": "input gradient dF/dx (one pass)",
    "ig": "Integrated Gradients from the zero baseline, k steps (k passes)",
    "eg": "Expected Gradients, k references from the batch (k passes)",
}
PRIORS = {
    "rrr": "right for the right reasons: sum (mask * attribution)^2",
    "tv": "total variation of the attribution map (smoothness)",
    "gini": "minus the Gini coefficient of mean |attribution| (sparsity)",
}


@dataclass(frozen=True)
class Prior:
    """Which penalty, on which attribution, how strong; ``k`` = IG steps or EG references."""

    kind: str = "rrr"
    attribution: str = "x-gradient"
    weight: float = 1.0
    k: int = 1

    def __post_init__(self):
        if self.kind not in PRIORS:
            raise InputError(f"unknown prior {self.kind!r}; choose one of {sorted(PRIORS)}")
        if self.attribution not in ATTRIBUTIONS:
            raise InputError(f"unknown attribution {self.attribution!r}; "
                             f"choose one of {sorted(ATTRIBUTIONS)}")
        if self.k < 1:
            raise InputError(f"k (IG steps / EG references) must be >= 1, got {self.k}")

    @property
    def passes(self) -> int:
        """Input-gradient evaluations (with create_graph) per sample per step."""
        return self.k if self.attribution in ("ig", "eg") else 1

    @property
    def label(self) -> str:
        return self.attribution + (f"-k{self.k}" if self.attribution in ("ig", "eg") else "")


def _grad(model: nn.Module, points: torch.Tensor, target: torch.Tensor):
    """d logit[target]/d points with the graph kept, and the logits; ``points`` needs grad."""
    logits = model(points)
    (grad,) = torch.autograd.grad(select_target(logits, target).sum(), points, create_graph=True)
    return grad, logits


def gradient_attribution(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                         times_input: bool):
    """dF/dx (or x * dF/dx) differentiable in the parameters, and the logits of the same pass
    (so the task loss needs no second forward)."""
    x = x.detach().requires_grad_(True)
    grad, logits = _grad(model, x, target)
    return (x.detach() * grad if times_input else grad), logits


def path_attribution(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                     starts: torch.Tensor, alphas: torch.Tensor, weights: torch.Tensor):
    """sum_j w_j (x - s_j) * dF(s_j + a_j (x - s_j))/dx, differentiable in the parameters, and
    the logits of x.

    ``starts`` [N, k, ...], ``alphas`` [N, k] or [k], ``weights`` [k]: IG (one start, quadrature
    nodes) and EG (k references, random alphas, equal weights) are both this sum. x and the N*k
    points go through the model as one batch: one forward per step, also under DDP.
    """
    n, k = starts.shape[:2]
    shape = x.shape[1:]
    alphas = alphas.to(x).expand(n, k).reshape(n * k, *(1,) * len(shape))
    delta = (x.detach().unsqueeze(1) - starts.detach()).reshape(n * k, *shape)
    points = (starts.detach().reshape(n * k, *shape) + alphas * delta).requires_grad_(True)
    logits = model(torch.cat([x.detach(), points]))
    (grad,) = torch.autograd.grad(select_target(logits[n:], target.repeat_interleave(k)).sum(),
                                  points, create_graph=True)
    terms = (delta * grad).reshape(n, k, *shape)
    return (weights.to(x).view(1, k, *(1,) * len(shape)) * terms).sum(1), logits[:n]


def attributions(prior: Prior, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 generator: torch.Generator | None = None):
    """The prior's attribution of ``target`` for the batch ``x``, and the logits of ``x`` from the
    same forward pass. EG draws its references from ``x`` itself."""
    if prior.attribution in ("x-gradient", "gradient"):
        if prior.attribution == "x-gradient" and not is_bias_free(model):
            raise InputError("the x-gradient prior needs a bias-free model (X-Gradient = IG only "
                             "without biases); use attribution 'gradient' or a bias-free model")
        return gradient_attribution(model, x, target, prior.attribution == "x-gradient")
    k = prior.k
    if prior.attribution == "ig":
        nodes, w = quadrature("gauss_legendre", k)
        starts = torch.zeros_like(x).unsqueeze(1).expand(-1, k, *x.shape[1:])
        return path_attribution(model, x, target, starts, torch.tensor(nodes), torch.tensor(w))
    n = x.shape[0]
    index = torch.randint(n, (n, k), generator=generator)
    alphas = torch.rand(n, k, generator=generator)
    starts = x[index.to(x.device)]
    return path_attribution(model, x, target, starts, alphas, torch.full((k,), 1.0 / k))


def rrr(attr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (mask * attr).pow(2).flatten(1).sum(1).mean()


def total_variation(attr: torch.Tensor) -> torch.Tensor:
    dh = (attr[..., 1:, :] - attr[..., :-1, :]).abs().flatten(1).sum(1)
    dw = (attr[..., :, 1:] - attr[..., :, :-1]).abs().flatten(1).sum(1)
    return (dh + dw).mean()


def gini(values: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of a nonnegative vector: 0 all equal, -> 1 all mass on one entry."""
    v, _ = values.flatten().sort()
    n = v.numel()
    rank = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    return ((2 * rank - n - 1) * v).sum() / (n * v.sum().clamp_min(1e-12))


def penalty(prior: Prior, attr: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The prior's value on a batch of attributions (before the weight)."""
    if prior.kind == "rrr":
        if mask is None:
            raise InputError("the rrr prior needs a mask of the region the model must not use")
        return rrr(attr, mask)
    if prior.kind == "tv":
        return total_variation(attr)
    return -gini(attr.abs().mean(0))


def prior_loss(prior: Prior, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               mask: torch.Tensor | None = None, generator: torch.Generator | None = None):
    """(task loss + weight * penalty, logits), from one forward pass through the model."""
    attr, logits = attributions(prior, model, x, y, generator)
    task = nn.functional.cross_entropy(logits, y)
    return task + prior.weight * penalty(prior, attr, mask), logits
