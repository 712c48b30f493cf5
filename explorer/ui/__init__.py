"""The Streamlit app. The only package that imports streamlit."""
from __future__ import annotations

import streamlit as st

from explorer.ui import context, sessions
from explorer.ui.pages import PAGES, render_function


def main() -> None:
    """Shared sidebar first (its widgets keep their values on every page), then the page.

    A page runs inside ``precision_scope`` of the sidebar's choice, so everything it computes
    is in that precision (the scope is shared with other sessions computing in the same one,
    and waits while another session computes in a different one: see ``explorer.precision``)."""
    pages = [st.Page(render_function(p), title=p.title, icon=p.icon, url_path=p.name,
                     default=(i == 0)) for i, p in enumerate(PAGES)]
    page = st.navigation(pages)
    with sessions.running():  # the timing says how many sessions ran at once
        _run(page)


def _run(page) -> None:
    from explorer.precision import precision_scope
    spec = next((p for p in PAGES if p.title == page.title), None)
    ctx = context.build()
    if ctx is None or spec is None or not spec.scoped:
        page.run()
        return
    with precision_scope(ctx.precision, ctx.device):
        page.run()


__all__ = ["main"]
