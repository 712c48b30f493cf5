"""A model spec is a string: resolved here, in one place, for every surface.

``resolve(spec)`` turns any of these into a ``ModelSpec`` (the zoo's own record), so that
``load_model`` builds, loads and wraps it exactly as it does a zoo model:

- a zoo name (``digits-cnn``, ``resnet18``, ...);
- ``path/to/file.py:function`` or ``package.module:function``: code that the person launching
  the process trusts. ``function()`` returns an ``nn.Module``, or ``(module, description)`` with
  an ``InputDescription`` (or a dict of its fields);
- ``timm/<name>``: a timm model (see ``explorer.models.timm_zoo``);
- ``file.onnx``: an ONNX graph, converted to torch (see ``explorer.models.onnx_models``).

Whole-model files (``torch.save(model)`` pickles, ``torch.export`` ``.pt2`` archives,
``torch.package`` archives) are refused: loading them runs code from the file.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from explorer.errors import InputError
from explorer.inputs.images import open_image, shrink, to_array
from explorer.inputs.input_space import InputSpace
from explorer.models.checkpoints import WHOLE_MODEL_ADVICE, refuse_code_formats
from explorer.models.zoo import MODELS, ModelSpec, _imagenet_labels

# Resolved specs that are not zoo names, by name (the app looks them up on every rerun).
USER_MODELS: dict[str, ModelSpec] = {}
_LOCK = threading.Lock()
# Suffixes of files that hold a whole pickled model: never a model spec.
_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".tar", ".mar", ".zip",
                    ".pt2", ".joblib", ".safetensors"}


@dataclass(frozen=True)
class InputDescription:
    """What a model takes: ``channels`` x ``size`` x ``size`` images, as pixels in [0, 1]
    (``mean``/``std`` None) or normalised per channel, and its class names (None: "class i")."""

    channels: int = 3
    size: int = 224
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.channels, int) or self.channels not in (1, 3):
            raise InputError(f"input description: channels must be 1 or 3, got {self.channels!r}")
        if not isinstance(self.size, int) or not 8 <= self.size <= 1024:
            raise InputError(f"input description: size must be a whole number of pixels in "
                             f"[8, 1024], got {self.size!r}")
        if (self.mean is None) != (self.std is None):
            raise InputError("input description: give mean and std together, or neither "
                             "(pixels in [0, 1])")
        if self.mean is not None:
            mean, std = tuple(map(float, self.mean)), tuple(map(float, self.std))
            if len(mean) != self.channels or len(std) != self.channels:
                raise InputError(f"input description: mean and std need {self.channels} values "
                                 f"each, got {len(mean)} and {len(std)}")
            if not all(np.isfinite(mean)) or not all(s > 0 and np.isfinite(s) for s in std):
                raise InputError("input description: mean must be finite and std positive")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @property
    def input_space(self) -> InputSpace:
        return InputSpace(self.mean, self.std)

    @classmethod
    def of(cls, value: Any) -> "InputDescription":
        """An InputDescription from itself or a dict of its fields."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InputError(f"input description: unknown field(s) {unknown}; it takes "
                                 f"{sorted(known)}")
            return cls(**value)
        raise InputError(f"input description must be an InputDescription or a dict, got "
                         f"{type(value).__name__}")


def square_preprocess(channels: int, size: int,
                      space: InputSpace) -> Callable[[Image.Image | bytes], torch.Tensor]:
    """Any image -> [channels, size, size] for ``space``: the central square, resized."""
    def preprocess(image) -> torch.Tensor:
        img = shrink(open_image(image), size)
        w, h = img.size
        side = min(w, h)
        img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side,
                        (h - side) // 2 + side))
        pixels = to_array(img, channels)  # [side, side, C] float32 in [0, 1]
        t = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]
        if side != size:
            t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                                antialias=side > size, align_corners=False)
        return space.from_pixels(t.clamp(0, 1))[0].contiguous()
    return preprocess


