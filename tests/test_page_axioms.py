"""The Axioms page through streamlit's AppTest: its zero-click default and a method change."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.ui.pages import PAGES


def axioms_page():
    from explorer.ui import context
    from explorer.ui.pages import axioms
    context.build()
    axioms.render()


@pytest.fixture
def page():
    st.cache_data.clear()
    at = AppTest.from_function(axioms_page, default_timeout=240)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cell(table, axiom, measured_on, column):
    rows = table[(table.index == axiom) & (table["measured on"].str.startswith(measured_on))]
    assert len(rows) == 1, (axiom, measured_on, rows)
    return rows.iloc[0][column]


def test_the_page_is_registered():
    assert "axioms" in [p.name for p in PAGES]


def test_zero_click_default_says_something(page):
    assert [s.value for s in page.subheader] == [
        "The axioms, method by method", "Homogeneity: F(a x) against a F(x)",
        "Methods that should coincide (Ancona et al. 2018)"]
    table = page.table[0].value
    # Default: the bias-free model, the shared default methods.
    assert cell(table, "completeness", "current model", "X-Gradient").startswith("✓")
    assert cell(table, "completeness", "current model", "Saliency").startswith("✗")
    assert cell(table, "linearity", "current model", "Saliency").startswith("✗")
    assert cell(table, "linearity", "current model", "Integrated Gradients").startswith("✓")
    assert cell(table, "sensitivity (a)", "f(x) = 1 - ReLU", "Integrated Gradients").startswith("✓")
    assert cell(table, "sensitivity (a)", "f(x) = 1 - ReLU", "X-Gradient").startswith("✗")
    assert cell(table, "homogeneity (of the model)", "current model", "X-Gradient").startswith("✓")
    unified = page.table[1].value
    deeplift = unified[unified.index.str.startswith("DeepLIFT")]
    assert list(deeplift["model"]) == ["regular", "bias-free"]
    assert list(deeplift["coincide"]) == ["✗", "✓"]
    assert not page.error


def test_regular_model_and_deeplift(page):
    page.radio(key="axioms-variant").set_value("regular")
    page.sidebar.multiselect(key="methods").set_value(["deeplift", "input_x_gradient"])
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    table = page.table[0].value
    assert cell(table, "completeness", "current model", "Input x Gradient").startswith("✗")
    assert cell(table, "completeness", "current model", "DeepLIFT (Rescale)").startswith("✓")
    assert cell(table, "implementation invariance", "ReLU(ReLU(x1)",
                "DeepLIFT (Rescale)").startswith("✗ 0.25")
    assert cell(table, "homogeneity (of the model)", "current model",
                "Input x Gradient").startswith("✗")
