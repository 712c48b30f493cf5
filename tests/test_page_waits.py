"""Pages whose work is not the Explore page's method list (Path, Convergence, Axioms, Metrics)
ask before starting more than the compute budget: a model priced slow waits with its parts
named, and runs after 'Run anyway'."""
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


@pytest.fixture
def slow_model(monkeypatch):
    """Every pass priced at 0.5 s (the digits CNN's real time is ~1 ms): the budget binds."""
    st.cache_data.clear()
    monkeypatch.setenv("EXPLORER_BUDGET_S", "15")
    monkeypatch.setattr(explorer, "pass_time",
                        lambda *a, **k: explorer.PassTime(forward_s=0.25, backward_s=0.25))
    calls = []
    real = explorer.path_trace
    monkeypatch.setattr(explorer, "path_trace", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def drawn(at, page: str) -> bool:
    """Whether the page drew its gated result."""
    if page == "axioms":
        return any(s.value == "The axioms, method by method" for s in at.subheader)
    return bool(at.get("plotly_chart"))


@pytest.mark.parametrize("page, expected", [
    ("path", ["the path (64 steps, 2 variant(s)) ~65 s",
              "IG from 5 baselines and 8 references (32 steps each, 2 variant(s)) ~416 s"]),
    ("convergence", ["IG at"]),
    # Integrated Gradients: 32 passes per call, 7 calls, 0.5 s each.
    ("axioms", ["the axioms of Integrated Gradients (about 7 calls) ~112 s"]),
    ("metrics", ["Integrated Gradients: its map and"]),
])
def test_a_page_over_budget_names_what_waits_then_runs_anyway(slow_model, page, expected):
    at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (warning,) = [w.value for w in at.warning if "compute budget" in w.value]
    assert all(part in warning for part in expected), warning
    assert at.button(key=f"{page}-run-anyway") and not drawn(at, page)
    assert slow_model == []  # nothing computed yet
    at.button(key=f"{page}-run-anyway").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert drawn(at, page) and not [w for w in at.warning if "compute budget" in w.value]
