"""Modified-gradient methods (Ancona et al. 2018): DeepLIFT (Rescale) and epsilon-LRP.

Both are Gradient x Input where linear layers back-propagate normally and each elementwise
nonlinearity y = f(z) passes the gradient on multiplied by a replacement for f'(z):

- epsilon-LRP: f(z) / (z + eps * sign(z));
- DeepLIFT-Rescale: (f(z) - f(z_ref)) / (z - z_ref), or f'(z) where |z - z_ref| < 1e-5; the
  result is multiplied by (x - baseline).

How: x and the baseline go through the network in *one* batch, so every call of an activation
module sees its own input and reference pre-activations side by side. A module reused inside
``forward`` is therefore handled call by call (Captum's DeepLift stores one reference per module
and goes wrong there). For DeepLIFT, MaxPool2d gets a rescale rule of its own (see
``_rescaled_max_pool``) that keeps it complete; other max-pooling layers keep their ordinary
gradient (the winner at x), and there completeness is only approximate. A nonlinearity called
as a function in ``forward`` (torch.relu, F.gelu, x.clamp(min=0), ...) cannot be hooked: it is
detected and refused with an InputError instead of returning a silently wrong map. Hooks live in a context
manager that removes them even on error.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch._C import DisableTorchFunction
from torch.overrides import TorchFunctionMode

from explorer.errors import InputError
from explorer.methods.core import check_baseline, run_model, select_target, this_thread_only
from explorer.methods.registry import Cost, MethodOutput, Param, register_method

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
               nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Mish, nn.Hardtanh, nn.ReLU6, nn.Hardswish,
               nn.Hardsigmoid, nn.Softsign, nn.LogSigmoid)
# Layers that are neither linear nor elementwise: no modified-gradient rule applies.
UNSUPPORTED = (nn.Softmax, nn.LogSoftmax, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
               nn.InstanceNorm2d, nn.InstanceNorm3d, nn.MultiheadAttention, nn.Bilinear)
_FUNCTIONAL = {
    F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
    F.leaky_relu, F.elu, F.celu, F.selu, F.gelu, F.silu, F.mish, F.softplus, F.hardtanh,
    F.relu6, F.hardswish, F.hardsigmoid, F.softsign, F.logsigmoid,
    torch.sigmoid, torch.Tensor.sigmoid, torch.tanh, torch.Tensor.tanh, F.sigmoid, F.tanh,
    torch.clamp, torch.Tensor.clamp, torch.clamp_min, torch.Tensor.clamp_min, torch.Tensor.clamp_,
    F.softmax, torch.softmax, torch.Tensor.softmax, F.log_softmax, F.layer_norm, F.group_norm,
}
RESCALE_FALLBACK = 1e-5


def rule_reason(model: nn.Module) -> str | None:
    """Why the modified-gradient rules cannot run on ``model`` (a layer that is neither linear
    nor elementwise, e.g. a ViT's LayerNorm), or None. Nonlinearities called as functions are
    found only when the model runs (``_modified_input_gradients``)."""
    found = sorted({type(m).__name__ for m in model.modules() if isinstance(m, UNSUPPORTED)})
    return (f"no modified-gradient rule for {', '.join(found)} (neither linear nor elementwise)"
            if found else None)


class _FunctionalWatch(TorchFunctionMode):
    """Records nonlinear functions called outside a hooked activation module."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.offenders: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.depth == 0 and func in _FUNCTIONAL:
            self.offenders.append(getattr(func, "__qualname__", str(func)))
        return func(*args, **(kwargs or {}))


def _rescaled_max_pool(module: nn.MaxPool2d, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Max-pooling for DeepLIFT: the batch is [x; reference]. Per window, y - y_ref goes through
    x's winner when y >= y_ref and through the reference's winner otherwise, each divided by
    that position's input difference; multipliers stay in [0, 1] and the layer stays complete.
    Overlapping windows add up (scatter_add), unlike max_unpool which would overwrite."""
    n = z.shape[0] // 2
    zd, yd = z.detach(), y.detach()
    _, idx = F.max_pool2d(zd, module.kernel_size, module.stride, module.padding, module.dilation,
                          module.ceil_mode, return_indices=True)
    top = torch.maximum(yd[:n], yd[n:])
    dz = (zd[:n] - zd[n:]).flatten(2)
    z_x = z[:n].flatten(2)
    x_winner = idx[:n].flatten(2)
    linear = None
    # The two shares sum to y - y_ref: through x's winner, then through the reference's.
    for share, where in ((top - yd[n:], x_winner), (yd[:n] - top, idx[n:].flatten(2))):
        dz_w = dz.gather(2, where)
        small = dz_w.abs() < RESCALE_FALLBACK
        weight = torch.where(small, (where == x_winner).to(dz_w.dtype),
                             share.flatten(2) / torch.where(small, 1.0, dz_w))
        term = z_x.gather(2, where) * weight
        linear = term if linear is None else linear + term
    linear = linear.view_as(yd[:n])
    # Value y; gradient of the x half: the linear map above. The reference half needs none.
    return torch.cat([yd[:n] + (linear - linear.detach()), yd[n:]])


def _local_derivative(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) of an elementwise module, by autograd on a detached copy (ReLU: directly)."""
    if type(module) is nn.ReLU:  # the common case, without an autograd call per activation
        return (z > 0).to(z.dtype)  # autograd's ReLU derivative: 0 at z = 0 too
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(module(zz * 1.0).sum(), zz)
    return grad


@contextlib.contextmanager
def modified_gradients(model: nn.Module, rule: str, *,
                       eps: float = 1e-9) -> Iterator[_FunctionalWatch]:
    """Inside the block, every elementwise activation back-propagates with ``rule``.

    ``rule`` "epsilon": f(z) / (z + eps sign z). ``rule`` "rescale": the batch is
    [inputs; references] and each call's multiplier comes from its two halves (DeepLIFT).
    Yields the watch that records nonlinearities called as functions; enter it around the
    forward pass only (each operation inside it pays a Python dispatch).
    """
    watch = _FunctionalWatch()
    stash: list[torch.Tensor] = []
    bypass = [False]
    handles = []

    # The hooks' own arithmetic is ours, not the model's: it runs with torch-function handling
    # off, so the watch does not pay a Python dispatch per operation (most of a small model's
    # operations are in these hooks).
    @this_thread_only
    def pre_hook(module, inputs):
        if bypass[0]:
            return None
        watch.depth += 1
        z = inputs[0]
        stash.append(z)
        if getattr(module, "inplace", False):
            # An in-place activation would overwrite z; run it on a copy and keep z for the rule.
            with DisableTorchFunction():
                return (z.clone(),) + tuple(inputs[1:])
        return None

    @this_thread_only
    def post_hook(module, inputs, output):
        if bypass[0]:
            return None
        with DisableTorchFunction():
            z = stash.pop()
            zd, yd = z.detach(), output.detach()
            if rule == "epsilon":
                m = yd / torch.where(zd >= 0, zd + eps, zd - eps)
            else:
                n = zd.shape[0] // 2
                dz = zd[:n] - zd[n:]
                dy = yd[:n] - yd[n:]
                bypass[0] = True
                try:
                    slope = _local_derivative(module, zd[:n])
                finally:
                    bypass[0] = False
                small = dz.abs() < RESCALE_FALLBACK
                half = torch.where(small, slope, dy / torch.where(small, 1.0, dz))
                m = torch.cat([half, half])
            watch.depth -= 1  # only now: the derivative above runs the module's own functions
            # Value y (z - zd is exactly 0), gradient m w.r.t. z: bypasses f's own backward.
            return yd + (z - zd) * m

    @this_thread_only
    def pool_pre_hook(module, inputs):
        stash.append(inputs[0])

    @this_thread_only
    def pool_post_hook(module, inputs, output):
        with DisableTorchFunction():
            return _rescaled_max_pool(module, stash.pop(), output)

    try:
        unsupported = set()
        for module in model.modules():
            if isinstance(module, ELEMENTWISE):
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(post_hook))
            elif rule == "rescale" and isinstance(module, nn.MaxPool2d):
                handles.append(module.register_forward_pre_hook(pool_pre_hook))
                handles.append(module.register_forward_hook(pool_post_hook))
            elif isinstance(module, UNSUPPORTED):
                unsupported.add(type(module).__name__)
        if unsupported:
            raise InputError(f"{rule}: no modified-gradient rule for "
                             f"{', '.join(sorted(unsupported))} (neither linear nor elementwise)")
        yield watch
    finally:
        for h in handles:
            h.remove()


def _modified_input_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                              rule: str, method: str, *, eps: float = 1e-9) -> torch.Tensor:
    """d logit[target] / d inputs[:N] under ``rule`` (N = len(target)); refuses functional
    nonlinearities it could not modify."""
    n = target.shape[0]
    with torch.enable_grad(), modified_gradients(model, rule, eps=eps) as watch:
        xx = inputs.detach().requires_grad_(True)
        with watch:
            out = run_model(model, xx)
        selected = select_target(out[:n], target)
        if watch.offenders:
            names = ", ".join(sorted(set(watch.offenders)))
            raise InputError(
                f"{method}: the model calls {names} as a function in forward(); its rule can only "
                "be applied to activation modules (nn.ReLU, ...). Use modules, or another method."
            )
        (grad,) = torch.autograd.grad(selected.sum(), xx)
    return grad[:n].detach()


