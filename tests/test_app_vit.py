"""The app on a vision transformer (AppTest): a random-weight two-block timm ViT on 16 x 16
images, launched as a model spec (``tests/helpers.py:tiny_vit_app``), opens on the Explore page
without an exception, and its completeness numbers match the model's own outputs. The 224 px
ViT is recorded page by page in ``benchmarks/vit_pages.py`` (minutes on a CPU)."""
import json
import math
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import explorer
from explorer.cli.app import MODELS_ENV
from explorer.inputs.data import sample_photos
from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
SPEC = f"{Path(__file__).resolve().parent / 'helpers.py'}:tiny_vit_app"
# Injected: what the budget lets run must not depend on how busy this machine is.
FAST = explorer.PassTime(forward_s=1e-3, backward_s=2e-3)


@pytest.fixture(scope="module")
def explore():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODELS_ENV, json.dumps([{"spec": SPEC, "checkpoint": None}]))
        mp.setattr(explorer, "pass_time", lambda *a, **k: FAST)
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["explore-timing-rounds-False"] = 1  # timing is not what is tested
        at.run()
        yield at


def test_explore_opens_on_a_vit(explore):
    at = explore
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="model").value == SPEC
    assert not [w for w in at.warning if "compute budget" in w.value]
    assert any("LayerNorm" in m.value for m in at.markdown)  # the homogeneity obstacles


def test_the_method_list_marks_what_cannot_run_on_a_vit(explore):
    """The sidebar's choices say which methods this model cannot take (the registry's
    ``applies_to``), before any page leaves them out."""
    options = explore.sidebar.multiselect(key="methods").options
    marked = {o.removesuffix(" (not for this model)") for o in options
              if o.endswith(" (not for this model)")}
    modules = [explorer.load_model(SPEC, pretrained=False, bias_free=b, device="cpu").module
               for b in (False, True)]
    expected = {explorer.METHODS[m].label + (" / X-Gradient" if explorer.METHODS[m].bias_free_label
                                             else "")
                for m in explorer.METHODS if any(explorer.METHODS[m].applicability(mod)
                                                 for mod in modules)}
    assert marked == expected and {"epsilon-LRP", "B-cos contribution"} <= marked
    assert "Integrated Gradients" in options  # IG runs on anything differentiable


def test_vit_completeness_rows_match_the_models_outputs(explore):
    rows = {(method, r["model"]): r for method, r in page_tables(explore)[0].iterrows()}
    # Independent reference: F(x) - F(0) of the explained (predicted) class, from the model.
    entry = explorer.load_model(SPEC, pretrained=False, device="cpu")
    x = entry.preprocess(sample_photos()["astronaut"].read_bytes())[None]  # the default input
    with torch.no_grad():
        logits, at_zero = entry.module(x)[0], entry.module(torch.zeros_like(x))[0]
    target = int(logits.argmax())
    delta = float(logits[target] - at_zero[target])
    row = rows[("Input x Gradient", "regular")]
    assert float(row["F(x) - F(ref)"]) == pytest.approx(delta, rel=1e-3, abs=1e-6)  # 4 digits shown
    # A ViT is not homogeneous (LayerNorm, GELU, softmax attention): X-Gradient is never exact
    # there, with or without biases, and the table says so from the measured error.
    for variant in ("regular", "bias-free"):
        [ixg] = [r for (m, v), r in rows.items()
                 if v == variant and m in ("Input x Gradient", "X-Gradient")]
        assert ixg["result"] == "NOT complete" and float(ixg["rel error"]) > 1e-3
    assert {m for m, _ in rows} >= {"Integrated Gradients", "Expected Gradients"}


def test_axioms_page_on_a_vit_leaves_out_the_methods_that_cannot_run(monkeypatch):
    """epsilon-LRP and DeepLIFT have no rule for LayerNorm: the "methods that should coincide"
    section names them and why, and still compares what can run (occlusion-1)."""
    monkeypatch.setenv(MODELS_ENV, json.dumps([{"spec": SPEC, "checkpoint": None}]))
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: FAST)
    st.cache_data.clear()
    at = AppTest.from_string("from explorer.ui import context\nfrom explorer.ui.pages import "
                             "axioms\ncontext.build()\naxioms.render()\n", default_timeout=120)
    at.session_state["methods"] = ["input_x_gradient"]  # the axiom table is not tested here
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    [note] = [i.value for i in at.info if i.value.startswith("Left out here")]
    for pair in ("epsilon-LRP vs Input x Gradient", "DeepLIFT (zero baseline) vs Input x Gradient"):
        assert f"{pair} (regular and bias-free models)" in note
    assert note.count("no modified-gradient rule for LayerNorm") == 2
    [table] = [t.value for t in at.table if "coincide" in t.value.columns]
    assert list(table.index) == ["Occlusion-1 vs Sensitivity-1 (output drop, one feature removed)"] * 2
    assert list(table["coincide"]) == ["✓", "✓"]


@pytest.mark.parametrize("page", ["explore", "metrics", "axioms"])
def test_methods_that_cannot_run_on_a_vit_are_left_out_with_one_note(monkeypatch, page):
    """Explore, Metrics and Axioms leave out epsilon-LRP (no LayerNorm rule) and B-cos (not a B-cos
    network) with one note saying why, and still show Input x Gradient's numbers."""
    monkeypatch.setenv(MODELS_ENV, json.dumps([{"spec": SPEC, "checkpoint": None}]))
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: FAST)
    st.cache_data.clear()
    at = AppTest.from_string(f"from explorer.ui import context\nfrom explorer.ui.pages import "
                             f"{page}\ncontext.build()\n{page}.render()\n", default_timeout=120)
    at.session_state["methods"] = ["input_x_gradient", "epsilon_lrp", "bcos"]
    at.session_state["variants"] = "Regular only"
    at.session_state["explore-timing-rounds-False"] = 1
    at.session_state["metrics-subsets"] = 4
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]  # before: one error per method and model
    [note] = [i.value for i in at.info if i.value.startswith("Left out on this model")]
    assert "epsilon-LRP (no modified-gradient rule for LayerNorm" in note
    assert "B-cos contribution (VisionTransformer is not a B-cos network" in note
    if page == "explore":
        [row] = [r for m, r in page_tables(at)[0].iterrows() if m == "Input x Gradient"]
        assert row["result"] == "NOT complete"
    elif page == "axioms":  # the axiom table has a column per method checked
        [table] = [t.value for t in at.table if t.value.index.name == "axiom"]
        assert list(table.columns) == ["measured on", "passes when", "Input x Gradient"]
        [completeness] = [row for axiom, row in table.iterrows() if axiom == "completeness"]
        assert completeness["Input x Gradient"].startswith("✗")  # a ViT is not homogeneous
    else:
        [table] = [t.value for t in at.table if "insertion AUC (higher is better)" in t.value.columns]
        assert list(table.index) == ["Input x Gradient"]
        assert math.isfinite(float(table.iloc[0, 0]))  # scored, not an error
