"""The compute budget: estimates from the cost model x an injected per-pass time, checked against
the passes a run really makes; refusal above the budget and not below; measuring leaves the
model as it was."""
import pytest
import torch

import explorer
from explorer.methods import budget
from explorer.presentation import report
from explorer.methods.core import reporting_progress
from explorer.runtime.timing import compare, count_passes
from helpers import hook_count, images, model_for, small_cnn

ALL = sorted(explorer.METHODS)
SETTINGS = {"integrated_gradients": {"steps": 8}, "expected_gradients": {"samples": 8},
            "smoothgrad": {"samples": 6}, "occlusion": {"window": 4, "stride": 4},
            "mfaba": {"steps": 5, "variant": "sharp"},
            "guided_ig": {"steps": 8}, "blur_ig": {"steps": 8, "max_sigma": 4.0}, "idgi": {"steps": 8}}
PER_PASS = budget.PassTime(forward_s=0.003, backward_s=0.007)


def baseline_for(method, x):
    if method == "expected_gradients":
        return torch.rand(4, *x.shape[1:], generator=torch.Generator().manual_seed(7)) * 0.2
    return torch.full_like(x[:1], 0.1) if explorer.METHODS[method].uses_baseline else None


@pytest.fixture(scope="module")
def model():
    return small_cnn()


@pytest.mark.parametrize("method", ALL)
def test_estimate_is_counted_passes_times_per_pass_time(method, model):
    model = model_for(method, model)  # B-cos contribution, attention rollout: their own
    x = images(3)
    params = SETTINGS.get(method, {})
    with count_passes(model) as counted:
        explorer.attribute(method, model, x, torch.tensor([0, 2, 4]),
                           baseline=baseline_for(method, x), **params)
    est = explorer.estimate(method, params, x.shape, PER_PASS)
    spent = counted.forward * PER_PASS.forward_s + counted.backward * PER_PASS.backward_s
    if est.exact:
        assert (est.forward, est.backward) == (counted.forward, counted.backward)
        assert est.seconds == pytest.approx(spent, rel=1e-12)
    else:  # an upper bound: early stopping may take fewer passes, never more
        assert est.forward >= counted.forward and est.backward >= counted.backward
        assert est.seconds >= spent


def test_calls_pay_the_fixed_cost_once_per_chunk():
    per_pass = budget.PassTime(forward_s=0.001, backward_s=0.002, call_s=0.5)
    ig = explorer.estimate("integrated_gradients", {"steps": 10, "batch_size": 4}, (3, 1, 8, 8),
                           per_pass)
    assert ig.calls == 8  # 30 rows in chunks of 4
    assert ig.seconds == pytest.approx(30 * 0.003 + 8 * 0.5)
    mfaba = explorer.estimate("mfaba", {"steps": 7}, (3, 1, 8, 8), per_pass)
    assert mfaba.calls == 7  # one call of the whole batch per step
    assert explorer.estimate("gradient", {}, (3, 1, 8, 8), per_pass).calls == 1


def test_budget_refuses_above_and_runs_below(model):
    x = images(2)
    per_pass = explorer.pass_time(model, x.shape[1:])
    est = explorer.estimate("integrated_gradients", {"steps": 16}, x.shape, per_pass)
    assert est.seconds == pytest.approx(32 * per_pass.forward_s + 32 * per_pass.backward_s
                                        + per_pass.call_s)
    with pytest.raises(explorer.BudgetExceeded) as refused:
        explorer.attribute("integrated_gradients", model, x, 1, steps=16, budget_s=est.seconds * 0.9)
    message = str(refused.value)
    assert "32 forward + 32 backward passes" in message and "lower steps" in message
    assert refused.value.estimate.seconds == pytest.approx(est.seconds)
    assert isinstance(refused.value, explorer.InputError)
    below = explorer.attribute("integrated_gradients", model, x, 1, steps=16,
                               budget_s=est.seconds * 1.1)
    torch.testing.assert_close(below, explorer.attribute("integrated_gradients", model, x, 1,
                                                         steps=16))


