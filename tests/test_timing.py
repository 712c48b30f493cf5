import numpy as np
import pytest

import explorer
from explorer.methods.core import limit_call
from explorer.runtime.timing import Call, Row, compare, count_passes, separable, verdict
from helpers import hook_count, images, small_cnn


def test_count_passes_removes_its_hook_even_on_error():
    model = small_cnn()
    with pytest.raises(RuntimeError):
        with count_passes(model):
            raise RuntimeError("boom")
    assert hook_count(model) == 0


# --- the interleaved comparison, on a fake machine whose clock only moves when a call runs ---


class FakeMachine:
    """A deterministic clock; calls advance it by their cost, times ``slow(t)`` at their start."""

    def __init__(self, slow=lambda t: 1.0):
        self.now = 0.0
        self.log: list[str] = []
        self.slow = slow

    def clock(self) -> float:
        return self.now

    def sync(self) -> None:
        self.log.append("sync")

    def call(self, name: str, costs):
        costs = list(costs) if isinstance(costs, (list, tuple)) else [costs]
        count = [0]

        def fn():
            cost = costs[count[0] % len(costs)]
            count[0] += 1
            self.log.append(name)
            self.now += cost * self.slow(self.now)
        return fn

    def calls(self):
        return [e for e in self.log if e != "sync"]


def test_calls_run_round_robin_after_one_warm_up_each():
    m = FakeMachine()
    calls = {"a": m.call("a", 2.0), "b": m.call("b", 3.0), "c": m.call("c", 5.0)}
    result = compare(calls, min_rounds=4, min_time_s=0.4, clock=m.clock, sync=m.sync)
    assert m.calls() == ["a", "b", "c"] + ["a", "b", "c"] * 4
    assert result.rounds == 4 and all(r.rounds == 4 and r.repeats == 1 for r in result.rows.values())
    assert [r.median_s for r in result.rows.values()] == [2.0, 3.0, 5.0]
    # every measurement is synchronised on both sides
    assert m.log[:3] == ["sync", "a", "sync"] and m.log.count("sync") == 2 * len(m.calls())


def test_short_calls_are_auto_ranged_like_torch_timer():
    m = FakeMachine()
    calls = {"short": m.call("short", 0.25), "mid": m.call("mid", 3.0),
             "long": m.call("long", 13.0)}
    result = compare(calls, min_rounds=3, min_time_s=2.5, clock=m.clock, sync=m.sync)
    short, mid, long = result.rows["short"], result.rows["mid"], result.rows["long"]
    # probes of 1, 2, 5, 10 calls: 10 x 0.25 s is the first to reach 2.5 s
    assert (short.repeats, mid.repeats, long.repeats) == (10, 1, 1)
    assert m.calls()[:19] == ["short"] * 19  # warm-up, then 1 + 2 + 5 + 10 probe calls
    # mid: warm-up and one probe; long (over 5x the minimum on its warm-up): no probe
    assert m.calls()[19:22] == ["mid", "mid", "long"]
    assert m.calls()[22:] == (["short"] * 10 + ["mid", "long"]) * 3
    assert short.times_s == [0.25] * 3 and mid.times_s == [3.0] * 3


def test_budget_stops_the_rounds_but_never_before_the_minimum():
    def rounds(**kw):
        m = FakeMachine()
        calls = {"a": m.call("a", 1.0), "b": m.call("b", 2.0)}
        return compare(calls, min_time_s=0.1, clock=m.clock, sync=m.sync, **kw).rounds
    # warm-up takes 3 s, each round 3 s: the budget of 20 s is reached after round 6 (21 s)
    # (min_time_s 0.1: each warm-up is long enough, no probes)
    assert rounds(min_rounds=2, budget_s=20.0) == 6
    assert rounds(min_rounds=10, budget_s=20.0) == 10
    assert rounds(min_rounds=2, budget_s=20.0, max_rounds=4) == 4
    assert rounds(min_rounds=3) == 3


def test_median_and_quartiles_match_numpy():
    m = FakeMachine()
    costs = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 2.5, 0.5]
    # the first call (warm-up) takes costs[0]; the 10 rounds then see costs[1:]
    result = compare({"a": m.call("a", costs)}, min_rounds=10, min_time_s=0.1,
                     clock=m.clock, sync=m.sync)
    row = result.rows["a"]
    seen = costs[1:]
    assert row.times_s == seen
    assert row.median_s == pytest.approx(np.median(seen))
    assert row.q1_s == pytest.approx(np.percentile(seen, 25))
    assert row.q3_s == pytest.approx(np.percentile(seen, 75))
    assert row.iqr_s == pytest.approx(np.percentile(seen, 75) - np.percentile(seen, 25))


def test_a_noisy_block_lands_on_every_row_alike():
    # the machine runs 4x slower for calls starting in [18 s, 60 s): rounds 3 and 4 below
    m = FakeMachine(slow=lambda t: 4.0 if 18.0 <= t < 60.0 else 1.0)
    costs = {"a": 1.0, "b": 2.0, "c": 3.0}
    result = compare({k: m.call(k, c) for k, c in costs.items()}, min_rounds=11, min_time_s=0.1,
                     clock=m.clock, sync=m.sync)
    for name, cost in costs.items():
        times = result.rows[name].times_s
        assert [i for i, t in enumerate(times) if t > cost] == [2, 3]  # the same rounds, every row
        assert result.rows[name].median_s == cost
    # the ratios are the machine-free ones
    assert result.rows["c"].median_s / result.rows["a"].median_s == 3.0


