"""Guided IG, Blur IG and IDGI: PAIR's `saliency` package as the oracle (tests only), IDGI's
stated properties (completeness by telescoping, only the gradient direction kept), closed forms
on linear models, and the traced paths."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

import explorer
from explorer.methods.ig_paths import BASES, gaussian_blur, method_path, walk
from explorer.runtime.timing import count_passes
from benchmarks.bench_path_methods import agreement, oracle_call  # the oracle's adapter, once
from helpers import images, small_cnn

saliency = pytest.importorskip("saliency.core")


@pytest.fixture(scope="module")
def model64():
    return small_cnn(seed=3, dtype=torch.float64)


@pytest.fixture
def numpy_quantile_interpolation(monkeypatch):
    """saliency 0.2.1's Guided IG calls np.quantile(..., interpolation='lower'), a keyword numpy 2
    removed (now ``method``): translate it for the oracle's call only."""
    real = np.quantile

    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs["method"] = interpolation
        return real(a, q, *args, **kwargs)

    monkeypatch.setattr(np, "quantile", quantile)


@pytest.mark.parametrize("fraction,max_dist", [(0.25, 0.02), (0.5, 1.0)])
def test_guided_ig_matches_the_saliency_package(model64, numpy_quantile_interpolation,
                                                fraction, max_dist):
    x = images(1, dtype=torch.float64)
    baseline = torch.full_like(x[:1], 0.2)
    ours = explorer.attribute("guided_ig", model64, x, 1, baseline=baseline, steps=16,
                              fraction=fraction, max_dist=max_dist)
    for i in range(1):
        ref = saliency.GuidedIG().GetMask(x[i].numpy(), oracle_call(model64, 1),
                                          x_baseline=baseline[0].numpy(), x_steps=16,
                                          fraction=fraction, max_dist=max_dist)
        corr, err = agreement(ours[i].numpy(), ref)
        # Same float64 arithmetic, same selections: equal up to rounding (measured ~1e-15).
        assert corr >= 0.99 and err < 1e-9, (corr, err)


@pytest.mark.parametrize("max_sigma", [50.0, 3.0])
def test_blur_ig_matches_the_saliency_package(model64, max_sigma):
    x = images(2, dtype=torch.float64)
    ours = explorer.attribute("blur_ig", model64, x, 2, steps=20, max_sigma=max_sigma)
    for i in range(2):
        ref = saliency.BlurIG().GetMask(x[i].numpy().transpose(1, 2, 0),
                                        oracle_call(model64, 2, channels_last=True),
                                        max_sigma=max_sigma, steps=20, batch_size=7)
        corr, err = agreement(ours[i].numpy(), ref.transpose(2, 0, 1))
        assert corr >= 0.99 and err < 1e-9, (corr, err)


@pytest.mark.parametrize("sigma", [0.0, 0.7, 2.5, 30.0])
def test_blur_is_scipys_gaussian_filter_with_zero_padding(sigma):
    x = images(2, size=11, dtype=torch.float64)[:, :, :, :9]  # not square
    ours = gaussian_blur(x, torch.full((2,), sigma, dtype=torch.float64))
    for i in range(2):
        ref = ndimage.gaussian_filter(x[i].numpy(), sigma=[0, sigma, sigma], mode="constant")
        np.testing.assert_allclose(ours[i].numpy(), ref, rtol=0, atol=1e-13)


