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


def sequential_cnn(pool=torch.nn.MaxPool2d):
    torch.manual_seed(13)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), pool(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 12), torch.nn.ReLU(),
        torch.nn.Linear(12, 5)).eval()


def test_deeplift_matches_captum(x):
    # Average pooling: with max-pooling Captum's own DeepLift map misses completeness by ~1-2%
    # while ours is complete (tests/test_modified_methods.py), so the two rules differ there.
    model = sequential_cnn(torch.nn.AvgPool2d)
    baseline = torch.full_like(x, 0.2)
    expected = captum_attr.DeepLift(model).attribute(x, baselines=baseline, target=TARGET)
    close(explorer.attribute("deeplift", model, x, TARGET, baseline=baseline), expected)


class FunctionalFlatten(torch.nn.Module):
    """Captum's LRP needs a rule for every layer and its rules break on Flatten and MaxPool2d:
    flatten in forward() instead, and pool by averaging."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(13)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2))
        self.fc1, self.relu, self.fc2 = torch.nn.Linear(128, 12), torch.nn.ReLU(), torch.nn.Linear(12, 5)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.features(x).flatten(1))))


def test_epsilon_lrp_matches_captum(x):
    model = FunctionalFlatten().eval()
    expected = captum_attr.LRP(model).attribute(x, target=TARGET)
    close(explorer.attribute("epsilon_lrp", model, x, TARGET, eps=1e-9), expected)


def test_grad_cam_matches_captum_layer_grad_cam(model, x):
    layer = model[4]
    cam = captum_attr.LayerGradCam(model, layer).attribute(x, target=TARGET, relu_attributions=True)
    cam = captum_attr.LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")
    ours = explorer.attribute("grad_cam", model, x, TARGET, layer="4")
    close(ours.sum(1, keepdim=True), cam)