def test_verdict_refuses_to_rank_overlapping_spreads():
    fast = Row("fast", [1.0, 1.1, 1.2, 1.3], 1)
    slow = Row("slow", [2.0, 2.1, 2.2, 2.3], 1)
    noisy = Row("noisy", [0.9, 1.1, 2.2, 3.0], 1)
    assert separable(fast, slow) and "fast is faster than slow" in verdict(fast, slow)
    assert not separable(fast, noisy) and "too noisy" in verdict(noisy, fast)
    m = FakeMachine()
    result = compare({"a": m.call("a", [1, 1, 1.2, 0.8]), "b": m.call("b", [1.1, 0.9, 1, 1.05]),
                      "c": m.call("c", 5.0)}, min_rounds=8, min_time_s=0.1,
                     clock=m.clock, sync=m.sync)
    assert result.inseparable("a") == ["b"] and result.inseparable("c") == []


def test_progress_reaches_one_and_bad_settings_raise():
    m = FakeMachine()
    seen = []
    compare({"a": m.call("a", 1.0)}, min_rounds=5, min_time_s=0.1, clock=m.clock, sync=m.sync,
            progress=lambda done, frac: seen.append((done, frac)))
    assert [d for d, _ in seen] == [1, 2, 3, 4, 5] and seen[-1][1] == 1.0
    assert all(a[1] <= b[1] for a, b in zip(seen, seen[1:]))
    for bad in ({}, {"min_rounds": 0}, {"budget_s": -1}):
        calls = {} if bad == {} else {"a": m.call("a", 1.0)}
        with pytest.raises(explorer.InputError):
            compare(calls, clock=m.clock, sync=m.sync, **bad)
    with pytest.raises(explorer.InputError):
        compare([Call("a", m.call("a", 1.0)), Call("a", m.call("a", 1.0))], clock=m.clock)


def test_pass_counts_are_exact_and_counted_on_the_warm_up_only():
    model = small_cnn()
    x = images(3)
    calls = [Call("limit", limit_call(model, x, 0), model, 3),
             Call("ig", lambda: explorer.attribute("integrated_gradients", model, x, 0, steps=5),
                  model, 3)]
    result = compare(calls, min_rounds=2, min_time_s=0.0)
    assert (result.rows["limit"].forward_passes, result.rows["limit"].backward_passes) == (1, 1)
    assert (result.rows["ig"].forward_passes, result.rows["ig"].backward_passes) == (5, 5)
    assert all(r.rounds == 2 and r.median_s > 0 for r in result.rows.values())
    assert hook_count(model) == 0


def test_rows_carry_spread_limit_ratio_and_ig_speedup():
    from explorer.presentation.report import LIMIT, comparison_rows
    m = FakeMachine()
    calls = {"lim": m.call("lim", 2.0), "xg": m.call("xg", [2.0, 2.0, 2.2, 1.9]),
             "ig": m.call("ig", [64.0, 60.0, 70.0, 66.0])}
    result = compare(calls, min_rounds=8, min_time_s=0.1, clock=m.clock, sync=m.sync)
    keys = {"lim": (LIMIT, True, "limit"), "xg": ("input_x_gradient", True, "X-Gradient"),
            "ig": ("integrated_gradients", True, "IG")}
    rows = {r["method"]: r for r in comparison_rows(result, keys, "cpu")}
    ig, xg = result.rows["ig"], result.rows["xg"]
    assert rows["IG"]["x_limit"] == pytest.approx(ig.median_s / 2.0)
    assert rows["X-Gradient"]["speedup_vs_ig"] == pytest.approx(ig.median_s / xg.median_s)
    assert rows["IG"]["q1_ms"] == pytest.approx(ig.q1_s * 1e3) and rows["IG"]["rounds"] == 8
    assert rows["limit"]["x_limit"] == 1.0
    assert rows["X-Gradient"]["too_close_to_rank"] == "limit (bias-free)"
    assert rows["IG"]["too_close_to_rank"] == ""


def test_time_methods_times_the_limit_per_variant_and_counts_passes():
    from explorer.presentation.report import LIMIT_LABEL, Run, time_methods
    model = small_cnn()
    free = explorer.remove_biases(model)
    rows = time_methods({False: model, True: free},
                        [Run("input_x_gradient"), Run("integrated_gradients", {"steps": 4})],
                        images(2), 0, min_rounds=2, min_time_s=0.0)
    assert [(r["method"], r["variant"]) for r in rows] == [
        (LIMIT_LABEL, "regular"), ("Input x Gradient", "regular"), ("Integrated Gradients", "regular"),
        (LIMIT_LABEL, "bias-free"), ("X-Gradient", "bias-free"), ("Integrated Gradients", "bias-free")]
    assert [(r["forward_passes"], r["backward_passes"]) for r in rows] == [(1, 1), (1, 1), (4, 4)] * 2
    assert all(r["rounds"] == 2 and r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] for r in rows)
