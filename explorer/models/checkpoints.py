"""Loading weights: official X-DNN checkpoints, plain state dicts, downloads with a cache.

Always ``torch.load(..., weights_only=True)``: a checkpoint is data, never code.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from explorer.errors import InputError

PAPER_URL = ("https://download.visinf.tu-darmstadt.de/data/2021-neurips-fast-axiomatic-"
             "attribution/models/{name}_model_best.pth.tar")
OFFLINE_ENV = "EXPLORER_OFFLINE"


class WeightsUnavailable(InputError):
    """Pretrained weights are neither cached nor downloadable (no network, or offline mode)."""


def cache_dir() -> Path:
    """Where downloads go: torch hub's checkpoint cache, as torchvision uses."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_url(source: str | os.PathLike) -> bool:
    return urlparse(str(source)).scheme in ("http", "https")


def fetch(url: str, *, progress: bool = True) -> Path:
    """The cached copy of ``url``, downloading it first if needed (with a progress bar)."""
    target = cache_dir() / Path(urlparse(url).path).name
    if target.exists():
        return target
    if os.environ.get(OFFLINE_ENV):
        raise WeightsUnavailable(
            f"{target.name} is not cached and downloads are off ({OFFLINE_ENV} is set); "
            "load with pretrained=False for random weights"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=progress and sys.stderr.isatty())
    except Exception as err:  # no network, DNS failure, HTTP error, disk full
        partial.unlink(missing_ok=True)
        raise WeightsUnavailable(
            f"could not download {url} ({type(err).__name__}: {err}); with no network, "
            "load with pretrained=False for random weights"
        ) from err
    partial.rename(target)
    return target


def read_state_dict(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a file or URL: official format ({'state_dict': ..., 'arch': ...},
    'module.' anywhere in the keys) or a plain state dict."""
    path = fetch(str(source)) if is_url(source) else Path(source)
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(
            f"could not read checkpoint {path.name}: {type(err).__name__}: {err}. It must be a "
            "torch.save'd state dict (or the official dict with 'state_dict'), loadable with "
            "weights_only=True"
        ) from err
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(f"checkpoint {path.name} holds no state dict of tensors")
    # DataParallel wraps put 'module.' at the front or in the middle (features.module.0.weight).
    return {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in data.items()}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, name: str = "model") -> nn.Module:
    """Load ``state`` strictly, listing what is missing, unexpected or of another shape."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        def show(items):
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")
        parts = [f"{label} ({len(items)}): {show(items)}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected),
                  ("shape mismatches", shapes)) if items]
        raise InputError(f"checkpoint does not fit {name}: " + "; ".join(parts))
    model.load_state_dict(state)
    return model
