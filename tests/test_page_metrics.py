"""The Metrics page through streamlit's AppTest: the zero-click default and its numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from explorer.analyses.metrics import insertion_deletion
from explorer.ui.pages import PAGES, render_function


def metrics_page():
    """The shared sidebar, then the Metrics page (what st.navigation runs for it)."""
    from explorer.ui import context
    from explorer.ui.pages import metrics
    context.build()
    metrics.render()


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def page():
    st.cache_data.clear()
    return run(AppTest.from_function(metrics_page, default_timeout=240))


def chart(at: AppTest, k: int) -> dict:
    return json.loads(at.get("plotly_chart")[k].proto.spec)


def test_page_is_registered():
    assert "metrics" in [p.name for p in PAGES]
    assert render_function(next(p for p in PAGES if p.name == "metrics")).__name__ == "render"


def test_default_shows_both_metrics_for_the_selected_methods(page):
    assert not page.error
    assert [s.value for s in page.subheader] == ["Sensitivity-n", "Insertion and deletion"]
    methods = page.sidebar.multiselect(key="methods").value
    labels = [explorer.method_label(m) for m in methods]
    table = page.table[0].value
    assert list(table.index) == labels
    sens = chart(page, 0)
    assert sens["layout"]["xaxis"]["type"] == "log"
    assert [t["name"] for t in sens["data"]] == labels
    assert sens["data"][0]["x"][0] == 1 and sens["data"][0]["x"][-1] == 705  # 90% of 784 pixels
    # "Both, side by side" (the default): each variant scored, both charts drawn per variant
    assert len(page.table) == 2 and len(page.get("plotly_chart")) == 4
    assert list(page.table[1].value.index)[0] == "X-Gradient"
    insdel = chart(page, 2)
    assert len(insdel["data"]) == 2 * len(labels)
    captions = " ".join(c.value for c in page.caption)
    assert "regular and bias-free models" in captions
    assert "Choose the fill *baseline* to use one fill for both" in captions

    # The saliency row, recomputed here with the library on the same input and settings.
    from explorer.ui import context
    ctx = page.session_state[context._KEY]
    entry = explorer.load_model(ctx.model)
    a = explorer.attribute("saliency", entry.module, ctx.x, ctx.target)
    ref = insertion_deletion(entry.module, ctx.x, a, ctx.target, steps=25, fill="blur")
    row = table.loc["Saliency"]
    assert float(row["insertion AUC (higher is better)"]) == pytest.approx(ref.insertion_auc[0], rel=1e-3)
    assert float(row["deletion AUC (lower is better)"]) == pytest.approx(ref.deletion_auc[0], rel=1e-3)
    saliency = next(t for t in insdel["data"] if t["name"] == "Saliency" and t["showlegend"])
    np.testing.assert_allclose(saliency["y"], ref.insertion[0], rtol=1e-5)


def test_settings_change_the_result_and_bad_ones_say_why(page):
    page.number_input(key="metrics-steps").set_value(5)
    run(page)
    insdel = chart(page, 2)
    assert len(insdel["data"][0]["x"]) == 6
    page.number_input(key="metrics-block-False").set_value(40)
    run(page)
    assert "larger than the image" in page.error[0].value
    page.number_input(key="metrics-block-False").set_value(4)
    run(page)
    assert chart(page, 0)["data"][0]["x"][-1] == 44  # 7x7 patches: 90% of 49


def test_no_method_selected(page):
    page.sidebar.multiselect(key="methods").set_value([])
    run(page)
    assert "at least one attribution method" in page.info[0].value


def test_bias_free_variant_scores_x_gradient_like_integrated_gradients(page):
    # On a homogeneous network the gradient is the same all along the path from 0 to x, so IG
    # from the zero baseline equals X-Gradient and both metrics must agree to float precision.
    page.sidebar.radio(key="variants").set_value("Bias-free only")
    run(page)
    table = page.table[0].value
    assert "X-Gradient" in table.index
    for column in table.columns:
        assert float(table.loc["X-Gradient", column]) == pytest.approx(
            float(table.loc["Integrated Gradients", column]), rel=1e-4)
    sens = {t["name"]: t["y"] for t in chart(page, 0)["data"]}
    np.testing.assert_allclose(sens["X-Gradient"], sens["Integrated Gradients"], atol=1e-4)
    assert "bias-free" in " ".join(c.value for c in page.caption)
