"""Every analysis page under the compute budget (AppTest): on ResNet-18 (random weights,
offline) with a pass time typical of a CPU, Path, Convergence, Axioms and Metrics hold their
work back behind "Run anyway" instead of running for minutes; on the digits model "Run anyway"
runs it. The pass time is injected, so what is over the budget does not depend on this machine."""
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from explorer import budget

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


def app(page: str, model: str, variants: str | None = None) -> AppTest:
    at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=300)
    at.session_state["model"] = model
    if variants:
        at.session_state["variants"] = variants
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


def test_cache_lookup_follows_streamlit_cache():
    from explorer.ui.cache_state import is_cached
    calls = []

    @st.cache_data(show_spinner=False, max_entries=2)
    def square(n: int, _ignored: object = None) -> int:
        calls.append(n)
        return n * n

    assert not is_cached(square, 3)
    assert square(3, object()) == 9
    assert is_cached(square, 3) and is_cached(square, 3, "anything")  # `_` arguments: no key
    assert not is_cached(square, 4)
    square(4), square(5)  # max_entries=2 evicts 3
    assert not is_cached(square, 3) and is_cached(square, 5)
    square.clear(5)
    assert not is_cached(square, 5) and is_cached(square, 4)
    assert not is_cached(lambda n: n, 4)  # not a cached function
    assert calls == [3, 4, 5]


# Each page's heavy call, poisoned for the second visitor: cached results must be served.
SECOND_VISIT = {"convergence": (explorer, "convergence"),
                "axioms": ("explorer.ui.pages.axioms", "check_axioms"),
                "path": (explorer, "path_trace"),
                "metrics": ("explorer.ui.pages.metrics", "evaluate")}


@pytest.mark.parametrize("page", list(SECOND_VISIT))
def test_cached_work_is_shown_at_once_to_the_next_visitor(monkeypatch, page):
    """Over the budget, the first visitor runs it anyway; a second session (same server) gets the
    cached results with no prompt, and asks again once the cache is cleared."""
    import importlib
    slow = explorer.PassTime(forward_s=0.2, backward_s=0.3)
    monkeypatch.setattr(explorer, "pass_time", lambda *a, **k: slow)
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    st.cache_data.clear()

    def prompts(at):
        return [w.value for w in at.warning if "compute budget" in w.value]

    first = app(page, "digits-cnn", "Bias-free only")
    first.run()
    assert prompts(first) and first.button(key=f"{page}-run-anyway")
    first.button(key=f"{page}-run-anyway").click().run()
    assert not first.exception, [e.value for e in first.exception]
    assert not prompts(first)
    shown = len(first.dataframe) + len(first.table) + len(first.get("plotly_chart"))
    assert shown > 0

    module, name = SECOND_VISIT[page]
    target = importlib.import_module(module) if isinstance(module, str) else module
    ran = []
    monkeypatch.setattr(target, name, lambda *a, **k: ran.append(name) or 1 / 0)
    second = app(page, "digits-cnn", "Bias-free only")
    second.run()
    assert not second.exception, [e.value for e in second.exception]
    assert not prompts(second) and ran == []
    assert len(second.dataframe) + len(second.table) + len(second.get("plotly_chart")) == shown

    st.cache_data.clear()  # nothing cached: the same request asks again, and runs nothing
    third = app(page, "digits-cnn", "Bias-free only")
    third.run()
    assert prompts(third) and ran == []
