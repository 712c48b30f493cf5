"""The model zoo: a registry of model specs, and ``load_model`` returning ready zoo entries."""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from explorer.inputs.data import ASSETS
from explorer.errors import InputError
from explorer.models.homogeneous import remove_biases
from explorer.runtime.tensors import default_device
from explorer.inputs.images import open_image, shrink, to_array
from explorer.inputs.input_space import IMAGENET, PIXELS, InputSpace
from explorer.models import architectures as arch
from explorer.models.bcos import BCOS_V2, BcosDigitsCNN, bcos_v2
from explorer.models.checkpoints import (PAPER_URL, fetch, file_sha256, load_into,
                                         read_state_dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    family: str                      # "bundled" | "imagenet" | "paper"
    description: str
    build: Callable[[bool], nn.Module]
    input_space: InputSpace
    channels: int
    size: int
    labels: Callable[[], list[str]]
    # Where trained weights come from, per variant: ("asset", file), ("torchvision", enum name),
    # ("url", url); None for the bias-free variant means "remove the biases of the trained one".
    # ("builtin", None): the build function makes the weights (a user's factory, an ONNX file);
    # ("timm", name): timm's pretrained weights.
    weights: dict = field(default_factory=dict)
    variants: tuple = (False, True)  # bias_free values that exist (a prior model: only one)
    variants_note: str = ""          # why only one variant exists, when the reason is not training
    # PIL image or bytes -> [C, H, W]; None: the zoo's own (digits or ImageNet) by channels
    preprocess: Callable | None = None


@dataclass
class ZooEntry:
    """A loaded model, ready for attribution. Never mutated after loading (thread-safe)."""

    name: str
    bias_free: bool
    module: nn.Module
    preprocess: Callable[[Image.Image | bytes], torch.Tensor]
    to_image: Callable[[torch.Tensor], np.ndarray]
    labels: list[str]
    input_space: InputSpace
    trained: bool
    spec: ModelSpec
    note: str = ""
    manifest: dict | None = None
    warnings: tuple[str, ...] = ()   # e.g. NaN/Inf weights: shown on the model card

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def title(self) -> str:
        variant = " (bias-free)" if self.bias_free else ""
        return f"{self.spec.label}{variant}" + ("" if self.trained else " [untrained]")


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} registered twice")
    MODELS[spec.name] = spec
    return spec


# ---- preprocessing -------------------------------------------------------------------------

def digits_preprocess(image) -> torch.Tensor:
    """Any image -> [1, 28, 28] in [0, 1], a light digit on black (dark-on-light is inverted)."""
    img = shrink(open_image(image), 28)
    gray = to_array(img, 1)[..., 0]
    if gray.mean() > 0.5:  # MNIST is a light digit on black; invert dark-on-light drawings
        gray = 1.0 - gray
    pil = Image.fromarray((gray * 255).round().astype(np.uint8))
    if pil.size != (28, 28):
        pil = pil.resize((28, 28), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)[None]


def imagenet_preprocess(image, space: InputSpace = IMAGENET) -> torch.Tensor:
    """Any image -> [3, 224, 224] in ``space`` (default normalised): short side to 256, centre
    crop (torchvision's)."""
    img = open_image(image)  # size and aspect ratio checked before anything is resampled
    w, h = img.size
    if max(w, h) > 2 * min(w, h):  # the centre crop never reaches further: drop the rest first
        keep = 2 * min(w, h)
        left, top = (w - min(w, keep)) // 2, (h - min(h, keep)) // 2
        img = img.crop((left, top, left + min(w, keep), top + min(h, keep)))
    img = shrink(img, 256)
    rgb = Image.fromarray((to_array(img, 3) * 255).round().astype(np.uint8))
    w, h = rgb.size
    scale = 256 / min(w, h)
    rgb = rgb.resize((max(224, round(w * scale)), max(224, round(h * scale))),
                     Image.Resampling.BILINEAR)
    w, h = rgb.size
    left, top = (w - 224) // 2, (h - 224) // 2
    rgb = rgb.crop((left, top, left + 224, top + 224))
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return space.from_pixels(pixels[None])[0]


