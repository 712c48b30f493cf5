"""Reading user images safely: any common format and mode -> float RGB/gray arrays in [0, 1]."""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.errors import InputError

MAX_PIXELS = 50_000_000  # a 7000 x 7000 photo passes; a decompression bomb does not


def open_image(source: bytes | str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """Open, verify and fully decode an image; EXIF orientation applied. Raises InputError.

    Takes encoded bytes, a path, a PIL image, or a uint8 array [H, W] / [H, W, 3|4]."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise InputError(f"an image array must be uint8 [H, W] or [H, W, C], got "
                             f"{source.dtype} {list(source.shape)}")
        source = Image.fromarray(source)
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray)) and len(source) == 0:
            raise InputError("the file is empty")
        stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(stream)
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise InputError(f"the image is {w} x {h} pixels ({w * h / 1e6:.0f} MP); "
                                     f"the limit is {MAX_PIXELS / 1e6:.0f} MP")
                img.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise InputError(f"the image is too large to decode safely ({err})") from err
        except UnidentifiedImageError as err:
            raise InputError("the file is not an image PIL can read (PNG, JPEG, WebP, BMP, ...)") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise InputError(f"the image could not be decoded (truncated or corrupt?): {err}") from err
    if img.size[0] == 0 or img.size[1] == 0:
        raise InputError("the image has no pixels")
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose the picture
        return img


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    """[H, W, channels] float32 in [0, 1]; transparency composited over white, 16-bit scaled."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top, 0, 1).astype(np.float32)[..., None]
        return gray if channels == 1 else np.repeat(gray, 3, axis=2)
    if img.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if channels == 1 else arr
