"""The app's logic through streamlit's AppTest (no browser): defaults, interactions, bad files."""
import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import explorer.ui.compute as compute
from helpers import page_tables

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app():
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def completeness(at) -> dict:
    table = page_tables(at)[0]
    return {(row.name, row["model"]): row for _, row in table.iterrows()}


def rerun(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_defaults_say_something_with_zero_clicks(app):
    assert [s.value for s in app.subheader][:4] == [
        "Attributions", "The model on this input",
        "Completeness: does the map add up to F(x) - F(baseline)?", "Timing"]
    rows = completeness(app)
    assert rows[("X-Gradient", "bias-free")]["result"] == "complete"
    assert float(rows[("X-Gradient", "bias-free")]["rel error"]) < 1e-5
    assert rows[("Input x Gradient", "regular")]["result"] == "NOT complete"
    assert rows[("Saliency", "regular")]["result"] == "not promised"
    timing = page_tables(app)[1]
    assert set(timing["variant"]) == {"regular", "bias-free"}
    assert (timing.loc["X-Gradient", "forward passes"] == "1")
    assert not app.error


def test_changing_model_variant_methods_and_baseline(app):
    app.sidebar.selectbox(key="model").set_value("decoy-digits-cnn")
    rerun(app)
    assert "decoy" in app.selectbox(key="example-1-decoy-digits-cnn").value
    app.sidebar.radio(key="variants").set_value("Bias-free only")
    app.sidebar.multiselect(key="methods").set_value(["input_x_gradient", "occlusion", "smoothgrad"])
    rerun(app)
    app.sidebar.selectbox(key="baseline").set_value("blur")
    rerun(app)
    rows = completeness(app)
    assert set(rows) == {("X-Gradient", "bias-free"), ("Occlusion", "bias-free"),
                         ("SmoothGrad", "bias-free")}
    assert not app.error


def test_hyper_parameter_widgets_come_from_the_registry(app):
    steps = app.sidebar.number_input(key="param.integrated_gradients.steps")
    assert steps.value == 32 and steps.min == 1
    steps.set_value(4)
    app.sidebar.selectbox(key="param.integrated_gradients.rule").set_value("left")
    rerun(app)
    timing = page_tables(app)[1]
    assert timing.loc["Integrated Gradients", "forward passes"].tolist() == ["4", "4"]


def test_broken_upload_shows_an_error_and_keeps_working(app):
    app.file_uploader(key="upload").set_value(("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"))
    rerun(app)
    assert any("Could not use **broken.png**" in e.value for e in app.error)
    assert completeness(app)[("X-Gradient", "bias-free")]["result"] == "complete"


def test_empty_and_huge_uploads_are_refused(app):
    app.file_uploader(key="upload").set_value(("empty.png", b"", "image/png"))
    rerun(app)
    assert any("empty" in e.value for e in app.error)
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    app.file_uploader(key="upload").set_value(("bomb.png", buf.getvalue(), "image/png"))
    rerun(app)
    assert any("too large" in e.value or "limit" in e.value for e in app.error)


def test_uploaded_image_is_explained(app):
    drawing = np.zeros((56, 56), dtype=np.uint8)
    drawing[8:48, 26:32] = 255  # a "1"
    app.file_uploader(key="upload").set_value(("one.png", png(drawing), "image/png"))
    rerun(app)
    assert not app.error
    target = next(sb for sb in app.selectbox if sb.label == "Explain the logit of class")
    assert target.value == 1  # the bundled model reads the upload as a one


def test_baseline_image_of_another_size_is_resized(app):
    app.sidebar.selectbox(key="baseline").set_value("image")
    rerun(app)
    app.sidebar.file_uploader(key="baseline_upload").set_value(
        ("gray.png", png(np.full((90, 60, 3), 128, np.uint8)), "image/png"))
    rerun(app)
    assert any("resized" in c.value for c in app.caption)
    assert not app.error


def test_display_settings_do_not_recompute(app, monkeypatch):
    calls = []
    original = compute.run_checked
    monkeypatch.setattr(compute, "run_checked", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    app.sidebar.toggle(key="overlay").set_value(True)
    app.sidebar.toggle(key="shared_scale").set_value(False)
    app.sidebar.slider(key="clip").set_value(95.0)
    app.sidebar.select_slider(key="rtol").set_value(1e-6)
    rerun(app)
    assert calls == []
    assert completeness(app)[("Integrated Gradients", "regular")]["result"].startswith("off by")
    app.sidebar.number_input(key="param.expected_gradients.samples").set_value(8)
    rerun(app)
    assert sorted(calls) == ["expected_gradients", "expected_gradients"]


def test_imagenet_model_offline_falls_back_to_labelled_random_weights(app):
    app.sidebar.selectbox(key="model").set_value("resnet18")
    app.sidebar.multiselect(key="methods").set_value(["input_x_gradient"])
    rerun(app)
    assert app.sidebar.number_input(key="explore-timing-rounds-False").value == 3  # slow models: few rounds
    assert any("random weights" in w.value for w in app.warning)
    rows = completeness(app)
    assert rows[("X-Gradient", "bias-free")]["result"] == "complete"


def test_an_unexpected_failure_in_one_method_leaves_the_others(app, monkeypatch):
    original = compute.run_checked

    def flaky(method, *args, **kwargs):
        if method == "saliency":
            raise RuntimeError("simulated kernel failure")
        return original(method, *args, **kwargs)

    monkeypatch.setattr(compute, "run_checked", flaky)
    st.cache_data.clear()  # saliency was cached by the first run
    app.sidebar.multiselect(key="methods").set_value(["input_x_gradient", "saliency"])
    rerun(app)
    assert any("simulated kernel failure" in e.value for e in app.error)
    assert set(completeness(app)) == {("Input x Gradient", "regular"), ("X-Gradient", "bias-free")}
