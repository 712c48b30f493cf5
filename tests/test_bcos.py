"""B-cos networks: the layers against the ``bcos`` package and the paper's formula, and the
B-cos contribution map (exact, one pass) on the bundled B-cos digits CNN."""
import math
import threading

import pytest
import torch

import explorer
from explorer.models.bcos import (BcosConv2d, BcosLinear, BcosDigitsCNN, explaining,
                                  explanation_mode)
from explorer.runtime.timing import count_passes
from helpers import images


def test_bcos_linear_closed_form_on_a_2d_example():
    """w = (3, 4) -> unit (0.6, 0.8); x = (1, 1): w^T x = 1.4, ||x|| = sqrt 2,
    cos = 1.4 / sqrt 2, so y = |cos|^(B-1) * 1.4."""
    for b in (1.0, 2.0, 3.0):
        layer = BcosLinear(2, 1, b=b)
        with torch.no_grad():
            layer.linear.weight.copy_(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
        layer = layer.double()
        y = layer(torch.tensor([[1.0, 1.0]], dtype=torch.float64)).detach()
        cos = 1.4 / math.sqrt(2)
        expected = 1.4 * cos ** (b - 1)
        # the package's (and ours) +1e-6 under |cos| for B != 2 shifts the value by ~1e-6
        assert float(y) == pytest.approx(expected, rel=1e-12 if b in (1.0, 2.0) else 1e-5)
    # max-out: the larger of the two units' w^T x wins, then is scaled by its own |cos|
    layer = BcosLinear(2, 1, b=2.0, max_out=2).double()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0]], dtype=torch.float64))
    x = torch.tensor([[3.0, -4.0]], dtype=torch.float64)  # unit 1: 3, unit 2: 4 wins
    assert float(layer(x).detach()) == pytest.approx(4.0 * (4.0 / 5.0), rel=1e-12)


@pytest.mark.parametrize("b,max_out", [(2.0, 1), (2.0, 2), (1.5, 2)])
def test_layers_match_the_bcos_package(b, max_out):
    """Same weights, same outputs; in explanation mode the same input gradients."""
    pkg = pytest.importorskip("bcos.modules")
    g = torch.Generator().manual_seed(0)
    pairs = [(BcosConv2d(4, 3, 3, padding=1, b=b, max_out=max_out),
              pkg.BcosConv2d(4, 3, 3, padding=1, b=b, max_out=max_out),
              torch.rand(2, 4, 6, 6, generator=g) - 0.3),
             (BcosLinear(5, 3, b=b, max_out=max_out), pkg.BcosLinear(5, 3, b=b, max_out=max_out),
              torch.randn(2, 5, generator=g))]
    for ours, theirs, x in pairs:
        theirs.load_state_dict(ours.state_dict())  # the same keys: linear.weight
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-7)
        for mode in (False, True):
            theirs.set_explanation_mode(mode)
            grads = []
            for layer, context in ((ours, explanation_mode() if mode else _nothing()),
                                   (theirs, _nothing())):
                xx = x.clone().requires_grad_(True)
                with context:
                    layer(xx).pow(1).sum().backward()
                grads.append(xx.grad)
            torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_explanation_mode_is_this_threads_only():
    seen = {}
    with explanation_mode():
        thread = threading.Thread(target=lambda: seen.update(other=explaining()))
        thread.start()
        thread.join()
        seen["here"] = explaining()
    assert seen == {"other": False, "here": True} and not explaining()


@pytest.fixture(scope="module")
def bundled():
    entry = explorer.load_model("digits-bcos", device="cpu")
    x = torch.from_numpy(explorer.inputs.data.sample_digits()["clean"]).float() / 255
    return entry, x


def test_contribution_sums_to_the_logit_in_float32_and_float64(bundled):
    entry, x = bundled
    target = entry.module(x).argmax(1)
    e = explorer.explain("bcos", entry.module, x, target)
    logits = entry.module(x).gather(1, target[:, None])[:, 0]
    sums = e.attributions.reshape(len(x), -1).sum(1)
    assert (logits.abs() > 1).all()  # real logits, not near-zero ones
    torch.testing.assert_close(sums, logits, rtol=1e-5, atol=0)
    report = explorer.completeness(entry.module, x, e.attributions, target, e.references)
    assert float(report.rel_error.max()) < 1e-5 and float(report.reference_output.abs().max()) == 0
    model64, x64 = BcosDigitsCNN().double().eval(), x.double()
    model64.load_state_dict(entry.module.state_dict())
    e64 = explorer.explain("bcos", model64, x64, target)
    logits64 = model64(x64).gather(1, target[:, None])[:, 0]
    rel = (e64.attributions.reshape(len(x), -1).sum(1) - logits64).abs() / logits64.abs()
    assert float(rel.max()) < 1e-12
    # a different map from X-Gradient's: the [x, 1 - x] encoding makes black pixels count
    ixg = explorer.attribute("input_x_gradient", model64, x64, target)
    assert not torch.allclose(ixg, e64.attributions, atol=1e-6)


def test_one_forward_and_one_backward_pass(bundled):
    entry, x = bundled
    with count_passes(entry.module) as counts:
        explorer.attribute("bcos", entry.module, x[:3], 1)
    assert (counts.forward, counts.backward) == (3, 3)


