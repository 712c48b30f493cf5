"""The adaptive-IG bench section, end to end with tiny settings."""
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import explorer
from explorer.bench import adaptive


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert adaptive.main(["--quick", "--model", "digits-cnn", "--out", str(out)]) == 0
    return out, json.loads((out / "adaptive.json").read_text())


def test_writes_json_and_figure(written):
    out, result = written
    assert (out / "adaptive_ig.html").stat().st_size > 1000
    figs = adaptive.figures(result)
    assert set(figs) == {"adaptive_ig"} and isinstance(figs["adaptive_ig"], go.Figure)
    from figure_checks import figure_problems
    assert figure_problems(figs["adaptive_ig"]) == []
    assert "exact" in figs["adaptive_ig"].layout.yaxis.ticktext  # a zero is "exact", not 1e-12
    assert [(r["model"], r["bias_free"]) for r in result["results"]] == [
        ("digits-cnn", False), ("digits-cnn", True)]


def test_numbers_agree_with_an_independent_computation(written):
    _, result = written
    s = adaptive.settings(quick=True)
    regular, free = result["results"]
    # Bias-free from zero: one 7-point estimate per input, exact to rounding.
    for a in free["adaptive"]:
        assert [i["passes"] for i in a["inputs"]] == [7] * s["inputs"]
        assert all(i["error"] < 1e-5 for i in a["inputs"]) and a["target_met"]
    for a in regular["adaptive"]:
        assert all(i["error"] <= 1.5 * a["tolerance"] for i in a["inputs"])
    # Fixed 8-step error, recomputed with numpy's Gauss-Legendre nodes and plain autograd.
    model = explorer.load_model("digits-cnn", device="cpu").module
    x = adaptive.digits_for("digits-cnn", s["inputs"]).double()
    model = model.double()

    def ig(steps):  # every node of every input in one batch
        nodes, weights = (torch.from_numpy(v) / 2 for v in np.polynomial.legendre.leggauss(steps))
        p = ((nodes + 0.5).view(-1, 1, 1, 1, 1) * x).flatten(0, 1).requires_grad_(True)
        target = torch.tensor(regular["targets"]).repeat(steps)
        (g,) = torch.autograd.grad(model(p)[torch.arange(len(p)), target].sum(), p)
        return (weights.view(-1, 1, 1, 1, 1) * x * g.view(steps, *x.shape)).sum(0)

    ref = ig(int(s["reference"].split("-")[1]))
    want = ((ig(8) - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).tolist()
    np.testing.assert_allclose(regular["fixed"]["8"], want, rtol=1e-3)


def test_exact_reference_on_the_bias_free_cnn():
    """The full run's reference: exact IG. From zero on the X-DNN it is one region, and fixed
    Gauss-Legendre is exact to rounding there (the integrand is constant)."""
    s = dict(adaptive.settings(quick=True), reference="exact", inputs=2)
    r = adaptive.measure("digits-cnn", True, "cpu", s)
    assert r["exact_regions"] == [1, 1]
    assert max(r["fixed"]["8"]) < 1e-5


def test_smallest_reliable_step_count():
    errors = {8: 0.02, 16: 0.009, 32: 0.011, 64: 0.004, 128: 0.002}
    assert adaptive.smallest_reliable(errors, 0.01) == 64   # 16 dips under, 32 does not
    assert adaptive.smallest_reliable(errors, 0.05) == 8
    assert adaptive.smallest_reliable(errors, 0.001) is None
