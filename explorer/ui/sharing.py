"""Streamlit glue of shareable views: read the link once per session, keep the URL in step.

``start()`` (first thing in a run) reads the query parameters on a session's first run only and
keeps what they ask for; the sidebar calls ``seed(...)`` just before each widget, which puts a
valid requested value into that widget's state; ``finish(...)`` writes the current view back into
the address bar and draws the "Copy link to this view" box. The encoding itself lives in
``explorer.ui.view_state`` (pure functions, tested without streamlit).
"""
from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

import explorer
from explorer.ui import view_state
from explorer.ui.view_state import View

_VIEW = "_sharing_view"      # the View the link asked for (fields cleared once applied)
_NOTES = "_sharing_notes"    # what the link asked for that could not be used
_PAGE = "_sharing_page"      # the page the link opened on (st.navigation's default this session)
PRESENT = "present"          # the presentation-mode toggle's key


def start(pages: Sequence[str]) -> str:
    """Read the link on the session's first run; returns the page to open by default."""
    if _VIEW not in st.session_state:
        view, notes = view_state.parse(st.query_params.to_dict(), explorer.METHODS, pages)
        st.session_state[_VIEW], st.session_state[_NOTES] = view, notes
        st.session_state[_PAGE] = view.page or pages[0]
        st.session_state[PRESENT] = view.present
        for m, values in view.params.items():  # the settings' widgets appear later, if at all
            for name, value in values.items():
                st.session_state[f"param.{m}.{name}"] = value
    return st.session_state[_PAGE]


def requested(field: str) -> Any:
    """What the link asked for ``field`` and has not been applied yet (None: nothing)."""
    view = st.session_state.get(_VIEW)
    return None if view is None else getattr(view, field)


def seed(field: str, key: str, options: Sequence[Any], what: str, to_option=None) -> None:
    """Put the link's ``field`` into widget ``key`` if it is one of ``options`` (after
    ``to_option``), else leave the default and note why. Each field is applied once."""
    value = requested(field)
    if value is None:
        return
    setattr(st.session_state[_VIEW], field, None)
    option = to_option(value) if to_option is not None else value
    if isinstance(value, list):  # the methods: a multiselect takes the known ones
        st.session_state[key] = [v for v in value if v in options]
        return
    picked, note = view_state.pick(option, list(options), what)
    if note:
        st.session_state[_NOTES].append(note)
    elif picked is not None:
        st.session_state[key] = picked


def seed_number(field: str, key: str, low: float, high: float, what: str) -> None:
    """Put the link's number ``field`` into widget ``key`` if it lies in [low, high]."""
    value = requested(field)
    if value is None:
        return
    setattr(st.session_state[_VIEW], field, None)
    value, note = view_state.pick_number(value, low, high, what)
    if note:
        st.session_state[_NOTES].append(note)
    elif value is not None:
        st.session_state[key] = float(value)


def current_view(ctx, page: str) -> tuple[View, str | None]:
    """The view on screen, and a note on what a link cannot carry (an uploaded file)."""
    uploaded = ctx.input_name not in _example_names(ctx)
    caveat = []
    if uploaded:
        caveat.append(f"the uploaded input '{ctx.input_name}'")
    if ctx.baseline_name == "image":
        caveat.append("the uploaded baseline image")
    view = View(page=page, model=ctx.model, variants=tuple(ctx.variants),
                input=None if uploaded else ctx.input_name,
                target=None if uploaded else ctx.target, methods=list(ctx.methods),
                params=view_state.non_default(ctx.params, explorer.METHODS),
                baseline=ctx.baseline_name,
                sigma=ctx.baseline_sigma, present=bool(st.session_state.get(PRESENT)))
    note = None
    if caveat:
        note = (f"A link cannot carry {' or '.join(caveat)}: whoever opens it sees the "
                "default example there; send the file along.")
    return view, note


def _example_names(ctx) -> list[str]:
    from explorer.ui.context import examples
    return list(examples(ctx.entry.spec.channels))


def show_notes() -> None:
    """What the link asked for that could not be used (shown once, on the first run)."""
    for note in st.session_state.get(_NOTES, []):
        st.warning(f"Link: {note}")
    st.session_state[_NOTES] = []


def finish(ctx, page: str, pages: Sequence[str]) -> None:
    """Keep the address bar on the current view and offer the link (in the sidebar)."""
    st.session_state[_VIEW] = View()  # from here on the widgets rule
    if ctx is None:
        return
    view, caveat = current_view(ctx, page)
    query = view_state.encode(view)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    url = getattr(st.context, "url", None)
    with st.sidebar:
        st.header("Share")
        st.toggle("Presentation mode", key=PRESENT,
                  help="Large type, sidebar collapsed, one figure per screen. "
                       "A link made in this mode opens in it.")
        st.caption("Copy link to this view (the copy button is at the box's right):")
        st.code(view_state.link(url, query, page, pages), language=None, wrap_lines=True)
        if not url:
            st.caption("The server's address is not known here: put it before the '?'.")
        else:
            st.caption("The address is the one this browser used; a class on another "
                       "machine needs the server's network name instead of localhost.")
        if caveat:
            st.caption(caveat)
