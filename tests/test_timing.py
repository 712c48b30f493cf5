import pytest
import torch

import explorer
from explorer.timing import count_passes, measure_method, time_call
from helpers import hook_count, images, small_cnn


def test_time_call_median_and_repeats():
    calls = []
    t = time_call(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and len(t.times_s) == 5
    assert min(t.times_s) <= t.median_s <= max(t.times_s)
    with pytest.raises(explorer.InputError):
        time_call(lambda: None, repeats=0)


def test_count_passes_removes_its_hook_even_on_error():
    model = small_cnn()
    with pytest.raises(RuntimeError):
        with count_passes(model):
            raise RuntimeError("boom")
    assert hook_count(model) == 0


def test_measure_method_reports_passes_per_input():
    model = small_cnn()
    m = measure_method("integrated_gradients", model, images(3), 0, steps=5, repeats=2)
    assert (m.forward_per_input, m.backward_per_input) == (5, 5)
    assert m.timing.median_s > 0
    with torch.no_grad():  # backward is counted through autograd even under an outer no_grad
        m = measure_method("input_x_gradient", model, images(3), 0, repeats=1)
    assert (m.forward_per_input, m.backward_per_input) == (1, 1)