def first_conv_channels(module: nn.Module) -> int | None:
    """in_channels of the first Conv2d: what the model most likely takes."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def output_classes(module: nn.Module, description: InputDescription) -> int:
    """The number of logits, from one forward pass on zeros (InputError if it does not run)."""
    x = torch.zeros(1, description.channels, description.size, description.size)
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as err:
        raise InputError(f"the model does not run on a {description.channels} x "
                         f"{description.size} x {description.size} input ({type(err).__name__}: "
                         f"{err}); describe its input (channels, size)") from err
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the model must return logits [N, classes], got {shape}")
    return int(out.shape[1])


def labels_for(description: InputDescription, classes: int) -> list[str]:
    if description.labels is not None:
        if len(description.labels) != classes:
            raise InputError(f"the input description names {len(description.labels)} classes "
                             f"but the model has {classes} outputs")
        return list(description.labels)
    if classes == 1000 and description.channels == 3:
        return _imagenet_labels()  # the usual ImageNet order
    return [f"class {i}" for i in range(classes)]


def module_spec(name: str, label: str, family: str, description: str, module: nn.Module,
                given: InputDescription | None, weights: dict | None = None,
                note: str = "") -> ModelSpec:
    """A ModelSpec around an already built module (copied on every build): the description
    given, or one guessed (channels of the first conv, 224 px, pixels in [0, 1]) and said so."""
    module = module.eval()
    if given is None:
        channels = first_conv_channels(module) or 3
        given = InputDescription(channels=channels if channels in (1, 3) else 3)
        note = (note + " " if note else "") + (
            f"No input description: assumed {given.channels} x {given.size} x {given.size} "
            "pixels in [0, 1].")
    classes = output_classes(module, given)
    labels = labels_for(given, classes)
    template = module

    def build(bias_free: bool) -> nn.Module:
        from explorer.models.homogeneous import remove_biases
        clone = copy.deepcopy(template)
        return remove_biases(clone) if bias_free else clone

    return ModelSpec(
        name, label, family, description + (f" {note}" if note else ""), build,
        given.input_space, given.channels, given.size, lambda: labels,
        weights=weights if weights is not None else {False: ("builtin", None), True: None},
        preprocess=square_preprocess(given.channels, given.size, given.input_space))


# ---- factories: code the launching person trusts --------------------------------------------

def _split_factory(spec: str) -> tuple[str, str] | None:
    """(where, function) of 'path/file.py:fn' or 'package.module:fn', else None."""
    where, sep, function = spec.rpartition(":")
    if not sep or not where or not function or "/" in function or "\\" in function:
        return None
    if where.endswith(".py") or all(part.isidentifier() for part in where.split(".")):
        return where, function
    return None


def _import_file(path: Path):
    """Import a Python file as a module of its own (its folder on sys.path while it runs)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"explorer_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)  # so that it can import its neighbours
    try:
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def _call_factory(spec: str, where: str, function: str):
    try:
        if where.endswith(".py"):
            path = Path(where).expanduser().resolve()
            if not path.is_file():
                raise InputError(f"model spec {spec!r}: no file {where}")
            module = _import_file(path)
        else:
            module = importlib.import_module(where)
        target = module
        for part in function.split("."):
            target = getattr(target, part)
    except InputError:
        raise
    except AttributeError:
        raise InputError(f"model spec {spec!r}: {where} has no {function!r}") from None
    except Exception as err:  # ImportError, SyntaxError, whatever the module raised
        raise InputError(f"model spec {spec!r}: importing {where} failed "
                         f"({type(err).__name__}: {err})") from err
    if not callable(target):
        raise InputError(f"model spec {spec!r}: {function} is not a function")
    try:
        result = target()
    except Exception as err:
        raise InputError(f"model spec {spec!r}: {function}() raised {type(err).__name__}: "
                         f"{err}") from err
    module, description = (result if isinstance(result, tuple) and len(result) == 2
                           else (result, None))
    if not isinstance(module, nn.Module):
        raise InputError(f"model spec {spec!r}: {function}() must return an nn.Module (or "
                         f"(module, input description)), got {type(module).__name__}")
    return module, None if description is None else InputDescription.of(description)


