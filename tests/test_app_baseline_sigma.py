"""The sidebar's sigma slider for the blur and noise baselines reaches the computation."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def delta(at) -> float:
    """F(x) - F(baseline) of IG on the regular model, as the completeness table shows it."""
    rows = page_tables(at)[0].loc["Integrated Gradients"]
    return float(rows[rows["model"] == "regular"].iloc[0]["F(x) - F(ref)"])


@pytest.mark.parametrize("name", ["blur", "gaussian"])
def test_moving_sigma_changes_the_baseline_ig_integrates_from(name):
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["methods"] = ["integrated_gradients"]
    at.session_state["explore-timing-budget-True"] = 0.0
    at.session_state["explore-timing-rounds-True"] = 1
    at.run()
    at.sidebar.selectbox(key="baseline").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    slider = next(s for s in at.sidebar.slider if s.key.startswith(f"baseline-sigma-{name}"))
    default = delta(at)
    slider.set_value(slider.max).run()
    assert not at.exception and not at.error
    widest = delta(at)
    assert widest != pytest.approx(default, rel=1e-3)
    slider.set_value(slider.min).run()  # the baseline close to the input: F(x) - F(x') small
    assert abs(delta(at)) < abs(widest)


PATH_PAGE = """
from explorer.ui import context
from explorer.ui.pages import path
context.build()
path.render()
"""


def test_the_path_page_integrates_from_the_chosen_width():
    st.cache_data.clear()
    at = AppTest.from_string(PATH_PAGE, default_timeout=300)
    at.run()
    at.sidebar.selectbox(key="baseline").set_value("blur").run()
    slider = next(s for s in at.sidebar.slider if s.key.startswith("baseline-sigma-blur"))
    slider.set_value(1.0).run()
    assert not at.exception, [e.value for e in at.exception]
    strip = next(c for c in at.get("plotly_chart") if "blur (sigma 1)" in c.proto.spec)
    assert '"blur"' not in strip.proto.spec  # the default-width column is replaced, not added
