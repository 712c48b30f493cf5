"""The shipped exact-IG cache (assets/exact-ig): a hit is the walk's own result, any change of
weights, input, target or baseline is a miss, and the budget prices a walk that is not cached."""
import copy

import pytest
import torch

import explorer
from explorer.methods import budget
from explorer.methods import exact_cache
from explorer.inputs.baselines import make_baseline
from explorer.cli.exact_cache import _png
from explorer.inputs.data import sample_digits
from explorer.methods.exact import DEFAULT_MAX_REGIONS, exact_ig


def default_view(bias_free: bool):
    """The app's default: first bundled test digit as a PNG example, the regular model's
    predicted class, zero baseline."""
    d = sample_digits()
    regular = explorer.load_model("digits-cnn", device="cpu")
    entry = explorer.load_model("digits-cnn", bias_free=bias_free, device="cpu")
    x = regular.preprocess(_png(d["clean"][0, 0]))[None]
    with torch.no_grad():
        target = regular.module(x).argmax(1)
    return entry.module, x, target, make_baseline("zero", x, input_space=regular.input_space)


def test_shipped_hit_equals_a_live_walk_on_the_bias_free_model():
    model, x, t, base = default_view(bias_free=True)
    hit = exact_cache.lookup(model, x, t, base)
    assert hit is not None, "assets/exact-ig lacks the default view: run python -m explorer exact-cache"
    cached, info = hit
    live, live_info = exact_ig(model, x, t, base, DEFAULT_MAX_REGIONS, 64)
    assert torch.allclose(cached, live, rtol=0, atol=1e-10)
    assert int(info["regions"][0]) == int(live_info["regions"][0]) == 1
    assert "cached exact reference" in info["source"] and exact_cache.COMMAND in info["source"]
    # the regular model's default view is shipped too (the walk itself is too slow for a test)
    model_r, *_ = default_view(bias_free=False)
    regular = exact_cache.lookup(model_r, x, t, base)
    assert regular is not None and int(regular[1]["regions"][0]) > 1000
    assert float(regular[1]["completeness_error"][0]) < 1e-8


def test_every_part_of_the_key_changes_the_answer(tmp_path):
    model, x, t, base = default_view(bias_free=True)
    exact_cache.write_entry(tmp_path, "case", model, x[0], int(t[0]), base[0], {})
    hit = exact_cache.lookup(model, x, t, base, tmp_path)
    assert hit is not None
    live, _ = exact_ig(model, x, t, base, DEFAULT_MAX_REGIONS, 64)
    assert torch.allclose(hit[0], live, rtol=0, atol=1e-10)
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-6
    assert exact_cache.lookup(other, x, t, base, tmp_path) is None
    nudged = x.clone()
    nudged.view(-1)[300] += 1e-6
    assert exact_cache.lookup(model, nudged, t, base, tmp_path) is None
    assert exact_cache.lookup(model, x, (t + 1) % 10, base, tmp_path) is None
    assert exact_cache.lookup(model, x, t, base + 1e-6, tmp_path) is None
    assert exact_cache.lookup(model, x.double(), t, base.double(), tmp_path) is None
    # a miss walks live and says so; an empty cache expects the cost model's bound
    _, info = exact_cache.exact_ig_cached(model, x, (t + 1) % 10, base, directory=tmp_path)
    assert info["source"] == "walked now"
    assert exact_cache.expected_regions(model, x, t, base, tmp_path) == 0
    assert exact_cache.expected_regions(model, x, t, base + 0.01, tmp_path) == 1  # seen: 1
    assert exact_cache.expected_regions(other, x, t, base, tmp_path / "none") == DEFAULT_MAX_REGIONS


def test_the_walk_is_priced_per_region():
    pt = explorer.PassTime(forward_s=1e-4, backward_s=2e-4, call_s=1e-3)
    w = budget.exact_walk_work("walk", 640, pt)
    assert w.seconds == pytest.approx(640 * budget.EXACT_PROBE_PASSES * 3e-4 + 10 * 1e-3)
    [nodes, walk] = budget.convergence_page_work(["regular"], (4,), ("left",), pt,
                                                 {"regular": 640})
    assert walk.seconds == pytest.approx(w.seconds) and "640 regions" in walk.label
    assert len(budget.convergence_page_work(["regular"], (4,), ("left",), pt, {"regular": 0})) == 1
    # The layered split (plain chains of layers, the bundled CNNs) is priced at its own rate.
    fast = budget.exact_walk_work("walk", 640, pt, layered=True)
    assert fast.seconds == pytest.approx(640 * budget.EXACT_LAYERED_PASSES * 3e-4 + 10 * 1e-3)
    assert budget.EXACT_LAYERED_PASSES < budget.EXACT_PROBE_PASSES
    [_, walk] = budget.convergence_page_work(["regular"], (4,), ("left",), pt, {"regular": 640},
                                             {"regular": True})
    assert walk.seconds == pytest.approx(fast.seconds)


def test_an_uncached_view_of_the_digits_cnn_fits_the_budget_with_the_layered_split():
    """Another digit on the regular digits CNN (the cache's 5,859 regions expected) at the CNN's
    2-core pass time: with the layered split the Convergence page's work fits the 15 s budget
    and runs live; priced as the probe walk it would wait behind "Run anyway"."""
    model, x, *_ = default_view(bias_free=False)
    assert exact_cache.walks_layered(model, x)
    pt = explorer.PassTime(forward_s=9e-5, backward_s=2.3e-4, call_s=5.7e-4)
    steps = (8, 16, 32, 64, 128, 256, 512)
    rules = ("left", "right", "middle", "trapezoid", "gauss_legendre")
    regions = {"regular": 5859, "bias-free": 1}
    fast = budget.convergence_page_work(["regular", "bias-free"], steps, rules, pt, regions,
                                        {"regular": True, "bias-free": True})
    slow = budget.convergence_page_work(["regular", "bias-free"], steps, rules, pt, regions)
    assert budget.total_seconds(fast) < 15 < budget.total_seconds(slow)
