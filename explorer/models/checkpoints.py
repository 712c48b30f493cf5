"""Loading weights: official X-DNN checkpoints, plain state dicts, downloads with a cache.

Always ``torch.load(..., weights_only=True)``: a checkpoint is data, never code.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from explorer.errors import InputError, NumericalWarning

PAPER_URL = ("https://download.visinf.tu-darmstadt.de/data/2021-neurips-fast-axiomatic-"
             "attribution/models/{name}_model_best.pth.tar")
OFFLINE_ENV = "EXPLORER_OFFLINE"


class WeightsUnavailable(InputError):
    """Pretrained weights are neither cached nor downloadable (no network, or offline mode)."""


# sha256 of the X-DNN paper's released checkpoints, by file stem. Unknown to this project so far
# (the files could not be downloaded where it was built): None means "not verified"; fill
# them in and every cached or downloaded copy is checked against them.
PAPER_SHA256: dict[str, str | None] = {
    "xalexnet": None, "xvgg16": None, "alexnet": None, "vgg16": None,
    "fixup_resnet50": None, "xfixup_resnet50": None,
}
# torch hub's convention, used by torchvision's weights: name-<first hex digits of sha256>.ext
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def cache_dir() -> Path:
    """Where downloads go: torch hub's checkpoint cache, as torchvision uses."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_url(source: str | os.PathLike) -> bool:
    return urlparse(str(source)).scheme in ("http", "https")


def paper_url(stem: str) -> str:
    return PAPER_URL.format(name=stem)


def expected_hash(url: str) -> tuple[bool, str | None, str | None]:
    """(known, sha256, hash_prefix) of a download: the paper's checkpoints by their recorded
    sha256, torchvision-style names by the hash prefix in the file name; any other URL is a
    user's, unknown."""
    for stem, digest in PAPER_SHA256.items():
        if url == paper_url(stem):
            return True, digest, None
    name = Path(urlparse(url).path).name
    match = _HASH_IN_NAME.search(name)
    if urlparse(url).netloc == "download.pytorch.org" and match:
        return True, None, match.group(1)
    return False, None, None


def cached_path(url: str) -> Path:
    """Known files under their own name (as torchvision caches them); a user's URL under the
    sha256 of the whole URL plus its name, in its own folder, so it can never take the place
    of a known file or of another URL's file."""
    name = Path(urlparse(url).path).name or "download"
    if expected_hash(url)[0]:
        return cache_dir() / name
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    return cache_dir() / "user-urls" / f"{digest}-{name}"


def verify(path: Path, url: str) -> None:
    """InputError unless ``path`` has the hash recorded for ``url`` (when one is known)."""
    _, digest, prefix = expected_hash(url)
    if digest is None and prefix is None:
        return
    actual = file_sha256(path)
    if (digest and actual != digest) or (prefix and not actual.startswith(prefix)):
        raise InputError(
            f"{path.name} fails its integrity check (sha256 {actual[:16]}..., expected "
            f"{(digest or prefix)[:16]}...): it is not the published file. It was refused; "
            f"delete {path} to download it again"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, *, progress: bool = True) -> Path:
    """The cached copy of ``url``, downloading it first if needed (with a progress bar); known
    files are checked against their published or recorded hash, cached or fresh."""
    target = cached_path(url)
    if target.exists():
        verify(target, url)
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
    try:
        verify(partial, url)
    except InputError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)
    return target


def _load_error(err: Exception) -> str:
    """torch's refusal, without colour codes and without its advice to unpickle anyway."""
    text = _ANSI.sub("", str(err))
    found = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if found:
        text = found.group(1).split(" Please use")[0]
    text = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return text if "weights_only" not in text else "it is not a plain tensor checkpoint"


# Formats whose loaders run code from the file: refused before anything reads them.
CODE_FORMATS = {
    "pt2": "a torch.export .pt2 archive: torch.export.load unpickles parts of it with "
           "weights_only=False (public code-execution proofs through torch 2.13)",
    "package": "a torch.package archive: loading it imports the Python code packed inside",
}
WHOLE_MODEL_ADVICE = ("give the architecture as code (path/to/file.py:function or "
                      "package.module:function) and its weights as a state dict "
                      "(torch.save(model.state_dict(), ...)) or a .safetensors file, or export "
                      "the model to ONNX")


