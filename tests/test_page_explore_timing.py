"""The Explore page's live timing through AppTest: limit rows, spread, cached apart from display."""
import time
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import explorer
import explorer.ui.compute as compute
from explorer import report
from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.fixture
def app(monkeypatch):
    # One torch thread: on a busy 2-core machine two intra-op threads wait on each other and a
    # millisecond forward pass takes hundreds (what is measured does not matter here, only how).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    st.cache_data.clear()
    calls = []
    original = report.time_methods

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(compute.report, "time_methods", counted)
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["explore-timing-budget-True"] = 0.0  # the minimum rounds only: fast tests
    at.session_state["explore-timing-rounds-True"] = 3
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.timing_calls = calls
    yield at
    torch.set_num_threads(threads)


def timing_table(at):
    return next(t for t in page_tables(at) if "x the one-pass limit" in t.columns)


def test_every_row_is_timed_together_with_the_limit_and_shows_its_spread(app):
    assert len(app.timing_calls) == 1  # one interleaved run for the whole page
    table = timing_table(app)
    limit = table.loc[report.LIMIT_LABEL]
    assert sorted(limit["variant"]) == ["bias-free", "regular"]
    assert all(v == "1" for v in limit["x the one-pass limit"])
    assert set(table.index) >= {"X-Gradient", "Input x Gradient", "Integrated Gradients"}
    for _, row in table.iterrows():
        assert float(row["q1 (ms)"]) <= float(row["median (ms)"]) <= float(row["q3 (ms)"])
        assert row["rounds"] == "3"
    close = " ".join(table["too close to rank against"])
    assert report.LIMIT_LABEL not in close  # shortened where it is listed
    ig = table.loc["Integrated Gradients"]
    assert ig["forward passes"].tolist() == ["32", "32"]
    assert ig["x faster than IG"].tolist() == ["1", "1"]
    # By default the chart is a static image (maps, colour bar, timing); no plotly on the page.
    assert len(app.get("image")) == 3 and not app.get("plotly_chart")
    app.sidebar.toggle(key="explore-interactive").set_value(True)
    app.run()
    chart = app.get("plotly_chart")
    assert any('"error_x"' in c.proto.spec and "arrayminus" in c.proto.spec for c in chart)
    assert len(app.timing_calls) == 1  # a display change: the same timing, drawn another way


def test_display_changes_never_re_time_but_a_method_change_does(app):
    app.sidebar.toggle(key="overlay").set_value(True)
    app.sidebar.toggle(key="shared_scale").set_value(False)
    app.sidebar.select_slider(key="rtol").set_value(1e-6)
    app.run()
    assert not app.exception
    assert len(app.timing_calls) == 1
    clock = app.sidebar.radio(key="explore-timing-clock")
    if explorer.default_device().type == "cpu":  # process CPU time is offered on the CPU only
        clock.set_value("process")
        app.run()
        assert len(app.timing_calls) == 2 and app.timing_calls[-1]["clock"] is time.process_time
        assert any("CPU time of this process" in c.value for c in app.caption)
    else:  # a GPU works while the process waits: its CPU time would measure nothing
        assert clock.options == ["elapsed"]
    timed = len(app.timing_calls)
    app.sidebar.multiselect(key="methods").set_value(["input_x_gradient", "saliency"])
    app.run()
    assert len(app.timing_calls) == timed + 1
    table = timing_table(app)
    assert set(table.index) == {report.LIMIT_LABEL, "X-Gradient", "Input x Gradient", "Saliency"}


def test_retime_measures_this_visitors_timing_again_and_keeps_the_others(monkeypatch):
    """Two sessions on one server, timing different requests: Re-time in one measures its own
    rows again; the other's timing stays cached (not measured again on its next run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    st.cache_data.clear()
    timed = []
    original = report.time_methods

    def counted(models, per_variant, *args, **kwargs):
        timed.append(tuple(r.method for runs in per_variant.values() for r in runs))
        return original(models, per_variant, *args, **kwargs)

    monkeypatch.setattr(compute.report, "time_methods", counted)

    def session(method: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        at.session_state["explore-timing-budget-True"] = 0.0
        at.session_state["explore-timing-rounds-True"] = 1
        at.session_state["variants"] = "Bias-free only"
        at.session_state["methods"] = [method]
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    try:
        mine, theirs = session("input_x_gradient"), session("saliency")
        assert timed == [("input_x_gradient",), ("saliency",)]
        mine.button(key="explore-retime").click().run()
        assert not mine.exception and timed[2:] == [("input_x_gradient",)]  # mine, again
        theirs.run()
        mine.run()
        assert timed[3:] == []  # both served from the cache: the other's was not wiped
    finally:
        torch.set_num_threads(threads)
