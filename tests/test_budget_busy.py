"""The pass-time estimate keeps the best of several rounds on a warm model: a busy machine
during some of them (200x slower) must not make the estimate 200x too high."""
import pytest
import torch

from explorer.methods import budget


def fake_rounds(monkeypatch, busy_calls: set[int], per_call: float = 1e-3):
    """_round's seconds for a model costing 1 ms per call + 0.1 ms per input (forward a third
    of it); the calls numbered in ``busy_calls`` take 200x as long."""
    calls = []

    def fake(model, x, device):
        k = len(calls)
        calls.append(x.shape[0])
        total = (per_call + 1e-4 * x.shape[0]) * (200 if k in busy_calls else 1)
        return total / 3, total

    monkeypatch.setattr(budget, "_round", fake)
    return calls


@pytest.mark.parametrize("busy", [{0}, {0, 1}, {3, 4, 6}, {1, 5, 8, 11}])
def test_busy_rounds_do_not_inflate_the_estimate(monkeypatch, busy):
    calls = fake_rounds(monkeypatch, busy)
    pt = budget._measure(torch.nn.Identity(), (1, 4, 4), torch.float32, torch.device("cpu"),
                         repeats=5)
    assert len(calls) > 5
    # per input forward+backward 0.1 ms and 1 ms per call, as if nothing were busy
    assert pt.forward_s + pt.backward_s == pytest.approx(1e-4, rel=1e-6)
    assert pt.call_s == pytest.approx(1e-3, rel=1e-6)


def test_a_machine_busy_throughout_is_priced_per_call_not_per_input(monkeypatch):
    """On an oversubscribed CPU every call of a small model takes 200 ms (threads waiting for
    each other), whatever its batch: that is a cost per call. Counted per input, a chunked
    method's 64-input calls would be estimated 64 times too long."""
    fake_rounds(monkeypatch, set(), per_call=0.2)
    pt = budget._measure(torch.nn.Identity(), (1, 4, 4), torch.float32, torch.device("cpu"),
                         repeats=5)
    assert pt.call_s == pytest.approx(0.2, rel=1e-6)
    assert pt.forward_s + pt.backward_s == pytest.approx(1e-4, rel=1e-6)


def test_an_expensive_model_is_timed_in_fewer_rounds(monkeypatch):
    """0.5 s per input and nothing per call (a ResNet-50 on a CPU): two rounds of each size."""
    calls = fake_rounds(monkeypatch, set(), per_call=0.0)
    monkeypatch.setattr(budget, "_round", lambda m, x, d: (calls.append(x.shape[0]) or
                                                           (0.5 * x.shape[0] / 3, 0.5 * x.shape[0])))
    pt = budget._measure(torch.nn.Identity(), (1, 4, 4), torch.float32, torch.device("cpu"),
                         repeats=5)
    assert pt.forward_s + pt.backward_s == pytest.approx(0.5) and pt.call_s == 0.0
    assert calls.count(4) == 3  # a warm-up and two rounds
