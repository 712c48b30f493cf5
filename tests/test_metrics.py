"""Sensitivity-n and insertion/deletion against closed forms and independent replicas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explorer
from explorer.analyses import metrics
from explorer.analyses.metrics import MetricWarning, insertion_deletion, sensitivity_n

from helpers import small_cnn


def linear_model(features: int = 16, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(features, classes, bias=True).double().eval()


def flat_inputs(n: int = 4, features: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, features, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


COMPLETE = ["integrated_gradients", "deeplift", "input_x_gradient", "epsilon_lrp", "occlusion"]


@pytest.mark.parametrize("method", COMPLETE)
def test_linear_model_every_complete_method_is_one_for_every_n(method):
    # On a linear model w.x + b, each method's map is w * (x - baseline), so the sum over S is
    # exactly the drop when S is set to the baseline.
    model, x = linear_model(), flat_inputs()
    takes_baseline = explorer.METHODS[method].uses_baseline
    # Methods without a baseline are complete against zero; the others get a non-zero one.
    base = torch.full_like(x, 0.3) if takes_baseline else torch.zeros_like(x)
    hp = {"window": 1, "stride": 1} if method == "occlusion" else {}
    a = explorer.attribute(method, model, x, 1, baseline=base if takes_baseline else None, **hp)
    result = sensitivity_n(model, x, a, 1, ns=[1, 2, 5, 10, 15], subsets=20, baseline=base)
    np.testing.assert_allclose(result.per_sample, 1.0, atol=1e-9)
    np.testing.assert_allclose(result.correlation, 1.0, atol=1e-9)
    assert result.per_sample.shape == (4, 5) and result.ns == [1, 2, 5, 10, 15]


def test_random_attributions_correlate_near_zero():
    model = linear_model(features=64)
    x = flat_inputs(n=30, features=64)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = sensitivity_n(model, x, noise, 0, ns=[4, 16, 32], subsets=60)
    # 30 inputs x 60 subsets: the mean of r under independence has sd about 1/sqrt(60*30) ~ 0.02.
    assert np.all(np.abs(result.correlation) < 0.1), result.correlation
    assert result.per_sample.std() > 0.05  # each input's r is noisy, not identically 0


def test_occlusion_one_satisfies_sensitivity_one_exactly():
    torch.manual_seed(0)  # a small ReLU CNN on 8x8 images: 64 occlusion passes per input
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 4)).double().eval()
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    base = torch.full_like(x, 0.5)
    a = explorer.attribute("occlusion", model, x, 2, baseline=base, window=1, stride=1)
    result = sensitivity_n(model, x, a, 2, ns=[1, 32], subsets=20, baseline=base)
    np.testing.assert_allclose(result.per_sample[:, 0], 1.0, atol=1e-10)
    assert np.all(result.per_sample[:, 1] < 0.999)  # a nonlinear net: larger n is not exact


def test_block_features_use_all_channels_and_patches():
    model = small_cnn(channels=2, classes=4).double()
    x = torch.rand(2, 2, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = explorer.attribute("occlusion", model, x, 0, window=4, stride=4)
    # Occlusion with 4x4 windows on a 4x4 grid of patches is exact for Sensitivity-1 of blocks.
    result = sensitivity_n(model, x, a, 0, ns=[1], subsets=12, block=4)
    assert result.features == 16
    np.testing.assert_allclose(result.per_sample, 1.0, atol=1e-10)
    index, count = metrics.feature_index((2, 10, 10), 4)  # 3x3 patches, the last ones clipped
    assert count == 9 and torch.equal(index[0], index[1])
    assert index[0, 9, 9].item() == 8 and index[0, 3, 4].item() == 1


def test_same_seed_same_result_other_seed_other_subsets():
    model, x = linear_model(), flat_inputs(n=3)
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    one = sensitivity_n(model, x, a, 0, ns=[3, 6], subsets=10, seed=4)
    again = sensitivity_n(model, x, a, 0, ns=[3, 6], subsets=10, seed=4)
    rebatched = sensitivity_n(model, x, a, 0, ns=[3, 6], subsets=10, seed=4, batch_size=7)
    other = sensitivity_n(model, x, a, 0, ns=[3, 6], subsets=10, seed=5)
    np.testing.assert_array_equal(one.per_sample, again.per_sample)  # the same call, bit for bit
    # The same subsets in batches of 7: equal to rounding, since the batch size changes how
    # BLAS blocks the matmul (1 ulp apart in float64 on the H200 machine's CPU BLAS).
    np.testing.assert_allclose(one.per_sample, rebatched.per_sample, rtol=1e-12, atol=1e-14)
    assert not np.allclose(one.per_sample, other.per_sample)


def test_subsets_are_drawn_per_input_and_independently_of_the_batch():
    masks = metrics._subset_masks(0, 5, 3, 40, 20)
    assert masks.shape == (3, 40, 20) and (masks.sum(2) == 5).all()
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    # Input i's draws do not depend on how many inputs are in the batch.
    assert torch.equal(metrics._subset_masks(0, 5, 1, 40, 20)[0], masks[0])
    # Uniform: every feature is chosen about n/F of the time over many draws.
    many = metrics._subset_masks(1, 5, 1, 4000, 20)[0].double().mean(0)
    np.testing.assert_allclose(many.numpy(), 5 / 20, atol=0.03)


def test_one_input_alone_gives_its_row_of_the_batch():
    model, x = linear_model(), flat_inputs(n=3)
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    batch = sensitivity_n(model, x, a, 0, ns=[4], subsets=10)
    first = sensitivity_n(model, x[:1], a[:1], 0, ns=[4], subsets=10)
    np.testing.assert_array_equal(first.per_sample[0], batch.per_sample[0])


def test_correlation_is_per_input_before_averaging():
    # Two inputs whose output drops live on very different scales: within each input the
    # attribution sums track the drops perfectly in rank but the map of the second input is
    # scaled and shifted, so pooling the pairs of both inputs gives a different (lower) r.
    model, x = linear_model(features=10), flat_inputs(n=2, features=10)
    w = model.weight[0].detach()
    a = w * x
    a[1] = 50.0 * a[1] + 3.0
    result = sensitivity_n(model, x, a, 0, ns=[3], subsets=25)
    np.testing.assert_allclose(result.per_sample[:, 0], 1.0, atol=1e-9)  # scale-free per input
    np.testing.assert_allclose(result.correlation, 1.0, atol=1e-9)
    # The pooled correlation from the same subsets, replicated here with numpy:
    masks = metrics._subset_masks(0, 3, 2, 25, 10).numpy()
    sums = np.einsum("nsf,nf->ns", masks, a.numpy())
    drops = np.einsum("nsf,nf->ns", masks, (w * x).numpy())
    pooled = np.corrcoef(sums.ravel(), drops.ravel())[0, 1]
    assert pooled < 0.99


def test_pearson_matches_numpy_and_constant_rows_are_nan():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 30)), rng.normal(size=(3, 30))
    a[1] = 2.5 * b[1] - 1
    b[2] = 7.0
    r = metrics.pearson_rows(torch.tensor(a), torch.tensor(b)).numpy()
    assert r[0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1], abs=1e-12)
    assert r[1] == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(r[2])


def test_undefined_correlation_is_nan_and_warned():
    model, x = linear_model(features=6), flat_inputs(n=2, features=6)
    a = model.weight[0].detach() * x
    with pytest.warns(MetricWarning, match="undefined"):
        result = sensitivity_n(model, x, a, 0, ns=[2, 6], subsets=5)  # n = all: one subset only
    assert np.isnan(result.per_sample[:, 1]).all() and np.isnan(result.correlation[1])
    assert result.undefined.tolist() == [0, 2]
    np.testing.assert_allclose(result.correlation[0], 1.0, atol=1e-9)


def test_dict_of_maps_shares_the_subsets_and_reports_progress():
    model, x = linear_model(), flat_inputs(n=3)
    maps = {"good": model.weight[0].detach() * x,
            "noise": torch.randn(x.shape, generator=torch.Generator().manual_seed(1),
                                 dtype=torch.float64)}
    seen = []
    both = sensitivity_n(model, x, maps, 0, ns=[2, 8], subsets=10, batch_size=8,
                         progress=lambda done, total: seen.append((done, total)))
    alone = sensitivity_n(model, x, maps["noise"], 0, ns=[2, 8], subsets=10)
    np.testing.assert_array_equal(both["noise"].per_sample, alone.per_sample)
    np.testing.assert_allclose(both["good"].correlation, 1.0, atol=1e-9)
    assert seen[-1] == (60, 60) and all(d1 < d2 for (d1, _), (d2, _) in zip(seen, seen[1:]))


class RegionSum(nn.Module):
    """Class 0 = sum of x over a fixed region; class 1 = minus that."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.register_buffer("region", region.to(torch.float64))

    def forward(self, x):
        s = (x * self.region).flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def region_setup():
    region = torch.zeros(1, 6, 6)
    region[0, 1:4, 2:5] = 1  # 9 of 36 pixels
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    return RegionSum(region).eval(), x, region.bool()


