"""IG's tolerance in the app: a registry widget (0 = off), an upper-bound cost, a cap warning."""
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def test_tolerance_widget_cost_caption_and_cap_warning():
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    tol = at.sidebar.number_input(key="param.integrated_gradients.tolerance")
    assert tol.value == 0.0 and "0: off" in tol.help
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Cost per input: 32 forward") for c in captions)
    assert not any("adaptive IG" in w.value for w in at.warning)

    at.sidebar.number_input(key="param.integrated_gradients.steps").set_value(7)
    tol.set_value(1e-6)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Cost per input: at most 9 forward and 7 backward") for c in captions)
    notes = [w.value for w in at.warning if "adaptive IG" in w.value]
    assert notes and all("stopped at 7 steps" in n and "1e-06" in n for n in notes), notes