def _to_image(space: InputSpace) -> Callable[[torch.Tensor], np.ndarray]:
    def to_image(t: torch.Tensor) -> np.ndarray:
        pixels = space.to_pixels(t.detach().cpu().float()[None])[0].clamp(0, 1)
        if pixels.shape[0] == 1:
            pixels = pixels.expand(3, -1, -1)
        return pixels.permute(1, 2, 0).numpy()
    return to_image


# ---- the registered models -----------------------------------------------------------------

def _digit_labels() -> list[str]:
    return [str(i) for i in range(10)]


def _imagenet_labels() -> list[str]:
    import torchvision  # the class names ship with the weight enums: no download
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


for _name, _label, _desc in (
    ("digits-cnn", "Digits CNN",
     "Small ReLU CNN trained by this project on 4,000 MNIST digits; the bias-free variant was "
     "trained bias-free from scratch with the same recipe."),
    ("decoy-digits-cnn", "Decoy-digits CNN",
     "The same CNN trained on Decoy MNIST: a gray corner patch encodes the label in training "
     "and is random at test time, so the model learns the shortcut."),
):
    register_model(ModelSpec(
        _name, _label, "bundled", _desc, lambda bias_free: arch.DigitsCNN(bias=not bias_free),
        PIXELS, 1, 28, _digit_labels,
        weights={False: ("asset", f"{_name}.pt"), True: ("asset", f"{_name}-x.pt")}))

# Trained with an attribution prior on the decoy patch (python -m explorer train --experiment
# decoy); X-Gradient needs the bias-free model, the other attributions are taken on the regular one.
for _attr, _what in (("x-gradient", "X-Gradient"), ("gradient", "input-gradient"),
                     ("eg-k1", "Expected Gradients (1 reference)")):
    _free = _attr == "x-gradient"
    register_model(ModelSpec(
        f"decoy-digits-cnn-prior-{_attr}", f"Decoy-digits CNN, {_what} prior", "bundled",
        f"The decoy-digits CNN trained with a right-for-the-right-reasons prior on its "
        f"{_what} attributions inside the patch, so it reads the digit, not the patch. Only the "
        f"{'bias-free' if _free else 'regular'} variant was trained.",
        lambda bias_free: arch.DigitsCNN(bias=not bias_free), PIXELS, 1, 28, _digit_labels,
        weights={_free: ("asset", f"decoy-digits-cnn-prior-{_attr}{'-x' if _free else ''}.pt")},
        variants=(_free,)))

# B-cos has no bias-free twin: it has no biases at all, and its exactness comes from dynamic
# linearity, not homogeneity, so it exists as one variant (shown as "regular").
_NO_TWIN = ("A B-cos network has no biases to remove: one variant (shown as regular); its exact "
            "one-pass map is the B-cos contribution.")
register_model(ModelSpec(
    "digits-bcos", "Digits B-cos CNN", "bundled",
    "The digits CNN's layout in B-cos units (B = 2, max-out 2, no biases, input encoded as "
    "[x, 1 - x]), trained by this project on the same 4,000 digits. Its B-cos contribution map "
    "sums to the logit exactly from one pass; it has no bias-free variant.",
    lambda bias_free: BcosDigitsCNN(), PIXELS, 1, 28, _digit_labels,
    weights={False: ("asset", "digits-bcos.pt")}, variants=(False,), variants_note=_NO_TWIN))