def expected_curves(x: np.ndarray, region: np.ndarray, order: np.ndarray, counts: np.ndarray):
    """Deletion/insertion of the region-sum logit with a zero fill, written as plain loops."""
    deletion, insertion = [], []
    flat_x, flat_r = x.ravel(), region.ravel()
    for k in counts:
        top = np.zeros(flat_x.size, bool)
        top[order[:k]] = True
        deletion.append(float(sum(flat_x[p] for p in range(flat_x.size) if flat_r[p] and not top[p])))
        insertion.append(float(sum(flat_x[p] for p in range(flat_x.size) if flat_r[p] and top[p])))
    return np.array(deletion), np.array(insertion)


@pytest.mark.parametrize("steps", [36, 12, 5])
def test_insertion_deletion_of_a_region_sum_has_the_known_curves(steps):
    model, x, region = region_setup()
    perfect = x * region  # ranks region pixels first, largest value first
    result = insertion_deletion(model, x, perfect, 0, steps=steps, fill="baseline")
    counts = np.arange(steps + 1) * 36 // steps
    np.testing.assert_allclose(result.fractions, counts / 36)
    for k in range(2):
        order = np.argsort(-perfect[k].numpy().ravel(), kind="stable")
        deletion, insertion = expected_curves(x[k, 0].numpy(), region[0].numpy(), order, counts)
        np.testing.assert_allclose(result.deletion[k], deletion, atol=1e-12)
        np.testing.assert_allclose(result.insertion[k], insertion, atol=1e-12)
        widths = np.diff(counts / 36)
        assert result.deletion_auc[k] == pytest.approx(
            float(np.sum(widths * (deletion[1:] + deletion[:-1]) / 2)), abs=1e-6)
        assert result.insertion_auc[k] == pytest.approx(
            float(np.sum(widths * (insertion[1:] + insertion[:-1]) / 2)), abs=1e-6)
    # The shape: deletion falls to 0 once the 9 region pixels are gone and stays there.
    if steps == 36:
        total = (x * region).flatten(1).sum(1).numpy()
        np.testing.assert_allclose(result.deletion[:, 0], total)
        np.testing.assert_allclose(result.deletion[:, 9:], 0.0, atol=1e-12)
        np.testing.assert_allclose(result.insertion[:, 9:], np.broadcast_to(total[:, None], (2, 28)))
        assert np.all(np.diff(result.deletion, axis=1) <= 1e-12)


