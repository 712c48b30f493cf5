"""Figures for slides and papers: a plotly figure as PNG (high resolution) or SVG, with the
settings that made it in the file name and inside the file. No streamlit.

One static path for every surface (app downloads, ``evaluate`` and ``bench`` plots): plotly's own
export through kaleido, which drives a headless chromium (Debian's ``/usr/bin/chromium`` here and
in CI; no network needed). The browser is started once per process, on the first export, so
nothing is paid until a figure is asked for.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping

import plotly.graph_objects as go

FORMATS = ("png", "svg")
PNG_SCALE = 3          # 3x the on-screen size: ~300 dpi at a slide's width
WIDTH, HEIGHT = 1000, 600  # a figure without its own size is exported at this size (CSS px)
METADATA_KEY = "explorer-settings"  # PNG text chunk / SVG <metadata> holding the settings JSON
_LOCK = threading.Lock()  # one export at a time: kaleido's browser is shared by the process
_started = False


def _ensure_browser() -> None:
    """Point kaleido at the system's chromium when it has no browser of its own, and keep one
    running for the process (the first start costs seconds; later exports ~0.1-0.5 s)."""
    global _started
    if _started:
        return
    if "BROWSER_PATH" not in os.environ:
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        if found:
            os.environ["BROWSER_PATH"] = found
    import kaleido
    try:
        kaleido.start_sync_server(silence_warnings=True)
    except Exception:  # an older kaleido, or one already started: to_image starts its own
        pass
    _started = True


def slug(text: Any) -> str:
    """A file-name-safe short form of a setting's value."""
    s = re.sub(r"[^A-Za-z0-9.=+-]+", "-", str(text)).strip("-")
    return s[:40] or "x"


def file_name(stem: str, settings: Mapping[str, Any], fmt: str) -> str:
    """``stem_key-value_..._key-value.fmt`` for the settings that name a view (order kept)."""
    parts = [slug(stem)] + [f"{slug(k)}-{slug(v)}" for k, v in settings.items()
                            if v not in (None, "", [], ())]
    return "_".join(parts)[:200] + f".{fmt}"


def _png_with_metadata(png: bytes, text: str) -> bytes:
    from PIL import Image, PngImagePlugin
    image = Image.open(io.BytesIO(png))
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, text)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, dpi=(300, 300))
    return out.getvalue()


def _svg_with_metadata(svg: bytes, text: str) -> bytes:
    from xml.sax.saxutils import escape
    s = svg.decode("utf-8")
    end = s.index(">", s.index("<svg")) + 1  # after the opening <svg ...> tag
    return (s[:end] + f"<metadata id=\"{METADATA_KEY}\">{escape(text)}</metadata>"
            + s[end:]).encode("utf-8")


def export(fig: go.Figure, fmt: str, settings: Mapping[str, Any] | None = None, *,
           scale: float = PNG_SCALE) -> bytes:
    """The figure as ``fmt`` ("png" or "svg") bytes, with ``settings`` as JSON inside the file.

    A PNG is ``scale`` times the figure's size in pixels; both keep the figure's own width and
    height when it has them, else WIDTH x HEIGHT."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    import warnings

    import plotly.io as pio
    width = fig.layout.width or WIDTH
    height = fig.layout.height or HEIGHT
    with _LOCK:
        _ensure_browser()
        with warnings.catch_warnings():  # "kopts ignored with a server": size and scale still hold
            warnings.simplefilter("ignore", UserWarning)
            data = pio.to_image(fig, format=fmt, width=width, height=height,
                                scale=scale if fmt == "png" else 1)
    text = json.dumps(dict(settings or {}), default=str, sort_keys=False)
    return _png_with_metadata(data, text) if fmt == "png" else _svg_with_metadata(data, text)


def write(fig: go.Figure, path: Path, settings: Mapping[str, Any] | None = None) -> Path:
    """Write the figure to ``path`` (its suffix chooses PNG or SVG); returns the path."""
    path = Path(path)
    path.write_bytes(export(fig, path.suffix.lstrip(".").lower(), settings))
    return path


def read_settings(data: bytes) -> dict:
    """The settings stored in an exported PNG or SVG (the inverse of what ``export`` adds)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        from PIL import Image
        return json.loads(Image.open(io.BytesIO(data)).text[METADATA_KEY])
    from xml.sax.saxutils import unescape
    m = re.search(rf'<metadata id="{METADATA_KEY}">(.*?)</metadata>', data.decode("utf-8"), re.S)
    return json.loads(unescape(m.group(1))) if m else {}
