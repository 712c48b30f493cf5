"""Exact IG (explorer/methods/exact.py) against closed forms and independent exact walks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explorer
from explorer.methods.budget import PassTime, estimate
from explorer.methods.exact import RegionCapReached, exact_ig, resolution
from explorer.methods.exact_layered import layer_chain
from explorer.models.architectures import DigitsCNN


def exact(model, x, target, baseline=None, **kw):
    return explorer.explain("exact_ig", model, x, target, baseline=baseline, **kw)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_one_hidden_layer_closed_form():
    """F = sum_j c_j relu(w_j . p + b_j): unit j is active on an interval of alpha, found in
    closed form, and IG_i = d_i sum_j c_j w_ji |active part of [0, 1]|."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 40), nn.ReLU(), nn.Linear(40, 3)).double().eval()
    x, base = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    w, b, c = model[0].weight, model[0].bias, model[2].weight[2]
    d = x - base
    z0 = base @ w.T + b          # [N, units] pre-activation at alpha = 0
    dz = d @ w.T                 # its slope in alpha
    root = -z0 / dz
    lo = torch.where(dz > 0, root.clamp(0, 1), torch.zeros_like(root))
    hi = torch.where(dz > 0, torch.ones_like(root), root.clamp(0, 1))
    length = (hi - lo).clamp_min(0)
    length = torch.where(dz == 0, (z0 > 0).double(), length)
    expected = d * ((c * length) @ w)
    with torch.no_grad():
        out = exact(model, x, 2, baseline=base)
    assert (out.attributions - expected).abs().max() < 1e-10
    crossings = ((root > 0) & (root < 1)).sum(1)
    assert out.info["regions"].tolist() == (crossings + 1).tolist()
    assert out.info["passes"].tolist() == out.info["regions"].tolist()  # one probe per region
    assert out.info["completeness_error"].max() < 1e-12


def relu_cnn() -> nn.Sequential:
    """conv-ReLU-conv-ReLU-linear: ReLU is the only kink."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).double().eval()


def exactline_breakpoints(model: nn.Sequential, base, x) -> torch.Tensor:
    """ExactLine's layer-by-layer split (Sotoudeh & Thakur): before each ReLU the network is
    affine between the known breakpoints, so a unit's sign change between two breakpoints is at
    the linear interpolation of its values there. No slopes, no forward-mode AD."""
    points = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for k, layer in enumerate(model):
        if not isinstance(layer, nn.ReLU):
            continue
        with torch.no_grad():
            z = model[:k](base + points.view(-1, 1, 1, 1) * (x - base)).flatten(1)
        za, zb = z[:-1], z[1:]
        cross = (za * zb < 0)
        where = points[:-1, None] + (points[1:] - points[:-1])[:, None] * za / (za - zb)
        points = torch.cat([points, where[cross]]).unique()
    return points


def test_relu_cnn_against_an_exactline_walk():
    model = relu_cnn()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 8, 8, generator=gen, dtype=torch.float64)
    base = torch.rand(1, 2, 8, 8, generator=gen, dtype=torch.float64) * 0.3
    points = exactline_breakpoints(model, base, x)
    mids = (points[:-1] + points[1:]) / 2
    p = (base + mids.view(-1, 1, 1, 1) * (x - base)).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(p)[:, 1].sum(), p)
    reference = (x - base) * ((points[1:] - points[:-1]).view(-1, 1, 1, 1) * grad).sum(0)
    assert len(points) > 5  # the path crosses several regions
    # The production code takes the same layer-by-layer route on this chain; the probe walk
    # (forward-mode slopes, a different algorithm) must agree with the same oracle.
    for algorithm in ("auto", "walk"):
        out = exact(model, x, 1, baseline=base, algorithm=algorithm)
        assert out.info["algorithm"] == ("layered" if algorithm == "auto" else "walk")
        assert rel(out.attributions, reference) < 1e-8
        assert int(out.info["regions"][0]) == len(points) - 1
        torch.testing.assert_close(out.info["boundaries"][0], points[1:-1], rtol=0, atol=1e-12)


def pooled_chain() -> nn.Sequential:
    """A chain with batch norm, 2x2 and overlapping 3x3/2 max-pools, dropout (eval); 8x8 input."""
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2), nn.Flatten(),
        nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.double().eval()


def test_layered_and_walk_agree_on_a_pooled_chain():
    """The two algorithms share no kink-finding code: the walk extrapolates forward-mode slopes
    from probes, the layered split interpolates values between known breakpoints and pulls the
    gradient back by hand (masks and pool arg-maxes, no autograd through the kinks)."""
    model = pooled_chain()
    assert len(layer_chain(model, torch.rand(1, 2, 8, 8, dtype=torch.float64))) == len(model)
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(2, 2, 8, 8, generator=gen, dtype=torch.float64)
    base = torch.rand(2, 2, 8, 8, generator=gen, dtype=torch.float64) * 0.5
    weighting = torch.tensor([[0.2, 0.0, 0.5, 0.3]], dtype=torch.float64)
    for x, base, target in ((x, base, torch.tensor([1, 3])), (x[1:], base[1:], weighting)):
        walk, walk_info = exact_ig(model, x, target, base, 10_000, 64, algorithm="walk")
        layered, info = exact_ig(model, x, target, base, 10_000, 64, algorithm="layered")
        assert info["algorithm"] == "layered" and walk_info["algorithm"] == "walk"
        assert (info["regions"] > 10).all()
        assert info["regions"].tolist() == walk_info["regions"].tolist()
        for a, b in zip(info["boundaries"], walk_info["boundaries"]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert rel(layered, walk) < 1e-10
        assert info["completeness_error"].max() < 1e-12


def test_only_plain_chains_take_the_layered_route():
    assert len(layer_chain(DigitsCNN().eval(), torch.rand(1, 1, 28, 28))) == 10  # nested
    assert layer_chain(PoolResidualCNN().eval(), torch.rand(1, 1, 8, 8)) is None  # a residual
    assert layer_chain(FunctionalGelu(), torch.rand(1, 4)) is None  # F.gelu between layers
    assert layer_chain(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), torch.rand(1, 4)) is None
    with pytest.raises(explorer.InputError, match="plain chain"):
        exact_ig(PoolResidualCNN().double().eval(), torch.rand(1, 1, 8, 8, dtype=torch.float64),
                 torch.tensor([0]), torch.zeros(1, 1, 8, 8, dtype=torch.float64), 100, 8,
                 algorithm="layered")


class PoolResidualCNN(nn.Module):
    """conv-ReLU-maxpool, a residual block (conv-BN-ReLU-conv + skip, ReLU), avgpool, linear.
    Its ReLUs are functional (F.relu, Tensor.relu), as in many hand-written models."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 2 * 2, 3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.3, 0.3)

    def forward(self, x):
        h = self.pool(F.relu(self.stem(x)))
        h = (self.conv2(F.relu(self.bn(self.conv1(h)))) + h).relu()
        return self.head(torch.flatten(F.avg_pool2d(h, 2), 1))