for _name, _enum, _label in (("alexnet", "AlexNet_Weights.IMAGENET1K_V1", "AlexNet"),
                             ("vgg16", "VGG16_Weights.IMAGENET1K_V1", "VGG16"),
                             ("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "ResNet-18"),
                             ("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "ResNet-50")):
    _official_x = _name in ("alexnet", "vgg16")
    register_model(ModelSpec(
        _name, _label, "imagenet",
        f"torchvision's ImageNet {_label}. " + (
            f"Bias-free: the paper's X-{_label}, trained bias-free from scratch."
            if _official_x else "Bias-free: biases removed from the trained model, no retraining."),
        lambda bias_free, n=_name: _torchvision_build(n, bias_free),
        IMAGENET, 3, 224, _imagenet_labels,
        weights={False: ("torchvision", _enum),
                 True: ("url", PAPER_URL.format(name="x" + _name)) if _official_x else None}))

for _name, (_entry, _label, _url) in BCOS_V2.items():
    register_model(ModelSpec(
        _name, _label, "imagenet",
        f"B-cos v2 (Böhle et al., TPAMI 2024): the authors' ImageNet {_label.split(' (')[0]} "
        "from their release (package bcos), taking pixels in [0, 1] encoded as [x, 1 - x]. "
        "Its B-cos contribution map sums to the logit minus its constant logit bias. No "
        "bias-free variant.",
        lambda bias_free, n=_name: bcos_v2(n), PIXELS, 3, 224, _imagenet_labels,
        weights={False: ("url", _url)}, variants=(False,), variants_note=_NO_TWIN))

register_model(ModelSpec(
    "fixup-resnet50", "Fixup-ResNet-50", "paper",
    "The X-DNN paper's Fixup ResNet-50 (no batch norm). Bias-free: its X-Fixup-ResNet-50, "
    "trained without biases and without Fixup's scalar offsets and scale.",
    arch.fixup_resnet50, IMAGENET, 3, 224, _imagenet_labels,
    weights={False: ("url", PAPER_URL.format(name="fixup_resnet50")),
             True: ("url", PAPER_URL.format(name="xfixup_resnet50"))}))


# checkpoint="paper" takes the paper's own weights of either variant ("x" + name when bias-free).
PAPER_NAMES = {"alexnet": "alexnet", "vgg16": "vgg16", "fixup-resnet50": "fixup_resnet50"}


def _torchvision_build(name: str, bias_free: bool) -> nn.Module:
    """torchvision's layout; bias-free is the same with every bias gone, which is also exactly
    the layout of the paper's X-AlexNet and X-VGG16 (config D, no batch norm)."""
    import torchvision
    model = getattr(torchvision.models, name)(weights=None)
    return remove_biases(model) if bias_free else model


# ---- loading -------------------------------------------------------------------------------

sha256 = file_sha256  # bundled manifests and training use the same digest as downloads


def read_manifest(filename: str) -> dict:
    """The manifest of a bundled weight file, checked against the file's sha256."""
    weights = ASSETS / filename
    manifest_path = weights.with_suffix(".json")
    if not weights.exists() or not manifest_path.exists():
        raise InputError(f"bundled weights {weights.name} or their manifest are missing: "
                         "run `python -m explorer train`")
    manifest = json.loads(manifest_path.read_text())
    actual = sha256(weights)
    if manifest.get("sha256") != actual:
        raise InputError(
            f"{weights.name} does not match its manifest (sha256 {actual[:12]}... vs "
            f"{str(manifest.get('sha256'))[:12]}...): the asset is stale or corrupt; "
            "rebuild it with the command in the manifest"
        )
    return manifest


def _torchvision_state(enum_name: str) -> dict[str, torch.Tensor]:
    import torchvision
    weights = torchvision.models.get_weight(enum_name)
    return read_state_dict(fetch(weights.url))


def _read_source(source: tuple) -> dict[str, torch.Tensor] | None:
    """The state dict a weights source names (None for "builtin": the build made them)."""
    kind, where = source
    if kind == "asset":  # its manifest is checked by the caller
        return torch.load(ASSETS / where, map_location="cpu", weights_only=True)
    if kind == "torchvision":
        return _torchvision_state(where)
    if kind == "timm":
        from explorer.models.timm_zoo import pretrained_state
        return pretrained_state(where)
    if kind == "builtin":
        return None
    return read_state_dict(where)  # "url": a URL or a file


def load_model(name: str, *, bias_free: bool = False, pretrained: bool = True,
               device: torch.device | str | None = None,
               checkpoint: str | Path | None = None, describe=None) -> ZooEntry:
    """A zoo entry: the module in eval mode with frozen parameters, plus how to feed and show it.

    ``name`` is a model spec (``explorer.models.spec``): a zoo name, ``path/to/file.py:fn``,
    ``package.module:fn``, ``timm/<name>`` or ``file.onnx``; ``describe`` (an
    ``InputDescription`` or a dict of its fields) says what an ONNX file or a factory takes
    when it does not say itself. ``checkpoint`` (a path or URL: a ``.safetensors`` file, a
    plain state dict, or the official X-DNN format) replaces the default weights;
    ``checkpoint="paper"`` takes the X-DNN paper's released weights. Raises
    ``WeightsUnavailable`` when pretrained weights cannot be had (no network): load with
    ``pretrained=False`` for random weights, labelled untrained.
    """
    from explorer.models.spec import resolve
    spec = resolve(name, describe=describe)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise InputError(f"checkpoint must be a file path, an http(s) URL or 'paper', got "
                         f"{type(checkpoint).__name__}")
    if bias_free not in spec.variants and checkpoint is None:
        raise InputError(f"{name} exists only {'bias-free' if spec.variants[0] else 'regular'} "
                         f"(bias_free={spec.variants[0]}): it was trained that way")
    if checkpoint == "paper":
        if name not in PAPER_NAMES:
            raise InputError(f"the X-DNN paper released no checkpoint for {name}")
        checkpoint = PAPER_URL.format(name=("x" if bias_free else "") + PAPER_NAMES[name])
    source = spec.weights.get(bias_free) if pretrained and checkpoint is None else None
    strip_after = bool(pretrained and checkpoint is None and bias_free and source is None)
    with torch.random.fork_rng(devices=[]):  # untrained models are the same on every load
        torch.manual_seed(0)
        module = spec.build(False if strip_after else bias_free)
    note, manifest, trained, warning = "", None, False, ""
    if checkpoint is not None:
        state = read_state_dict(checkpoint)
        trained, note = True, f"weights from {Path(str(checkpoint)).name}"
        if bias_free and set(state) != set(module.state_dict()):
            regular = spec.build(False)
            if set(state) == set(regular.state_dict()):  # the regular model's weights: strip
                module = regular
                note += "; biases removed without retraining: predictions change"
        warning = load_into(module, state, name=f"{name} ({'bias-free' if bias_free else 'regular'})")
        if bias_free and "biases removed" in note:
            module = remove_biases(module)
    elif strip_after:
        state = _read_source(spec.weights[False])
        if state is not None:
            warning = load_into(module, state, name=name)
        module, trained = remove_biases(module), True
        note = "biases removed without retraining: predictions change"
    elif source is not None:
        if source[0] == "asset":
            manifest = read_manifest(source[1])
        state = _read_source(source)
        if state is not None:
            warning = load_into(module, state, name=name)
        trained = True
    module = module.to(device or default_device()).eval()
    module.requires_grad_(False)  # attributions need input gradients only: skip weight grads
    preprocess = spec.preprocess or (
        digits_preprocess if spec.channels == 1 else imagenet_preprocess
        if spec.input_space == IMAGENET
        else functools.partial(imagenet_preprocess, space=spec.input_space))
    return ZooEntry(spec.name, bias_free, module, preprocess, _to_image(spec.input_space),
                    spec.labels(), spec.input_space, trained, spec, note, manifest,
                    (warning,) if warning else ())