def _factory_spec(spec: str, where: str, function: str) -> ModelSpec:
    module, description = _call_factory(spec, where, function)
    return module_spec(spec, spec, "custom", f"{type(module).__name__} built by {function}() "
                       f"from {where}; bias-free: its biases removed, no retraining.",
                       module, description)


# ---- one entry point ------------------------------------------------------------------------

def _refuse_file(spec: str) -> None:
    path = Path(spec)
    suffix = path.suffix.lower()
    if path.is_file():
        refuse_code_formats(path, "model file")
    if suffix in _PICKLE_SUFFIXES:
        kind = "weights only" if suffix == ".safetensors" else "a whole pickled model"
        raise InputError(
            f"model spec {spec!r} names a {suffix} file ({kind}): a model spec is an "
            f"architecture. A whole pickled model (torch.save(model)) runs code when it is "
            f"loaded and is refused; {WHOLE_MODEL_ADVICE}; weights go to checkpoint= / "
            "--checkpoint")


def resolve(spec: str, *, describe: InputDescription | dict | None = None) -> ModelSpec:
    """The ModelSpec of a model spec string (see the module's docstring). Specs other than zoo
    names are resolved once per process (their code runs once) and kept in ``USER_MODELS``;
    ``describe`` (ONNX files, factories without one) replaces the input description."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"a model spec is a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in MODELS:
        return MODELS[spec]
    description = None if describe is None else InputDescription.of(describe)
    key = spec if description is None else f"{spec} {description}"
    with _LOCK:
        if key in USER_MODELS:
            return USER_MODELS[key]
    if spec.startswith("timm/"):
        from explorer.models.timm_zoo import timm_spec
        resolved = timm_spec(spec)
    elif spec.lower().endswith(".onnx"):
        from explorer.models.onnx_models import onnx_file_spec
        resolved = onnx_file_spec(spec, description)
    elif (factory := _split_factory(spec)) is not None:
        resolved = _factory_spec(spec, *factory)
        if description is not None:
            resolved = _redescribe(resolved, description)
    else:
        _refuse_file(spec)
        raise InputError(
            f"unknown model {spec!r}: give a zoo name ({', '.join(sorted(MODELS))}), "
            "path/to/file.py:function, package.module:function, timm/<name> or file.onnx")
    resolved = _renamed(resolved, key)
    with _LOCK:
        return USER_MODELS.setdefault(key, resolved)


def _renamed(spec: ModelSpec, name: str) -> ModelSpec:
    from dataclasses import replace
    return spec if spec.name == name else replace(spec, name=name)


def _redescribe(spec: ModelSpec, description: InputDescription) -> ModelSpec:
    module = spec.build(False)
    return module_spec(spec.name, spec.label, spec.family, spec.description, module,
                       description, spec.weights)


def with_checkpoint(spec: str, checkpoint: str | Path) -> ModelSpec:
    """The ModelSpec of ``spec`` whose default weights are ``checkpoint`` (read like
    ``load_model(..., checkpoint=)``), under its own name: how ``explorer app --model SPEC
    --checkpoint FILE`` lists it."""
    from dataclasses import replace
    base = resolve(spec)
    path = Path(checkpoint).expanduser().resolve()
    name = f"{base.name} + {path.name}"
    with _LOCK:
        if name in USER_MODELS:
            return USER_MODELS[name]
    variants = base.variants if False in base.variants else (False, True)
    resolved = replace(base, name=name, label=f"{base.label} + {path.name}",
                       weights={False: ("url", str(path)), True: None}, variants=variants)
    with _LOCK:
        return USER_MODELS.setdefault(name, resolved)


def register(spec: ModelSpec) -> ModelSpec:
    """Keep an already made ModelSpec (an uploaded ONNX model) under its name."""
    with _LOCK:
        return USER_MODELS.setdefault(spec.name, spec)


def model_spec(name: str) -> ModelSpec:
    """The ModelSpec of a zoo name or of any spec resolved before (or resolvable now)."""
    if name in MODELS:
        return MODELS[name]
    with _LOCK:
        found = USER_MODELS.get(name)
    return found if found is not None else resolve(name)
