"""Hostile input in the app (issue 13): odd uploads and non-finite models are shown on their
panel, marked, and never take the page down."""
import io
from pathlib import Path

import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import explorer
from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def app():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield run(AppTest.from_file(APP, default_timeout=180))
    st.cache_resource.clear()  # no doctored model left for other tests


def test_lab_tiff_and_strip_uploads_keep_the_page(app):
    """As the main input, then as the baseline image: LAB is converted, a strip is refused."""
    lab = encode(Image.new("LAB", (40, 40), (40, 150, 100)), "TIFF")
    strip = encode(Image.new("L", (1, 100_000)), "PNG")
    for key in ("upload", "baseline_upload"):
        if key == "baseline_upload":
            app.file_uploader(key="upload").set_value(None)
            app.sidebar.selectbox(key="baseline").set_value("image")
            run(app)
        app.file_uploader(key=key).set_value(("lab.png", lab, "image/png"))
        run(app)
        assert not app.error  # converted, not refused
        app.file_uploader(key=key).set_value(("strip.png", strip, "image/png"))
        run(app)
        assert [e.value for e in app.error if "aspect ratio" in e.value]
        assert page_tables(app)  # the rest of the page is still there


def test_nan_weights_are_marked_on_card_panel_and_rows(app, monkeypatch):
    load = explorer.load_model

    def doctored(name, *, bias_free=False, **kw):
        entry = load(name, bias_free=bias_free, **kw)
        if not bias_free:  # the regular variant gets one NaN weight in its last layer
            with torch.no_grad():
                last = [m for m in entry.module.modules() if isinstance(m, torch.nn.Linear)][-1]
                last.weight[3, 0] = float("nan")
            entry.warnings = ("regular: 1 weight tensor(s) hold NaN or Inf",)
        return entry

    monkeypatch.setattr(explorer, "load_model", doctored)
    st.cache_resource.clear()
    st.cache_data.clear()
    app.sidebar.multiselect(key="methods").set_value(["input_x_gradient", "integrated_gradients"])
    run(app)
    warnings = [w.value for w in app.warning]
    assert any("hold NaN or Inf" in w for w in warnings)                  # the model card
    assert any("outputs are NaN or Inf" in w for w in warnings)          # the prediction
    assert any("Integrated Gradients (regular)" in w and "not finite" in w for w in warnings)
    rows = {(r.name, r["model"]): r for _, r in page_tables(app)[0].iterrows()}
    assert rows[("Integrated Gradients", "regular")]["result"] == "not finite"
    assert rows[("Integrated Gradients", "regular")]["rel error"] == "nan"  # not a blank cell
    assert rows[("X-Gradient", "bias-free")]["result"] == "complete"
    target = next(sb for sb in app.selectbox if sb.label == "Explain the logit of class")
    assert "nan%" not in target.format_func(target.value)
