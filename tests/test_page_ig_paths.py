"""Guided IG, Blur IG and IDGI in the app: the Explore page's completeness table shows each one's
promise from the registry, and the Path page draws the path of the one chosen."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PATH_PAGE = """
from explorer.ui import context
from explorer.ui.pages import path
context.build()
path.render()
"""
NEW = ["guided_ig", "blur_ig", "idgi"]


def ok(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_explore_shows_each_new_method_with_its_completeness_promise():
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["methods"] = NEW
    at.session_state["explore-timing-budget-True"] = 0.0  # the minimum rounds only: fast
    at.session_state["explore-timing-rounds-True"] = 1
    for m in NEW:  # few steps keep the test fast; the widgets come from the registry
        at.session_state[f"param.{m}.steps"] = 8
    ok(at)
    assert at.sidebar.number_input(key="param.guided_ig.steps").value == 8
    table = page_tables(at)[0]
    rows = {(name, row["model"]): row for name, row in table.iterrows()}
    assert {name for name, _ in rows} == {"Guided IG", "Blur IG", "IDGI"}
    for variant in ("regular", "bias-free"):
        assert rows[("Guided IG", variant)]["promise"] == "none"
        assert rows[("Blur IG", variant)]["promise"] == "quadrature"
        idgi = rows[("IDGI", variant)]
        # exact by telescoping, even at 8 steps (float32 rounding only)
        assert idgi["promise"] == "exact" and idgi["result"] == "complete"
        assert float(idgi["rel error"]) < 1e-4


def test_path_page_draws_the_chosen_methods_path():
    st.cache_data.clear()
    at = AppTest.from_string(PATH_PAGE, default_timeout=300)
    at.session_state["path-steps"] = 16  # few steps from the first run on: fast
    ok(at)
    assert at.selectbox(key="path-method").value == "guided_ig"
    for method, label in (("guided_ig", "Guided IG"), ("blur_ig", "Blur IG"), ("idgi", "IDGI")):
        at.selectbox(key="path-method").set_value(method)
        ok(at)
        captions = [c.value for c in at.caption if c.value.startswith(f"{label}, 16 steps")]
        assert len(captions) == 2, [c.value for c in at.caption]  # one per model variant
        charts = [c for c in at.get("plotly_chart") if "F(P_k) - F(P_0)" in c.proto.spec]
        assert len(charts) == 2
    # Guided IG's path leaves the straight line, IG-based IDGI's does not
    at.selectbox(key="path-method").set_value("guided_ig")
    ok(at)
    distance = [float(c.value.split("straight line P_0 to x: ")[1].split(" ")[0])
                for c in at.caption if c.value.startswith("Guided IG, 16 steps")]
    assert all(d > 1e-3 for d in distance), distance
    at.selectbox(key="path-method").set_value("idgi")
    ok(at)
    distance = [float(c.value.split("straight line P_0 to x: ")[1].split(" ")[0])
                for c in at.caption if c.value.startswith("IDGI, 16 steps")]
    assert all(d < 1e-5 for d in distance), distance


def test_path_page_budget_counts_the_chosen_methods_path(monkeypatch):
    """The page's work estimate includes the Other-paths section, for the method chosen."""
    import explorer
    monkeypatch.setattr(explorer, "pass_time",
                        lambda *a, **k: explorer.PassTime(forward_s=0.03, backward_s=0.06))
    monkeypatch.setattr(explorer, "method_path", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setenv("EXPLORER_BUDGET_S", "1")
    st.cache_data.clear()
    at = AppTest.from_string(PATH_PAGE, default_timeout=300)
    at.session_state["path-method"] = "blur_ig"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (warning,) = [w.value for w in at.warning]
    # Blur IG at the page's 64 steps: 64 forward + 64 backward passes at 90 ms, per variant
    assert "Blur IG path (regular) ~5.76 s" in warning and "Blur IG path (bias-free)" in warning