def test_every_other_method_runs_and_x_gradient_is_not_exact_there(bundled):
    entry, x = bundled
    x, target = x[:4], entry.module(x[:4]).argmax(1)
    ig = explorer.explain("integrated_gradients", entry.module, x, target, steps=128)
    ixg = explorer.explain("input_x_gradient", entry.module, x, target)
    ig_report = explorer.completeness(entry.module, x, ig.attributions, target, ig.references)
    ixg_report = explorer.completeness(entry.module, x, ixg.attributions, target, ixg.references)
    assert float(ig_report.rel_error.max()) < 0.05          # quadrature: close
    assert float(ixg_report.rel_error.min()) > 0.05         # no homogeneity in pixel space
    assert explorer.homogeneity_error(entry.module, x) > 0.01
    sens = explorer.analyses.metrics.sensitivity_n(entry.module, x, ixg.attributions, target, ns=[4, 64],
                                          subsets=8)
    assert sens.correlation.shape == (2,)
    assert torch.isfinite(torch.as_tensor(sens.correlation)).all()


def test_refuses_other_models_with_the_reason():
    model = explorer.load_model("digits-cnn", bias_free=True, device="cpu").module
    with pytest.raises(explorer.InputError, match="not a B-cos network"):
        explorer.attribute("bcos", model, images(1, channels=1, size=28), 0)
    assert explorer.METHODS["bcos"].applicability(model) is not None


def test_train_command_writes_the_model_and_its_interleaved_timing(tmp_path):
    from explorer.cli import main
    assert main(["train", "--model", "digits-bcos", "--subset", "64", "--epochs", "1",
                 "--out", str(tmp_path)]) == 0
    manifest = __import__("json").loads((tmp_path / "digits-bcos.json").read_text())
    assert manifest["command"].startswith("python -m explorer")  # (from sys.argv: pytest's here)
    assert manifest["recipe"]["epochs"] == 1 and manifest["variant"] == "b-cos"
    assert manifest["sha256"] == explorer.models.zoo.sha256(tmp_path / "digits-bcos.pt")
    cost = manifest["cost"]
    assert cost["epoch_seconds_median"] > 0 and cost["regular_epoch_seconds_median"] > 0
    # The ratio is taken before rounding; the seconds are rounded to ms and the ratio to 0.01,
    # so the shown seconds bound it (a one-epoch run on 64 digits lasts only milliseconds).
    b, r, half_ms = cost["epoch_seconds_median"], cost["regular_epoch_seconds_median"], 5e-4
    lowest, highest = (b - half_ms) / (r + half_ms), (b + half_ms) / (r - half_ms)
    assert lowest - 0.005 <= cost["epoch_time_vs_regular"] <= highest + 0.005
    state = torch.load(tmp_path / "digits-bcos.pt", weights_only=True)
    BcosDigitsCNN().load_state_dict(state)  # the zoo's architecture takes it as it is


def test_evaluate_routes_compares_the_three_routes_on_the_same_digits(tmp_path):
    from explorer.cli import main
    assert main(["evaluate", "--routes", "--inputs", "3", "--subsets", "4", "--ns", "4", "64",
                 "--steps", "5", "--out", str(tmp_path)]) == 0
    result = __import__("json").loads((tmp_path / "routes.json").read_text())
    rows = {r["route"]: r for r in result["rows"]}
    assert set(rows) == {"B-cos contribution on the B-cos CNN", "X-Gradient on the X-DNN",
                         "IG on the regular CNN"}
    for name in ("B-cos contribution on the B-cos CNN", "X-Gradient on the X-DNN"):
        assert rows[name]["max rel. completeness error"] < 1e-5
        assert rows[name]["forward passes"] == 1 and rows[name]["backward passes"] == 1
    assert rows["IG on the regular CNN"]["forward passes"] == 64
    assert result["settings"]["inputs"] == 3 and result["settings"]["ns"] == [4, 64]
    accuracy = __import__("json").loads((explorer.inputs.data.ASSETS / "digits-bcos.json").read_text())
    assert rows["B-cos contribution on the B-cos CNN"]["test accuracy"] == \
        accuracy["accuracy"]["test_clean"]


def test_bcos_v2_imagenet_network_is_complete_against_its_logit_bias():
    """The authors' B-cos ResNet-18 (random weights: no download in tests), float64: the map
    sums to the logit minus the network's constant logit bias; the package's per-module
    explanation flag is replaced by this thread's mode (setting it changes nothing)."""
    pytest.importorskip("bcos")
    from explorer.models.bcos import logit_offset
    entry = explorer.load_model("bcos-resnet18", pretrained=False, device="cpu")
    assert "[untrained]" in entry.title and entry.input_space.mean is None
    model = entry.module.double()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e = explorer.explain("bcos", model, x, 7)
    logit = model(x)[:, 7]
    bias = logit_offset(model)
    assert bias == pytest.approx(math.log(1 / 1000), rel=1e-3)  # B-cos v2's logit bias
    residual = e.attributions.reshape(2, -1).sum(1) - (logit - bias)
    assert float(residual.abs().max()) < 1e-12 * float(logit.abs().max())
    units = [m for m in model.modules() if hasattr(m, "set_explanation_mode")]
    for m in units:
        m.set_explanation_mode(True)
    assert units and not any(m.detach for m in units)
    with explanation_mode():
        assert all(m.detach for m in units)
