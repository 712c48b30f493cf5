"""The Streamlit app. The only package that imports streamlit."""
from __future__ import annotations

import streamlit as st

from explorer.ui import context, downloads, presentation, sharing
from explorer.ui.pages import PAGES, render_function


def main() -> None:
    """Shared sidebar first (its widgets keep their values on every page), then the page.

    A link's query parameters choose the opening page and seed the sidebar (``sharing``); the
    address bar then follows the view, so it can be copied at any time."""
    names = [p.name for p in PAGES]
    opening = sharing.start(names)
    pages = [st.Page(render_function(p), title=p.title, icon=p.icon, url_path=p.name,
                     default=(p.name == opening)) for p in PAGES]
    page = st.navigation(pages)
    presentation.apply(bool(st.session_state.get(sharing.PRESENT)))
    ctx = context.build()
    st.session_state[downloads.PAGE_NOW] = page.url_path or opening
    sharing.finish(ctx, page.url_path or opening, names)
    sharing.show_notes()
    page.run()


__all__ = ["main"]
