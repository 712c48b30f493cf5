"""The axiom lab: each check flags a known violation and passes a known good case."""
import math

import pytest
import torch

import explorer
from explorer import axiom_networks as nets
from explorer import axioms
from explorer.data import sample_digits
from helpers import images, small_cnn


@pytest.fixture(scope="module")
def digits():
    x = torch.from_numpy(sample_digits()["clean"][:2]).float() / 255
    models = {v: explorer.load_model("digits-cnn", bias_free=v == "bias-free", device="cpu").module
              for v in ("regular", "bias-free")}
    return models, x


def method(name, **hparams):
    return axioms.method_attributor(name, hparams, small=True)


def test_completeness_saliency_fails_x_gradient_passes_on_bias_free(digits):
    models, x = digits
    sal = axioms.check_completeness(method("saliency"), models["regular"], x, 3)
    assert sal.holds is False and sal.value > 0.5 and "promises no completeness" in sal.explanation
    xg = axioms.check_completeness(method("input_x_gradient"), models["bias-free"], x, 3,
                                   promise="homogeneous")
    assert xg.holds is True and xg.value < 1e-5
    # The same rule on the regular twin: its biases take a share of F(x) - F(0).
    ixg = axioms.check_completeness(method("input_x_gradient"), models["regular"], x, 3,
                                    promise="homogeneous")
    assert ixg.holds is False and ixg.value > 1e-3


def test_sensitivity_on_a_saturated_unit():
    case = nets.saturating_unit()
    # The network itself: 1 - ReLU(1 - x) is 0 at 0 and 1 at 2, flat beyond 1.
    out = case.model(torch.tensor([[0.0], [0.5], [2.0], [5.0]])).detach().flatten()
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    grad = axioms.check_sensitivity_constructed(method("gradient"))
    assert grad.holds is False and grad.value == 0.0
    ig = axioms.check_sensitivity_constructed(method("integrated_gradients", steps=64))
    assert ig.holds is True and abs(ig.value - 1.0) < 0.05   # IG sums to F(2) - F(0) = 1
    dl = axioms.check_sensitivity_constructed(method("deeplift"))
    assert dl.holds is True and abs(dl.value - 1.0) < 1e-6   # (0 - 1) / (-1 - 1) * (-1) * 2
    # The same violation found by the current-model check when that model is the unit.
    on_model = axioms.check_sensitivity(method("gradient"), case.model, case.x, 0, case.baseline)
    assert on_model.holds is False
    assert axioms.check_sensitivity(method("occlusion"), case.model, case.x, 0,
                                    case.baseline).holds is True


def test_sensitivity_has_nothing_to_test_when_x_is_the_baseline():
    model = small_cnn()
    x = images(1)
    r = axioms.check_sensitivity(method("gradient"), model, x, 0, x)
    assert r.holds is None and math.isnan(r.value) and "nothing to test" in r.explanation


def test_sensitivity_on_the_digits_model_holds_for_ig(digits):
    models, x = digits
    r = axioms.check_sensitivity(method("integrated_gradients", steps=16), models["regular"], x, 3)
    assert r.holds is True and r.measured_on == axioms.CURRENT
    assert 0.8 < r.value < 1.2   # one feature moved: IG gives it about the whole change


def test_deeplift_differs_on_the_classic_pair_while_ig_agrees():
    f, g = nets.relu_pair()
    grid = torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) * 8 - 4
    torch.testing.assert_close(f.model(grid), g.model(grid))   # one function, two networks
    dl = axioms.check_invariance_relu_pair(method("deeplift"))
    # Sundararajan et al.: (1.5, -0.5) against (2, -1); largest gap 0.5 of the largest value 2.
    assert dl.holds is False and dl.value == pytest.approx(0.25, rel=1e-5)
    assert "(1.5, -0.5)" in dl.explanation and "(2, -1)" in dl.explanation
    for name in ("integrated_gradients", "gradient", "input_x_gradient", "epsilon_lrp"):
        assert axioms.check_invariance_relu_pair(method(name)).holds is True, name


def test_epsilon_lrp_differs_on_the_sigmoid_pair():
    a, b = nets.sigmoid_pair()
    grid = torch.linspace(-6, 6, 101)[:, None]
    torch.testing.assert_close(a.model(grid), b.model(grid))
    lrp = axioms.check_invariance_sigmoid_pair(method("epsilon_lrp"))
    s = torch.sigmoid(torch.tensor(2.0))   # LRP: sigmoid(2) against sigmoid(2) - 0.5
    assert lrp.holds is False and lrp.value == pytest.approx(float(0.5 / s), rel=1e-4)
    for name in ("deeplift", "integrated_gradients", "input_x_gradient"):
        assert axioms.check_invariance_sigmoid_pair(method(name)).holds is True, name


