"""Adaptive Integrated Gradients: the map, not the completeness gap, meets the tolerance."""
import pytest
import torch

import explorer
from explorer.methods import path
from explorer.methods.path import FIRST_ESTIMATE, adaptive_note
from explorer.runtime.timing import count_passes
from helpers import ExpSum, images, small_cnn


def relative_map_error(a, ref):
    return ((a - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1))


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(seed=3)


@pytest.fixture(scope="module")
def cnn_reference(cnn):
    x, target = images(3, seed=5), torch.tensor([0, 2, 4])
    ref = explorer.attribute("exact_ig", cnn, x, target)  # the truth: the CNN is piecewise linear
    return x, target, ref


def exp_sum_case():
    """F_k = sum c_ki (exp(x_i) - 1): IG from zero is c_ki (exp(x_i) - 1), a smooth, curved path.
    Returns the model, x, target and that exact map."""
    gen = torch.Generator().manual_seed(0)
    coef = torch.randn(3, 10, generator=gen, dtype=torch.float64)
    model = ExpSum(coef).eval()
    x = torch.rand(4, 10, generator=gen, dtype=torch.float64) * 4.0
    target = torch.tensor([0, 1, 2, 0])
    return model, x, target, coef[target] * (torch.exp(x) - 1.0)


@pytest.mark.parametrize("tolerance", [1e-3, 1e-6])
def test_closed_form_integral_within_tolerance(tolerance):
    model, x, target, exact = exp_sum_case()
    e = explorer.explain("integrated_gradients", model, x, target, steps=4096, tolerance=tolerance)
    assert (relative_map_error(e.attributions, exact) <= 1.5 * tolerance).all()
    assert (e.info["map_error"] <= tolerance).all() and not e.info["cap_hit"].any()
    # A smooth integrand converges faster than the first order the estimate assumes: pessimistic.
    assert (e.info["map_error"] >= relative_map_error(e.attributions, exact)).all()
    assert (e.info["steps_used"] > FIRST_ESTIMATE).all()


def test_romberg_columns_make_smooth_integrands_cheap(monkeypatch):
    model, x, target, exact = exp_sum_case()
    used = {}
    for columns in (2, 0):  # 0: the rule alone, second order on a smooth integrand
        monkeypatch.setattr(path, "ROMBERG_COLUMNS", columns)
        e = explorer.explain("integrated_gradients", model, x, target, steps=4096,
                             tolerance=1e-6, batch_size=4096)
        assert (relative_map_error(e.attributions, exact) <= 1e-6).all()
        used[columns] = e.info["steps_used"]
    assert (used[2] <= 255).all() and (used[0] >= 1023).all(), used


class OneLayerReLU(torch.nn.Module):
    """F(x) = V relu(W x + b): along the path from 0 each unit is on for a closed-form fraction."""

    def __init__(self, hidden: int, features: int = 20, classes: int = 3, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)

        def draw(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=gen, dtype=torch.float64))
        self.w, self.b, self.v = draw(hidden, features), draw(hidden), draw(classes, hidden)
        self.b.data *= 0.5

    def forward(self, x):
        return torch.relu(x @ self.w.T + self.b) @ self.v.T

    def exact_ig(self, x, target):
        """IG from zero: x * sum_j v_tj w_j * (the fraction of [0, 1] where unit j is on)."""
        with torch.no_grad():
            s, b = x @ self.w.T, self.b.expand(x.shape[0], -1)
            cross = torch.where(s != 0, -b / s, torch.zeros_like(s)).clamp(0.0, 1.0)
            on = torch.where(s > 0, 1.0 - cross, torch.where(s < 0, cross, (b > 0).double()))
            return x * torch.einsum("nj,nj,jf->nf", self.v[target], on, self.w)


@pytest.mark.parametrize("hidden, slack", [(256, 1.5), (64, 2.0)])
def test_piecewise_constant_path_estimate_is_calibrated(hidden, slack):
    # A ReLU network's path gradient is piecewise constant: the first-order case the estimate
    # models. Against the exact integral the estimate is neither far off nor far pessimistic
    # in the median;
    # with few kinks (64 units, 20 features) the scatter around it is wider (measured: up to
    # 1.7x the tolerance at 1e-3), hence the wider slack there.
    model = OneLayerReLU(hidden).eval()
    gen = torch.Generator().manual_seed(1)
    x = 2.0 * torch.rand(16, 20, generator=gen, dtype=torch.float64)
    target = torch.arange(16) % 3
    exact = model.exact_ig(x, target)
    for tolerance in (1e-2, 1e-3):
        e = explorer.explain("integrated_gradients", model, x, target, steps=4096,
                             tolerance=tolerance, batch_size=4096)
        err = relative_map_error(e.attributions, exact)
        assert (err <= slack * tolerance).all(), (tolerance, err.max())
        assert (e.info["map_error"] <= tolerance).all() and not e.info["cap_hit"].any()
        ratio = (err / e.info["map_error"]).median()
        assert 0.5 <= ratio <= 1.5, ratio  # measured: median 0.77-0.91


