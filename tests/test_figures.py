"""Figures for slides: PNG/SVG export (kaleido + chromium) and the app's download buttons.

Skipped without chromium unless EXPLORER_REQUIRE_BROWSER is set (CI installs it)."""
from __future__ import annotations

import io
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import streamlit as st
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from explorer.presentation import figures, viz

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
if not (shutil.which("chromium") or os.environ.get("BROWSER_PATH")):
    if os.environ.get("EXPLORER_REQUIRE_BROWSER"):
        raise RuntimeError("EXPLORER_REQUIRE_BROWSER is set but chromium is missing")
    pytest.skip("kaleido's export needs chromium (apt-get install -y chromium)",
                allow_module_level=True)


def svg_size(data: bytes) -> tuple[float, float]:
    root = ET.fromstring(data)
    return float(root.get("width")), float(root.get("height"))


def test_file_names_carry_the_settings_and_stay_safe():
    name = figures.file_name("explore-heatmaps", {"model": "digits-cnn", "bias": "both",
                                                  "class": 7, "baseline": "blur", "sigma": "2.5",
                                                  "empty": None}, "png")
    assert name == "explore-heatmaps_model-digits-cnn_bias-both_class-7_baseline-blur_sigma-2.5.png"
    assert "/" not in figures.file_name("a/b", {"input": "../../etc/passwd"}, "svg")


def test_png_and_svg_are_images_of_the_figure_size_with_the_settings_inside():
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 4]))
    fig.update_layout(width=640, height=360)
    settings = {"model": "digits-cnn", "view": {"methods": "saliency"}}
    png = figures.export(fig, "png", settings)
    image = Image.open(io.BytesIO(png))
    image.load()  # a truncated file fails here
    assert image.format == "PNG" and image.size == (640 * figures.PNG_SCALE, 360 * figures.PNG_SCALE)
    assert np.asarray(image.convert("L")).std() > 5  # something is drawn, not a blank page
    svg = figures.export(fig, "svg", settings)
    assert svg_size(svg) == (640, 360)
    assert figures.read_settings(png) == settings == figures.read_settings(svg)
    with pytest.raises(ValueError):
        figures.export(fig, "gif")


def test_a_heatmap_grid_exports_at_its_own_height():
    maps = {(m, v): np.random.default_rng(0).normal(size=(28, 28)) for m in ("a", "b")
            for v in ("regular",)}
    fig = viz.heatmap_grid(maps, ["a", "b"], ["regular"])
    image = Image.open(io.BytesIO(figures.export(fig, "png")))
    assert image.size == (figures.WIDTH * figures.PNG_SCALE, fig.layout.height * figures.PNG_SCALE)


def test_the_app_offers_each_figure_as_png_and_svg_rendered_on_click_only(monkeypatch):
    made = {}  # file name -> the callable a click would run
    original = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = (data_callable, mimetype)
        return original(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    exports = []
    real_export = figures.export
    monkeypatch.setattr(figures, "export", lambda *a, **k: exports.append(a) or real_export(*a, **k))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"methods": "saliency,integrated_gradients", "class": "3"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not exports  # nothing rendered while the page loads
    stem = "explore-heatmaps_model-digits-cnn_bias-both_class-3_baseline-zero"
    assert {f"{stem}.png", f"{stem}.svg", f"explore-timing-chart_model-digits-cnn_bias-both_"
            "class-3_baseline-zero.png"} <= set(made), sorted(made)
    png = made[f"{stem}.png"][0]()
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == figures.WIDTH * figures.PNG_SCALE and image.size[1] > 2 * 600
    meta = figures.read_settings(png)
    assert meta["figure"] == "explore-heatmaps" and meta["view"]["class"] == "3"
    assert meta["view"]["methods"] == "saliency,integrated_gradients"
    svg = made[f"{stem}.svg"][0]()
    assert made[f"{stem}.svg"][1] == "image/svg+xml" and svg_size(svg)[0] == figures.WIDTH