def code_format(path: Path) -> str | None:
    """'pt2' or 'package' when ``path`` is one of the archives in CODE_FORMATS, else None.
    Read from the zip's directory only (its file names), never from its contents."""
    if path.suffix.lower() == ".pt2":
        return "pt2"
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "pt2"
    if any(n.endswith(".data/extern_modules") for n in names):
        return "package"
    return None


def refuse_code_formats(path: Path, what: str = "checkpoint") -> None:
    """InputError when ``path`` is a format whose loading runs code from the file."""
    kind = code_format(path)
    if kind is not None:
        raise InputError(f"{what} {path.name} is {CODE_FORMATS[kind]}. It was refused without "
                         f"being read; {WHOLE_MODEL_ADVICE}")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise InputError(".safetensors checkpoints need the safetensors package: "
                         "pip install safetensors") from err
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors holds tensors only: a parse error is a bad file
        raise InputError(f"could not read {path.name} as safetensors ({type(err).__name__}: "
                         f"{err})") from err


def read_state_dict(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a file or URL: a ``.safetensors`` file, the official format
    ({'state_dict': ..., 'arch': ...}, 'module.' anywhere in the keys) or a plain state dict.

    Whole-model pickles, ``torch.export`` archives and ``torch.package`` archives are refused
    with an InputError: loading them runs code from the file."""
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"checkpoint must be a file path or an http(s) URL, got "
                         f"{type(source).__name__}")
    path = fetch(str(source)) if is_url(source) else Path(source)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist or is not a file")
    refuse_code_formats(path)
    if path.suffix.lower() == ".safetensors":
        return _check_state(path, _read_safetensors(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(
            f"could not read checkpoint {path.name} ({type(err).__name__}: {_load_error(err)}). "
            "It must be a torch.save'd state dict of tensors (or the official dict with "
            "'state_dict') or a .safetensors file; checkpoints that need to run code are refused, "
            f"whole pickled models (torch.save(model)) among them: {WHOLE_MODEL_ADVICE}"
        ) from err
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    return _check_state(path, data)


def _check_state(path: Path, data) -> dict[str, torch.Tensor]:
    """The state dict of tensors in ``data``, 'module.' prefixes dropped, or an InputError."""
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(f"checkpoint {path.name} holds no state dict of tensors")
    odd = [f"{k} ({'meta' if v.is_meta else str(v.layout).replace('torch.', '')})"
           for k, v in data.items() if v.is_meta or v.layout != torch.strided or v.is_quantized]
    if odd:
        raise InputError(f"checkpoint {path.name} holds tensors without ordinary values: "
                         f"{', '.join(odd[:5])}; save dense, materialised weights")
    # DataParallel wraps put 'module.' at the front or in the middle (features.module.0.weight).
    state: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        plain = re.sub(r"(^|\.)module\.", r"\1", str(key))
        if plain in state:
            raise InputError(f"checkpoint {path.name} is ambiguous: more than one key means "
                             f"{plain!r} once 'module.' is dropped (e.g. {key!r})")
        state[plain] = value
    return state


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of the floating-point tensors holding NaN or Inf."""
    return [k for k, v in state.items()
            if (v.is_floating_point() or v.is_complex()) and not torch.isfinite(v).all()]


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, name: str = "model") -> str:
    """Load ``state`` strictly, listing what is missing, unexpected or of another shape.

    Returns a warning ('' if none) naming weights that are NaN or Inf, also issued as an
    ``explorer.NumericalWarning``."""
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
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:  # e.g. complex into real weights
        raise InputError(f"checkpoint does not fit {name}: {_ANSI.sub('', str(err))}") from err
    bad = non_finite(state)
    if not bad:
        return ""
    message = (f"{name}: {len(bad)} weight tensor(s) hold NaN or Inf ({', '.join(bad[:4])}"
               f"{' ...' if len(bad) > 4 else ''}): every output and attribution will be too")
    warnings.warn(message, NumericalWarning, stacklevel=3)
    return message
