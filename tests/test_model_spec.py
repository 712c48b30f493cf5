"""Your own model as a spec string: a factory file by path and by module name, with weights,
through the API, the command line and the app; and the formats that are refused because
loading them runs code (each proved with an armed file whose marker never appears)."""
from __future__ import annotations

import io
import json
import pathlib
import textwrap
import zipfile

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from torch import nn

import explorer
from explorer.cli import main
from explorer.cli.app import MODELS_ENV
from explorer.models.spec import USER_MODELS, InputDescription, resolve
from helpers import page_tables

REPO = pathlib.Path(__file__).resolve().parent.parent
APP = str(REPO / "streamlit_app.py")
FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    def build():
        torch.manual_seed(3)
        model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4))
        with torch.no_grad():  # batch-norm statistics that are not the identity
            model[1].running_mean.uniform_(-0.5, 0.5)
            model[1].running_var.uniform_(0.5, 2.0)
            model[1].bias.uniform_(-0.5, 0.5)
        return model, {"channels": 3, "size": 32, "mean": [0.5, 0.5, 0.5],
                       "std": [0.25, 0.25, 0.25], "labels": ["ant", "bee", "cat", "dog"]}

    def bare():
        return build()[0]

    def not_a_model():
        return 42
''')


class Payload:
    """Touches a marker file when unpickled: proof that a loader ran the file's code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "yourmodels_spec_test.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "yourmodels_spec_test.py"
    for key in [k for k in USER_MODELS if "yourmodels_spec_test" in k]:
        USER_MODELS.pop(key)


def reference(seed_weights: bool = False) -> nn.Module:
    namespace: dict = {}
    exec(FACTORY, namespace)
    return namespace["build"]()[0].eval()


def test_a_factory_by_path_and_by_module_name_is_the_same_model(factory):
    x = torch.rand(2, 3, 32, 32)
    expected = reference()(x)
    for spec in (f"{factory}:build", "yourmodels_spec_test:build"):
        entry = explorer.load_model(spec, device="cpu")
        assert entry.labels == ["ant", "bee", "cat", "dog"] and entry.spec.size == 32
        assert entry.input_space == explorer.InputSpace((0.5,) * 3, (0.25,) * 3)
        torch.testing.assert_close(entry.module(x), expected, rtol=1e-5, atol=1e-6)
        image = entry.preprocess(Image.new("RGB", (50, 40), (255, 0, 128)))
        # Pixels (1, 0, 128/255) normalised with mean 0.5, std 0.25, the same everywhere.
        expected_pixel = torch.tensor([2.0, -2.0, (128 / 255 - 0.5) / 0.25]).view(3, 1, 1)
        torch.testing.assert_close(image, expected_pixel.expand(3, 32, 32), atol=1e-5, rtol=0)


def test_weights_from_safetensors_and_a_state_dict(factory, tmp_path):
    from safetensors.torch import save_file
    other = reference()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    save_file(other.state_dict(), tmp_path / "w.safetensors")
    torch.save(other.state_dict(), tmp_path / "w.pt")
    x = torch.rand(2, 3, 32, 32)
    for weights in ("w.safetensors", "w.pt"):
        entry = explorer.load_model(f"{factory}:build", checkpoint=tmp_path / weights,
                                    device="cpu")
        torch.testing.assert_close(entry.module(x), other(x), rtol=1e-5, atol=1e-6)
        assert entry.trained and weights in entry.note


def test_bias_removal_and_obstacles_on_a_factory_model(factory):
    regular = explorer.load_model(f"{factory}:build", device="cpu")
    free = explorer.load_model(f"{factory}:build", bias_free=True, device="cpu")
    names = {(o.layer, o.reason) for o in explorer.homogeneity_obstacles(regular.module)}
    assert ("0", "additive bias") in names and ("1", "batch-norm shift (b - g m / s)") in names
    assert explorer.homogeneity_obstacles(free.module) == []
    x = torch.rand(2, 3, 32, 32)
    assert explorer.homogeneity_error(free.module, x) < 1e-5
    assert explorer.homogeneity_error(regular.module, x) > 1e-3
    # X-Gradient is complete on the bias-free model: sum = F(x) - F(0).
    a = explorer.attribute("input_x_gradient", free.module, x, 1)
    torch.testing.assert_close(a.sum((1, 2, 3)), free.module(x)[:, 1], rtol=1e-4, atol=1e-5)


def test_a_factory_without_a_description_is_guessed_and_says_so(factory):
    entry = explorer.load_model(f"{factory}:bare", device="cpu")
    assert (entry.spec.channels, entry.spec.size) == (3, 224)
    assert entry.input_space == explorer.PIXELS and entry.labels[0] == "class 0"
    assert "No input description: assumed 3 x 224 x 224 pixels in [0, 1]" in entry.spec.description
    described = explorer.load_model(f"{factory}:bare", device="cpu",
                                    describe=InputDescription(size=32, labels=tuple("abcd")))
    assert described.spec.size == 32 and described.labels == list("abcd")


@pytest.mark.parametrize("spec, message", [
    ("{f}:not_a_model", "must return an nn.Module"),
    ("{f}:missing", "has no 'missing'"),
    ("{d}/nope.py:build", "no file"),
    ("no_such_module_xyz:build", "importing no_such_module_xyz failed"),
    ("timm/not_a_real_model_xyz", "timm has no model"),
    ("{d}/absent.onnx", "no ONNX file"),
    ("what-is-this", "unknown model 'what-is-this'"),
])
def test_bad_specs_say_what_to_do(factory, spec, message):
    with pytest.raises(explorer.InputError, match=message):
        explorer.load_model(spec.format(f=factory, d=factory.parent), device="cpu")


# ---- refused formats: armed files, positive controls, no marker ----------------------------

def armed_whole_model(path: pathlib.Path, marker: pathlib.Path) -> None:
    model = nn.Linear(2, 2)
    model.payload = Payload(marker)  # what torch.save(model) pickles runs on load
    torch.save(model, path)


def armed_pt2(path: pathlib.Path, marker: pathlib.Path) -> None:
    """A real torch.export archive whose sample inputs are replaced by a payload pickle."""
    plain = path.with_name("plain.pt2")
    torch.export.save(torch.export.export(nn.Linear(3, 2), (torch.randn(1, 3),)), plain)
    payload = io.BytesIO()
    torch.save(Payload(marker), payload)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            data = (payload.getvalue() if item.filename.endswith("sample_inputs/model.pt")
                    else zin.read(item))
            zout.writestr(item, data)


def armed_package(path: pathlib.Path, marker: pathlib.Path) -> None:
    """A torch.package archive whose packed module touches the marker when imported."""
    from torch.package import PackageExporter
    with PackageExporter(str(path)) as exporter:
        exporter.save_source_string("armed", f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
                                             "class Net:\n    pass\n")
        exporter.save_source_string("model", "import armed\nMODEL = armed.Net()\n")


def load_naively(kind: str, path: pathlib.Path) -> None:
    """What a loader without our refusal would do with each file."""
    if kind == "whole":
        torch.load(path, weights_only=False)
    elif kind == "pt2":
        try:
            torch.export.load(path)
        except Exception:  # the payload ran; the rest of the archive is not a real export
            pass
    else:
        from torch.package import PackageImporter
        PackageImporter(str(path)).import_module("model")


ARMED = {"whole": (armed_whole_model, "model.pt"), "pt2": (armed_pt2, "model.pt2"),
         "package": (armed_package, "model.pt")}


@pytest.mark.parametrize("kind", list(ARMED))
def test_code_running_formats_are_refused_and_their_payload_never_runs(kind, tmp_path, factory):
    arm, filename = ARMED[kind]
    control_marker = tmp_path / "control-ran"
    arm(tmp_path / f"control-{filename}", control_marker)
    load_naively(kind, tmp_path / f"control-{filename}")
    assert control_marker.exists(), "the armed file must really run its payload when loaded"

    marker = tmp_path / "payload-ran"
    path = tmp_path / filename
    arm(path, marker)
    with pytest.raises(explorer.InputError, match="refused") as as_model:
        explorer.load_model(str(path), device="cpu")
    with pytest.raises(explorer.InputError, match="refused") as as_weights:
        explorer.load_model(f"{factory}:build", checkpoint=path, device="cpu")
    with pytest.raises(explorer.InputError, match="refused"):
        explorer.load_model("digits-cnn", checkpoint=path, device="cpu")
    assert not marker.exists()
    for err in (as_model, as_weights):
        assert "state dict" in str(err.value) and "ONNX" in str(err.value)
    if kind != "whole":
        assert ("torch.export" if kind == "pt2" else "torch.package") in str(as_weights.value)


# ---- the command line and the app ------------------------------------------------------------

def test_cli_attribute_and_evaluate_take_a_spec_and_its_weights(factory, tmp_path, capsys):
    from safetensors.torch import save_file
    save_file(reference().state_dict(), tmp_path / "w.safetensors")
    images = tmp_path / "images"
    images.mkdir()
    for i, color in enumerate([(255, 0, 0), (0, 90, 200)]):
        Image.new("RGB", (40, 40), color).save(images / f"im{i}.png")
    assert main(["attribute", "--model", "yourmodels_spec_test:build", "--checkpoint",
                 str(tmp_path / "w.safetensors"), "--bias-free", "--methods", "input_x_gradient",
                 "--input", str(images), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--no-progress"]) == 0
    maps = sorted((tmp_path / "out").rglob("*.npy"))
    assert len(maps) == 2 and np.load(maps[0]).shape == (3, 32, 32)
    assert main(["evaluate", "--model", f"{factory}:build", "--methods", "saliency",
                 "--images", str(images), "--inputs", "2", "--ns", "8", "--subsets", "2",
                 "--out", str(tmp_path / "evaluation")]) == 0
    assert (tmp_path / "evaluation" / "evaluation.json").is_file()
    assert "saliency" in capsys.readouterr().out.lower()


def test_app_lists_launched_models_and_explores_them(factory, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, json.dumps([
        {"spec": f"{factory}:build", "checkpoint": None},
        {"spec": "yourmodels_spec_test:bare", "checkpoint": None}]))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    model = at.sidebar.selectbox(key="model")
    assert model.value == f"{factory}:build"  # the first launched model is the default
    assert model.options[:2] == [f"{factory}:build (your code)",
                                 "yourmodels_spec_test:bare (your code)"]
    rows = {(r.name, r["model"]): r for _, r in page_tables(at)[0].iterrows()}
    assert rows[("X-Gradient", "bias-free")]["result"] == "complete"
    assert float(rows[("X-Gradient", "bias-free")]["rel error"]) < 1e-4
    assert rows[("Input x Gradient", "regular")]["result"] == "NOT complete"
    assert not at.error
