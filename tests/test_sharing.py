"""Shareable views: the link <-> view encoding (pure) and the app opening a link (AppTest)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from explorer.ui import view_state
from explorer.ui.pages import PAGES
from explorer.ui.view_state import View

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGE_NAMES = [p.name for p in PAGES]


def test_a_view_survives_encode_then_parse():
    view = View(page="metrics", model="digits-cnn", variants=("bias-free",), input="digit 7 (#3)",
                target=7, methods=["saliency", "integrated_gradients"],
                params={"integrated_gradients": {"steps": 17, "rule": "left"}},
                baseline="blur", sigma=2.0 / 3.0, present=True)
    query = view_state.encode(view)
    assert query["bias"] == "bias-free" and query["class"] == "7"
    back, notes = view_state.parse(query, explorer.METHODS, PAGE_NAMES)
    assert notes == []
    assert back == view  # floats exact too: repr round-trips


def test_only_non_default_settings_travel():
    ig = {p.name: p.default for p in explorer.METHODS["integrated_gradients"].params}
    changed = dict(ig, steps=ig["steps"] + 1)
    assert view_state.non_default({"integrated_gradients": changed, "saliency": {}},
                                  explorer.METHODS) == {"integrated_gradients": {"steps": ig["steps"] + 1}}
    assert view_state.non_default({"integrated_gradients": ig}, explorer.METHODS) == {}


@pytest.mark.parametrize("key, token, says", [
    ("page", "nowhere", "not a page"),
    ("bias", "half", "not one of"),
    ("class", "seven", "not a class number"),
    ("methods", "saliency,nonsense", "Unknown method(s) nonsense"),
    ("integrated_gradients.steps", "abc", "Setting integrated_gradients.steps"),
    ("integrated_gradients.steps", "1e9", "outside"),
    ("integrated_gradients.steps", "2.5", "not a whole number"),
    ("integrated_gradients.rule", "simpson", "not one of"),
    ("integrated_gradients.nope", "1", "not a setting"),
    ("sigma", "nan", "not a number"),
    ("sigma", "wide", "not a number"),
])
def test_a_bad_parameter_is_a_note_never_an_exception(key, token, says):
    view, notes = view_state.parse({key: token}, explorer.METHODS, PAGE_NAMES)
    assert len(notes) == 1 and says in notes[0], notes
    assert view.page is None and view.variants is None and view.target is None
    assert view.sigma is None and view.params.get("integrated_gradients", {}) == {}


def test_pick_checks_against_the_options_of_the_moment():
    assert view_state.pick(3, range(10), "Class") == (3, None)
    value, note = view_state.pick(12, range(10), "Class")
    assert value is None and "'12'" in note and "default" in note
    assert view_state.pick_number(2.0, 0.5, 14.0, "Blur width") == (2.0, None)
    assert view_state.pick_number(40.0, 0.5, 14.0, "Blur width")[0] is None


def test_the_link_keeps_the_server_path_and_names_the_page():
    q = {"model": "digits-cnn", "input": "digit 7 (test #3)"}
    url = view_state.link("http://host:8501/tools/explorer/metrics", q, "metrics", PAGE_NAMES)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "host:8501", "/tools/explorer/metrics")
    assert dict(parse_qsl(parts.query)) == q  # the '#' and spaces are escaped and come back
    assert urlsplit(view_state.link("http://host:8501/", q, "explore", PAGE_NAMES)).path == "/"
    assert view_state.link(None, q, "metrics", PAGE_NAMES).startswith("?model=digits-cnn")


def open_link(query: dict) -> AppTest:
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shared_link(at: AppTest) -> dict:
    return dict(parse_qsl(urlsplit(at.sidebar.code[0].value).query))


def test_a_link_reproduces_the_view_and_offers_itself_again():
    query = {"page": "axioms", "model": "digits-cnn", "bias": "bias-free",
             "input": "digit 4 (test #16)", "class": "9", "methods": "saliency,integrated_gradients",
             "integrated_gradients.steps": "17", "baseline": "blur", "sigma": "2.5"}
    at = open_link(query)
    assert not [w.value for w in at.warning if w.value.startswith("Link:")]
    assert at.sidebar.selectbox(key="model").value == "digits-cnn"
    assert at.sidebar.radio(key="variants").value == "Bias-free only"
    assert at.sidebar.selectbox(key="example-1-digits-cnn").value == "digit 4 (test #16)"
    target = next(s for s in at.sidebar.selectbox if s.key.startswith("target-"))
    assert target.value == 9
    assert at.sidebar.multiselect(key="methods").value == ["saliency", "integrated_gradients"]
    assert at.sidebar.number_input(key="param.integrated_gradients.steps").value == 17
    assert at.sidebar.selectbox(key="baseline").value == "blur"
    assert [s.value for s in at.sidebar.slider if s.key.startswith("baseline-sigma-blur")] == [2.5]
    assert [t.value for t in at.title] == ["Axiom lab"]  # the link's page ran
    assert shared_link(at) == query  # the box offers the same view back
    assert {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()} == query


def test_bad_or_stale_parameters_fall_back_with_a_message():
    at = open_link({"model": "no-such-model", "bias": "half", "class": "99",
                    "methods": "saliency,nonsense", "integrated_gradients.steps": "abc",
                    "baseline": "moon", "sigma": "1e9", "input": "a file I uploaded.png",
                    "page": "nowhere"})
    said = " ".join(w.value for w in at.warning)
    for part in ("no-such-model", "half", "'99'", "nonsense", "integrated_gradients.steps",
                 "moon", "a file I uploaded.png", "nowhere"):
        assert part in said, (part, said)
    assert at.sidebar.selectbox(key="model").value == "digits-cnn"  # the defaults instead
    assert at.sidebar.multiselect(key="methods").value == ["saliency"]
    assert at.sidebar.selectbox(key="baseline").value == "zero"
    assert shared_link(at)["model"] == "digits-cnn"
    at.run()  # the notes are said once; the next run is quiet about the link
    assert not at.exception
    assert not [w.value for w in at.warning if w.value.startswith("Link:")]


def test_presentation_mode_from_the_link():
    at = open_link({"present": "1", "methods": "saliency"})
    assert at.sidebar.toggle(key="present").value is True
    assert any("font-size: 24px" in h.proto.body for h in at.get("html"))
    assert shared_link(at)["present"] == "1"
    at.sidebar.toggle(key="present").set_value(False).run()
    assert not any("font-size: 24px" in h.proto.body for h in at.get("html"))
    assert "present" not in shared_link(at)
