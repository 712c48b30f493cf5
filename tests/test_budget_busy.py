"""The pass-time estimate keeps the best of several rounds on a warm model: a busy machine
during some of them (200x slower) must not make the estimate 200x too high."""
import pytest
import torch

from explorer import budget


def fake_rounds(monkeypatch, busy_calls: set[int]):
    """_round's seconds for a model costing 1 ms per call + 0.1 ms per input (forward a third
    of it); the calls numbered in ``busy_calls`` take 200x as long."""
    calls = []

    def fake(model, x, device):
        k = len(calls)
        calls.append(x.shape[0])
        total = (1e-3 + 1e-4 * x.shape[0]) * (200 if k in busy_calls else 1)
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
