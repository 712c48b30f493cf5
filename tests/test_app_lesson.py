"""The Explore page as a first lesson (AppTest): what to look at comes first and is computed,
the input and its preprocessing are named, out-of-domain inputs and bad uploads are said in the
main area, the colour bar has numbers."""
import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import explorer

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app():
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["explore-timing-budget-True"] = 0.0  # the minimum rounds only
    at.session_state["explore-timing-rounds-True"] = 1
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at




def test_the_story_comes_first_and_is_computed(app):
    story = [m.value for m in app.main.markdown if "X-Gradient (one pass)" in m.value]
    assert len(story) == 1
    s = story[0]
    # the default: IG at 32 steps, bias-free X-Gradient within float rounding of it
    assert "equals Integrated Gradients (32 passes) to" in s
    exponent = int(s.split("(32 passes) to ")[1].split("e")[1].split(";")[0].split(" ")[0])
    assert exponent <= -4
    assert "**regular** model Input x Gradient misses F(x) - F(0) by" in s
    texts = [getattr(el, "value", "") for el in app.main]
    story_at = next(k for k, t in enumerate(texts) if "X-Gradient (one pass)" in str(t))
    maps_at = texts.index("Attributions")
    facts_at = texts.index("The model on this input")
    assert story_at < maps_at < facts_at  # what to look at, the maps, then the model's numbers
    assert any("arxiv.org/abs/2111.07668" in str(t) for t in texts)


def test_input_and_colour_bar_are_explained(app):
    captions = [c.value for c in app.main.caption]
    assert any(c.startswith("Input: **digit") for c in captions)
    assert any("**Red raises the logit, blue lowers it**" in c for c in captions)


def test_a_colour_photo_on_the_digits_model_is_warned_about_in_the_main_area(app):
    rng = np.random.default_rng(0)
    app.file_uploader(key="upload").set_value(
        ("cat.png", png(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)), "image/png"))
    app.run()
    assert not app.exception
    assert any("**cat.png** is a colour picture" in w.value for w in app.main.warning)
    assert any("Input: **cat.png** (96 x 64), converted to grayscale" in c.value
               for c in app.main.caption)
    assert any("Explaining your upload **cat.png**" in c.value for c in app.sidebar.caption)


def test_a_broken_upload_is_said_in_the_main_area_too(app):
    app.file_uploader(key="upload").set_value(("broken.png", b"\x89PNG\r\nnope", "image/png"))
    app.run()
    assert any("Could not use **broken.png**" in e.value for e in app.main.error)
    assert any("Could not use **broken.png**" in e.value for e in app.sidebar.error)


def test_timing_caption_names_the_device_and_when_and_retime_measures_again(monkeypatch):
    import explorer.ui.compute as compute
    calls = []
    real = compute.report.time_methods
    monkeypatch.setattr(compute.report, "time_methods",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["explore-timing-budget-True"] = 0.0
    at.session_state["explore-timing-rounds-True"] = 1
    at.session_state["methods"] = ["input_x_gradient"]
    at.run()
    [caption] = [c.value for c in at.main.caption if c.value.startswith("All rows timed together")]
    device = explorer.default_device()  # where the app put the model
    assert f"on {device.type}" in caption and "Timed at" in caption
    assert ("synchronised with the GPU" in caption) == (device.type == "cuda")
    assert len(calls) == 1
    at.button(key="explore-retime").click().run()
    assert not at.exception and len(calls) == 2  # measured again, not served from the cache
