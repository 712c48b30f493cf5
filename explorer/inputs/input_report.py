"""What preprocessing did to an input, and whether it is out of the model's domain: the sentence
and warnings the app shows above the maps. No streamlit here."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.inputs.images import open_image, shrink, to_array

COLOUR_SPREAD = 0.08  # mean |channel - gray| above this (0..1): a colour picture, not gray
WIDE_CROP = 2.0       # aspect ratio above this: the centre crop keeps under half the picture


@dataclass
class InputReport:
    sentence: str
    warnings: list[str] = field(default_factory=list)


def describe_input(name: str, data: bytes, *, channels: int, size: int,
                   digits: bool) -> InputReport:
    """The input ``name`` (its bytes ``data``) as the model of ``channels`` x ``size`` x ``size``
    will see it: what was done to it, and warnings when it is outside the model's domain."""
    img = open_image(data)
    w, h = img.size
    mode = img.mode
    img = shrink(img, 64)  # colour and brightness need no more: a 12 MP photo stays cheap
    rgb = to_array(img, 3)
    colour = float(np.abs(rgb - rgb.mean(2, keepdims=True)).mean())
    steps, warnings = [], []
    if digits:
        if colour > 0.01 or mode not in ("L", "1"):
            steps.append("converted to grayscale")
        if to_array(img, 1).mean() > 0.5:
            steps.append("inverted (dark on light becomes a light digit on black)")
        if (w, h) != (size, size):
            steps.append(f"resized from {w} x {h} to {size} x {size}")
        steps.append("pixels in [0, 1]")
        if colour > COLOUR_SPREAD:
            warnings.append(f"**{name}** is a colour picture; this model was trained on "
                            f"{size} x {size} grayscale handwritten digits. Its prediction and "
                            "maps on it say little: try a digit drawn light on a dark background.")
        elif w > 4 * size or h > 4 * size:
            warnings.append(f"**{name}** ({w} x {h}) is shrunk to {size} x {size}: fine strokes "
                            "may vanish. This model expects a centred handwritten digit.")
    else:
        steps.append(f"short side resized to 256, centre crop {size} x {size}")
        if channels == 3 and colour <= 0.01:
            steps.append("gray copied to 3 channels")
        steps.append("normalised with the ImageNet mean and std")
    ratio = max(w, h) / max(min(w, h), 1)
    if not digits and ratio > WIDE_CROP:
        kept = 100 / ratio
        warnings.append(f"**{name}** is {w} x {h} ({ratio:.0f}:1): the centre crop keeps about "
                        f"{kept:.0f}% of it. Crop it to the object to explain.")
    sentence = f"Input: **{name}** ({w} x {h}), " + ", ".join(steps) + "."
    return InputReport(sentence, warnings)
