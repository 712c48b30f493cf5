"""PNG and SVG download buttons under a figure. The image is rendered only when a button is
clicked (streamlit calls ``data`` then), so a page loads as fast as without them."""
from __future__ import annotations

from typing import Callable

import plotly.graph_objects as go
import streamlit as st

from explorer.presentation import figures
from explorer.ui import context, sharing, view_state

MIME = {"png": "image/png", "svg": "image/svg+xml"}


def view_settings(page: str) -> tuple[dict, dict]:
    """(short settings for the file name, the whole view for the file's metadata)."""
    ctx = st.session_state.get(context._KEY)
    if ctx is None:
        return {}, {}
    view, _ = sharing.current_view(ctx, page)
    short = {"model": ctx.model, "bias": view_state.BIAS_TOKENS[tuple(ctx.variants)],
             "class": ctx.target, "baseline": ctx.baseline_name}
    if ctx.baseline_sigma is not None:
        short["sigma"] = f"{ctx.baseline_sigma:g}"
    return short, {"view": view_state.encode(view)}


def figure_buttons(fig: go.Figure | Callable[[], go.Figure], name: str, *,
                   page: str, extra: dict | None = None) -> None:
    """"PNG" and "SVG" buttons for ``fig`` (or a function making it, called on click only).

    ``name`` says which figure (unique on the page, also the widget keys); ``extra`` adds
    figure-specific settings (for example the methods shown) to the file's metadata."""
    short, meta = view_settings(page)
    meta = {"figure": f"{page}-{name}", **meta, **(extra or {})}
    make = fig if callable(fig) else (lambda: fig)
    with st.container(horizontal=True, key=f"download-{page}-{name}"):
        for fmt in figures.FORMATS:
            st.download_button(
                fmt.upper(), data=lambda fmt=fmt: figures.export(make(), fmt, meta),
                file_name=figures.file_name(f"{page}-{name}", short, fmt), mime=MIME[fmt],
                key=f"download-{page}-{name}-{fmt}", on_click="ignore",
                icon=":material/download:",
                help=f"This figure as {fmt.upper()}" + (" (3x resolution)" if fmt == "png" else "")
                + "; the settings are in the file name and inside the file.")


def plotly_chart(fig: go.Figure, *, key: str, **kwargs) -> None:
    """``st.plotly_chart`` followed by the figure's PNG/SVG buttons (named by ``key``)."""
    st.plotly_chart(fig, key=key, **kwargs)
    figure_buttons(fig, key, page=current_page())


def current_page() -> str:
    """The page being drawn (set by the entry point before the page runs)."""
    return st.session_state.get(PAGE_NOW, "explore")


PAGE_NOW = "_page_now"
