"""Small networks for the tests: fast on 2 CPU cores, with every layer kind the claims cover."""
from __future__ import annotations

import torch
from torch import nn


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial statistics and affine parameters, so folding tests
    cannot pass because mean = 0, var = 1, weight = 1, bias = 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.5)
    return model


def small_cnn(seed: int = 0, channels: int = 3, classes: int = 5, bias: bool = True,
              dtype=torch.float32) -> nn.Module:
    """conv-BN-ReLU-maxpool, conv-BN-ReLU-avgpool, linear-ReLU-linear, in eval mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1, bias=bias), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16, bias=bias), nn.ReLU(),
        nn.Linear(16, classes, bias=bias),
    )
    return randomize_batch_norm(model, seed).to(dtype).eval()


def smooth_mlp(seed: int = 0, features: int = 12, classes: int = 3, dtype=torch.float64) -> nn.Module:
    """A tanh network: smooth, so quadrature errors shrink cleanly with steps."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, classes)).to(dtype).eval()


class ExpSum(nn.Module):
    """F_k(x) = sum_i c_ki (exp(x_i) - 1): IG from the zero baseline is c_ki (exp(x_i) - 1)."""

    def __init__(self, coef: torch.Tensor):
        super().__init__()
        self.register_buffer("coef", coef)

    def forward(self, x):
        return (torch.exp(x.flatten(1)) - 1.0) @ self.coef.T


class CubicSum(nn.Module):
    """F_k(x) = sum_i c_ki x_i^3: IG from baseline b is c_ki (x_i^3 - b_i^3) per feature."""

    def __init__(self, coef: torch.Tensor):
        super().__init__()
        self.register_buffer("coef", coef)

    def forward(self, x):
        return (x.flatten(1) ** 3) @ self.coef.T


def images(n: int = 3, channels: int = 3, size: int = 16, seed: int = 1, dtype=torch.float32):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64).to(dtype)


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


def page_tables(at) -> list:
    """The tables an AppTest page drew as markdown (the Explore page's completeness and timing),
    read back as DataFrames of the shown strings, indexed by their first column."""
    from explorer.viz import parse_markdown_table
    tables = (parse_markdown_table(element.value) for element in at.markdown)
    return [t for t in tables if t is not None]


def small_bcos_cnn(seed: int = 0, channels: int = 3, size: int = 16, classes: int = 5,
                   dtype=torch.float32) -> nn.Module:
    """A small random B-cos CNN (for methods that apply to B-cos networks only), in eval mode."""
    from explorer.models.bcos import BcosDigitsCNN
    torch.manual_seed(seed)
    model = BcosDigitsCNN(classes=classes, channels=channels, size=size, widths=(6, 8, 16))
    return model.to(dtype).eval()


def tiny_vit(seed: int = 0, size: int = 16, classes: int = 5) -> nn.Module:
    """A two-block timm vision transformer on 16 x 16 images (4 x 4 patches, class token)."""
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(seed)
    return VisionTransformer(img_size=size, patch_size=4, in_chans=3, num_classes=classes,
                             embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0).eval()


def tiny_vit_app() -> tuple[nn.Module, dict]:
    """``tiny_vit`` as a model spec the app can be launched with (``path/to/helpers.py:
    tiny_vit_app``): 16 x 16 RGB images normalised with mean and std 0.5, 5 classes."""
    return tiny_vit(), {"channels": 3, "size": 16, "mean": (0.5,) * 3, "std": (0.5,) * 3}


def child_env(root, **extra: str) -> dict[str, str]:
    """The environment for a subprocess running this repository: the parent's own, with
    ``root`` put first on PYTHONPATH, never in place of it (packages installed onto
    PYTHONPATH, e.g. mlxtend on a GPU machine, must stay importable in the child)."""
    import os
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def model_for(method: str, first: nn.Module | None = None) -> nn.Module:
    """``first`` (default: the small CNN), or the first small test model that ``method`` applies
    to (a B-cos CNN for B-cos contribution, a tiny ViT for attention rollout); all take 3 x 16 x
    16 images and have 5 classes, so every registered method meets each test on some model."""
    import explorer
    spec = explorer.METHODS[method]
    for make in ((lambda: first) if first is not None else small_cnn, small_bcos_cnn, tiny_vit):
        candidate = make()
        if spec.applicability(candidate) is None:
            return candidate
    raise AssertionError(f"{method} applies to no test model: add one it applies to in helpers")
