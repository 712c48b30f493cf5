"""Presentation mode for projectors: large type, the sidebar collapsed, one figure per screen.

Set from the link (``?present=1``) or the sidebar's "Presentation mode" toggle. Only CSS and
the page config change: every page draws the same elements, so nothing else needs to know.
"""
from __future__ import annotations

import streamlit as st

# One figure per screen: each chart or image block is at least a screen tall and its picture fits
# within it; type is about 1.5x larger. data-testid names are streamlit's (stable across 1.4x).
CSS = """
<style>
html { font-size: 24px; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] li,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] td,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] th,
[data-testid="stMain"] [data-testid="stCaptionContainer"] { font-size: 1.25rem; }
[data-testid="stMain"] [data-testid="stMetricValue"] * { font-size: 3rem; }
[data-testid="stMain"] h1 { font-size: 3rem; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.2rem; }
[data-testid="stMain"] [data-testid="stElementContainer"]:has([data-testid="stImage"]),
[data-testid="stMain"] [data-testid="stElementContainer"]:has(.stPlotlyChart) {
  min-height: 96vh; display: flex; flex-direction: column; justify-content: center;
  scroll-margin-top: 3rem;  /* below streamlit's header when scrolled to */
}
[data-testid="stMain"] [data-testid="stImage"] img { max-height: 86vh; width: auto; object-fit: contain; }
</style>
"""


def apply(on: bool) -> None:
    """Collapse the sidebar and enlarge the page when ``on`` (call before the page draws)."""
    if not on:
        st.set_page_config(initial_sidebar_state="auto")
        return
    st.set_page_config(initial_sidebar_state="collapsed")
    st.html(CSS)