def test_maxpool_residual_completeness_and_midpoint_bound():
    """The midpoint rule with K cells on a piecewise-constant integrand g: a kink at c in a cell
    changes g on the part of the cell beyond c from the midpoint, at most half a cell, so
    ||exact - midpoint|| <= (1 / 2K) sum_k ||jump_k|| (jumps of g = (x - x') * grad F between
    neighbouring regions), plus float64 rounding of K terms, K eps max ||g|| (derived, not tuned)."""
    model = PoolResidualCNN().double().eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 8, 8, generator=gen, dtype=torch.float64)
    base = torch.zeros_like(x) + 0.05
    out = exact(model, x, 0, baseline=base)
    assert out.info["regions"][0] > 3
    assert out.info["completeness_error"][0] < 1e-9
    with torch.no_grad():
        gap = model(x)[0, 0] - model(base)[0, 0]
    assert abs(float(out.attributions.sum() - gap)) < 1e-9

    cuts = torch.cat([torch.zeros(1, dtype=torch.float64), out.info["boundaries"][0],
                      torch.ones(1, dtype=torch.float64)])
    mids = (cuts[:-1] + cuts[1:]) / 2
    g = path_terms(model, x, base, mids)
    jumps = (g[1:] - g[:-1]).flatten(1).norm(dim=1).sum()
    steps = 2 ** 12  # 2^18 passes are minutes on 2 shared cores; the bound follows the steps
    midpoint = path_terms(model, x, base, (torch.arange(steps, dtype=torch.float64) + 0.5)
                          / steps).sum(0, keepdim=True) / steps
    bound = jumps / (2 * steps) + steps * torch.finfo(torch.float64).eps * g.flatten(1).norm(
        dim=1).max()
    error = (out.attributions - midpoint).norm()
    assert error <= bound
    assert error > 0  # the kinks are real: a midpoint sum is not exact here
    # The bound is not vacuous: a tenth of the map is far above it.
    assert bound < 0.1 * out.attributions.norm()


def path_terms(model, x, base, alphas, chunk=4096):
    """(x - x') * grad F at base + alpha (x - x'), one row per alpha (target 0)."""
    rows = []
    for lo in range(0, len(alphas), chunk):
        a = alphas[lo:lo + chunk].view(-1, 1, 1, 1)
        p = (base + a * (x - base)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(p)[:, 0].sum(), p)
        rows.append((x - base) * grad)
    return torch.cat(rows)


def test_bias_free_from_zero_is_one_region_and_x_gradient():
    model = DigitsCNN(bias=False).double().eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = exact(model, x, torch.tensor([3, 7]))
    assert out.info["regions"].tolist() == [1, 1]
    xg = explorer.attribute("input_x_gradient", model, x, torch.tensor([3, 7]))
    assert rel(out.attributions, xg) < 1e-12


def test_refuses_a_gelu_layer_by_name():
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    with pytest.raises(explorer.InputError, match=r"layer '1' is GELU"):
        exact(model, torch.rand(1, 4), 0)


class FunctionalGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.b(F.gelu(self.a(x)))


class SquareGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x) * x  # a product of two path-dependent tensors: quadratic in alpha


