"""IG against closed forms, and how its quadrature error behaves."""
import numpy as np
import pytest
import torch

import explorer
from explorer.methods.path import RULES, quadrature
from helpers import CubicSum, ExpSum, smooth_mlp


def coef(classes=3, features=10, seed=0):
    return torch.randn(classes, features, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_integrates_constants_and_stays_in_unit_interval(rule):
    nodes, weights = quadrature(rule, 7)
    assert np.isclose(weights.sum(), 1.0)
    assert nodes.min() >= 0 and nodes.max() <= 1


def test_closed_form_exp():
    c = coef()
    model = ExpSum(c).eval()
    x = torch.randn(2, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact = c[1] * (torch.exp(x) - 1.0)
    ig = explorer.attribute("integrated_gradients", model, x, 1, steps=16, rule="gauss_legendre")
    torch.testing.assert_close(ig, exact, rtol=1e-12, atol=1e-12)
    ig_mid = explorer.attribute("integrated_gradients", model, x, 1, steps=512, rule="middle")
    torch.testing.assert_close(ig_mid, exact, rtol=1e-5, atol=1e-6)


def test_closed_form_cubic_with_nonzero_baseline():
    c = coef(features=6)
    model = CubicSum(c).eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, dtype=torch.float64, generator=gen)
    b = torch.randn(3, 6, dtype=torch.float64, generator=gen)
    # The integrand is quadratic in alpha: two Gauss-Legendre nodes are exact.
    ig = explorer.attribute("integrated_gradients", model, x, 2, baseline=b, steps=2)
    torch.testing.assert_close(ig, c[2] * (x ** 3 - b ** 3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
def test_completeness_error_shrinks_with_steps(rule):
    model = smooth_mlp()
    x = torch.randn(4, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    errors = []
    for steps in (2, 8, 32, 128):
        ig = explorer.attribute("integrated_gradients", model, x, 0, steps=steps, rule=rule)
        errors.append(float(explorer.completeness(model, x, ig, 0).abs_error.max()))
    floor = 1e-13  # float64 round-off: Gauss-Legendre gets there by 32 steps
    assert errors[0] > 1e-6
    assert all(later < earlier or later < floor for earlier, later in zip(errors, errors[1:])), errors


def steps_needed(model, x, rule, tol):
    for steps in range(2, 400):
        ig = explorer.attribute("integrated_gradients", model, x, 0, steps=steps, rule=rule)
        if float(explorer.completeness(model, x, ig, 0).rel_error.max()) < tol:
            return steps
    return 10**9


def test_gauss_legendre_needs_fewer_steps_than_riemann():
    model = smooth_mlp(seed=5)
    x = torch.randn(2, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 2
    gl = steps_needed(model, x, "gauss_legendre", 1e-4)
    for rule in ("left", "right", "middle", "trapezoid"):
        assert gl < steps_needed(model, x, rule, 1e-4), rule
