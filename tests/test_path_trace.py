"""path_trace and convergence against closed forms, homogeneity and IG's own completeness."""
import pytest
import torch

import explorer
from explorer.methods.path import RULES
from helpers import ExpSum, images, small_cnn

F64 = torch.float64


def target_logit(model, x, target):
    with torch.no_grad():
        return model(x)[:, target]


@pytest.fixture(scope="module")
def nets():
    regular = small_cnn(seed=3, dtype=F64)
    return regular, explorer.remove_biases(regular)


def test_bias_free_from_zero_is_a_straight_line_ending_at_the_gap(nets):
    regular, free = nets
    x = images(2, dtype=F64, seed=4)
    trace = explorer.path_trace(free, x, 1, steps=16)
    assert trace.alphas.tolist() == [k / 16 for k in range(1, 17)]
    # F(alpha x) = alpha F(x): compare with the line through F(x), computed independently
    line = trace.alphas[None] * target_logit(free, x, 1)[:, None]
    assert torch.allclose(trace.outputs, line, rtol=0, atol=1e-5 * line.abs().max().item())
    assert trace.linearity_error().max() < 1e-5
    assert trace.gradient_spread().max() < 1e-9
    gap = target_logit(free, x, 1) - target_logit(free, torch.zeros_like(x), 1)
    assert torch.allclose(trace.attribution_sums[:, -1], gap, rtol=1e-9, atol=0)
    assert torch.allclose(trace.delta, gap, rtol=1e-12, atol=0)
    # The same network with its biases is visibly curved along the path: the checks can fail.
    curved = explorer.path_trace(regular, x, 1, steps=16)
    assert curved.linearity_error().min() > 1e-3
    assert curved.gradient_spread().min() > 1e-3
    # the gradient at x' is reported too: the bias-free net sits at every kink there (all 0)
    assert trace.baseline_gradient.abs().max() == 0 and curved.baseline_gradient.abs().max() > 0


def test_accumulated_sums_match_the_closed_form_integral():
    gen = torch.Generator().manual_seed(0)
    coef = torch.randn(3, 10, generator=gen, dtype=F64)
    model = ExpSum(coef).eval()
    x = torch.rand(2, 10, generator=gen, dtype=F64) * 2 - 1
    base = torch.rand(2, 10, generator=gen, dtype=F64) * 0.5
    target = torch.tensor([2, 0])
    c = coef[target]

    def exact(trace):  # integral_0^alpha of (x - x') e^(x' + t (x - x')) dt, per feature
        a = trace.alphas[None, :, None]
        return c[:, None] * (torch.exp(base[:, None] + a * (x - base)[:, None]) - torch.exp(base[:, None]))

    coarse = explorer.path_trace(model, x, target, baseline=base, steps=64)
    fine = explorer.path_trace(model, x, target, baseline=base, steps=128)
    a = coarse.alphas[None, :, None]
    f = c[:, None] * (torch.exp(base[:, None] + a * (x - base)[:, None]) - 1)
    assert torch.allclose(coarse.outputs, f.sum(2), rtol=1e-12, atol=1e-12)
    assert torch.allclose(coarse.baseline_output, (c * (torch.exp(base) - 1)).sum(1), atol=1e-12)
    # Right-Riemann is first order: its error halves with twice the steps, and Richardson's
    # extrapolation 2 R(2S) - R(S) at the shared nodes is second order.
    err = (coarse.accumulated - exact(coarse)).abs().max()
    err_fine = (fine.accumulated - exact(fine)).abs().max()
    assert 1.8 < err / err_fine < 2.2
    richardson = 2 * fine.accumulated[:, 1::2] - coarse.accumulated
    assert (richardson - exact(coarse)).abs().max() < 5e-3 * err
    assert torch.allclose(coarse.attribution_sums, coarse.accumulated.sum(2), rtol=1e-12)


