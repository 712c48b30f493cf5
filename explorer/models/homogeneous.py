"""Bias removal (model surgery on a copy) and what keeps a network from being homogeneous.

A network F is positively homogeneous when F(a x) = a F(x) for a >= 0. ReLU networks become so
once every additive offset is gone: conv/linear biases and the shift of batch norm (in eval mode
BN is y = (g/s) x + (b - g m / s); the scale g/s stays, the offset goes).
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from explorer.errors import InputError, NumericalWarning
from explorer.runtime.tensors import on_model_device
from explorer.models.transformers import is_softmax_attention
from explorer.runtime.precision import under_precision

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d, nn.Linear)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_NORMS_WITH_OFFSET = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                      nn.InstanceNorm3d)
# Leaf modules with f(a x) = a f(x) for a >= 0 (padding modes and interpolation are linear).
_HOMOGENEOUS = _WEIGHTED + (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
    nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d,
    nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
    nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle,
)
_NON_HOMOGENEOUS = (nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Softmax, nn.LogSoftmax, nn.ELU,
                    nn.SELU, nn.CELU, nn.Softplus, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                    nn.ReLU6, nn.Mish, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid,
                    nn.MultiheadAttention, nn.Bilinear) + _NORMS_WITH_OFFSET


# A transformer's learned tokens and position embedding are added to (or put beside) the
# input's tokens whatever its scale: offsets, like biases.
_LEARNED_TOKENS = ("pos_embed", "cls_token", "reg_token", "dist_token")


class ChannelScale(nn.Module):
    """Multiply channel c (dim 1) by scale[c]: eval-mode batch norm with its offset removed."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view((1, -1) + (1,) * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"


@dataclass(frozen=True)
class Obstacle:
    """A layer that keeps the network from being homogeneous."""

    layer: str
    type: str
    reason: str


def _batch_norm_scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    var = bn.running_var if bn.running_var is not None else torch.ones(bn.num_features)
    weight = bn.weight if bn.weight is not None else torch.ones_like(var)
    return (weight / torch.sqrt(var + bn.eps)).detach()


def _batch_norm_offset(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    mean = bn.running_mean if bn.running_mean is not None else torch.zeros(bn.num_features)
    bias = bn.bias if bn.bias is not None else torch.zeros_like(mean)
    return (bias - _batch_norm_scale(bn) * mean).detach()


def _is_nonzero(t: torch.Tensor | None) -> bool:
    return t is not None and bool((t.detach() != 0).any())


def homogeneity_obstacles(model: nn.Module) -> list[Obstacle]:
    """Every layer that keeps ``model`` from being homogeneous, with the reason.

    Offsets (biases, batch-norm shifts, bias-like parameters of custom modules), layers that are
    not homogeneous (sigmoid, tanh, GELU, SiLU, softmax, LayerNorm, ...) and leaf layers of an
    unknown type. Functional calls inside ``forward`` cannot be seen: ``homogeneity_error``
    measures what the network actually does.
    """
    found: list[Obstacle] = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        label = name or "(model)"
        declared = getattr(module, "homogeneity_obstacle", None)  # a custom layer says why
        if declared:
            found.append(Obstacle(label, kind, declared))
        elif isinstance(module, _WEIGHTED) and _is_nonzero(module.bias):
            found.append(Obstacle(label, kind, "additive bias"))
        elif isinstance(module, _BATCH_NORMS):
            if module.running_mean is None:
                found.append(Obstacle(label, kind, "normalises with batch statistics"))
            elif _is_nonzero(_batch_norm_offset(module)):
                found.append(Obstacle(label, kind, "batch-norm shift (b - g m / s)"))
        elif isinstance(module, _NON_HOMOGENEOUS):
            found.append(Obstacle(label, kind, "not homogeneous: f(a x) != a f(x)"))
        elif is_softmax_attention(module):
            found.append(Obstacle(label, kind, "softmax attention: softmax(a q k^T) changes "
                                  "with the input's scale, not homogeneous"))
        elif isinstance(module, (_HOMOGENEOUS, ChannelScale)):
            pass
        else:
            offsets = [p for p, v in module.named_parameters(recurse=False)
                       if (p.startswith("bias") or p in _LEARNED_TOKENS) and _is_nonzero(v)]
            if offsets:
                found.append(Obstacle(label, kind, f"additive offset parameter(s) {offsets}"))
            elif not list(module.children()):
                found.append(Obstacle(label, kind, "unknown layer type: homogeneity not known"))
    return found


def is_bias_free(model: nn.Module) -> bool:
    """True when no layer adds an offset (activations may still be non-homogeneous)."""
    return not any("bias" in o.reason or "offset" in o.reason or "shift" in o.reason
                   for o in homogeneity_obstacles(model))


def remove_biases(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every additive offset removed; the original is untouched.

    Conv/linear biases are dropped; batch norm is replaced by a ``ChannelScale`` with its eval
    statistics folded in (g / sqrt(var + eps)); LayerNorm/GroupNorm/InstanceNorm lose their
    bias; other parameters whose name starts with "bias" are zeroed. Layers that stay
    non-homogeneous are listed by ``homogeneity_obstacles`` on the result.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"remove_biases needs a torch.nn.Module, got {type(model).__name__}")
    clone = copy.deepcopy(model)
    replacements = []
    for name, module in clone.named_modules():
        if isinstance(module, _WEIGHTED + _NORMS_WITH_OFFSET):
            if getattr(module, "bias", None) is not None:
                module.bias = None
        elif isinstance(module, _BATCH_NORMS):
            if module.running_var is not None:
                replacements.append((name, ChannelScale(_batch_norm_scale(module))))
        else:
            with torch.no_grad():
                for pname, param in module.named_parameters(recurse=False):
                    if pname.startswith("bias"):
                        param.zero_()
    for name, new in replacements:
        parent_name, _, child = name.rpartition(".")
        parent = clone.get_submodule(parent_name) if parent_name else clone
        device = next(iter(parent.get_submodule(child).buffers())).device
        setattr(parent, child, new.to(device))
    return clone


@under_precision
@torch.no_grad()
def homogeneity_error(model: nn.Module, x: torch.Tensor,
                      scales: tuple[float, ...] = (0.5, 2.0, 3.0)) -> float:
    """max over a in ``scales`` and samples of ||F(a x) - a F(x)||_inf / ||a F(x)||_inf;
    NaN (or Inf) when the outputs are not finite: never a reassuring 0."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise InputError("homogeneity_error needs a batch x [N, ...]")
    if any(a <= 0 for a in scales):
        raise InputError(f"homogeneity scales must be > 0, got {scales}")
    x = on_model_device(model, x)
    out = model(x)
    n = out.shape[0]
    errors, finite = [], [torch.isfinite(out).all()]
    for a in scales:
        expected = (a * out).reshape(n, -1)
        scaled = model(a * x).reshape(n, -1)
        finite.append(torch.isfinite(scaled).all())
        diff = (scaled - expected).abs().amax(1)
        scale = expected.abs().amax(1).clamp_min(torch.finfo(out.dtype).tiny)
        errors.append((diff / scale).max())
    error = float(torch.stack(errors).max())  # torch's max propagates NaN, Python's does not
    if not bool(torch.stack(finite).all()) or not math.isfinite(error):
        # the same warning the methods give (explain): a non-finite number is never silent
        warnings.warn("homogeneity_error: the model's outputs are NaN or Inf on x or its scaled "
                      f"copies (scales {scales}): the weights or the input overflow, and the "
                      f"error ({error}) is not meaningful", NumericalWarning, stacklevel=2)
    return error
