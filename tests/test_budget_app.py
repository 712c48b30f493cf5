"""The app's compute budget through AppTest: work estimated above the budget waits for a click
on "Run anyway" while the methods under it still run. The per-pass time is injected, so what
is over the budget does not depend on this machine's speed."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
SLOW = explorer.PassTime(forward_s=0.2, backward_s=0.3)  # 0.5 s per forward+backward


@pytest.fixture
def app(monkeypatch):
    monkeypatch.setattr(explorer, "pass_time", lambda *args, **kwargs: SLOW)
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    st.cache_data.clear()
    return visit()


def visit() -> AppTest:
    """A new session on the Explore page: IG and X-Gradient on the bias-free model."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["methods"] = ["input_x_gradient", "integrated_gradients"]
    at.session_state["variants"] = "Bias-free only"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rows(at) -> set:
    return set(page_tables(at)[0].index) if page_tables(at) else set()


def test_over_budget_work_waits_for_run_anyway(app):
    # X-Gradient: 1 pass = 0.5 s, x (the map's call + a warm-up + 10 timed rounds) = 6 s: under
    # 15 s. IG at 32 steps: 32 x 0.5 s = 16 s, above 15 s and above the 2 s long-call threshold,
    # so the run that makes its map is its timing.
    [warning] = [w.value for w in app.warning if "compute budget" in w.value]
    assert "about **22 s**" in warning and "Integrated Gradients (bias-free) ~16 s" in warning
    assert rows(app) == {"X-Gradient"}
    captions = [c.value for c in app.sidebar.caption]
    assert any("32 forward and 32 backward passes, about 16 s here" in c for c in captions)

    app.button(key="explore-run-anyway").click().run()
    assert not app.exception
    assert rows(app) == {"X-Gradient", "Integrated Gradients"}
    assert not [w for w in app.warning if "compute budget" in w.value]
    app.run()  # approved once: a rerun does not ask again
    assert rows(app) == {"X-Gradient", "Integrated Gradients"}
    assert not [w for w in app.warning if "compute budget" in w.value]


def test_the_server_sets_the_default_budget(monkeypatch):
    monkeypatch.setattr(explorer, "pass_time", lambda *args, **kwargs: SLOW)
    monkeypatch.setenv("EXPLORER_BUDGET_S", "25")
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["methods"] = ["input_x_gradient", "integrated_gradients"]
    at.session_state["variants"] = "Bias-free only"
    at.run()
    assert at.sidebar.number_input(key="budget_s").value == 25.0
    assert rows(at) == {"X-Gradient", "Integrated Gradients"}  # 22 s fits 25 s


def test_raising_the_budget_runs_everything_without_asking(app):
    app.sidebar.number_input(key="budget_s").set_value(60.0).run()
    assert not app.exception
    assert rows(app) == {"X-Gradient", "Integrated Gradients"}
    assert not [w for w in app.warning if "compute budget" in w.value]
    assert not [b for b in app.button if b.key == "explore-run-anyway"]  # no "Run anyway"


def test_stop_ends_a_long_method_between_its_chunks(monkeypatch):
    """Streamlit's Stop button is a stop request to the script runner; AppTest makes the same
    request when a run passes its timeout. Each IG chunk is slowed to 150 ms, so the 128 chunks
    of one call take over 19 s: stopped after 6 s, the run must end long before all of them."""
    import time

    from explorer.methods import core

    chunks = []
    real = core.input_gradients

    def slow(*args, **kwargs):
        chunks.append(1)
        time.sleep(0.15)
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "input_gradients", slow)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["methods"] = ["saliency"]
    at.session_state["variants"] = "Bias-free only"
    at.run()  # loads the model and measures its pass time: not part of what is stopped
    chunks.clear()
    at.multiselect(key="methods").set_value(["integrated_gradients"])
    at.session_state["param.integrated_gradients.steps"] = 4096
    at.session_state["param.integrated_gradients.batch_size"] = 32
    # (Gauss-Legendre's nodes at 4096 steps are an eigensolve of seconds before any chunk.)
    at.session_state["param.integrated_gradients.rule"] = "middle"
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=6)  # returns once the script thread has ended
    done = len(chunks)
    assert 0 < done < 128
    time.sleep(0.2)
    assert len(chunks) == done  # nothing runs on after the stop


def test_cached_results_are_shown_to_the_next_visitor_without_asking(app, monkeypatch):
    app.button(key="explore-run-anyway").click().run()
    assert rows(app) == {"X-Gradient", "Integrated Gradients"}

    import explorer.ui.compute as compute
    ran = []
    monkeypatch.setattr(compute, "run_checked", lambda *a, **k: ran.append("map") or 1 / 0)
    monkeypatch.setattr(compute.report, "time_methods", lambda *a, **k: ran.append("timing") or 1 / 0)

    second = visit()  # a new session: the maps and their timing come from the cache
    assert not [w for w in second.warning if "compute budget" in w.value]
    assert rows(second) == {"X-Gradient", "Integrated Gradients"} and ran == []
    st.cache_data.clear()  # nothing cached: IG waits again, and nothing over budget started
    third = visit()
    assert [w for w in third.warning if "compute budget" in w.value]
    assert "map" in ran and "Integrated Gradients" not in rows(third)
