"""Streamlit glue of shareable views: read the link once per session, keep the URL in step.

``start()`` (first thing in a run) reads the query parameters on a session's first run only and
keeps what they ask for; the sidebar calls ``seed(...)`` just before each widget, which puts a
valid requested value into that widget's state; a page draws each of its own widgets through
``widget(name, ctx)``, which seeds it the same way from its declaration in
``explorer.ui.view_settings``; ``finish(...)`` writes the current view back into
the address bar and draws the "Copy link to this view" box, and ``refresh(...)`` rewrites both
once the page has drawn its widgets. The encoding itself lives in
``explorer.ui.view_state`` (pure functions, tested without streamlit).
"""
from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

import explorer
from explorer.ui import view_settings, view_state
from explorer.ui.view_settings import Setting
from explorer.ui.view_state import View

_VIEW = "_sharing_view"      # the View the link asked for (fields cleared once applied)
_NOTES = "_sharing_notes"    # what the link asked for that could not be used
_PAGE = "_sharing_page"      # the page the link opened on (st.navigation's default this session)
_PENDING = "_sharing_settings"  # declared widgets' values from the link, until each is drawn
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
        pending = dict(view.settings)
        for name in list(pending):  # every-page widgets: read early (the precision keys results)
            s = view_settings.BY_NAME[name]
            if s.page is None and s.mode is None:
                st.session_state[s.key] = pending.pop(name)
        st.session_state[_PENDING] = pending
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


def mode_values(ctx) -> dict[str, Any]:
    """The view's value of every mode a setting's default or key may depend on."""
    from explorer.ui.compute import model_spec
    return {} if ctx is None else view_settings.modes(model_spec(ctx.model), tuple(ctx.variants))


def widget(name: str, ctx=None, options: Sequence[Any] | None = None) -> tuple[Setting, str, Any]:
    """The declaration of page widget ``name``, its key and its default in this view.

    Call just before drawing the widget: a value the link asked for goes into the widget's state
    first, when it is one of ``options`` (the options of the moment, if they are fewer than the
    declared ones), else a warning there says why the default is shown."""
    s = view_settings.BY_NAME[name]
    mode = mode_values(ctx).get(s.mode) if s.mode else None
    key = s.key_for(mode)
    pending = st.session_state.get(_PENDING, {})
    if name in pending:
        value = pending.pop(name)
        if options is not None and value not in options:
            st.warning(f"Link: setting {name} '{s.format(value)}' is not available here; "
                       "using the default.")
        else:
            st.session_state[key] = value
    return s, key, s.default_for(mode)


def follow(name: str, value: Any, ctx=None) -> None:
    """Put a widget's new value into the address bar at once (for a widget in a fragment,
    whose reruns do not reach ``finish``)."""
    s = view_settings.BY_NAME[name]
    if s.same(value, mode_values(ctx).get(s.mode)):
        st.query_params.pop(name, None)
    else:
        st.query_params[name] = s.format(value)


def setting_values(ctx, page: str) -> dict[str, Any]:
    """The non-default values of the settings a view of ``page`` carries: the link's value
    where its widget has not been drawn yet, else the widget's."""
    modes, pending, values = mode_values(ctx), st.session_state.get(_PENDING, {}), {}
    for s in view_settings.of_page(page):
        key = s.key_for(modes.get(s.mode))
        if s.name in pending:
            values[s.name] = pending[s.name]
        elif key in st.session_state:
            values[s.name] = st.session_state[key]
    return view_settings.non_default(values, modes)


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
                sigma=ctx.baseline_sigma, present=bool(st.session_state.get(PRESENT)),
                settings=setting_values(ctx, page))
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


def finish(ctx, page: str, pages: Sequence[str]):
    """Keep the address bar on the current view and offer the link (in the sidebar). Returns
    the link's box, for ``refresh`` after the page has drawn its own widgets (None: no box)."""
    st.session_state[_VIEW] = View()  # from here on the widgets rule
    if ctx is None:
        return None
    with st.sidebar:
        st.header("Share")
        st.toggle("Presentation mode", key=PRESENT,
                  help="Large type, sidebar collapsed, one figure per screen. "
                       "A link made in this mode opens in it.")
        box = st.empty()
    refresh(box, ctx, page, pages)
    return box


def refresh(box, ctx, page: str, pages: Sequence[str]) -> None:
    """Write the view into the address bar and ``box`` (again after the page ran: a page
    widget seeded from the link may have fallen back to its default)."""
    view, caveat = current_view(ctx, page)
    query = view_state.encode(view)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    url = getattr(st.context, "url", None)
    with box.container():
        st.caption("Copy link to this view (the copy button is at the box's right):")
        st.code(view_state.link(url, query, page, pages), language=None, wrap_lines=True)
        if not url:
            st.caption("The server's address is not known here: put it before the '?'.")
        else:
            st.caption("The address is the one this browser used; a class on another "
                       "machine needs the server's network name instead of localhost.")
        if caveat:
            st.caption(caveat)
