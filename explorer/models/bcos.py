"""B-cos layers (Böhle, Fritz & Schiele, CVPR 2022; B-cos v2, TPAMI 2024) and the bundled B-cos
digits CNN.

A B-cos unit with unit-norm weight w computes |cos(x, w)|^(B-1) * (w^T x): no bias, and the
factor |cos|^(B-1) is a *dynamic weight* that depends on x. With that factor detached from the
graph (the paper's explanation mode) every layer is linear, y = W(x) x, so the whole network is
F(x) = W_total(x) z, z the encoded input, and the contribution map W_total(x) ⊙ z = z * dF/dz
(one forward, one backward) sums to F exactly.

The layers follow the ``bcos`` package (PyPI, Apache-2.0) number for number, so its
checkpoints' ``linear.weight`` keys load, and they are tested against it. They are our own for
one reason: the package switches explanation mode with a flag on each module
(``set_explanation_mode``), and the app shares one module between sessions' threads. Here the
mode is a context variable, ``explanation_mode()``, that only the calling thread sees; the model
is never changed.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

_EXPLAINING: contextvars.ContextVar[bool] = contextvars.ContextVar("bcos_explaining",
                                                                   default=False)


@contextlib.contextmanager
def explanation_mode() -> Iterator[None]:
    """Within the block (this thread only), B-cos layers detach their dynamic weights."""
    token = _EXPLAINING.set(True)
    try:
        yield
    finally:
        _EXPLAINING.reset(token)


def explaining() -> bool:
    return _EXPLAINING.get()


def _dynamic_scale(out: torch.Tensor, norm: torch.Tensor, b: float) -> torch.Tensor:
    """|cos|^(B-1) from w^T x (unit w) and ||x||; detached in explanation mode."""
    if _EXPLAINING.get():
        out, norm = out.detach(), norm.detach()
    if b == 2:
        return out.abs() / norm
    return ((out / norm).abs() + 1e-6).pow(b - 1)


def _max_out(out: torch.Tensor, units: int, m: int, dim: int) -> torch.Tensor:
    if m == 1:
        return out
    return out.unflatten(dim, (units, m)).amax(dim + 1 if dim >= 0 else dim)


class NormedLinear(nn.Linear):
    """nn.Linear with each weight row scaled to unit norm, no bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight / torch.linalg.vector_norm(self.weight, dim=1, keepdim=True))