def test_final_map_is_integrated_gradients_right_rule(nets):
    regular, _ = nets
    x = images(2, dtype=F64, seed=5)
    base = explorer.make_baseline("blur", x)
    trace = explorer.path_trace(regular, x, torch.tensor([0, 4]), baseline=base, steps=12, batch_size=7)
    ig = explorer.attribute("integrated_gradients", regular, x, torch.tensor([0, 4]), baseline=base,
                            steps=12, rule="right")
    assert torch.allclose(trace.accumulated[:, -1], ig, rtol=1e-10, atol=1e-12)
    report = explorer.completeness(regular, x, ig, torch.tensor([0, 4]), base)
    assert torch.allclose(trace.completeness_error, report.rel_error, rtol=1e-8)
    assert torch.allclose(trace.points(11), x, rtol=0, atol=1e-15) and torch.allclose(trace.points(5), base + 0.5 * (x - base))
    # One input alone gives the same trace as inside the batch, whatever the chunking.
    alone = explorer.path_trace(regular, x[1:], 4, baseline=base[1:], steps=12, batch_size=256)
    assert torch.allclose(alone.gradients[0], trace.gradients[1], rtol=1e-10, atol=1e-14)


def test_convergence_agrees_with_integrated_gradients_completeness(nets):
    regular, _ = nets
    x = images(2, dtype=F64, seed=6)
    base = explorer.make_baseline("uniform", x)
    steps = (3, 8)
    table = explorer.convergence(regular, x, 2, baseline=base, steps=steps, rules=RULES)
    for r, rule in enumerate(RULES):
        for k, s in enumerate(steps):
            ig = explorer.attribute("integrated_gradients", regular, x, 2, baseline=base,
                                    steps=s, rule=rule)
            report = explorer.completeness(regular, x, ig, 2, base)
            assert torch.allclose(table.attribution_sum[r, k], report.attribution_sum, rtol=1e-10)
            assert torch.allclose(table.rel_error[r, k], report.rel_error, rtol=1e-6, atol=1e-12)
    # Nested nodes are evaluated once: fewer evaluations than the passes IG would make.
    passes = sum(s for s in steps) * len(RULES)
    assert table.evaluations < passes
    rows = table.rows()
    assert len(rows) == len(RULES) * len(steps) * 2 + 2
    assert rows[0]["rule"] == RULES[0] and rows[0]["passes"] == steps[0]
    assert rows[-1]["rule"] == "x_gradient" and rows[-1]["passes"] == 1


def test_x_gradient_single_pass_error(nets):
    regular, free = nets
    x = images(2, dtype=F64, seed=7)
    on_free = explorer.convergence(free, x, 3, steps=(4,), rules=("middle", "left"))
    assert on_free.x_gradient_error.max() < 1e-10
    # middle never evaluates alpha = 0 and is exact on an X-DNN; left loses its first node
    assert on_free.rel_error[0].max() < 1e-10 and on_free.rel_error[1].min() > 0.1
    on_regular = explorer.convergence(regular, x, 3, steps=(4,), rules=("middle",))
    ixg = explorer.attribute("input_x_gradient", regular, x, 3)
    report = explorer.completeness(regular, x, ixg, 3, None)
    assert torch.allclose(on_regular.x_gradient_error, report.rel_error, rtol=1e-8)
    assert on_regular.x_gradient_error.min() > 1e-3


@pytest.mark.parametrize("call", [
    lambda m, x: explorer.path_trace(m, x, 0, steps=0),
    lambda m, x: explorer.path_trace(m, x, 0, baseline=torch.zeros(3, 5)),
    lambda m, x: explorer.path_trace(m, x, 9),
    lambda m, x: explorer.convergence(m, x, 0, rules=("simpson",)),
    lambda m, x: explorer.convergence(m, x, 0, steps=(8, -1)),
    lambda m, x: explorer.convergence(m, x, 0, steps=()),
])
def test_bad_input_raises_input_error(nets, call):
    with pytest.raises(explorer.InputError):
        call(nets[0], images(1, dtype=F64))


def test_chunk_size_follows_the_input_size():
    from explorer.analyses.integration_path import points_per_chunk
    assert points_per_chunk(torch.zeros(1, 1, 28, 28)) == 512
    assert points_per_chunk(torch.zeros(1, 3, 224, 224)) == 27
    assert points_per_chunk(torch.zeros(1, 3, 4096, 4096)) == 1
