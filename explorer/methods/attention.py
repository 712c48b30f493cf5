"""Attention rollout (Abnar & Zuidema 2020): how much each patch token feeds the class token,
through every layer's attention, residual connections included. Transformers only."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explorer.methods.core import run_model, select_target
from explorer.runtime.tensors import this_thread_only
from explorer.methods.registry import Cost, MethodOutput, register_method
from explorer.models.transformers import attention_probabilities, token_grid

NEEDS = ("attention rollout needs a vision transformer with a class token in timm's layout "
         "(patch_embed.grid_size, blocks[i].attn with qkv, num_heads and scale)")


def _applies(model: nn.Module) -> str | None:
    layout = token_grid(model)
    if layout is None:
        return f"{NEEDS}; this model has no such attention blocks"
    if layout.prefix < 1:
        return f"{NEEDS}; this one has no class token (global pool {layout.pool!r})"
    return None


def rollout_tokens(model: nn.Module, x: torch.Tensor,
                   target: torch.Tensor | None = None) -> torch.Tensor:
    """[N, rows, cols]: the class token's row of the rolled-out attention, on the patch grid.

    ``target``, when given, is checked against the logits like every method's (the map itself
    does not depend on it), so a class the model does not have is refused here too."""
    layout = token_grid(model)
    inputs = {}

    def capture(name):
        @this_thread_only
        def hook(module, args):
            inputs.setdefault(name, args[0])  # the first call if a block is reused
        return hook

    handles = [model.get_submodule(name).register_forward_pre_hook(capture(name))
               for name in layout.attentions]
    try:
        with torch.no_grad():
            output = run_model(model, x)
            if target is not None:
                select_target(output, target)
            rolled = None
            for name in layout.attentions:
                attn = attention_probabilities(model.get_submodule(name), inputs[name]).mean(1)
                eye = torch.eye(attn.shape[-1], dtype=attn.dtype, device=attn.device)
                hat = attn + eye  # the residual connection
                hat = hat / hat.sum(-1, keepdim=True)
                rolled = hat if rolled is None else hat @ rolled
    finally:
        for h in handles:
            h.remove()
    rows, cols = layout.grid
    return rolled[:, 0, layout.prefix:].reshape(x.shape[0], rows, cols)


@register_method(
    "attention_rollout", label="Attention rollout",
    cost=lambda p, shape: Cost(1, 0),
    applies_to=_applies,
    description=(
        "Abnar & Zuidema (2020): per layer the head-averaged attention plus the identity (the "
        "residual), rows normalised; multiplied from the first layer to the last. The class "
        "token's row over the patch tokens, upsampled bilinearly to the image and spread evenly "
        "over its channels. The same map for every class (attention does not know the target); "
        "it promises no completeness."
    ),
)
def attention_rollout(model, x, target, *, baseline=None) -> MethodOutput:
    tokens = rollout_tokens(model, x, target)[:, None].to(x.dtype)
    grid = F.interpolate(tokens, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return MethodOutput((grid / x.shape[1]).expand_as(x).contiguous())