def test_regular_cnn_map_within_tolerance_of_exact_ig(cnn, cnn_reference):
    x, target, ref = cnn_reference
    for tolerance in (2e-2, 3e-3):
        e = explorer.explain("integrated_gradients", cnn, x, target, steps=4096,
                             tolerance=tolerance, batch_size=512)
        err = relative_map_error(e.attributions, ref)
        assert (err <= 1.5 * tolerance).all(), (tolerance, err)
        assert (e.info["map_error"] <= tolerance).all()
        assert (e.info["steps_used"] <= 4096).all() and not e.info["cap_hit"].any()


def test_info_reports_steps_and_completeness_error(cnn, cnn_reference):
    x, target, _ = cnn_reference
    base = torch.full_like(x[:1], 0.2)
    with count_passes(cnn) as counted:
        e = explorer.explain("integrated_gradients", cnn, x, target, baseline=base, steps=300,
                             tolerance=1e-2)
    assert counted.backward == int(e.info["steps_used"].sum())
    assert counted.forward == counted.backward + 2 * x.shape[0]  # F(x) and F(baseline)
    spec = explorer.METHODS["integrated_gradients"]
    assert not spec.is_cost_exact(e.params)
    assert spec.cost(e.params, tuple(x.shape)).backward == 300 >= e.info["steps_used"].max()
    with torch.no_grad():
        out_x = cnn(x).gather(1, target[:, None])[:, 0]
        out_b = cnn(base.expand_as(x)).gather(1, target[:, None])[:, 0]
    gap = (e.attributions.flatten(1).sum(1) - (out_x - out_b)).abs().double()
    torch.testing.assert_close(e.info["completeness_error"], gap, rtol=1e-4, atol=1e-6)
    levels = e.info["steps_used"] + 1  # nested levels: 2^k - 1 points
    assert ((levels & (levels - 1)) == 0).all() and (levels >= FIRST_ESTIMATE + 1).all()


def test_bias_free_from_zero_stops_at_first_estimate(cnn):
    # The gradient of a bias-free ReLU network is constant along the ray from 0 (Euler).
    free = explorer.remove_biases(cnn)
    x, target = images(3, seed=6), torch.tensor([1, 3, 0])
    e = explorer.explain("integrated_gradients", free, x, target, steps=512, tolerance=1e-4)
    assert e.info["steps_used"].tolist() == [FIRST_ESTIMATE] * 3
    assert adaptive_note(e.info) is None and adaptive_note({}) is None
    assert (e.info["map_error"] <= 1e-4).all()
    xgrad = explorer.attribute("input_x_gradient", free, x, target)
    torch.testing.assert_close(e.attributions, xgrad, rtol=1e-4, atol=1e-6)


def test_unreachable_tolerance_hits_the_cap_and_says_so(cnn, cnn_reference):
    x, target, _ = cnn_reference
    with pytest.warns(UserWarning, match="cap of steps=21"):
        e = explorer.explain("integrated_gradients", cnn, x, target, steps=21, tolerance=1e-6)
    assert e.info["cap_hit"].all()
    assert e.info["steps_used"].tolist() == [15] * 3  # 31 would pass the cap
    assert (e.info["map_error"] > 1e-6).all()
    assert "stopped at 15 steps" in adaptive_note(e.info) and "1e-06" in adaptive_note(e.info)


def test_batch_independence_with_tolerance(cnn, cnn_reference):
    x, target, _ = cnn_reference
    together = explorer.explain("integrated_gradients", cnn, x, target, steps=600, tolerance=5e-3)
    for i in range(x.shape[0]):
        alone = explorer.explain("integrated_gradients", cnn, x[i:i + 1], int(target[i]),
                                 steps=600, tolerance=5e-3)
        assert alone.info["steps_used"].item() == together.info["steps_used"][i].item()
        torch.testing.assert_close(together.attributions[i:i + 1], alone.attributions,
                                   rtol=1e-4, atol=1e-6)


def test_tolerance_zero_is_the_fixed_rule(cnn, cnn_reference):
    x, target, _ = cnn_reference
    fixed = explorer.explain("integrated_gradients", cnn, x, target, steps=16)
    off = explorer.explain("integrated_gradients", cnn, x, target, steps=16, tolerance=0.0)
    # The fixed rule reports no adaptive facts: only the precision every result names.
    assert torch.equal(fixed.attributions, off.attributions)
    assert off.info == {"precision": "float32"}


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 0.9, "tight", True])
def test_bad_tolerance_raises(cnn, bad):
    with pytest.raises(explorer.InputError, match="tolerance"):
        explorer.attribute("integrated_gradients", cnn, images(1), 0, tolerance=bad)


def test_cap_below_one_estimate_raises(cnn):
    with pytest.raises(explorer.InputError, match="steps >= 7"):
        explorer.attribute("integrated_gradients", cnn, images(1), 0, steps=4, tolerance=0.01)
