"""Reading user images safely: any common format and mode -> float RGB/gray arrays in [0, 1].

Bounds, checked from the header before any pixel is decoded or resampled: at most
``MAX_PIXELS`` pixels and an aspect ratio of at most ``MAX_ASPECT``:1. Large images are shrunk
by an integer box filter in their own mode before the float conversion, so the peak memory of
one upload stays under ``MEMORY_BOUND_MB`` (the decoded 8-bit image plus small copies) and the
work under a second or two on a laptop CPU.
"""
from __future__ import annotations

import io
import os
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.errors import InputError

MAX_PIXELS = 25_000_000  # a 24 MP camera photo (6000 x 4000) passes; a decompression bomb does not
MAX_ASPECT = 20          # a 20:1 panorama passes; a 1 x 100000 strip does not
MEMORY_BOUND_MB = 400    # peak extra memory of opening and preprocessing the largest allowed upload
# Only these decoders are ever tried: no EPS (Ghostscript), PDF, PSD, ... whatever the file name.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


def check_size(width: int, height: int) -> None:
    """InputError unless a width x height image is within the pixel and aspect-ratio bounds."""
    if width <= 0 or height <= 0:
        raise InputError("the image has no pixels")
    if width * height > MAX_PIXELS:
        raise InputError(f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} MP); "
                         f"the limit is {MAX_PIXELS / 1e6:.0f} MP: scale it down")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT:
        raise InputError(f"the image is {width} x {height} pixels, an aspect ratio of {ratio:.0f}:1; "
                         f"the limit is {MAX_ASPECT}:1: crop it to the part to explain")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (
            arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"an image array must be uint8 [H, W], [H, W, 1], [H, W, 3] or "
                         f"[H, W, 4], got {arr.dtype} {list(arr.shape)}")
    check_size(arr.shape[1], arr.shape[0])
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return Image.fromarray(np.ascontiguousarray(arr))  # L, RGB or RGBA from the shape


def open_image(source: bytes | str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """Open, check the size and shape, and fully decode an image; EXIF orientation applied.

    Takes encoded bytes, a path, a PIL image, or a uint8 array [H, W] / [H, W, 1|3|4].
    Raises InputError for anything else, for formats outside ``FORMATS`` and for images
    beyond the bounds."""
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        check_size(*source.size)
        img = source
    elif isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)):
        if isinstance(source, (bytes, bytearray, memoryview)) and len(source) == 0:
            raise InputError("the file is empty")
        stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        try:
            # No warnings.catch_warnings here: it swaps process-wide state, and sessions run in
            # threads. Pillow's own bomb check only warns below 2 x its limit; ours is lower.
            img = Image.open(stream, formats=FORMATS)
            check_size(*img.size)  # from the header: nothing decoded yet
            img.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise InputError(f"the image is too large to decode safely ({err})") from err
        except UnidentifiedImageError as err:
            raise InputError(f"the file is not an image in a supported format "
                             f"({', '.join(FORMATS)})") from err
        except FileNotFoundError as err:
            raise InputError(f"no such image file: {source}") from err
        except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError,
                struct.error, MemoryError, OverflowError, ZeroDivisionError) as err:
            # Pillow's plugins raise all of these on hostile headers; none is the caller's bug.
            raise InputError(f"the image could not be decoded (truncated or corrupt?): {err}") from err
    else:
        raise InputError(f"an image must be file bytes, a path, a PIL image or a uint8 array, "
                         f"got {type(source).__name__}")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose the picture
        pass
    return img


def shrink(img: Image.Image, short_side: int) -> Image.Image:
    """``img`` reduced by a whole factor (box filter, its own mode) while its short side stays
    >= 2 * ``short_side``: bounds the memory of the float conversion, keeps the detail the
    final resize needs. Images already that small are returned as they are."""
    factor = min(img.size) // (2 * short_side)
    if factor < 2:
        return img
    # No box reduce for these modes: go to one with the same information first.
    if img.mode.startswith("I;16"):
        img = Image.fromarray(np.asarray(img, dtype=np.float32) / 65535.0)
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    elif img.mode == "1":
        img = img.convert("L")
    return img.reduce(factor)


def _float_gray(img: Image.Image) -> np.ndarray:
    """A 1-channel integer or float image as [H, W] float in [0, 1]; the range is read from the
    mode (16-bit) or the values (0..1, 0..255, 0..65535); non-finite pixels are refused."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(f"the float image has {int(bad.sum())} NaN or infinite pixel(s); "
                             "replace them with finite values in 0..1")
    top = float(arr.max(initial=0.0))
    if img.mode.startswith("I;16"):
        scale = 65535.0
    elif img.mode == "F" and top <= 1.0:
        scale = 1.0
    elif top <= 255.0:
        scale = 255.0
    elif top <= 65535.0:
        scale = 65535.0
    else:
        raise InputError(f"the image's values reach {top:.4g}; expected 0..1 (float), 0..255 "
                         "or 0..65535: rescale it")
    return np.clip(arr / scale, 0, 1)


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    """[H, W, channels] float32 in [0, 1]; transparency composited over white, 16-bit and
    float images scaled by their range. Raises InputError for modes that cannot be converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _float_gray(img).astype(np.float32)[..., None]
        return gray if channels == 1 else np.repeat(gray, 3, axis=2)
    try:
        if img.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        if img.mode not in ("1", "L", "RGB", "RGBA"):
            img = img.convert("RGB")  # LAB, HSV, CMYK, YCbCr, ...: via RGB, whatever the target
        img = img.convert("L" if channels == 1 else "RGB")
    except (ValueError, OSError) as err:
        raise InputError(f"images in colour mode {img.mode} are not supported ({err}); "
                         "save it as RGB or grayscale") from err
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if channels == 1 else arr
