"""The Streamlit app. The only package that imports streamlit."""
from __future__ import annotations

import streamlit as st

from explorer.ui import context, sessions
from explorer.ui.pages import PAGES, render_function


def main() -> None:
    """Shared sidebar first (its widgets keep their values on every page), then the page."""
    pages = [st.Page(render_function(p), title=p.title, icon=p.icon, url_path=p.name,
                     default=(i == 0)) for i, p in enumerate(PAGES)]
    page = st.navigation(pages)
    with sessions.running():  # the timing says how many sessions ran at once
        context.build()
        page.run()


__all__ = ["main"]
