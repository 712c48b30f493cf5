"""What the tensor a model receives means: pixels in [0, 1], or pixels normalised per channel."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class InputSpace:
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def description(self) -> str:
        return "pixels in [0, 1]" if self.mean is None else "normalised with mean/std"

    def __str__(self) -> str:
        return self.description

    def _stats(self, like: torch.Tensor):
        shape = (1, -1) + (1,) * (like.dim() - 2)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] pixels in [0, 1] -> what the model takes."""
        if self.mean is None:
            return pixels
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs -> pixels in [0, 1] (not clipped)."""
        if self.mean is None:
            return inputs
        mean, std = self._stats(inputs)
        return inputs * std + mean


PIXELS = InputSpace()
IMAGENET = InputSpace(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
