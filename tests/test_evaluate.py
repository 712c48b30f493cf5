"""The evaluation of several methods at once, its command and its figures."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from explorer.presentation import figures, viz
from explorer.cli import main
from explorer.inputs.data import sample_digits
from explorer.analyses.evaluate import evaluate, log_grid, params_label
from explorer.analyses.metrics import sensitivity_n


def test_log_grid_goes_up_to_most_features():
    assert log_grid(784) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 705]
    assert log_grid(16) == [1, 2, 4, 8, 14]
    assert log_grid(1) == [1]


def test_labels_name_the_changed_hyper_parameters():
    assert params_label("occlusion", {"window": 1, "stride": 1, "batch_size": 256}) == \
        "Occlusion (window=1, stride=1)"
    assert params_label("input_x_gradient", {}, bias_free=True) == "X-Gradient"


def test_evaluate_removes_to_the_baseline_the_methods_used():
    # A linear model: IG and DeepLIFT from baseline 0.3 are exact for Sensitivity-n only if the
    # metric removes features to that same baseline.
    torch.manual_seed(0)
    model = nn.Linear(12, 3).double().eval()
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = torch.full_like(x, 0.3)
    stages = []
    result = evaluate(model, x, 2, methods={"integrated_gradients": {"steps": 4}, "deeplift": {},
                                            "saliency": {}},
                      baseline=base, subsets=10, steps=6, fill="baseline",
                      progress=lambda f, text: stages.append((f, text)))
    assert result.ns == [1, 2, 4, 8, 10]
    for s in result.scores[:2]:
        np.testing.assert_allclose(s.sensitivity.per_sample, 1.0, atol=1e-9)
    assert not np.allclose(result.scores[2].sensitivity.correlation, 1.0)
    # The same maps scored alone give the same numbers (the subsets are shared, not re-drawn).
    alone = sensitivity_n(model, x, result.scores[2].attributions, 2, ns=result.ns, subsets=10,
                          baseline=base)
    np.testing.assert_array_equal(alone.per_sample, result.scores[2].sensitivity.per_sample)
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert result.best_at()[1] in ("Integrated Gradients (steps=4)", "DeepLIFT (Rescale)")


def test_evaluate_command_on_test_digits(tmp_path, capsys):
    # 4x4 patches as features and as occlusion windows keep it fast (49 features).
    status = main(["evaluate", "--inputs", "3", "--methods", "saliency,occlusion",
                   "--param", "occlusion.window=4", "--set", "occlusion.stride=4", "--block", "4",
                   "--ns", "1", "8", "32", "--subsets", "6", "--steps", "4",
                   "--fill", "black", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Occlusion (stride=4)" in out and "best at n" in out
    assert "Sensitivity-n" in err and "100%" in err  # progress went to stderr
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["settings"]["inputs"] == 3 and data["settings"]["ns"] == [1, 8, 32]
    occ = next(m for m in data["methods"] if m["method"] == "occlusion")
    per_input = np.array([[np.nan if v is None else v for v in row]
                          for row in occ["sensitivity_n"]["per_input"]])
    # Occlusion of one feature, removed to the same baseline, satisfies Sensitivity-1 (float32).
    defined = per_input[:, 0][np.isfinite(per_input[:, 0])]
    assert defined.size and np.all(defined > 0.9999)
    summary = {row["method"]: row for row in data["summary"]}
    assert summary["Occlusion (stride=4)"]["r(n=8)"] == pytest.approx(
        np.nanmean(per_input[:, 1]))
    ins = np.array(occ["insertion_deletion"]["insertion_auc"])
    assert summary["Occlusion (stride=4)"]["insertion AUC"] == pytest.approx(ins.mean())
    for plot in ("sensitivity_n", "insertion_deletion"):  # interactive and for slides
        assert (tmp_path / f"{plot}.html").stat().st_size > 1000
        if shutil.which("chromium"):  # kaleido renders through it (CI installs it)
            png = Image.open(tmp_path / f"{plot}.png")
            assert png.size == (900 * figures.PNG_SCALE, 420 * figures.PNG_SCALE)
            assert figures.read_settings((tmp_path / f"{plot}.png").read_bytes())["inputs"] == 3


def test_evaluate_command_on_a_folder_of_images(tmp_path, capsys):
    digits = sample_digits()["clean"][:2, 0]
    folder = tmp_path / "digits"
    folder.mkdir()
    for k, d in enumerate(digits):
        Image.fromarray(d).save(folder / f"{k}.png")
    status = main(["evaluate", "--images", str(folder), "--methods", "input_x_gradient",
                   "--ns", "2", "32", "--subsets", "4", "--steps", "3", "--block", "2",
                   "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert status == 0, err
    data = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert data["settings"]["inputs"] == 2 and data["settings"]["block"] == 2
    assert len(data["methods"][0]["insertion_deletion"]["fractions"]) == 4


@pytest.mark.parametrize("argv, message", [
    (["--methods", "occlusion", "--set", "occlusion.size=3"], "occlusion takes"),
    (["--set", "nonsense"], "METHOD.NAME=VALUE"),
    (["--ns", "785"], "between 1 and 784"),
    (["--subsets", "1"], "subsets"),
    (["--methods", "no_such_method"], "unknown method"),
    (["--images", "EMPTY"], "no .png"),
    (["--images", "MISSING"], "not a folder"),
    (["--target", "label"], "needs the test digits"),
])
def test_evaluate_command_bad_input_says_why(argv, message, capsys, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(sample_digits()["clean"][0, 0]).save(folder / "0.png")
    (tmp_path / "empty").mkdir()
    base = {"--images": str(folder), "--methods": "saliency", "--ns": "1"}
    for key, value in zip(argv[::2], argv[1::2]):
        base[key] = {"EMPTY": str(tmp_path / "empty"),
                     "MISSING": str(tmp_path / "missing")}.get(value, value)
    sets = [a for k, v in zip(argv[::2], argv[1::2]) if k == "--set" for a in ("--set", v)]
    options = [a for k, v in base.items() if k != "--set" for a in (k, v)]
    status = main(["evaluate", "--out", str(tmp_path / "out"), *options, *sets])
    assert status == 2
    assert message in capsys.readouterr().err


def test_metric_figures():
    fig = viz.sensitivity_n_figure([1, 4, 16], {"a": [1.0, 0.5, float("nan")], "b": [0.2, 0.3, 0.4]},
                                   {"a": [0.0, 0.1, 0.0], "b": [0.1, 0.1, 0.1]})
    assert fig.layout.xaxis.type == "log" and len(fig.data) == 2
    assert fig.data[0].y[2] is None  # an undefined correlation is a gap, not a 0
    colours = [t.line.color for t in fig.data]
    fig = viz.insertion_deletion_figure([0, 0.5, 1], {"a": [0, 1, 2], "b": [0, 2, 2]},
                                        {"a": [2, 1, 0], "b": [2, 0, 0]})
    assert len(fig.data) == 4 and [t.showlegend for t in fig.data] == [True, False, True, False]
    # A method has the same colour in both panels and in the Sensitivity-n figure.
    assert [t.line.color for t in fig.data] == [colours[0], colours[0], colours[1], colours[1]]
