"""The paper's claim: on a bias-free ReLU network X-Gradient == IG with the zero baseline."""
import pytest
import torch

import explorer
from helpers import images, small_cnn


@pytest.fixture(scope="module")
def nets():
    # float64 so the 1e-5 tolerance checks the mathematics, not float32 rounding.
    regular = small_cnn(seed=3, dtype=torch.float64)
    return regular, explorer.remove_biases(regular)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


# left/trapezoid put a node at alpha = 0, where a bias-free ReLU network's gradient is 0
# (relu'(0) = 0), so they under-count by one node's weight; the other rules never touch 0.
@pytest.mark.parametrize("rule", ["right", "middle", "gauss_legendre"])
def test_xgradient_equals_ig_zero_baseline_on_bias_free_net(nets, rule):
    _, free = nets
    x = images(4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    xg = explorer.attribute("input_x_gradient", free, x, target)
    ig = explorer.attribute("integrated_gradients", free, x, target, steps=16, rule=rule)
    assert rel(xg, ig) < 1e-5
    for attr in (xg, ig):
        report = explorer.completeness(free, x, attr, target, torch.zeros_like(x))
        assert float(report.rel_error.max()) < 1e-5
        assert float(report.reference_output.abs().max()) < 1e-12  # F(0) = 0 without biases


def test_left_rule_misses_the_alpha_zero_node(nets):
    _, free = nets
    x = images(2, dtype=torch.float64)
    xg = explorer.attribute("input_x_gradient", free, x, 1)
    ig = explorer.attribute("integrated_gradients", free, x, 1, steps=8, rule="left")
    torch.testing.assert_close(ig, xg * 7 / 8)


def test_with_biases_they_differ_and_input_x_gradient_is_not_complete(nets):
    regular, _ = nets
    x = images(4, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3])
    ixg = explorer.attribute("input_x_gradient", regular, x, target)
    ig = explorer.attribute("integrated_gradients", regular, x, target, steps=256)
    assert rel(ixg, ig) > 1e-2
    bad = explorer.completeness(regular, x, ixg, target, torch.zeros_like(x))
    good = explorer.completeness(regular, x, ig, target, torch.zeros_like(x))
    assert float(bad.rel_error.min()) > 1e-2
    assert float(good.rel_error.max()) < float(bad.rel_error.min())


def test_float32_bias_free_net_still_complete_to_float_precision():
    free = explorer.remove_biases(small_cnn(seed=4))
    x = images(4)
    e = explorer.explain("input_x_gradient", free, x, 2)
    report = explorer.completeness(free, x, e.attributions, 2, e.references)
    assert float(report.abs_error.max()) < 1e-4 * float(report.delta.abs().max())


def test_label_is_x_gradient_only_on_bias_free_models():
    assert explorer.method_label("input_x_gradient", bias_free=True) == "X-Gradient"
    assert explorer.method_label("input_x_gradient", bias_free=False) == "Input x Gradient"
    assert explorer.method_label("saliency", bias_free=True) == "Saliency"
