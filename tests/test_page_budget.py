"""Every analysis page under the compute budget (AppTest): on ResNet-18 (random weights,
offline) with a pass time typical of a CPU, Path, Convergence, Axioms and Metrics hold their
work back behind "Run anyway" instead of running for minutes; on the digits model "Run anyway"
runs it. The pass time is injected, so what is over the budget does not depend on this machine."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from explorer.methods import budget

SCRIPT = """
from explorer.ui import context
from explorer.ui.pages import {page}
context.build()
{page}.render()
"""
CPU_RESNET = explorer.PassTime(forward_s=0.03, backward_s=0.06)  # ~90 ms forward+backward
# What each page must not start before the click, as (module, attribute) to poison.
HEAVY = {"path": [(explorer, "path_trace")],
         "convergence": [(explorer, "convergence")],
         "axioms": [("explorer.ui.pages.axioms", "check_axioms"),
                    ("explorer.ui.pages.axioms", "homogeneity_curves"),
                    ("explorer.ui.pages.axioms", "unified_view")],
         "metrics": [("explorer.ui.pages.metrics", "evaluate")]}


def app(page: str, model: str) -> AppTest:
    at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=300)
    at.session_state["model"] = model
    return at


@pytest.fixture
def budgeted(monkeypatch):
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: CPU_RESNET)
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    st.cache_data.clear()
    return monkeypatch


@pytest.mark.parametrize("page", list(HEAVY))
def test_resnet18_page_holds_its_work_back(budgeted, page):
    import importlib
    ran = []
    for module, name in HEAVY[page]:
        target = importlib.import_module(module) if isinstance(module, str) else module
        budgeted.setattr(target, name, lambda *a, _n=name, **k: ran.append(_n))
    at = app(page, "resnet18")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [warning] = [w.value for w in at.warning if "compute budget" in w.value]
    seconds = float(warning.split("about **")[1].split(" s**")[0])
    assert seconds > 15
    assert at.button(key=f"{page}-run-anyway")
    assert ran == []  # nothing heavy started


def test_run_anyway_runs_the_page_and_is_remembered(monkeypatch):
    slow = explorer.PassTime(forward_s=0.2, backward_s=0.3)
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: slow)
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    st.cache_data.clear()
    at = app("convergence", "digits-cnn")
    at.run()
    # 5 rules up to 512 steps share their nodes: the warning prices what will really run
    nodes = budget.convergence_nodes((8, 16, 32, 64, 128, 256, 512),
                                     ("left", "right", "middle", "trapezoid", "gauss_legendre"))
    [warning] = [w.value for w in at.warning if "compute budget" in w.value]
    assert f"{nodes} path points (regular)" in warning and not at.dataframe
    at.button(key="convergence-run-anyway").click().run()
    assert not at.exception and at.dataframe
    assert not [w for w in at.warning if "compute budget" in w.value]
    at.run()  # approved for this work: a rerun does not ask again
    assert at.dataframe and not [w for w in at.warning if "compute budget" in w.value]


def test_page_work_is_priced_from_the_passes_it_makes():
    pt = explorer.PassTime(forward_s=0.01, backward_s=0.02, call_s=0.0)
    # a path trace of 64 steps: 66 forwards, 65 backwards
    [trace, _] = budget.path_page_work(["regular"], 64, {}, (1, 1, 28, 28), pt, baselines=5,
                                       references=8)
    assert trace.seconds == pytest.approx(66 * 0.01 + 65 * 0.02)
    # right and left at 4 steps share 3 of their nodes: 5 distinct points, not 8
    assert budget.convergence_nodes((4,), ("left", "right")) == 5
    [w] = budget.convergence_page_work(["regular"], (4,), ("left", "right"), pt)
    assert w.seconds == pytest.approx(8 * 0.01 + 6 * 0.02)
