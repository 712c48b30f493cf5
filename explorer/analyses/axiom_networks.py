"""Small constructed networks on which an axiom has a known answer, and twins of a model.

Each constructed network returns logits [N, 1] and comes with the input and baseline its
axiom is read on. ``rescaled_twin`` builds, from a given model, a network that computes the
same function with different internals (weights rescaled across a ReLU).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

# Leaves f with f(c z) = c f(z) for c > 0 that a rescaling may pass through unchanged.
_PASS_THROUGH = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
                 nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Case:
    """A constructed network and the point (input, baseline) the axiom is read at."""

    title: str
    model: nn.Module
    x: torch.Tensor         # [1, features]
    baseline: torch.Tensor  # [1, features]


def _linear(weight, bias) -> nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def _case(title: str, model: nn.Module, x, baseline) -> Case:
    return Case(title, model.eval(), torch.tensor([x], dtype=torch.float32),
                torch.tensor([baseline], dtype=torch.float32))


def saturating_unit() -> Case:
    """f(x) = 1 - ReLU(1 - x) at x = 2 from 0 (Sundararajan et al. 2017, sensitivity (a)):
    the output moves from 0 to 1, yet the gradient at x is 0."""
    net = nn.Sequential(_linear([[-1.0]], [1.0]), nn.ReLU(), _linear([[-1.0]], [1.0]))
    return _case("f(x) = 1 - ReLU(1 - x), x = 2, baseline 0", net, [2.0], [0.0])


def relu_pair() -> tuple[Case, Case]:
    """f = ReLU(ReLU(x1) - 1 - ReLU(x2)) and g = ReLU(ReLU(x1 - 1) - ReLU(x2)): the same function
    (Sundararajan et al. 2017); at x = (3, 1) from 0, DeepLIFT gives (1.5, -0.5) and (2, -1)."""
    f = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), nn.ReLU(),
                      _linear([[1.0, -1.0]], [-1.0]), nn.ReLU())
    g = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]], [-1.0, 0.0]), nn.ReLU(),
                      _linear([[1.0, -1.0]], [0.0]), nn.ReLU())
    return (_case("ReLU(ReLU(x1) - 1 - ReLU(x2))", f, [3.0, 1.0], [0.0, 0.0]),
            _case("ReLU(ReLU(x1 - 1) - ReLU(x2))", g, [3.0, 1.0], [0.0, 0.0]))


def sigmoid_pair() -> tuple[Case, Case]:
    """sigmoid(x) and 0.5 + 0.5 tanh(x / 2): the same function; the second adds its 0.5 as a
    bias after the nonlinearity, where epsilon-LRP loses it."""
    a = nn.Sequential(_linear([[1.0]], [0.0]), nn.Sigmoid())
    b = nn.Sequential(_linear([[0.5]], [0.0]), nn.Tanh(), _linear([[0.5]], [0.5]))
    return (_case("sigmoid(x)", a, [2.0], [0.0]),
            _case("0.5 + 0.5 tanh(x / 2)", b, [2.0], [0.0]))


def symmetric_with_dummy() -> Case:
    """F(x1, x2, x3) = ReLU(x1 + 2 x2 - 1) + ReLU(2 x1 + x2 - 1) + ReLU(x1 + x3) - ReLU(x1 + x3):
    symmetric in x1 and x2; x3 is wired in but F does not depend on it (a dummy)."""
    net = nn.Sequential(
        _linear([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0]],
                [-1.0, -1.0, 0.0, 0.0]),
        nn.ReLU(),
        _linear([[1.0, 1.0, 1.0, -1.0]], [0.0]),
    )
    return _case("symmetric in x1, x2; x3 a dummy", net, [0.4, 0.4, 1.0], [0.0, 0.0, 0.0])


def rescaled_twin(model: nn.Module, x: torch.Tensor, scale: float = 3.0,
                  rtol: float = 1e-4) -> tuple[nn.Module, str] | None:
    """A copy of ``model`` with W1 -> c W1 (and its bias) and W2 -> W2 / c for the first two
    weighted layers with only ReLU-like layers between them (in registration order), checked to
    compute the same logits on ``x``; None when no such pair is found."""
    names = [n for n, m in model.named_modules() if not list(m.children())]
    leaves = dict(model.named_modules())
    with torch.no_grad():
        reference = model(x)
    for i, first in enumerate(names):
        if not isinstance(leaves[first], _WEIGHTED):
            continue
        j = i + 1
        while j < len(names) and isinstance(leaves[names[j]], _PASS_THROUGH):
            j += 1
        if j == i + 1 or j == len(names) or not isinstance(leaves[names[j]], _WEIGHTED):
            continue
        twin = copy.deepcopy(model)
        a, b = twin.get_submodule(first), twin.get_submodule(names[j])
        with torch.no_grad():
            a.weight.mul_(scale)
            if a.bias is not None:
                a.bias.mul_(scale)
            b.weight.div_(scale)
            same = (twin(x) - reference).abs().max() <= rtol * reference.abs().max().clamp_min(1e-12)
        if bool(same):
            return twin, f"'{first}' x {scale:g}, '{names[j]}' / {scale:g}"
    return None
