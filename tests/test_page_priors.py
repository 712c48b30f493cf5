"""The Priors page through AppTest: the shipped experiment's table, the plain and prior-trained
models on a decoyed digit, and a short live training run."""
import json

import numpy as np

import pytest
from streamlit.testing.v1 import AppTest

from explorer.train.decoy import RESULTS
from helpers import page_tables


def script():
    from explorer.ui.pages.priors import render
    render()


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_function(script, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_default_shows_the_shipped_experiment_and_the_patch_shares(page):
    table = page.dataframe[0].value
    rows = json.loads(RESULTS.read_text())["rows"]
    assert len(table) == len(rows)
    for (_, shown), row in zip(table.iterrows(), rows):
        assert shown["decoyed test %"] == pytest.approx(100 * row["accuracy"]["test_decoy"])
        assert shown["x plain"] == pytest.approx(row["epoch_time_vs_plain"])
    caption = " ".join(c.value for c in page.caption)
    assert "min, max beside" in caption  # the caption's promise, kept by the table
    assert {"s / epoch (min)", "s / epoch (max)"} <= set(table.columns)
    assert "lower on clean test digits (51.6%) than on decoyed ones (70.6%)" in caption
    # the IG maps are 2-D: plotly draws nothing for a [1, 28, 28] z
    import json as _json
    heat = [t for t in _json.loads(page.get("plotly_chart")[1].proto.spec)["data"]
            if t["type"] == "heatmap"]

    def shape(z):  # plotly sends arrays as {"dtype", "bdata", "shape"} or as nested lists
        if isinstance(z, dict):
            return tuple(int(v) for v in str(z.get("shape", "0")).split(","))
        return np.asarray(z, dtype=float).shape
    assert len(heat) == 2 and all(shape(h["z"]) == (28, 28) for h in heat)
    shares = page.dataframe[1].value["share of |IG| on the patch %"]
    plain, prior = shares.iloc[0], shares.iloc[1]
    assert plain > 2 * prior  # the plain model reads the patch, the prior-trained one the digit


def test_live_training_reports_its_run(page):
    page.select_slider(key="priors.live.steps").set_value(16)
    page.button(key="priors.live.train").click()
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    text = " ".join(m.value for m in page.markdown)
    assert "16 steps" in text and "decoyed test" in text
    assert len(page.get("plotly_chart")) == 3  # cost plot, heatmaps, loss curve


def test_prior_model_in_the_shared_choice_shows_its_one_variant():
    from pathlib import Path
    app = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
    at = AppTest.from_file(app, default_timeout=300)
    at.run()
    at.selectbox(key="model").set_value("decoy-digits-cnn-prior-x-gradient")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("bias-free only" in c.value for c in at.caption)


def shared_sidebar_and_page():
    import streamlit as st

    from explorer.ui import context
    from explorer.ui.pages import explore, priors
    context.build()
    (priors if st.session_state.get("page") == "priors" else explore).render()


def test_a_live_trained_model_can_be_explored_on_the_other_pages():
    from explorer.ui.context import SESSION_MODELS
    at = AppTest.from_function(shared_sidebar_and_page, default_timeout=300)
    at.session_state["page"] = "priors"
    at.run()
    at.select_slider(key="priors.live.steps").set_value(16)
    at.button(key="priors.live.train").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [name] = at.session_state[SESSION_MODELS]
    # in the model list as soon as the page says so (the page ran the script again)
    assert any("trained live in this session" in o for o in at.sidebar.selectbox(key="model").options)
    assert any("Now in the sidebar's model choice" in c.value for c in at.caption)
    at.session_state["page"] = "explore"
    at.run()
    at.sidebar.selectbox(key="model").set_value(name)
    at.sidebar.multiselect(key="methods").set_value(["input_x_gradient"])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    variant = "bias-free" if "@bias-free@" in name else "regular"
    completeness = page_tables(at)[0]  # the Explore page's, drawn as markdown
    assert list(completeness["model"]) == [variant]  # the one variant it was trained as
    timing = page_tables(at)[1]  # no IG row to compare with: blank, never "None"
    assert not (timing == "None").any().any() and not (timing == "nan").any().any()