@register_method(
    "deeplift", label="DeepLIFT (Rescale)", uses_baseline=True, completeness="exact",
    cost=lambda p, shape: Cost(2, 2),  # x and its baseline go through in one batch
    description=(
        "Gradient x (x - baseline) with each nonlinearity's derivative replaced by the "
        "difference quotient (f(z) - f(z_ref)) / (z - z_ref) (Shrikumar et al. 2017). Complete "
        "for any baseline on ReLU networks, MaxPool2d included (its own rescale rule)."
    ),
    baseline_help="One baseline per input, or one for all (default: zeros).",
    applies_to=rule_reason,
)
def deeplift(model, x, target, *, baseline=None) -> MethodOutput:
    base = check_baseline(baseline, x, "deeplift")
    grad = _modified_input_gradients(model, torch.cat([x, base]), target, "rescale", "deeplift")
    return MethodOutput((x - base) * grad, references=base.unsqueeze(1))


@register_method(
    "epsilon_lrp", label="epsilon-LRP",
    params=(Param("eps", float, 1e-9, 1e-12, 1.0,
                  help="Stabiliser of f(z) / (z + eps sign z); small eps on ReLU nets gives "
                       "Input x Gradient."),),
    description=(
        "Layer-wise relevance propagation with the epsilon rule (Bach et al. 2015), computed as "
        "Gradient x Input with f'(z) replaced by f(z) / (z + eps sign z). Relevance absorbed by "
        "biases is lost, so it is complete only on a bias-free network."
    ),
    completeness="homogeneous",
    applies_to=rule_reason,
)
def epsilon_lrp(model, x, target, *, baseline=None, eps) -> MethodOutput:
    grad = _modified_input_gradients(model, x, target, "epsilon", "epsilon_lrp", eps=eps)
    if not torch.isfinite(grad).all() and all(torch.isfinite(p).all() for p in model.parameters()):
        # (NaN weights are reported by explain's NumericalWarning instead.)
        # f(z) / (z + eps) is f(0) / eps at z = 0: for activations with f(0) != 0 (sigmoid,
        # ...) a small eps multiplies relevance by ~1/eps per layer until it overflows.
        offsets = sorted({type(m).__name__ for m in model.modules()
                          if isinstance(m, ELEMENTWISE) and not isinstance(m, nn.ReLU)})
        raise InputError(
            f"epsilon_lrp: the relevance overflowed to NaN/Inf with eps={eps:g}"
            + (f" ({', '.join(offsets)} at z near 0 gives f(0) / eps)" if offsets else "")
            + ": use a larger eps (e.g. 1e-3) or another method"
        )
    return MethodOutput(x * grad, references=torch.zeros_like(x).unsqueeze(1))
