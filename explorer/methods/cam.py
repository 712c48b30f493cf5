"""Grad-CAM (Selvaraju et al. 2017): class activation maps from a convolutional layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explorer.errors import InputError
from explorer.methods.core import run_model, select_target
from explorer.runtime.tensors import this_thread_only
from explorer.methods.registry import MethodOutput, Param, register_method
from explorer.models.transformers import token_grid, tokens_to_maps


def find_layer(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    """The named layer; when ``name`` is empty, the last block's first LayerNorm on a vision
    transformer (its patch tokens feed the class token through that block's attention), else
    the last Conv2d."""
    layout = token_grid(model)
    if not name and layout is not None:
        name = f"{layout.blocks[-1]}.norm1"
        if not hasattr(model.get_submodule(layout.blocks[-1]), "norm1"):
            raise InputError("grad_cam: this transformer's blocks have no norm1; name a layer "
                             "whose output holds the tokens with 'layer'")
    if name:
        try:
            return name, model.get_submodule(name)
        except AttributeError:
            convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            raise InputError(f"grad_cam: no layer {name!r}; convolutional layers: "
                             f"{convs}") from None
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError("grad_cam: the model has no Conv2d layer; name a layer with 'layer'")
    return convs[-1]


@register_method(
    "grad_cam", label="Grad-CAM",
    params=(Param("layer", str, "", help="Layer name (e.g. 'features.3'); empty: last Conv2d, "
                                         "or on a vision transformer the last block's norm1."),),
    description=(
        "ReLU(sum_k w_k A_k) with w_k the spatial mean of dF/dA_k at a conv layer, upsampled "
        "bilinearly to the input and spread evenly over its channels (the channel sum is the "
        "CAM). On a vision transformer A is a layer's patch tokens on their 2-D grid (class "
        "tokens dropped). A coarse localisation: it promises no completeness."
    ),
)
def grad_cam(model, x, target, *, baseline=None, layer) -> MethodOutput:
    if x.dim() != 4:
        raise InputError("grad_cam needs images [N, C, H, W]")
    name, module = find_layer(model, layer)
    layout = token_grid(model)
    captured = {}

    def as_maps(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 3 and layout is not None:  # tokens [N, T, D]: patch tokens on their grid
            try:
                return tokens_to_maps(t, layout)
            except ValueError as err:
                raise InputError(f"grad_cam: layer {name!r}: {err}") from None
        return t

    @this_thread_only
    def hook(mod, inputs, output):
        if not isinstance(output, torch.Tensor) or as_maps(output).dim() != 4:
            raise InputError(f"grad_cam: layer {name!r} does not output feature maps [N, K, h, w]"
                             " (or the tokens of a vision transformer)")
        captured.setdefault("a", output)  # the first call if the layer is reused

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            selected = select_target(run_model(model, xx), target)
            if "a" not in captured:
                raise InputError(f"grad_cam: layer {name!r} was not used in forward()")
            acts = captured["a"]
            (grad,) = torch.autograd.grad(selected.sum(), acts)
    finally:
        handle.remove()
    acts, grad = as_maps(acts), as_maps(grad)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return MethodOutput((cam / x.shape[1]).expand_as(x).contiguous().to(x.dtype))
