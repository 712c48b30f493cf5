"""The Precision page through AppTest, and the sidebar's precision labelling Explore's numbers."""
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer
from explorer.runtime.precision import availability
from explorer.analyses.precision_lesson import status_of

SCRIPT = """
from explorer.ui import context
from explorer.ui.pages import {page}
context.build()
{page}.render()
"""


def page_app(page: str, **state) -> AppTest:
    st.cache_data.clear()
    at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=300)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_lesson_shows_each_format_honestly_on_the_device_it_runs_on():
    device = explorer.default_device()  # where the app puts the model: TF32 is real on CUDA
    at = page_app("precision")
    assert not at.dataframe                       # nothing runs before the click
    at.select_slider(key="precision-steps").set_value(8)
    at.button(key="precision-run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    rows = {r["format"]: r for r in table.to_dict("records")}
    assert list(rows) == ["float64", "float32 (full)", "TF32", "bf16 autocast"]
    f64, f32, tf32, bf16 = rows.values()
    # Bundled bias-free digits CNN: the identity holds to float64 and float32 rounding.
    assert f64["X-Gradient completeness error"] < 1e-12 and f64["X-Gradient: max diff from float64"] == 0
    assert 0 < f32["X-Gradient completeness error"] < 1e-5
    assert 0 < f32["X-Gradient: max diff from float64"] < 1e-5
    assert tf32["here"] == status_of("tf32", device)
    assert bf16["here"] == status_of("bf16", device)
    if tf32["here"] == "not available":   # the CPU (or a pre-Ampere GPU): no number is made up
        assert pd.isna(tf32["X-Gradient completeness error"])
        assert any(f"not available on {device.type}" in c.value for c in at.caption)
    else:  # computed: within TF32's rounding (10-bit mantissa) of float64; cuDNN may pick
        # non-tensor-core kernels for these small convolutions, so it need not differ from float32
        assert 0 <= tf32["X-Gradient: max diff from float64"] < 1e-2
        assert 0 <= tf32["X-Gradient completeness error"] < 1e-2
    assert bf16["X-Gradient: max diff from float64"] > 100 * f32["X-Gradient: max diff from float64"]
    assert any("not available on cpu" in c.value for c in at.caption)


def test_a_non_default_precision_is_named_on_the_numbers_it_made():
    at = page_app("explore", methods=["input_x_gradient"])
    at.selectbox(key="precision").set_value("bf16")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "[bf16 autocast]" in text
    said = availability("bf16", explorer.default_device())  # "emulated: ..." on the CPU
    assert any(said in c.value for c in at.sidebar.caption)
    at.selectbox(key="precision").set_value("float32")
    at.run()
    assert "[bf16 autocast]" not in " ".join(m.value for m in at.markdown)
