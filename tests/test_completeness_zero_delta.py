"""Completeness when F(x) - F(baseline) is exactly 0 (issue 21 item 8b): the relative error is
undefined (NaN, never 1/tiny = 3.4e35) and the sum is judged by its absolute error."""
import math

import torch

import explorer
from explorer.analyses import axioms, checks
from explorer.presentation import report
from helpers import images, small_cnn


def zero_delta_case():
    model, x = small_cnn(seed=3), images(2)
    return model, x, x.clone()  # the baseline is the input itself: F(x) - F(x') = 0 exactly


def test_relative_error_is_undefined_and_the_absolute_error_judges():
    model, x, baseline = zero_delta_case()
    exact = explorer.completeness(model, x, torch.zeros_like(x), 1, baseline)
    assert (exact.delta == 0).all() and exact.relative_undefined().all()
    assert torch.isnan(exact.rel_error).all()
    assert exact.passed(1e-3).all()
    off = explorer.completeness(model, x, torch.full_like(x, 1e-3), 1, baseline)
    # the sum is 1e-3 per feature: the absolute error is that sum, above the tolerance
    torch.testing.assert_close(off.abs_error, torch.full((2,), 1e-3 * x[0].numel()),
                               rtol=1e-4, atol=0)
    assert torch.isnan(off.rel_error).all() and not off.passed(1e-3).any()
    assert off.passed(1.0).all()  # 0.768 <= 1: the absolute error decides


def test_report_rows_say_undefined_instead_of_a_huge_number():
    model, x, baseline = zero_delta_case()
    ig = explorer.explain("integrated_gradients", model, x, 1, baseline=baseline, steps=8)
    rows = explorer.completeness(model, x, ig.attributions, 1, ig.references).rows()
    row = report.completeness_row("integrated_gradients", False, rows[0], rtol=1e-3)
    assert math.isnan(row["rel error"]) and row["abs error"] < 1e-6
    assert row["result"].startswith("complete (") and "undefined" in row["result"]
    bad = dict(rows[0], attribution_sum=0.5, abs_error=0.5)
    row = report.completeness_row("integrated_gradients", False, bad, rtol=1e-3)
    assert row["result"].startswith("NOT complete (") and "undefined" in row["result"]
    # a finite non-zero delta keeps its relative verdict
    assert checks.verdict(1e-4, 1e-3, "exact", delta=2.0, abs_error=2e-4) == "complete"
    assert checks.verdict(float("nan"), 1e-3, "exact", delta=float("nan"),
                          abs_error=float("nan")) == "not finite"


def test_axiom_check_judges_a_zero_delta_by_the_absolute_error():
    model, x, baseline = zero_delta_case()
    attr = lambda m, x, t, b: (torch.zeros_like(x), None)  # noqa: E731 - an exact attributor
    result = axioms.check_completeness(attr, model, x, 1, baseline, promise="exact")
    assert result.holds is True and result.value < 1e-12
    assert "relative error is undefined" in result.explanation
