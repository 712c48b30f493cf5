"""B-cos contribution: the exact one-pass explanation of a B-cos network (Böhle et al. 2022)."""
from __future__ import annotations

import torch

from explorer.methods.core import out_of_memory_as_input_error, run_model, select_target
from explorer.methods.registry import MethodOutput, ReferenceValue, register_method
from explorer.models.bcos import capture_encoded, explanation_mode, is_bcos, logit_offset


def bcos_only(model: torch.nn.Module) -> str | None:
    """None on a B-cos network (B-cos units after an [x, 1 - x] encoder), else why not."""
    if is_bcos(model):
        return None
    return (f"{type(model).__name__} is not a B-cos network: the contribution map W(x) ⊙ x "
            "needs dynamic-linear B-cos layers (load a B-cos model, e.g. digits-bcos)")


@register_method(
    "bcos", label="B-cos contribution", completeness="exact",
    applies_to=bcos_only,
    description=(
        "W(x) ⊙ x on a B-cos network (Böhle et al. 2022): with the dynamic weights |cos|^(B-1) "
        "detached every layer is linear, so the logit is W(x) z for the encoded input "
        "z = [x, 1 - x], and z * dF/dz sums to the logit exactly (reference: 0, or B-cos v2's "
        "constant logit bias). One forward, one backward; each pixel's share is the sum over "
        "its two encoding channels."
    ),
)
def bcos_contribution(model, x, target, *, baseline=None) -> MethodOutput:
    store: list[torch.Tensor] = []
    with torch.enable_grad(), out_of_memory_as_input_error(x.shape[0]), \
            explanation_mode(), capture_encoded(store):
        logits = run_model(model, x)
        (z,) = store  # the encoder ran once: its output is the leaf we differentiate against
        (grad,) = torch.autograd.grad(select_target(logits, target).sum(), z)
    c = x.shape[1]
    contributions = (z.detach() * grad)
    contributions = contributions[:, :c] + contributions[:, c:]  # x's and (1 - x)'s shares
    # The reference value: 0, or B-cos v2's constant logit bias (the map sums to logit - bias)
    offset = torch.full((x.shape[0],), logit_offset(model), dtype=logits.dtype, device=x.device)
    return MethodOutput(contributions, references=ReferenceValue(offset))
