"""ONNX models: a small CNN exported by the test, loaded by path and uploaded in the app, gives
the original module's maps; uploads are bounded and cannot reach files on the server."""
from __future__ import annotations

import pathlib

import numpy as np
import onnx
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

import explorer
import explorer.ui.compute as compute
from explorer.models.onnx_models import MAX_MB_ENV, onnx_upload_spec

REPO = pathlib.Path(__file__).resolve().parent.parent
APP = str(REPO / "streamlit_app.py")
METHODS = ("input_x_gradient", "integrated_gradients", "saliency")


def original() -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 16 * 16, 5))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.3, 0.3)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    # The TorchScript exporter works offline; the dynamo one needs onnxscript's extras.
    torch.onnx.export(original(), (torch.rand(1, 3, 32, 32),), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}})
    return path


def rel_close(actual, expected, rtol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max()
    assert scale > 0 and np.abs(actual - expected).max() <= rtol * scale, (
        np.abs(actual - expected).max() / scale)


def test_onnx_file_by_path_gives_the_original_maps(exported):
    entry = explorer.load_model(str(exported), device="cpu",
                                describe={"channels": 3, "size": 32,
                                          "mean": (0.5,) * 3, "std": (0.2,) * 3})
    assert entry.input_space == explorer.InputSpace((0.5,) * 3, (0.2,) * 3)
    x = torch.randn(2, 3, 32, 32)
    for method in METHODS:
        rel_close(explorer.attribute(method, entry.module, x, 2),
                  explorer.attribute(method, original(), x, 2))
    plain = explorer.load_model(str(exported), device="cpu")  # the file states 3 x 32 x 32
    assert plain.input_space == explorer.PIXELS and "pixels in [0, 1] assumed" in plain.spec.description
    free = explorer.load_model(str(exported), bias_free=True, device="cpu")
    assert not any("bias" in o.reason for o in explorer.homogeneity_obstacles(free.module))


def test_uploaded_onnx_appears_in_the_sidebar_with_the_original_maps(exported):
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.sidebar.file_uploader(key="onnx_upload").set_value(
        ("small.onnx", exported.read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="onnx_channels").disabled  # the file states its input
    at.sidebar.selectbox(key="onnx_norm").set_value("ImageNet mean/std")
    at.sidebar.text_area(key="onnx_labels").set_value("a\nb\nc\nd\ne")
    at.sidebar.multiselect(key="methods").set_value(list(METHODS))
    at.run()  # as a browser reruns after each change, before the click
    at.sidebar.button(key="onnx_add").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    name = at.sidebar.selectbox(key="model").value
    assert name.startswith("upload:small.onnx:")
    ctx = at.session_state["_explorer_context"]
    assert ctx.entry.labels == list("abcde") and ctx.entry.input_space == explorer.IMAGENET
    for method in METHODS:
        for variant, bias_free in (("regular", False), ("bias-free", True)):
            b, bkey = ctx.baseline_for(method)
            # The page's own cached call: the map it drew.
            shown = compute.run_method(name, bias_free, method, ctx.hparams(method), ctx.image_key,
                                       bkey, ctx.target, ctx.x, b)["attributions"]
            module = explorer.remove_biases(original()) if bias_free else original()
            expected = explorer.attribute(method, module, ctx.x, ctx.target, baseline=b,
                                          **dict(ctx.hparams(method)))[0]
            rel_close(shown, expected.numpy())


def test_uploads_are_bounded_and_may_not_read_server_files(exported, tmp_path, monkeypatch):
    data = exported.read_bytes()
    monkeypatch.setenv(MAX_MB_ENV, str(len(data) / 2e6))
    with pytest.raises(explorer.InputError, match="this server takes ONNX files up to"):
        onnx_upload_spec(data, "small.onnx")
    monkeypatch.delenv(MAX_MB_ENV)
    # The same model with its weights "external": pointing at a file on the server.
    model = onnx.load(str(exported))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 4096)
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="secret.bin", size_threshold=0)
    with pytest.raises(explorer.InputError, match="external files"):
        onnx_upload_spec((tmp_path / "ext.onnx").read_bytes(), "ext.onnx")
    with pytest.raises(explorer.InputError, match="not an ONNX file"):
        onnx_upload_spec(b"\x08\x07garbage" * 10, "junk.onnx")
    with pytest.raises(explorer.InputError, match="takes 3 x 32 x 32 inputs, not the 3 x 64"):
        onnx_upload_spec(data, "small.onnx", explorer.InputDescription(size=64))
