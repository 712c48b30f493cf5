"""One method, several baselines: how much the choice of "absence" decides the map.

As in Sturmfels, Lundberg and Lee, "Visualizing the Impact of Feature Attribution Baselines"
(Distill 2020): each baseline gives its own map, its own F(x') and its own completeness target.
A baseline may also be several references [N, K, ...]: the map is then the mean of the K maps,
and completeness is measured against the mean of F over the references.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from explorer.inputs.baselines import make_baseline
from explorer.analyses.checks import CompletenessReport, completeness
from explorer.errors import InputError
from explorer.inputs.input_space import PIXELS, InputSpace
from explorer.methods import METHODS, attribute
from explorer.methods.core import check_input, check_target
from explorer.runtime.precision import under_precision

DEFAULT_NAMES = ("zero", "black", "blur", "uniform", "gaussian")


@dataclass
class BaselineResult:
    name: str
    baseline: torch.Tensor          # [N, ...] x', or the mean of the references
    attributions: torch.Tensor      # [N, ...]
    report: CompletenessReport      # reference_output is F(x'), or the mean over references


def named_baselines(x: torch.Tensor, *, input_space: InputSpace = PIXELS,
                    names: Sequence[str] = DEFAULT_NAMES, references: torch.Tensor | None = None,
                    image: torch.Tensor | None = None,
                    sigmas: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
    """The baselines to compare, by display name: the named ones (equal ones merged, as
    ``"zero = black"``; ``sigmas`` sets a baseline's width, shown as ``"blur (sigma 2)"``), then
    ``"mean of K references"`` ([N, K, ...], when ``references`` [K, ...] are given) and
    ``"your image"`` (when given)."""
    out: dict[str, torch.Tensor] = {}
    sigmas = dict(sigmas or {})
    for base_name in names:
        sigma = sigmas.get(base_name)
        b = make_baseline(base_name, x, input_space=input_space, sigma=sigma)
        name = base_name if sigma is None else f"{base_name} (sigma {sigma:g})"
        same = next((k for k, v in out.items() if torch.equal(v, b)), None)
        if same is None:
            out[name] = b
        else:  # e.g. zero and black for a model fed pixels: one column, both names
            out = {(f"{k} = {name}" if k == same else k): v for k, v in out.items()}
    if references is not None:
        refs = references.detach().to(device=x.device, dtype=x.dtype)
        if refs.dim() != x.dim() or refs.shape[1:] != x.shape[1:] or refs.shape[0] == 0:
            raise InputError(f"references must be [K, {', '.join(map(str, x.shape[1:]))}], "
                             f"got {list(references.shape)}")
        out[f"mean of {refs.shape[0]} references"] = refs.unsqueeze(0).expand(x.shape[0], *refs.shape)
    if image is not None:
        out["your image"] = make_baseline("image", x, input_space=input_space, image=image)
    return out


@under_precision
def compare_baselines(model: torch.nn.Module, x: torch.Tensor, target,
                      baselines: Mapping[str, torch.Tensor], *,
                      method: str = "integrated_gradients", **hparams) -> list[BaselineResult]:
    """``method``'s map and completeness from each baseline (shaped like x, or [N, K, ...])."""
    if method not in METHODS or not METHODS[method].uses_baseline or method == "expected_gradients":
        raise InputError(f"compare_baselines needs a method that integrates from one baseline "
                         f"(integrated_gradients, deeplift, occlusion, ...), got {method!r}")
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    n = x.shape[0]
    results = []
    for name, b in baselines.items():
        b = b.detach().to(device=x.device, dtype=x.dtype)
        if b.dim() == x.dim() + 1 and b.shape[0] == n and b.shape[2:] == x.shape[1:]:
            k = b.shape[1]  # several references: the k maps of each input in one call
            maps = attribute(method, model, x.repeat_interleave(k, 0), t.repeat_interleave(k),
                             baseline=b.reshape(n * k, *x.shape[1:]), **hparams)
            attributions, refs, shown = maps.view(n, k, *x.shape[1:]).mean(1), b, b.mean(1)
        else:
            attributions = attribute(method, model, x, t, baseline=b, **hparams)
            refs = shown = b.expand_as(x)
        report = completeness(model, x, attributions, t, refs)
        results.append(BaselineResult(name, shown, attributions, report))
    return results