class NormedConv2d(nn.Conv2d):
    """nn.Conv2d with each filter scaled to unit norm, no bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight / torch.linalg.vector_norm(self.weight, dim=(1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, None)


class BcosLinear(nn.Module):
    """y = |cos(x, w)|^(B-1) * (w^T x) per output, max over ``max_out`` units each."""

    def __init__(self, in_features: int, out_features: int, b: float = 2.0, max_out: int = 1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.b, self.max_out = b, max_out
        self.linear = NormedLinear(in_features, out_features * max_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _max_out(self.linear(x), self.out_features, self.max_out, -1)
        if self.b == 1:
            return out
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) + 1e-12
        return _dynamic_scale(out, norm, self.b) * out

    def extra_repr(self) -> str:
        return f"B={self.b}, max_out={self.max_out}"


class BcosConv2d(nn.Module):
    """The convolutional B-cos unit: cos is taken between each filter and its input patch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 stride: int = 1, b: float = 2.0, max_out: int = 1):
        super().__init__()
        self.out_channels, self.b, self.max_out = out_channels, b, max_out
        self.kernel_size, self.padding, self.stride = kernel_size, padding, stride
        self.linear = NormedConv2d(in_channels, out_channels * max_out, kernel_size,
                                   stride=stride, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _max_out(self.linear(x), self.out_channels, self.max_out, 1)
        if self.b == 1:
            return out
        # ||patch|| = sqrt(k*k * mean over the window of the channel-summed squares)
        squares = (x ** 2).sum(1, keepdim=True)
        norm = (F.avg_pool2d(squares, self.kernel_size, stride=self.stride, padding=self.padding)
                * self.kernel_size ** 2 + 1e-6).sqrt()
        return _dynamic_scale(out, norm, self.b) * out

    def extra_repr(self) -> str:
        return f"B={self.b}, max_out={self.max_out}"


class AddInverse(nn.Module):
    """[x, 1 - x] along the channels, so that black pixels (x = 0) can contribute too.

    Inside ``capture_encoded(store)`` (this thread only) its output is returned as a fresh leaf
    that requires grad and is appended to ``store``: the contribution map is taken on it."""

    # read by explorer.models.homogeneous.homogeneity_obstacles
    homogeneity_obstacle = "[x, 1 - x] adds a constant: affine, not homogeneous in x"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.cat([x, 1 - x], dim=1)
        store = _CAPTURE.get()
        if store is not None:
            z = z.detach().requires_grad_(True)
            store.append(z)
        return z


_CAPTURE: contextvars.ContextVar[list | None] = contextvars.ContextVar("bcos_capture",
                                                                      default=None)


@contextlib.contextmanager
def capture_encoded(store: list) -> Iterator[list]:
    """Within the block (this thread only), each encoder output is a leaf kept in ``store``."""
    token = _CAPTURE.set(store)
    try:
        yield store
    finally:
        _CAPTURE.reset(token)


class BcosDigitsCNN(nn.Module):
    """The digits CNN's layout in B-cos units (B = 2, max-out 2, no biases, no ReLU): 28x28
    grayscale in [0, 1] -> [x, 1 - x] -> B-cos conv5 + maxpool x2, B-cos linear x2 -> 10 logits,
    times a learned positive scale (a linear factor: exactness is kept)."""

    def __init__(self, b: float = 2.0, max_out: int = 2, classes: int = 10, channels: int = 1,
                 size: int = 28, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        c1, c2, hidden = widths
        self.encode = AddInverse()
        self.features = nn.Sequential(
            BcosConv2d(2 * channels, c1, 5, padding=2, b=b, max_out=max_out), nn.MaxPool2d(2),
            BcosConv2d(c1, c2, 5, padding=2, b=b, max_out=max_out), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), BcosLinear(c2 * (size // 4) ** 2, hidden, b=b, max_out=max_out),
            BcosLinear(hidden, classes, b=b, max_out=max_out),
        )
        # B-cos outputs are at most ||input|| and shrink with |cos|: a learned logit scale
        # (log-parametrised, so positive) lets cross-entropy reach confident logits.
        self.log_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """The network after the [x, 1 - x] encoding: dynamic linear in z."""
        return self.classifier(self.features(z)) * self.log_scale.exp()


def is_bcos(model: nn.Module) -> bool:
    """Whether ``model`` is built from B-cos units (ours, or the package's as loaded by
    ``bcos_v2``) after an [x, 1 - x] encoder."""
    return isinstance(getattr(model, "encode", None), AddInverse) and callable(
        getattr(model, "head", None)) and any(
            isinstance(m, (BcosConv2d, BcosLinear)) or getattr(type(m), "bcos_unit", False)
            for m in model.modules())


# ---- B-cos v2's ImageNet networks (the ``bcos`` package), loaded by name ---------------------

# zoo name -> (entry point in bcos.models.pretrained, label, the authors' release URL)
_RELEASES = "https://github.com/B-cos/B-cos-v2/releases/download/v0.0.1-weights"
BCOS_V2 = {
    "bcos-resnet18": ("resnet18", "B-cos ResNet-18 (v2)", f"{_RELEASES}/resnet_18-68b4160fff.pth"),
    "bcos-resnet50": ("resnet50", "B-cos ResNet-50 (v2)", f"{_RELEASES}/resnet_50-ead259efe4.pth"),
}


class _Encoded:
    """Mixin for a package network: ``forward`` encodes [x, 1 - x] first (the authors put it in
    their data transform); ``head`` is the network as released, on the encoded input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z)


def _thread_local_class(cls: type, cache: dict = {}) -> type:  # noqa: B006 (a class cache)
    """``cls`` with ``detach`` read from this thread's ``explanation_mode`` (setting it is
    ignored): the package's per-module flag would switch every thread sharing the model."""
    if cls not in cache:
        cache[cls] = type(cls.__name__, (cls,), {
            "__module__": cls.__module__, "bcos_unit": True,
            "detach": property(lambda self: _EXPLAINING.get(), lambda self, value: None)})
    return cache[cls]


def bcos_v2(name: str) -> nn.Module:
    """A B-cos v2 ImageNet network from the ``bcos`` package with random weights, taking pixels
    in [0, 1] [N, 3, H, W]; its state dict keys are the released checkpoint's."""
    try:
        from bcos.models import pretrained
        from bcos.modules.common import DetachableModule
    except ImportError as err:
        from explorer.errors import InputError
        raise InputError(f"{name} needs the B-cos authors' package: pip install bcos") from err
    net = getattr(pretrained, BCOS_V2[name][0])(pretrained=False)
    for module in net.modules():
        if isinstance(module, DetachableModule):
            module.__dict__.pop("detach", None)
            module.__class__ = _thread_local_class(type(module))
    net.__class__ = type(f"Encoded{type(net).__name__}", (_Encoded, type(net)),
                         {"__module__": __name__})
    net.encode = AddInverse()
    return net


def logit_offset(model: nn.Module) -> float:
    """The constant the network adds to every logit (B-cos v2's logit bias; 0 for ours): what
    the contribution map's sum misses of the logit, so its exact reference value."""
    layer = getattr(model, "logit_layer", None)
    return float(getattr(layer, "logit_bias", None) or 0.0)
