"""Uploads in any common format and mode become the right arrays; bad files give InputError."""
import io

import numpy as np
import pytest
from PIL import Image

import explorer
from explorer.inputs.images import open_image, to_array


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_formats_round_trip(fmt):
    rgb = Image.new("RGB", (40, 30), (200, 100, 50))
    arr = to_array(open_image(encode(rgb, fmt)), 3)
    assert arr.shape == (30, 40, 3)
    np.testing.assert_allclose(arr[15, 20], np.array([200, 100, 50]) / 255, atol=0.03)


def test_grayscale_palette_rgba_and_16_bit():
    gray = Image.new("L", (8, 8), 128)
    assert to_array(open_image(encode(gray, "PNG")), 3).shape == (8, 8, 3)
    pal = Image.new("RGB", (8, 8), (255, 0, 0)).convert("P")
    np.testing.assert_allclose(to_array(open_image(encode(pal, "PNG")), 3)[0, 0], [1, 0, 0], atol=0.01)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent -> white background
    np.testing.assert_allclose(to_array(open_image(encode(rgba, "PNG")), 3)[0, 0], [1, 1, 1])
    deep = Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16))
    value = to_array(open_image(encode(deep, "PNG")), 1)[0, 0, 0]
    assert value == pytest.approx(0.5, abs=0.01)  # not clipped to white as a naive convert would


def test_exif_orientation_is_respected():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    opened = open_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert opened.size == (20, 40)


def test_bad_files():
    with pytest.raises(explorer.InputError, match="empty"):
        open_image(b"")
    with pytest.raises(explorer.InputError, match="not an image"):
        open_image(b"%PDF-1.4 definitely not a picture")
    data = encode(Image.new("RGB", (64, 64), (9, 9, 9)), "PNG")
    with pytest.raises(explorer.InputError, match="truncated or corrupt"):
        open_image(data[: len(data) // 2])
    bomb = encode(Image.new("1", (12000, 12000)), "PNG")  # 144 MP, a few kB on disk
    with pytest.raises(explorer.InputError, match="too large|limit"):
        open_image(bomb)


def test_digit_preprocessing_inverts_dark_on_light_drawings():
    entry = explorer.load_model("digits-cnn")
    drawing = np.full((100, 100), 255, dtype=np.uint8)
    drawing[20:80, 45:55] = 0  # a black "1" on white paper
    x = entry.preprocess(encode(Image.fromarray(drawing), "PNG"))
    assert x.shape == (1, 28, 28)
    assert x[0, 14, 14] > 0.8 and x[0, 2, 2] < 0.1
