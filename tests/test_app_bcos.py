"""The B-cos model in the app (AppTest): its exact row on Explore, the two routes section."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def rerun(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app():
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    return rerun(at)


def test_explore_with_the_bcos_model_shows_its_exact_row_and_the_two_routes(app):
    app.sidebar.selectbox(key="model").set_value("digits-bcos")
    rerun(app)
    app.sidebar.multiselect(key="methods").set_value(["bcos", "input_x_gradient"])
    rerun(app)
    table = page_tables(app)[0]
    rows = {(row.name, row["model"]): row for _, row in table.iterrows()}
    exact = rows[("B-cos contribution", "regular")]
    assert exact["result"] == "complete" and float(exact["rel error"]) < 1e-5
    assert exact["promise"] == "exact"
    assert rows[("Input x Gradient", "regular")]["result"] == "NOT complete"
    timing = page_tables(app)[1]
    assert timing.loc["B-cos contribution", "forward passes"] == "1"
    assert not app.error

    app.toggle(key="explore-two-routes").set_value(True)
    rerun(app)
    assert "Two routes to exactness" in [s.value for s in app.subheader]
    routes = next(t for t in page_tables(app) if "homogeneity error" in t.columns)
    bcos = routes.loc["B-cos contribution on the B-cos CNN"]
    xdnn = routes.loc["X-Gradient on the X-DNN"]
    for row in (bcos, xdnn):
        assert float(row["max rel. completeness error"]) < 1e-5
        assert row["forward passes"] == "1" and row["backward passes"] == "1"
    assert float(xdnn["homogeneity error"]) < 1e-5 < float(bcos["homogeneity error"])
    assert float(routes.loc["IG on the regular CNN", "forward passes"]) == 64
    assert not app.error


def page_script(name):
    """The shared sidebar, then one page (what st.navigation runs for it)."""
    import importlib

    from explorer.ui import context
    context.build()
    importlib.import_module(f"explorer.ui.pages.{name}").render()


@pytest.mark.parametrize("name", ["axioms", "metrics"])
def test_axioms_and_metrics_pages_run_on_the_bcos_model(name):
    st.cache_data.clear()
    at = AppTest.from_function(page_script, args=(name,), default_timeout=300)
    rerun(at)
    at.sidebar.selectbox(key="model").set_value("digits-bcos")
    rerun(at)
    at.sidebar.multiselect(key="methods").set_value(["bcos", "input_x_gradient"])
    rerun(at)
    assert not at.error, [e.value for e in at.error]
    if name == "metrics":  # both scores drawn for both methods (not held by the budget)
        assert [h.value for h in at.subheader] == ["Sensitivity-n", "Insertion and deletion"]
        assert len(at.get("plotly_chart")) == 2
    if name == "axioms":
        table = at.table[0].value
        rows = table[(table.index == "completeness")
                     & table["measured on"].str.startswith("current model")]
        assert rows.iloc[0]["B-cos contribution"].startswith("✓")
        assert rows.iloc[0]["Input x Gradient"].startswith("✗")
