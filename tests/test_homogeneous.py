"""Model surgery: remove_biases is exact, reversible (works on a copy) and reports obstacles."""
import pytest
import torch
import torchvision
from torch import nn

import explorer
from helpers import randomize_batch_norm, small_cnn

ARCHS = {  # random weights: tests never download
    "alexnet": (torchvision.models.alexnet, 64),
    "vgg16": (torchvision.models.vgg16, 32),
    "resnet18": (torchvision.models.resnet18, 64),
    "resnet50": (torchvision.models.resnet50, 64),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_torchvision_models_become_homogeneous(arch):
    build, size = ARCHS[arch]
    torch.manual_seed(0)
    model = randomize_batch_norm(build(weights=None)).eval()
    with torch.no_grad():  # torchvision initialises biases to 0; make them matter
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0, 0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    free = explorer.remove_biases(model)
    assert free is not model
    assert explorer.homogeneity_error(free, x) < 1e-5
    assert explorer.homogeneity_error(model, x) > 1e-3
    assert explorer.homogeneity_obstacles(free) == []
    assert explorer.is_bias_free(free) and not explorer.is_bias_free(model)
    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k
    assert not any(isinstance(m, explorer.ChannelScale) for m in model.modules())


def test_batch_norm_folding_matches_closed_form():
    conv = nn.Conv2d(3, 4, 3, bias=True)
    bn = randomize_batch_norm(nn.BatchNorm2d(4), seed=3)
    model = nn.Sequential(conv, bn).eval()
    x = torch.randn(2, 3, 8, 8)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    expected = nn.functional.conv2d(x, conv.weight) * scale.view(1, -1, 1, 1)
    torch.testing.assert_close(explorer.remove_biases(model)(x), expected, rtol=1e-5, atol=1e-6)
    # and the part removed is exactly the offset: conv bias through BN plus BN's own shift
    offset = (conv.bias - bn.running_mean) * scale + bn.bias
    torch.testing.assert_close(model(x) - expected, offset.view(1, -1, 1, 1).expand_as(expected),
                               rtol=1e-4, atol=1e-5)


def test_non_homogeneous_layers_are_reported():
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.LayerNorm(4), nn.Linear(4, 4),
                          nn.Sigmoid(), nn.Softmax(dim=1)).eval()
    free = explorer.remove_biases(model)
    reported = {(o.layer, o.type) for o in explorer.homogeneity_obstacles(free)}
    assert reported == {("1", "GELU"), ("2", "LayerNorm"), ("4", "Sigmoid"), ("5", "Softmax")}
    assert explorer.homogeneity_error(free, torch.randn(3, 4)) > 1e-3


class Scalars(nn.Module):
    """A custom block with bare scalar offsets and a scale, like Fixup's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.bias1a = nn.Parameter(torch.tensor([0.3]))
        self.scale = nn.Parameter(torch.tensor([1.7]))

    def forward(self, x):
        return torch.relu(self.conv(x + self.bias1a)).flatten(1) * self.scale


class Mystery(nn.Module):
    def forward(self, x):
        return x + 1


def test_custom_offsets_are_zeroed_and_unknown_layers_flagged():
    model = nn.Sequential(Scalars(), Mystery()).eval()
    reasons = {o.layer: o.reason for o in explorer.homogeneity_obstacles(model)}
    assert "offset" in reasons["0"] and "unknown" in reasons["1"]
    free = explorer.remove_biases(model)
    assert free[0].bias1a.item() == 0.0 and free[0].scale.item() == pytest.approx(1.7)
    assert model[0].bias1a.item() == pytest.approx(0.3)
    assert [o.layer for o in explorer.homogeneity_obstacles(free)] == ["1"]
    assert explorer.homogeneity_error(free[0], torch.randn(2, 2, 5, 5)) < 1e-6


def test_homogeneity_error_detects_a_bias():
    model = small_cnn()
    x = torch.rand(2, 3, 16, 16)
    assert explorer.homogeneity_error(model, x) > 1e-2
    assert explorer.homogeneity_error(explorer.remove_biases(model), x) < 1e-5
    with pytest.raises(explorer.InputError):
        explorer.homogeneity_error(model, x, scales=(0.0,))