def test_auc_closed_form_for_uniform_region():
    # x = 1 on every pixel: deletion with perfect ranking drops linearly from 9 to 0 over the
    # first 9/36 of the features, so its area is 9 * (9/36) / 2; insertion rises likewise and
    # then stays at 9: area 9 * (9/36) / 2 + 9 * 27/36.
    model, _, region = region_setup()
    x = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    result = insertion_deletion(model, x, x * region, 0, steps=36, fill="baseline")
    assert result.deletion_auc[0] == pytest.approx(9 * 0.25 / 2, abs=1e-6)
    assert result.insertion_auc[0] == pytest.approx(9 * 0.25 / 2 + 9 * 0.75, abs=1e-6)
    reversed_ = insertion_deletion(model, x, -(x * region), 0, steps=36, fill="baseline")
    assert reversed_.deletion_auc[0] == pytest.approx(9 * 0.75 + 9 * 0.25 / 2, abs=1e-6)
    assert reversed_.insertion_auc[0] == pytest.approx(9 * 0.25 / 2, abs=1e-6)


def test_perfect_ranking_beats_reversed_on_both_curves():
    model, x, region = region_setup()
    perfect, reverse = x * region, -(x * region)
    result = insertion_deletion(model, x, {"perfect": perfect, "reversed": reverse}, 0, steps=12,
                                fill="black", score="probability")
    assert np.all(result["perfect"].deletion_auc < result["reversed"].deletion_auc)
    assert np.all(result["perfect"].insertion_auc > result["reversed"].insertion_auc)
    # Both curves start and end at the same two points: the clean input and the fill.
    p = result["perfect"]
    np.testing.assert_allclose(p.deletion[:, 0], p.insertion[:, -1])
    np.testing.assert_allclose(p.deletion[:, -1], p.insertion[:, 0])
    probs = model(x).softmax(1)[:, 0].detach().numpy()
    np.testing.assert_allclose(p.deletion[:, 0], probs)