def test_refuses_functional_nonlinear_ops_naming_op_and_layer():
    with pytest.raises(explorer.InputError, match=r"gelu .* in layer 'FunctionalGelu'"):
        exact(FunctionalGelu().eval(), torch.rand(1, 4), 0)
    with pytest.raises(explorer.InputError, match=r"mul of two path-dependent tensors"):
        exact(SquareGate().eval(), torch.rand(1, 4), 0)


def test_region_cap_is_reported():
    model = relu_cnn()
    x = torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = torch.zeros_like(x) + 0.2
    regions = int(exact(model, x, 1, baseline=base).info["regions"][0])
    assert regions > 2
    with pytest.raises(RegionCapReached, match=r"max_regions=2 .*raise max_regions"):
        exact(model, x, 1, baseline=base, max_regions=2)
    assert exact(model, x, 1, baseline=base, max_regions=regions).info["regions"][0] == regions


def test_cost_is_an_upper_bound_for_the_budget():
    per = PassTime(1e-3, 1e-3)
    est = estimate("exact_ig", {"max_regions": 100}, (2, 1, 8, 8), per)
    assert not est.exact and est.backward == 200 and "at most" in est.describe()
    assert resolution(torch.float64) < 1e-13


def test_float32_model_is_walked_in_float64():
    model64 = relu_cnn()
    model32 = relu_cnn().float()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 8, 8, generator=gen, dtype=torch.float64)
    base = torch.zeros_like(x) + 0.2
    want = exact(model64, x, 1, baseline=base)
    got = exact(model32, x.float(), 1, baseline=base.float())
    assert got.attributions.dtype == torch.float32
    assert got.info["regions"][0] == want.info["regions"][0]
    assert rel(got.attributions.double(), want.attributions) < 1e-6  # float32 weights, rounding
    assert all(p.dtype == torch.float32 for p in model32.parameters())  # the copy was walked


def test_convergence_map_error_is_against_exact_ig():
    model = relu_cnn()
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    c = explorer.convergence(model, x, 2, steps=(4, 16), rules=("middle", "gauss_legendre"))
    truth = exact(model, x, 2).attributions
    for r, rule in enumerate(c.rules):
        for k, steps in enumerate(c.steps):
            ig = explorer.attribute("integrated_gradients", model, x, 2, steps=steps, rule=rule)
            want = (ig - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)
            torch.testing.assert_close(c.map_error[r, k], want, rtol=1e-9, atol=1e-15)
    assert c.exact_note is None and (c.exact_regions > 1).all()
    assert all(row["map_error"] >= 0 for row in c.rows() if row["rule"] != "x_gradient")


def test_convergence_and_regions_say_why_without_exact_ig():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double().eval()
    x = torch.rand(1, 4, dtype=torch.float64)
    c = explorer.convergence(model, x, 0, steps=(4,), rules=("middle",))
    assert c.map_error is None and "Tanh" in c.exact_note
    from explorer.analyses.integration_path import linear_regions
    (r,) = linear_regions(model, x, 0)
    assert r.boundaries is None and "Tanh" in r.note


def test_path_chart_ticks_the_region_boundaries():
    from explorer.analyses.integration_path import linear_regions
    from explorer.presentation.viz_path import path_chart
    model = relu_cnn()
    x = torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (r,) = linear_regions(model, x, 1)
    assert r.count == len(r.boundaries) + 1 > 2
    fig = path_chart(torch.linspace(0.1, 1, 10).numpy(), torch.ones(10).numpy(),
                     torch.ones(10).numpy(), 0.0, boundaries=r.boundaries.numpy())
    ticks = [t for t in fig.data if t.name.startswith("region boundaries")]
    assert len(ticks) == 1 and len(ticks[0].x) == len(r.boundaries)
    assert f"({r.count:,} linear regions)" in ticks[0].name


def test_integrated_gradients_rule_exact_is_exact_ig():
    """DESIGN.md's name, integrated_gradients(rule="exact"), is the same walk: map and info."""
    model = relu_cnn()
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    base = torch.zeros_like(x) + 0.1
    want = exact(model, x, torch.tensor([0, 4]), baseline=base)
    got = explorer.explain("integrated_gradients", model, x, torch.tensor([0, 4]),
                           baseline=base, rule="exact")
    assert rel(got.attributions, want.attributions) < 1e-12
    assert got.info["regions"].tolist() == want.info["regions"].tolist()
    assert (got.info["regions"] > 2).all()
    assert got.info["completeness_error"].max() < 1e-12
    gelu = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    with pytest.raises(explorer.InputError, match=r"rule='exact'.*GELU"):
        explorer.explain("integrated_gradients", gelu, torch.rand(1, 4), 0, rule="exact")
    with pytest.raises(explorer.InputError, match="tolerance"):
        explorer.explain("integrated_gradients", model, x, 0, rule="exact", tolerance=0.01)
    est = estimate("integrated_gradients", {"rule": "exact"}, (1, 2, 8, 8), PassTime(1e-3, 1e-3))
    assert not est.exact and est.backward == 16384
