"""A target may be a weighting of the logits: F = sum_k w_k logit_k."""
import pytest
import torch
from torch import nn

import explorer
from helpers import images, small_cnn

# Methods whose map is linear in F (their rules do not depend on the target).
LINEAR = ["gradient", "input_x_gradient", "integrated_gradients", "expected_gradients",
          "smoothgrad", "occlusion", "deeplift", "epsilon_lrp", "blur_ig"]
FAST = {"integrated_gradients": {"steps": 8}, "expected_gradients": {"samples": 8},
        "smoothgrad": {"samples": 6}, "occlusion": {"window": 4, "stride": 4},
        "mfaba": {"steps": 5, "variant": "sharp"}, "blur_ig": {"steps": 6, "max_sigma": 3.0}}


@pytest.fixture(scope="module")
def model():
    return small_cnn()


def attr(method, model, x, target):
    baseline = torch.rand(3, *x.shape[1:], generator=torch.Generator().manual_seed(1)) * 0.2
    if method != "expected_gradients":
        baseline = baseline[:1] if explorer.METHODS[method].uses_baseline else None
    return explorer.attribute(method, model, x, target, baseline=baseline, **FAST.get(method, {}))


@pytest.mark.parametrize("method", LINEAR)
def test_weighted_target_is_the_weighted_sum_of_single_targets(method, model):
    x = images(2)
    w = torch.tensor([[0.7, -1.3, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0, 0.5]])
    weighted = attr(method, model, x, w)
    parts = [sum(float(w[i, k]) * attr(method, model, x[i:i + 1], k) for k in range(5) if w[i, k])
             for i in range(2)]
    torch.testing.assert_close(weighted, torch.cat(parts), rtol=1e-4, atol=1e-5)


def test_one_hot_weighting_equals_the_class_index(model):
    x = images(2)
    for method in ("mfaba", "grad_cam", "saliency"):  # also the methods that are not linear
        torch.testing.assert_close(attr(method, model, x, torch.eye(5)[3]), attr(method, model, x, 3))


def test_gradient_of_a_weighting_on_a_linear_model_is_w_transposed():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4).double().eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    w = torch.randn(3, 4, dtype=torch.float64)
    grad = explorer.attribute("gradient", lin, x, w)
    torch.testing.assert_close(grad, w @ lin.weight.detach())


def test_completeness_of_a_weighted_target():
    model = explorer.remove_biases(small_cnn(seed=2))
    x = images(2)
    w = torch.tensor([1.0, -0.5, 0.25, 0.0, 2.0])
    a = explorer.attribute("input_x_gradient", model, x, w)
    report = explorer.completeness(model, x, a, w)
    expected = model(x).detach() @ w
    torch.testing.assert_close(report.output, expected)
    assert float(report.rel_error.max()) < 1e-4


@pytest.mark.parametrize("target,match", [
    (torch.ones(4), "4 weights but the model has 5 classes"),
    (torch.ones(3, 5), r"\[N=2, classes\]"),
    (torch.ones(2, 5, 1), r"\[N=2, classes\]"),
    (torch.tensor([1.0, float("nan"), 0, 0, 0]), "NaN"),
])
def test_bad_weightings(model, target, match):
    with pytest.raises(explorer.InputError, match=match):
        explorer.attribute("gradient", model, images(2), target)
