"""The input line above the maps: what preprocessing did, and out-of-domain warnings."""
import io

import numpy as np
from PIL import Image

from explorer.inputs.input_report import describe_input


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_a_colour_photo_on_the_digits_model_is_named_and_warned_about():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    r = describe_input("cat.png", png(photo), channels=1, size=28, digits=True)
    assert "**cat.png** (80 x 60)" in r.sentence and "grayscale" in r.sentence
    assert "resized from 80 x 60 to 28 x 28" in r.sentence
    assert any("colour picture" in w for w in r.warnings)


def test_a_bundled_digit_needs_no_warning():
    digit = np.zeros((28, 28), np.uint8)
    digit[8:20, 12:16] = 255
    r = describe_input("digit 1", png(digit), channels=1, size=28, digits=True)
    assert r.warnings == [] and "resized" not in r.sentence and "grayscale" not in r.sentence


def test_a_20_to_1_strip_warns_that_the_crop_keeps_little():
    strip = np.full((20, 400, 3), 128, np.uint8)
    strip[:, :, 0] = 200
    r = describe_input("strip.png", png(strip), channels=3, size=224, digits=False)
    assert "centre crop 224 x 224" in r.sentence and "normalised" in r.sentence
    [w] = r.warnings
    assert "(20:1)" in w and "about 5% of it" in w
