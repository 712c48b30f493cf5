"""Named baselines: the reference input x' that path methods integrate from.

Every baseline is returned in the model's input space (what the network receives). "zero" is the
zero of that space: for a model fed normalised images it is the mean-colour image, which is what
the X-DNN paper's reference code uses, and the only baseline for which X-Gradient equals IG.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from explorer.errors import InputError
from explorer.inputs.input_space import PIXELS, InputSpace
from explorer.runtime.tensors import check_baseline, seeded_generator


@dataclass(frozen=True)
class SigmaSpec:
    """A baseline's width parameter: its label and, for an input shape [N, C, H, W],
    (lowest, highest, default)."""
    label: str
    bounds: Callable[[tuple], tuple[float, float, float]]


@dataclass(frozen=True)
class BaselineSpec:
    name: str
    label: str
    description: str
    fn: Callable[..., torch.Tensor]
    sigma: SigmaSpec | None = None


BASELINES: dict[str, BaselineSpec] = {}


def _register(name: str, label: str, description: str, sigma: SigmaSpec | None = None):
    def decorate(fn):
        BASELINES[name] = BaselineSpec(name, label, description, fn, sigma)
        return fn
    return decorate


def _blur_bounds(shape: tuple) -> tuple[float, float, float]:
    side = max(shape[-2:])
    return 0.5, side / 2, side / 8




@_register("zero", "Zero", "All zeros in the model's input space (normalised: mean colour).")
def _zero(x, space, **_):
    return torch.zeros_like(x)


@_register("black", "Black", "A black image (pixels 0).")
def _black(x, space, **_):
    return space.from_pixels(torch.zeros_like(x))


@_register("white", "White", "A white image (pixels 1).")
def _white(x, space, **_):
    return space.from_pixels(torch.ones_like(x))


@_register("mean", "Mean colour", "Each image's own mean colour, per channel.")
def _mean(x, space, **_):
    dims = tuple(range(2, x.dim())) or (1,)
    return x.mean(dim=dims, keepdim=True).expand_as(x).clone()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] with reflect padding."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


@_register("blur", "Blurred input", "A Gaussian-blurred copy of the input (sigma in pixels).",
           SigmaSpec("Blur sigma (pixels)", _blur_bounds))
def _blur(x, space, *, sigma=None, **_):
    if x.dim() != 4:
        raise InputError("the blur baseline needs images [N, C, H, W]")
    sigma = _blur_bounds(x.shape)[2] if sigma is None else float(sigma)
    return gaussian_blur(x, sigma)


@_register("uniform", "Uniform noise", "Pixels drawn uniformly from [0, 1] (seeded).")
def _uniform(x, space, *, seed=0, **_):
    noise = torch.rand(x.shape[1:], generator=seeded_generator(seed), dtype=torch.float64)
    return space.from_pixels(noise.to(x).unsqueeze(0).expand_as(x).clone())


@_register("gaussian", "Gaussian noise", "The input plus Gaussian noise in pixel space, clipped.",
           SigmaSpec("Noise sigma (pixel values 0-1)", lambda shape: (0.01, 1.0, 0.1)))
def _gaussian(x, space, *, seed=0, sigma=None, **_):
    sigma = 0.1 if sigma is None else float(sigma)
    noise = torch.randn(x.shape[1:], generator=seeded_generator(seed), dtype=torch.float64)
    pixels = (space.to_pixels(x) + sigma * noise.to(x)).clamp(0.0, 1.0)
    return space.from_pixels(pixels)


@_register("image", "Your image", "An image or tensor you supply, in the model's input space.")
def _image(x, space, *, image=None, **_):
    if image is None:
        raise InputError("the 'image' baseline needs an image: pass image=<tensor>")
    return check_baseline(image, x, "baseline")


def make_baseline(name: str, x: torch.Tensor, *, input_space: InputSpace = PIXELS,
                  seed: int = 0, sigma: float | None = None,
                  image: torch.Tensor | None = None) -> torch.Tensor:
    """The named baseline for the batch ``x`` (same shape, dtype and device)."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise InputError("baselines are made for a batch x [N, ...]")
    if sigma is not None and not (math.isfinite(float(sigma)) and float(sigma) >= 0):
        raise InputError(f"baseline sigma must be a finite number >= 0, got {sigma!r}")
    out = BASELINES[name].fn(x.detach(), input_space, seed=seed, sigma=sigma, image=image)
    return out.to(device=x.device, dtype=x.dtype)
