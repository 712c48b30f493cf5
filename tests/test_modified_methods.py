"""DeepLIFT, epsilon-LRP, Grad-CAM and MFABA: the paper's equivalences, completeness, Captum."""
import pytest
import torch
import torchvision
from torch import nn

import explorer
from explorer.inputs.data import sample_digits
from explorer.runtime.timing import count_passes
from helpers import hook_count, images, randomize_batch_norm, small_cnn


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def nets64():
    regular = small_cnn(seed=21, dtype=torch.float64)
    return regular, explorer.remove_biases(regular)


def test_epsilon_lrp_equals_input_x_gradient_on_relu_nets(nets64):
    x = images(3, dtype=torch.float64)
    for net in nets64:  # Ancona et al.: holds for ReLU networks with or without biases
        lrp = explorer.attribute("epsilon_lrp", net, x, 2, eps=1e-12)
        assert rel(lrp, explorer.attribute("input_x_gradient", net, x, 2)) < 1e-8
    coarse = explorer.attribute("epsilon_lrp", nets64[0], x, 2, eps=0.5)
    assert rel(coarse, explorer.attribute("input_x_gradient", nets64[0], x, 2)) > 1e-4


def test_deeplift_zero_baseline_equals_input_x_gradient_without_biases(nets64):
    regular, free = nets64
    x = images(3, dtype=torch.float64)
    assert rel(explorer.attribute("deeplift", free, x, 1),
               explorer.attribute("input_x_gradient", free, x, 1)) < 1e-10
    assert rel(explorer.attribute("deeplift", regular, x, 1),
               explorer.attribute("input_x_gradient", regular, x, 1)) > 1e-3


@pytest.mark.parametrize("baseline", ["zero", "constant", "random"])
def test_deeplift_is_complete_for_any_baseline_with_biases_and_max_pooling(nets64, baseline):
    regular, _ = nets64
    x = images(3, dtype=torch.float64)
    b = {"zero": torch.zeros_like(x), "constant": torch.full_like(x, 0.3),
         "random": images(3, seed=8, dtype=torch.float64)}[baseline]
    e = explorer.explain("deeplift", regular, x, torch.tensor([0, 1, 2]), baseline=b)
    report = explorer.completeness(regular, x, e.attributions, torch.tensor([0, 1, 2]), e.references)
    assert float(report.rel_error.max()) < 1e-8


def test_deeplift_complete_on_a_residual_network():
    torch.manual_seed(0)
    net = randomize_batch_norm(torchvision.models.resnet18(weights=None)).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    b = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    e = explorer.explain("deeplift", net, x, 7, baseline=b)
    # 1e-6, not 1e-8: where |z - z_ref| < 1e-5 the rule falls back to f'(z) (a tiny error)
    assert float(explorer.completeness(net, x, e.attributions, 7, e.references).rel_error.max()) < 1e-6


def test_other_max_pools_keep_the_gradient_and_the_error_is_shown():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(4),
                        nn.Flatten(), nn.Linear(64, 3)).double().eval()
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    b = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    e = explorer.explain("deeplift", net, x, 0, baseline=b)
    err = explorer.completeness(net, x, e.attributions, 0, e.references).rel_error
    assert torch.isfinite(err).all() and float(err.max()) > 1e-6  # approximate, and measured


