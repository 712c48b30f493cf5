"""The Streamlit app. The only package that imports streamlit."""
from __future__ import annotations

import streamlit as st

from explorer.ui import context, downloads, presentation, sessions, sharing
from explorer.ui.pages import PAGES, render_function


def main() -> None:
    """Shared sidebar first (its widgets keep their values on every page), then the page.

    A link's query parameters choose the opening page and seed the sidebar (``sharing``); the
    address bar then follows the view, so it can be copied at any time.

    A page runs inside ``precision_scope`` of the sidebar's choice, so everything it computes
    is in that precision (the scope is shared with other sessions computing in the same one,
    and waits while another session computes in a different one: see ``explorer.precision``)."""
    names = [p.name for p in PAGES]
    opening = sharing.start(names)
    pages = [st.Page(render_function(p), title=p.title, icon=p.icon, url_path=p.name,
                     default=(p.name == opening)) for p in PAGES]
    page = st.navigation(pages)
    presentation.apply(bool(st.session_state.get(sharing.PRESENT)))
    with sessions.running():  # the timing says how many sessions ran at once
        _run(page, opening, names)


def _run(page, opening: str, names: list[str]) -> None:
    from explorer.precision import precision_scope
    spec = next((p for p in PAGES if p.title == page.title), None)
    ctx = context.build()
    st.session_state[downloads.PAGE_NOW] = page.url_path or opening
    here = page.url_path or opening
    box = sharing.finish(ctx, here, names)
    sharing.show_notes()
    if ctx is None or spec is None or not spec.scoped:
        page.run()
    else:
        with precision_scope(ctx.precision, ctx.device):
            page.run()
    if box is not None:  # the page's own widgets are drawn now: the link has their values
        sharing.refresh(box, ctx, here, names)


__all__ = ["main"]
