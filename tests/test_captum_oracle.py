"""Captum (test-only dependency) as an independent implementation of the shared methods."""
import pytest
import torch

import explorer
from helpers import images, small_cnn

captum_attr = pytest.importorskip("captum.attr")

TARGET = torch.tensor([0, 3, 1])


@pytest.fixture(scope="module")
def model():
    return small_cnn(seed=11)


@pytest.fixture(scope="module")
def x():
    return images(3, seed=5)


def close(ours, theirs):
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-5)


def test_saliency(model, x):
    close(explorer.attribute("saliency", model, x, TARGET),
          captum_attr.Saliency(model).attribute(x, target=TARGET, abs=True))
    close(explorer.attribute("gradient", model, x, TARGET),
          captum_attr.Saliency(model).attribute(x, target=TARGET, abs=False))


def test_input_x_gradient(model, x):
    close(explorer.attribute("input_x_gradient", model, x, TARGET),
          captum_attr.InputXGradient(model).attribute(x, target=TARGET))


@pytest.mark.parametrize("ours,theirs", [
    ("left", "riemann_left"), ("right", "riemann_right"), ("middle", "riemann_middle"),
    ("gauss_legendre", "gausslegendre")])
def test_integrated_gradients_each_rule(model, x, ours, theirs):
    baseline = torch.full_like(x, 0.25)
    expected = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=baseline, target=TARGET, n_steps=24, method=theirs)
    close(explorer.attribute("integrated_gradients", model, x, TARGET, baseline=baseline,
                             steps=24, rule=ours, batch_size=17), expected)


def test_trapezoid_differs_from_captum_only_by_its_weight_sum(model, x):
    # Captum's trapezoid nodes are linspace(0, 1, n) but its weights are 1/n (ends 1/2n), which
    # sum to (n - 1)/n, not 1. Ours use h = 1/(n - 1) (closed-form tests in
    # test_integrated_gradients.py), so the two agree after that one factor.
    n = 24
    expected = captum_attr.IntegratedGradients(model).attribute(
        x, target=TARGET, n_steps=n, method="riemann_trapezoid")
    ours = explorer.attribute("integrated_gradients", model, x, TARGET, steps=n, rule="trapezoid")
    close(ours * (n - 1) / n, expected)


def test_smoothgrad_with_zero_noise(model, x):
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(model))
    expected = nt.attribute(x, nt_type="smoothgrad", nt_samples=5, stdevs=0.0, target=TARGET,
                            abs=False)
    close(explorer.attribute("smoothgrad", model, x, TARGET, samples=5, noise=0.0), expected)


@pytest.mark.parametrize("window,stride", [(4, 4), (4, 2), (5, 3), (16, 16)])
def test_occlusion(model, x, window, stride):
    baseline = torch.full_like(x, 0.5)
    expected = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
        baselines=baseline, target=TARGET, perturbations_per_eval=16)
    close(explorer.attribute("occlusion", model, x, TARGET, baseline=baseline, window=window,
                             stride=stride), expected)


def test_completeness_matches_captum_convergence_delta(model, x):
    ig = captum_attr.IntegratedGradients(model)
    attr, delta = ig.attribute(x, target=TARGET, n_steps=8, return_convergence_delta=True)
    report = explorer.completeness(model, x, attr, TARGET)
    torch.testing.assert_close(report.abs_error, delta.abs().to(report.abs_error.dtype),
                               rtol=1e-4, atol=1e-5)
