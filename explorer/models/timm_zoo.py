"""``timm/<name>``: timm's image models by name, vision transformers included.

The architecture comes from timm's code (installed, trusted); pretrained weights come from
timm's hub when a network is there. Offline (or with ``EXPLORER_OFFLINE`` set) the model loads
with random weights, labelled untrained, like the zoo's ImageNet models.
"""
from __future__ import annotations

import os

import torch

from explorer.errors import InputError
from explorer.models.checkpoints import OFFLINE_ENV, WeightsUnavailable
from explorer.models.zoo import ModelSpec

TRIED = ("vit_tiny_patch16_224", "convnext_atto", "resnet18")  # tested by name (random weights)


def _timm():
    try:
        import timm
    except ImportError as err:
        raise InputError("timm/<name> models need timm: pip install 'attribution-explorer[timm]'"
                         ) from err
    return timm


def timm_spec(spec: str) -> ModelSpec:
    """The ModelSpec of 'timm/<name>': input size and normalisation from timm's config."""
    from explorer.models.spec import InputDescription, module_spec
    timm = _timm()
    name = spec.split("/", 1)[1]
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8]
        raise InputError(f"timm has no model {name!r}" + (
            f"; did you mean {', '.join('timm/' + c for c in close)}?" if close else
            "; see timm.list_models()"))
    with torch.random.fork_rng(devices=[]):  # the same random weights on every load
        torch.manual_seed(0)
        module = timm.create_model(name, pretrained=False)
    cfg = timm.data.resolve_data_config({}, model=module)
    channels, height, width = cfg["input_size"]
    if height != width:
        raise InputError(f"timm/{name} takes {height} x {width} inputs; only square inputs are "
                         "supported")
    description = InputDescription(channels=int(channels), size=int(height),
                                   mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    return module_spec(
        spec, f"timm {name}", "timm",
        f"timm's {name} ({type(module).__name__}); pretrained weights from timm's hub when a "
        "network is there. Bias-free: its biases removed, no retraining.",
        module, description, weights={False: ("timm", name), True: None})


def pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """timm's pretrained weights of ``name`` (its own download and cache)."""
    if os.environ.get(OFFLINE_ENV):
        raise WeightsUnavailable(f"timm/{name}: pretrained weights are not fetched while "
                                 f"{OFFLINE_ENV} is set; load with pretrained=False for random "
                                 "weights")
    try:
        return _timm().create_model(name, pretrained=True).state_dict()
    except Exception as err:  # no network, no weights published for it, hub error
        raise WeightsUnavailable(f"timm/{name}: pretrained weights could not be had "
                                 f"({type(err).__name__}: {err}); load with pretrained=False "
                                 "for random weights") from err