class SharedReLU(nn.Module):
    """One nn.ReLU module called three times, as torchvision's ResNet blocks do."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 8 * 8, 4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.relu(self.c1(x))
        h = self.relu(self.c2(h) + h)
        return self.fc(self.relu(nn.functional.avg_pool2d(h, 2)).flatten(1))


class SeparateReLUs(SharedReLU):
    def __init__(self):
        super().__init__()
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        h = self.r1(self.c1(x))
        h = self.r2(self.c2(h) + h)
        return self.fc(self.r3(nn.functional.avg_pool2d(h, 2)).flatten(1))


@pytest.mark.parametrize("method", ["deeplift", "epsilon_lrp"])
def test_reused_relu_module_gives_the_definition(method):
    torch.manual_seed(5)
    shared = SharedReLU().double().eval()
    separate = SeparateReLUs().double().eval()
    separate.load_state_dict(shared.state_dict(), strict=False)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    b = torch.rand(2, 3, 16, 16, dtype=torch.float64) if method == "deeplift" else None
    a = explorer.attribute(method, shared, x, 1, baseline=b)
    torch.testing.assert_close(a, explorer.attribute(method, separate, x, 1, baseline=b))
    if method == "deeplift":
        e = explorer.explain(method, shared, x, 1, baseline=b)
        assert float(explorer.completeness(shared, x, e.attributions, 1, e.references).rel_error.max()) < 1e-8


class FunctionalReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x)).flatten(1))


@pytest.mark.parametrize("method", ["deeplift", "epsilon_lrp"])
def test_functional_activation_is_refused_and_hooks_are_removed(method):
    net = FunctionalReLU().eval()
    with pytest.raises(explorer.InputError, match="torch.relu|relu.*as a function"):
        explorer.attribute(method, net, torch.rand(2, 3, 8, 8), 0)
    assert hook_count(net) == 0
    clamp = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    clamp.register_forward_hook(lambda m, i, o: o.clamp(min=0))
    with pytest.raises(explorer.InputError, match="clamp"):
        explorer.attribute(method, clamp, torch.rand(1, 12), 0)


def test_layers_without_a_rule_are_refused():
    net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with pytest.raises(explorer.InputError, match="LayerNorm"):
        explorer.attribute("deeplift", net, torch.rand(2, 4), 0)
    assert hook_count(net) == 0


def test_grad_cam_layer_choice_and_errors():
    net = small_cnn(seed=2)
    x = images(2)
    last = explorer.attribute("grad_cam", net, x, 1)
    torch.testing.assert_close(last, explorer.attribute("grad_cam", net, x, 1, layer="4"))
    first = explorer.attribute("grad_cam", net, x, 1, layer="0")
    assert not torch.allclose(first, last)
    assert (last >= 0).all()
    torch.testing.assert_close(last[:, 0], last[:, 2])  # spread evenly over channels
    with pytest.raises(explorer.InputError, match="no layer 'conv9'"):
        explorer.attribute("grad_cam", net, x, 1, layer="conv9")
    with pytest.raises(explorer.InputError, match="feature maps"):
        explorer.attribute("grad_cam", net, x, 1, layer="9")


@pytest.fixture(scope="module")
def digits64():
    entry = explorer.load_model("digits-cnn", device="cpu")
    d = sample_digits()
    x = torch.from_numpy(d["clean"][:10]).double() / 255
    return entry.module.double(), x, torch.from_numpy(d["labels"][:10])


@pytest.mark.parametrize("variant", ["smooth", "sharp"])
def test_mfaba_complete_against_the_walk_end_point(digits64, variant):
    net, x, t = digits64
    e = explorer.explain("mfaba", net, x, t, variant=variant)
    report = explorer.completeness(net, x, e.attributions, t, e.references)
    # The walk's first-order sum (the reference algorithm): stated tolerance 10%, median 1%.
    assert float(report.rel_error.max()) < 0.1
    assert float(report.rel_error.median()) < 0.01
    assert float(report.delta.abs().min()) > 0  # the walk did lower the target logit


def test_mfaba_stops_early_once_the_prediction_changes(digits64):
    net, x, t = digits64
    e = explorer.explain("mfaba", net, x, t, variant="sharp", steps=50)
    taken = e.info["steps_taken"]
    assert (taken < 50).all() and (taken > 0).all()
    end = net(e.references[:, 0]).argmax(1)
    assert (end != net(x).argmax(1)).all()


@pytest.mark.parametrize("variant", ["smooth", "sharp"])
def test_mfaba_deterministic_and_pass_count_matches(digits64, variant):
    net, x, t = digits64
    with count_passes(net) as counted:
        e = explorer.explain("mfaba", net, x, t, variant=variant, steps=30)
    again = explorer.explain("mfaba", net, x, t, variant=variant, steps=30)
    assert torch.equal(e.attributions, again.attributions)
    assert counted.forward == counted.backward == int(e.info["passes"].sum())
    assert ((e.info["passes"] - e.info["steps_taken"]) <= 1).all()