def test_guided_ig_without_room_to_stray_is_ig_with_the_left_rule(model64):
    """max_dist = 0 pins every feature to the straight line: the left Riemann sum of IG."""
    x = images(2, dtype=torch.float64)
    guided = explorer.attribute("guided_ig", model64, x, 0, steps=16, max_dist=0.0)
    ig = explorer.attribute("integrated_gradients", model64, x, 0, steps=16, rule="left")
    torch.testing.assert_close(guided, ig, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("base", BASES)
def test_idgi_is_complete_whatever_the_steps(model64, base):
    """IDGI's step attributions sum to d_k = F(P_(k+1)) - F(P_k), so the map sums to
    F(x) - F(P_0) up to rounding even with 3 steps (the bases miss it by far more)."""
    x = images(2, dtype=torch.float64)
    baseline = torch.full_like(x, 0.1)
    e = explorer.explain("idgi", model64, x, 3, baseline=baseline, base=base, steps=3,
                         max_dist=1.0, max_sigma=6.0)
    with torch.no_grad():
        gap = model64(x)[:, 3] - model64(e.references[:, 0])[:, 3]
    sums = e.attributions.flatten(1).sum(1)
    torch.testing.assert_close(sums, gap, rtol=1e-10, atol=1e-12)
    plain = {"integrated_gradients": dict(rule="left"), "guided_ig": dict(max_dist=1.0),
             "blur_ig": dict(max_sigma=6.0)}[base]
    base_sums = explorer.attribute(base, model64, x, 3, baseline=baseline, steps=3,
                                   **plain).flatten(1).sum(1)
    assert ((base_sums - gap).abs() > 1e-6 * gap.abs()).all()  # the check above has teeth
    w = walk(base, model64, x, torch.tensor([3, 3]), baseline,
             dict(steps=3, fraction=0.25, max_dist=1.0, max_sigma=6.0, grad_step=0.01,
                  batch_size=4), idgi=True)
    torch.testing.assert_close(w.idgi_step_sums, w.outputs.diff(dim=1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("base", BASES)
def test_idgi_on_a_linear_model_keeps_only_the_gradient_direction(base):
    """F = w.x + b: every step's gradient is w, so IDGI = w^2 (F(x) - F(P_0)) / ||w||^2 on any
    path (the move orthogonal to w, which IG counts, is dropped)."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 6, 3)).double().eval()
    x = torch.rand(2, 2, 5, 6, dtype=torch.float64)
    e = explorer.explain("idgi", lin, x, 1, base=base, steps=5, max_sigma=2.0, max_dist=1.0)
    w = lin[1].weight[1].detach().view(2, 5, 6)
    with torch.no_grad():
        gap = lin(x)[:, 1] - lin(e.references[:, 0])[:, 1]
    expected = w ** 2 / (w ** 2).sum() * gap.view(-1, 1, 1, 1)
    torch.testing.assert_close(e.attributions, expected, rtol=1e-10, atol=1e-13)
    ig = explorer.attribute("integrated_gradients", lin, x, 1,
                            baseline=e.references[:, 0], steps=5)
    assert not torch.allclose(ig, expected, rtol=1e-3)  # IG keeps w * (x - x')


def test_idgi_takes_the_sign_of_each_steps_output_change(model64):
    """Per step every feature gets d_k * g^2 / ||g||^2: the sign of d_k, never the opposite."""
    x = images(1, dtype=torch.float64)
    w = walk("guided_ig", model64, x, torch.tensor([0]), None,
             dict(steps=6, fraction=0.25, max_dist=1.0, batch_size=8), idgi=True)
    d = w.outputs.diff(dim=1)
    assert torch.sign(w.idgi_step_sums).eq(torch.sign(d)).all()


def test_a_zero_gradient_step_spreads_its_change_over_the_moved_features():
    """On a bias-free ReLU network from the zero baseline, the gradient at P_0 is zero (every
    ReLU at its kink); IDGI still meets completeness."""
    model = explorer.remove_biases(small_cnn(seed=1, dtype=torch.float64))
    x = images(1, dtype=torch.float64)
    zero = torch.zeros_like(x).requires_grad_(True)
    (g0,) = torch.autograd.grad(model(zero)[:, 0].sum(), zero)
    assert g0.abs().max() < 1e-300  # the first step's gradient is zero: the fallback is used
    a = explorer.attribute("idgi", model, x, 0, steps=4)
    with torch.no_grad():
        gap = model(x)[0, 0] - model(torch.zeros_like(x))[0, 0]
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a.sum(), gap, rtol=1e-10, atol=1e-12)


def relative_gap(method, model, x, target, **kw):
    e = explorer.explain(method, model, x, target, **kw)
    return explorer.completeness(model, x, e.attributions, target, e.references).rel_error


def test_blur_ig_completeness_against_the_blurred_input_shrinks_with_steps(model64):
    """The quadrature promise, against MethodOutput.references (the most blurred input)."""
    x = images(2, dtype=torch.float64)
    coarse, fine = (relative_gap("blur_ig", model64, x, 4, steps=s, max_sigma=4.0, grad_step=1e-4)
                    for s in (8, 128))
    assert (fine < 0.2).all() and (fine < coarse / 4).all(), (coarse, fine)


def test_guided_ig_completeness_shrinks_on_a_smooth_network():
    """Its left sum is first order on a smooth network (error ~ 1/steps; on ReLU networks it need
    not shrink, hence the registry's promise "none": docs/path-methods.md)."""
    torch.manual_seed(3)
    smooth = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(4), nn.Flatten(),
                           nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 5)).double().eval()
    x = images(2, dtype=torch.float64)
    coarse, fine = (relative_gap("guided_ig", smooth, x, 4, steps=s) for s in (8, 32))
    assert (fine < coarse / 2.5).all() and (fine < 0.02).all(), (coarse, fine)
    assert explorer.METHODS["guided_ig"].completeness == "none"


def test_blur_ig_reference_is_the_most_blurred_input(model64):
    x = images(2, dtype=torch.float64)
    e = explorer.explain("blur_ig", model64, x, 0, steps=4, max_sigma=2.0)
    torch.testing.assert_close(e.references[:, 0], gaussian_blur(x, torch.full((2,), 2.0, dtype=torch.float64)))


def test_blur_ig_needs_images():
    mlp = nn.Sequential(nn.Linear(6, 3)).eval()
    with pytest.raises(explorer.InputError, match=r"blurs images.*\[N, C, H, W\]"):
        explorer.attribute("blur_ig", mlp, torch.rand(2, 6), 0, steps=4)


@pytest.mark.parametrize("base", ["guided_ig", "blur_ig"])
def test_idgi_other_bases_keep_the_contract(base):
    """The contract tests run IDGI on its default base; here the other two: batch independence
    and the cost model's passes, counted."""
    model = small_cnn()
    x = images(3)
    target = torch.tensor([1, 3, 0])
    kw = dict(base=base, steps=4, max_sigma=3.0)
    with count_passes(model) as counted:
        together = explorer.attribute("idgi", model, x, target, **kw)
    cost = explorer.METHODS["idgi"].cost({**explorer.METHODS["idgi"].defaults(), **kw}, x.shape)
    assert (counted.forward / 3, counted.backward / 3) == (cost.forward, cost.backward)
    for i in range(3):
        alone = explorer.attribute("idgi", model, x[i:i + 1], int(target[i]), **kw)
        torch.testing.assert_close(together[i:i + 1], alone, rtol=1e-4, atol=1e-6)


def test_budget_counts_guided_igs_sequential_calls():
    """Guided IG sends the whole batch once per step: steps * ceil(N / batch_size) calls."""
    per_pass = explorer.PassTime(forward_s=0.001, backward_s=0.002, call_s=0.5)
    est = explorer.estimate("guided_ig", {"steps": 10, "batch_size": 4}, (6, 1, 8, 8), per_pass)
    assert est.calls == 20 and est.seconds == pytest.approx(60 * 0.003 + 20 * 0.5)
    blur = explorer.estimate("blur_ig", {"steps": 10, "batch_size": 4}, (6, 1, 8, 8), per_pass)
    assert blur.calls == 15  # 60 independent rows in chunks of 4


@pytest.mark.parametrize("method", ["integrated_gradients", "guided_ig", "blur_ig", "idgi"])
def test_method_path_ends_where_the_method_does(model64, method):
    x = images(1, dtype=torch.float64)
    kw = {"integrated_gradients": dict(steps=12), "guided_ig": dict(steps=12, max_dist=1.0),
          "blur_ig": dict(steps=12, max_sigma=3.0),
          "idgi": dict(steps=12, max_dist=1.0, max_sigma=3.0)}[method]
    p = method_path(method, model64, x, 2, **kw)
    assert p.points.shape == (1, 13) + x.shape[1:] and p.outputs.shape == (1, 13)
    torch.testing.assert_close(p.points[:, -1], x)  # every path ends at the input
    with torch.no_grad():
        f = model64(p.points[0])[:, 2]
    torch.testing.assert_close(p.outputs[0], f, rtol=1e-12, atol=1e-12)
    params = kw if method != "integrated_gradients" else dict(steps=12, rule="left")
    a = explorer.attribute(method, model64, x, 2, **params)
    torch.testing.assert_close(p.attribution_sums[:, -1], a.flatten(1).sum(1), rtol=1e-9,
                               atol=1e-12)
    assert p.attribution_sums[0, 0] == 0


def test_guided_path_leaves_the_straight_line_within_max_dist(model64):
    x = images(1, dtype=torch.float64)
    base = torch.full_like(x, 0.3)
    p = method_path("guided_ig", model64, x, 2, baseline=base, steps=10, max_dist=0.1)
    alpha = (p.points[0] - base) / (x - base)  # per feature, where it is along its own line
    k = torch.arange(11, dtype=torch.float64).view(-1, 1, 1, 1) / 10
    assert ((alpha - k).abs() <= 0.1 + 1e-9).all()
    assert p.straight_distance.max() > 1e-3  # and it does leave the line
    straight = method_path("integrated_gradients", model64, x, 2, baseline=base, steps=10)
    assert straight.straight_distance.max() < 1e-12
