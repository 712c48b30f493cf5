"""Bad input raises explorer.InputError with a message that names the problem."""
import pytest
import torch

import explorer
from helpers import images, model_for, small_cnn


@pytest.fixture(scope="module")
def model():
    return small_cnn()


@pytest.mark.parametrize("method", sorted(explorer.METHODS))
def test_target_out_of_range(model, method):
    model = model_for(method, model)  # B-cos contribution, attention rollout: their own
    with pytest.raises(explorer.InputError, match="out of range.*5 classes"):
        explorer.attribute(method, model, images(2), 7)


@pytest.mark.parametrize("target,match", [(-1, ">= 0"), (1.5, "int"),
                                          (torch.tensor([0.0, 1.0]), "integer"),
                                          (torch.tensor([0, 1, 2]), "3 entries")])
def test_bad_targets(model, target, match):
    with pytest.raises(explorer.InputError, match=match):
        explorer.attribute("gradient", model, images(2), target)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_baseline_of_wrong_shape(model, method):
    with pytest.raises(explorer.InputError, match="baseline has shape"):
        explorer.attribute(method, model, images(2), 0, baseline=torch.zeros(2, 3, 8, 8))


def test_background_of_wrong_shape(model):
    with pytest.raises(explorer.InputError, match="background has shape"):
        explorer.attribute("expected_gradients", model, images(2), 0, baseline=torch.zeros(4, 1, 16, 16))


@pytest.mark.parametrize("params,match", [
    ({"steps": 0}, "steps.*at least 1"), ({"steps": 2.5}, "whole number"),
    ({"rule": "simpson"}, "one of"), ({"stepz": 3}, "unknown parameter"),
    ({"batch_size": -4}, "at least 1"), ({"steps": float("nan")}, "whole number|finite")])
def test_absurd_parameters(model, params, match):
    with pytest.raises(explorer.InputError, match=match):
        explorer.attribute("integrated_gradients", model, images(1), 0, **params)


def test_trapezoid_needs_two_steps(model):
    with pytest.raises(explorer.InputError, match="trapezoid"):
        explorer.attribute("integrated_gradients", model, images(1), 0, steps=1, rule="trapezoid")


def test_non_batched_tensor(model):
    with pytest.raises(explorer.InputError, match="batched"):
        explorer.attribute("gradient", model, images(1)[0], 0)
    with pytest.raises(explorer.InputError, match="batch"):
        explorer.attribute("gradient", model, torch.rand(5), 0)


def test_other_bad_inputs(model):
    with pytest.raises(explorer.InputError, match="unknown method"):
        explorer.attribute("magic", model, images(1), 0)
    with pytest.raises(explorer.InputError, match="NaN"):
        explorer.attribute("gradient", model, torch.full((1, 3, 16, 16), float("nan")), 0)
    with pytest.raises(explorer.InputError, match="torch.Tensor"):
        explorer.attribute("gradient", model, [[1.0]], 0)
    with pytest.raises(explorer.InputError, match="window"):
        explorer.attribute("occlusion", model, images(1), 0, window=32)
    with pytest.raises(explorer.InputError, match="attributions must have"):
        explorer.completeness(model, images(2), torch.zeros(3), 0)
    with pytest.raises(explorer.InputError, match="nn.Module"):
        explorer.remove_biases("not a model")