def test_rescaled_twin_computes_the_same_function_with_other_weights(digits):
    models, x = digits
    twin, how = nets.rescaled_twin(models["regular"], x, scale=3.0)
    assert "x 3" in how
    torch.testing.assert_close(twin(x), models["regular"](x), rtol=1e-5, atol=1e-4)
    assert not torch.equal(twin.features[0].weight, models["regular"].features[0].weight)
    good = axioms.check_invariance_on_model(method("integrated_gradients", steps=8),
                                            models["regular"], x, 3)
    assert good.holds is True and good.value < 1e-4

    def weight_scaled(model, x, target, baseline):   # depends on the weights, not the function
        a, _ = method("gradient")(model, x, target, baseline)
        return a * model.features[0].weight.abs().sum(), None
    bad = axioms.check_invariance_on_model(weight_scaled, models["regular"], x, 3)
    assert bad.holds is False and bad.value == pytest.approx(2.0, rel=1e-3)   # 3 - 1 of 1


def test_deeplift_is_invariant_to_rescaling_across_relu_and_max_pool(digits):
    # Regression: the hooks' value trick y + g - g.detach() moved forward values by an ulp,
    # which broke exact ties in the zero reference's max-pool windows differently in the twin
    # (the map moved by 10%). Captum's DeepLift agrees that the twin's map is the same.
    models, x = digits
    r = axioms.check_invariance_on_model(method("deeplift"), models["regular"], x, 3)
    assert r.holds is True and r.value < 1e-5


def test_no_twin_without_two_layers_around_a_relu():
    assert nets.rescaled_twin(torch.nn.Sequential(torch.nn.Linear(3, 2)).eval(),
                              torch.ones(1, 3)) is None


def test_linearity_holds_for_ig_and_fails_for_saliency(digits):
    models, x = digits
    ig = axioms.check_linearity(method("integrated_gradients", steps=8), models["regular"], x, 3)
    assert ig.holds is True and ig.value < 1e-5
    sal = axioms.check_linearity(method("saliency"), models["regular"], x, 3)
    assert sal.holds is False and sal.value > 0.05
    # Independent replica of the saliency case: |g1 - 0.5 g2| against |g1| - 0.5 |g2|.
    net = models["regular"]
    other = net(x).detach().clone()
    other[:, 3] = -math.inf
    g = lambda t: explorer.attribute("gradient", net, x, t)
    t2 = other.argmax(1)
    mixed, split = (g(3) - 0.5 * g(t2)).abs(), g(3).abs() - 0.5 * g(t2).abs()
    expected = float((mixed - split).abs().max() / (g(3).abs() + 0.5 * g(t2).abs()).max())
    assert sal.value == pytest.approx(expected, rel=1e-4)


def test_symmetry_and_dummy():
    case = nets.symmetric_with_dummy()
    swapped = case.x[:, [1, 0, 2]] * torch.tensor([[1.3, 0.7, 1.0]])
    for probe in (case.x, swapped, swapped[:, [1, 0, 2]]):
        changed = probe.clone()
        changed[:, 2] += 5.0   # x3 changes nothing
        torch.testing.assert_close(case.model(probe), case.model(changed))
    torch.testing.assert_close(case.model(swapped), case.model(swapped[:, [1, 0, 2]]))
    ig = method("integrated_gradients")
    assert axioms.check_symmetry(ig).holds is True and axioms.check_dummy(ig).holds is True
    noisy = axioms.check_symmetry(method("smoothgrad", samples=32))  # noise differs per feature
    assert noisy.holds is False and noisy.value > 1e-3
    input_itself = axioms.check_dummy(lambda model, x, target, baseline: (x.clone(), None))
    assert input_itself.holds is False and input_itself.value == pytest.approx(1.0)


def test_homogeneity_and_its_curves(digits):
    models, x = digits
    assert axioms.check_homogeneity(models["bias-free"], x).holds is True
    assert axioms.check_homogeneity(models["regular"], x).holds is False
    curves = explorer.homogeneity_curves(models, x, 3, scales=(0.0, 0.5, 1.0, 2.0))
    for name, model in models.items():
        f = model(x).detach()[:, 3]
        torch.testing.assert_close(curves.outputs[name][:, 2], f)           # a = 1: F(x)
        torch.testing.assert_close(curves.linear[name][:, 3], 2 * f)        # a F(x) at a = 2
        torch.testing.assert_close(curves.outputs[name][:, 0], model(0 * x).detach()[:, 3])
    free = curves.outputs["bias-free"] - curves.linear["bias-free"]
    assert float(free.abs().max()) < 1e-5 * float(curves.linear["bias-free"].abs().max())
    assert float((curves.outputs["regular"] - curves.linear["regular"]).abs().max()) > 1e-2


