"""The cheap finiteness checks on every call: one sum decides the common case, and the exact
elementwise test decides when the sum is not finite (an overflow of finite values)."""
import warnings

import pytest
import torch
from torch import nn

import explorer
from explorer.runtime.tensors import all_finite


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_agrees_with_the_elementwise_test(dtype):
    top = torch.finfo(dtype).max
    torch.manual_seed(0)
    cases = [torch.rand(3, 5, dtype=dtype), torch.full((4, 7), top, dtype=dtype),
             torch.tensor([top, -top, top], dtype=dtype), torch.empty(0, dtype=dtype)]
    for position in (0, 17, 34):
        for bad in (float("nan"), float("inf"), -float("inf")):
            t = torch.rand(35, dtype=dtype)
            t[position] = bad
            cases.append(t)
    both_infinities = torch.zeros(6, dtype=dtype)
    both_infinities[1], both_infinities[4] = float("inf"), -float("inf")  # sum NaN
    cases.append(both_infinities)
    for t in cases:
        assert all_finite(t) == bool(torch.isfinite(t).all()), t


def test_input_of_huge_finite_values_is_accepted_and_nan_refused():
    x = torch.full((1, 6), torch.finfo(torch.float32).max)  # the float32 sum overflows
    model = nn.Sequential(nn.Linear(6, 2)).eval()
    explorer.attribute("gradient", model, x, 0)
    x[0, 3] = float("nan")
    with pytest.raises(explorer.InputError, match="NaN or infinite"):
        explorer.attribute("gradient", model, x, 0)


def test_large_finite_logits_do_not_warn_and_infinite_ones_do():
    # Logits near float32's largest value: their sum overflows, each one is finite.
    model = nn.Sequential(nn.Linear(2, 4, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.fill_(1e38)
    x = torch.tensor([[1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", explorer.NumericalWarning)
        explorer.attribute("occlusion", model, x * 1.5, 0, window=1, stride=1)
    with pytest.warns(explorer.NumericalWarning, match="logits were NaN or Inf"):
        explorer.attribute("occlusion", model, x * 4, 0, window=1, stride=1)  # 4e38: Inf


def test_negative_int_target_is_refused_for_every_row():
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with pytest.raises(explorer.InputError, match=r"must be >= 0, got \[-2, -2\]"):
        explorer.attribute("gradient", model, torch.rand(2, 3), -2)