def test_refusal_says_what_to_change():
    shape = (1, 3, 32, 32)
    with pytest.raises(explorer.BudgetExceeded, match="raise stride"):
        budget.check_budget(explorer.estimate("occlusion", {"window": 2, "stride": 1}, shape,
                                              PER_PASS), 0.01, {"window": 2, "stride": 1}, shape)
    with pytest.raises(explorer.BudgetExceeded, match="at most .*lower steps"):
        budget.check_budget(explorer.estimate("mfaba", {}, shape, PER_PASS), 1e-6, {}, shape)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "10", True])
def test_budget_must_be_a_positive_number(model, bad):
    with pytest.raises(explorer.InputError, match="budget_s"):
        explorer.attribute("gradient", model, images(1), 0, budget_s=bad)


def test_pass_time_is_measured_once_and_leaves_the_model_alone():
    model = small_cnn(seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = explorer.pass_time(model, (3, 16, 16))
    assert first.forward_s >= 0 and first.backward_s >= 0 and first.call_s >= 0
    assert first.forward_s + first.backward_s + first.call_s > 0
    assert explorer.pass_time(model, (3, 16, 16)) is first          # cached
    assert explorer.pass_time(model, (3, 16, 16), device="cpu") is first
    assert not model.training and hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert explorer.pass_time(small_cnn(seed=3), (3, 16, 16)) is not first  # per model object


def test_progress_is_reported_per_chunk_and_can_stop_the_work(model):
    x = images(1)
    seen = []
    with reporting_progress(lambda done, total: seen.append((done, total))):
        explorer.attribute("integrated_gradients", model, x, 0, steps=10, batch_size=4)
    assert seen == [(0, 10), (4, 10), (8, 10)]

    seen.clear()
    with reporting_progress(lambda done, total: seen.append((done, total))):
        explorer.attribute("mfaba", model, x, 0, steps=3, step_size=1e-6)
    assert seen == [(0, 3), (1, 3), (2, 3)]  # a step too small to change the prediction

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        if done:
            raise Stop

    with count_passes(model) as counted, pytest.raises(Stop):
        with reporting_progress(stop_after_first):
            explorer.attribute("integrated_gradients", model, x, 0, steps=10, batch_size=4)
    assert counted.forward == 4  # stopped before the second chunk


def test_a_long_call_is_timed_once(model):
    x = images(1)
    call = lambda: explorer.attribute("integrated_gradients", model, x, 0, steps=4)  # noqa: E731
    with count_passes(model) as counted:
        c = compare({"ig": call}, min_rounds=5, once_above_s=0.0)
    assert counted.forward == 4 and c.rows["ig"].rounds == 1  # the warm-up run alone
    with count_passes(model) as counted:
        c = compare({"ig": call}, min_rounds=3, min_time_s=0.0, once_above_s=1e9)
    # warm-up (long enough for min_time_s = 0, so no auto-range probe), then 3 rounds of one call
    assert counted.forward == 4 * (1 + 3) and c.rows["ig"].rounds == 3

def test_a_call_timed_once_joins_the_rows_without_running_again(model):
    x = images(1)
    once = report.TimedOnce(report.Run("integrated_gradients"), False, 2.0, 32.0, 32.0)
    with count_passes(model) as counted:
        rows = report.time_methods({False: model}, [], x, 0, timed_once=[once], min_rounds=2,
                                   min_time_s=0.0)
    assert counted.forward == 1 + 2  # the limit's warm-up and two rounds: IG never ran
    by_label = {r["method"]: r for r in rows}
    ig, limit = by_label["Integrated Gradients"], by_label[report.LIMIT_LABEL]
    assert ig["median_ms"] == 2000.0 and ig["rounds"] == 1 and ig["forward_passes"] == 32.0
    assert ig["x_limit"] == pytest.approx(2000.0 / limit["median_ms"])
