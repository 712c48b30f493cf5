"""The Path and Convergence pages through AppTest: zero-click defaults, slider without recompute."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer

SCRIPT = """
from explorer.ui import context
from explorer.ui.pages import {page}
context.build()
{page}.render()
"""


def page_app(page: str) -> AppTest:
    at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def counted(monkeypatch):
    """Count path_trace calls (the page calls explorer.path_trace at run time)."""
    st.cache_data.clear()
    calls = []
    real = explorer.path_trace

    def counting(*args, **kwargs):
        calls.append(kwargs.get("steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(explorer, "path_trace", counting)
    return calls


def test_path_page_default_says_something_and_the_slider_only_redraws(counted):
    at = page_app("path")
    assert counted == [64, 64]  # regular and bias-free, once each
    # the straight-line sentence appears for the bias-free model only, from measured numbers
    (sentence,) = [s.value for s in at.success]
    assert "**bias-free** model F is a straight line" in sentence
    captions = [c.value for c in at.caption if c.value.startswith("Completeness error at alpha")]
    errors = [float(c.split(": ")[1].split()[0]) for c in captions]
    assert len(captions) == 2 and errors[1] < 1e-5 and errors[0] > 1e-4  # a tolerance, not 0
    table = at.dataframe[0].value
    assert {"zero = black", "blur", "uniform", "gaussian", "mean of 8 references"} <= set(table["baseline"])
    free_zero = table[(table["baseline"] == "zero = black") & (table["model"] == "bias-free")]
    assert float(free_zero["F(x')"].iloc[0]) == 0.0 and float(free_zero["rel error"].iloc[0]) < 1e-5
    # the heatmaps follow the slider: same data, new alpha, no new trace
    before = at.get("plotly_chart")[0].proto.spec
    at.slider(key="path-alpha").set_value(0.25).run()
    assert not at.exception and counted == [64, 64]
    assert at.get("plotly_chart")[0].proto.spec != before
    assert "alpha = 0.25" in at.get("plotly_chart")[0].proto.spec
    assert not [i for i in at.info if "kink" in i.value]
    at.slider(key="path-alpha").set_value(0.0).run()
    assert not at.exception and counted == [64, 64]
    # at alpha = 0 from the zero input the bias-free gradient is blank: the page says why
    (kink,) = [i.value for i in at.info if "kink" in i.value]
    assert "**bias-free** gradient panel is blank at alpha = 0" in kink
    at.slider(key="path-alpha").set_value(0.25).run()
    # a new number of steps is a new path: traced once more per variant, alpha kept
    at.select_slider(key="path-steps").set_value(16).run()
    assert not at.exception and counted == [64, 64, 16, 16]
    assert at.slider(key="path-alpha").value == pytest.approx(0.25)
    caption = [c.value for c in at.caption if c.value.startswith("IG with")][0]
    assert "mean of 8 references averages IG from 8 training inputs" in caption


def test_convergence_page_default_draws_every_rule_and_x_gradient():
    st.cache_data.clear()
    at = page_app("convergence")
    table = at.dataframe[0].value
    assert list(table.columns[3:]) == ["8", "16", "32", "64", "128", "256", "512"]
    rows = {(r["model"], r["rule"], r["error"]): r for _, r in table.iterrows()}
    # 5 rules x 2 variants x (map error against exact IG, completeness) + X-Gradient
    assert len(rows) == 21
    assert float(rows[("bias-free", "X-Gradient (1 pass)", "completeness")]["8"]) < 1e-5
    assert float(rows[("bias-free", "middle", "map error")]["8"]) < 1e-5
    assert float(rows[("regular", "gauss_legendre", "map error")]["8"]) > 1e-4
    assert float(rows[("regular", "gauss_legendre", "map error")]["512"]) < float(
        rows[("regular", "gauss_legendre", "map error")]["8"])
    (regions,) = [c.value for c in at.caption if c.value.startswith("Exact IG crossed")]
    assert "1 linear region on the bias-free model" in regions
    # zero clicks: the regular model's thousands of regions come from the shipped cache
    assert regions.count("cached exact reference") == 2 and "exact-cache" in regions
    assert not [w for w in at.warning if "compute budget" in w.value]
    at.multiselect(key="convergence-rules").set_value([]).run()
    assert not at.exception and at.info


def test_convergence_page_holds_an_uncached_walk_behind_run_anyway(monkeypatch, tmp_path):
    from explorer.methods import exact_cache
    monkeypatch.setattr(exact_cache, "CACHE_DIR", tmp_path)  # no shipped cache
    exact_cache.clear()
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    # the digits CNN's pass time on a 2-core CPU, injected: the test does not depend on this one
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: explorer.PassTime(
        forward_s=9e-5, backward_s=2.3e-4, call_s=5.7e-4))
    ran = []
    monkeypatch.setattr(explorer, "convergence", lambda *a, **k: ran.append(1))
    st.cache_data.clear()
    at = AppTest.from_string(SCRIPT.format(page="convergence"), default_timeout=300)
    at.run()
    exact_cache.clear()
    assert not at.exception, [e.value for e in at.exception]
    [warning] = [w.value for w in at.warning if "compute budget" in w.value]
    assert "exact IG walk" in warning and "(regular)" in warning
    assert at.button(key="convergence-run-anyway") and ran == [] and not at.dataframe


def test_path_region_ticks_come_from_the_cache_and_an_uncached_walk_asks(monkeypatch, tmp_path):
    from explorer.methods import exact_cache
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    # the digits CNN's pass time on a quiet 2-core CPU, injected: on a loaded machine the
    # measured one priced the page's plain work over the budget and hid the toggle
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: explorer.PassTime(
        forward_s=9e-5, backward_s=2.3e-4, call_s=5.7e-4))
    st.cache_data.clear()
    at = page_app("path")
    at.toggle(key="path-regions").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "5,859 linear regions" in captions and "1 linear region " in captions
    assert not [w for w in at.warning if "compute budget" in w.value]
    monkeypatch.setattr(exact_cache, "CACHE_DIR", tmp_path)  # no shipped cache: priced, held
    exact_cache.clear()
    st.cache_data.clear()  # the page's own cache of the walk would serve it without asking
    at.run()
    exact_cache.clear()
    [warning] = [w.value for w in at.warning if "compute budget" in w.value]
    assert "exact IG walk" in warning and at.button(key="path-regions-run-anyway")