def test_blur_fill_is_a_blurred_copy():
    model, x, region = region_setup()
    result = insertion_deletion(model, x, x * region, 0, steps=4, fill="blur")
    blurred = explorer.make_baseline("blur", x)
    np.testing.assert_allclose(result.insertion[:, 0], model(blurred)[:, 0].numpy(), atol=1e-12)


def test_insertion_deletion_on_a_cnn_matches_a_loop_replica():
    model = small_cnn(channels=1, classes=3).double()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    result = insertion_deletion(model, x, a, 1, steps=8, fill="black", block=4, batch_size=5)
    for k in range(2):
        patch = a[k, 0].reshape(4, 4, 4, 4).sum((1, 3)).ravel()  # [row block, col block]
        order = np.argsort(-patch.numpy(), kind="stable")
        for step in range(9):
            keep = torch.ones(16, dtype=torch.bool)
            keep[torch.as_tensor(order[:step * 16 // 8])] = False
            mask = keep.view(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
            deleted = x[k:k + 1] * mask
            assert result.deletion[k, step] == pytest.approx(model(deleted)[0, 1].item(), abs=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[17]), "between 1 and 16"),
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[0]), "between 1 and 16"),
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[]), "non-empty"),
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[2], subsets=1), "subsets"),
    (lambda m, x, a: sensitivity_n(m, x, a[:, :8], 0, ns=[2]), "shape"),
    (lambda m, x, a: sensitivity_n(m, x, a * float("nan"), 0, ns=[2]), "NaN"),
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[2], block=2), "block"),
    (lambda m, x, a: sensitivity_n(m, x, a, 0, ns=[2], baseline=torch.zeros(3)), "baseline"),
    (lambda m, x, a: sensitivity_n(m, x, a, 7, ns=[2]), "out of range"),
    (lambda m, x, a: insertion_deletion(m, x, a, 0, steps=0, fill="black"), "steps"),
    (lambda m, x, a: insertion_deletion(m, x, a, 0, steps=17, fill="baseline"), "steps"),
    (lambda m, x, a: insertion_deletion(m, x, a.T, 0, steps=4, fill="baseline"), "shape"),
    (lambda m, x, a: insertion_deletion(m, x, a, 0, steps=4, fill="gray"), "fill"),
    (lambda m, x, a: insertion_deletion(m, x, a, 0, steps=4, fill="baseline", score="loss"), "score"),
    (lambda m, x, a: insertion_deletion(m, x, a, 0, steps=4, fill="blur"), "images"),
    (lambda m, x, a: insertion_deletion(m.train(), x, a, 0, steps=4, fill="baseline"), "training"),
])
def test_bad_input_raises_input_error(call, match):
    model, x = linear_model(), flat_inputs()
    a = model.weight[0].detach() * x
    with pytest.raises(explorer.InputError, match=match):
        call(model, x, a)


def test_block_larger_than_the_image_is_refused():
    model = small_cnn(channels=1, classes=3)
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(explorer.InputError, match="larger than the image"):
        sensitivity_n(model, x, x, 0, ns=[1], block=17)
    with pytest.warns(MetricWarning):  # one feature: every subset is the whole input
        result = sensitivity_n(model, x, x, 0, ns=[1], block=16, subsets=2)
    assert result.features == 1 and np.isnan(result.correlation[0])


class NearlyConstant(nn.Module):
    """float32 logit 1000 + 1e-5 * sum(x): the drops are a few ulps of float32, i.e. rounding."""

    def forward(self, x):
        s = 1000.0 + 1e-5 * x.flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def test_drops_within_the_models_float_noise_are_undefined_not_a_correlation():
    x = torch.rand(3, 20, generator=torch.Generator().manual_seed(0))
    a = torch.randn(3, 20, generator=torch.Generator().manual_seed(1))
    with pytest.warns(MetricWarning):
        result = sensitivity_n(NearlyConstant().eval(), x, a, 0, ns=[5], subsets=10)
    assert np.isnan(result.per_sample).all()
    # The same model in float64 resolves the drops: a real (exact) correlation with x's sums.
    exact = sensitivity_n(NearlyConstant().eval(), x.double(), x.double(), 0, ns=[5], subsets=10)
    np.testing.assert_allclose(exact.per_sample, 1.0, atol=1e-6)