def test_unified_view_on_a_small_cnn():
    regular = small_cnn(seed=3)
    models = {"regular": regular, "bias-free": explorer.remove_biases(regular)}
    rows = {(r["pair"].split(" vs ")[0], r["model"]): r
            for r in explorer.unified_view(models, images(1), 2)}
    assert rows[("epsilon-LRP", "regular")]["coincide"] and rows[("epsilon-LRP", "regular")]["applies"]
    assert rows[("DeepLIFT (zero baseline)", "bias-free")]["distance"] < 1e-5
    assert not rows[("DeepLIFT (zero baseline)", "regular")]["applies"]
    assert rows[("DeepLIFT (zero baseline)", "regular")]["distance"] > 1e-3
    assert rows[("Occlusion-1", "regular")]["distance"] < 1e-5
    skipped = explorer.unified_view({"regular": regular}, images(1), 2, max_features=10)
    assert skipped[-1]["coincide"] is None and "skipped" in skipped[-1]["theory"]


def test_unified_view_on_a_vit_leaves_out_what_cannot_run_and_says_why():
    from explorer.axioms import left_out_notes
    from helpers import tiny_vit
    vit = tiny_vit(seed=2, size=8)  # 2 x 2 patches: occlusion-1 stays cheap
    models = {"regular": vit, "bias-free": explorer.remove_biases(vit)}
    for method in ("epsilon_lrp", "deeplift"):  # no rule for LayerNorm: they refuse up front
        assert "LayerNorm" in explorer.METHODS[method].applicability(vit)
        assert explorer.METHODS[method].applicability(small_cnn()) is None
    rows = explorer.unified_view(models, images(1, size=8), 2)
    left = [r for r in rows if r["coincide"] is None]
    assert {(r["pair"].split(" vs ")[0], r["model"]) for r in left} == {
        (p, v) for p in ("epsilon-LRP", "DeepLIFT (zero baseline)") for v in models}
    assert all("no modified-gradient rule for LayerNorm" in r["theory"] for r in left)
    # The rest still computes: occlusion-1 against the output drops, on both models.
    [occ] = [r for r in rows if r["pair"].startswith("Occlusion-1") and r["model"] == "regular"]
    assert occ["coincide"] and occ["distance"] < 1e-5
    notes = left_out_notes(rows)
    assert len(notes) == 2 and all("(regular and bias-free models)" in n for n in notes)
    assert notes[0].startswith("epsilon-LRP vs Input x Gradient") and "LayerNorm" in notes[0]


def test_check_axioms_for_one_method(digits):
    models, x = digits
    results = explorer.check_axioms("input_x_gradient", models["bias-free"], x[:1], 3)
    names = [r.name for r in results]
    assert names[:4] == ["completeness", "sensitivity (a)", "implementation invariance", "linearity"]
    assert {"symmetry-preserving", "dummy", "homogeneity (of the model)"} <= set(names)
    by = {(r.name, r.constructed): r for r in results}
    assert by[("completeness", False)].holds and by[("homogeneity (of the model)", False)].holds
    assert by[("sensitivity (a)", True)].holds is False   # flat gradient at the saturated unit
    assert all(isinstance(r.explanation, str) and r.explanation.endswith(".") for r in results)
    cam = explorer.check_axioms("grad_cam", models["regular"], x[:1], 3)
    assert [r.holds for r in cam if r.constructed] == [None] * 5   # needs images


def test_check_axioms_leaves_the_model_untouched_and_flags_what_cannot_run():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3)).eval()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    x = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    results = explorer.check_axioms("grad_cam", mlp, x, 1)
    assert [r.holds for r in results if not r.constructed][:4] == [None] * 4
    assert "no Conv2d layer" in results[0].explanation
    ok = explorer.check_axioms("gradient", mlp, x, 1)
    assert ok[2].name == "implementation invariance" and ok[2].holds is True
    assert not mlp.training and all(p.grad is None for p in mlp.parameters())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mlp.modules()) == 0
    for k, v in mlp.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("call,match", [
    (lambda m, x: explorer.check_axioms("gradient", m, x, 9), "out of range"),
    (lambda m, x: explorer.check_axioms("gradient", m.train(), x, 0), "training mode"),
    (lambda m, x: explorer.check_axioms("nope", m, x, 0), "unknown method"),
    (lambda m, x: explorer.check_axioms("integrated_gradients", m, x, 0, steps=0), "at least 1"),
    (lambda m, x: explorer.homogeneity_curves({"m": m}, x, 0, scales=(-1.0,)), ">= 0"),
])
def test_bad_input(call, match):
    with pytest.raises(explorer.InputError, match=match):
        call(small_cnn(), images(1))


def test_homogeneity_figure_draws_both_curves_per_variant():
    from explorer import viz
    fig = viz.homogeneity_figure([0.0, 1.0, 2.0], {"regular": [0.5, 2.0, 3.0], "bias-free": [0, 1, 2]},
                                 {"regular": [0.0, 2.0, 4.0], "bias-free": [0, 1, 2]})
    names = [t.name for t in fig.data]
    assert names == ["F(a x), regular", "a F(x), regular", "F(a x), bias-free", "a F(x), bias-free"]
    assert list(fig.data[1].y) == [0.0, 2.0, 4.0] and fig.data[1].line.dash == "dot"
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
