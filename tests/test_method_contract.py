"""The shared contract, checked for every registered method (see explorer/methods/registry.py)."""
import pytest
import torch

import explorer
from explorer.methods.registry import COMPLETENESS
from explorer.runtime.timing import count_passes
from helpers import hook_count, images, small_bcos_cnn, small_cnn, tiny_vit

ALL = sorted(explorer.METHODS)
# Small settings keep the whole registry fast on 2 cores.
FAST = {"integrated_gradients": {"steps": 8}, "expected_gradients": {"samples": 8},
        "smoothgrad": {"samples": 6}, "occlusion": {"window": 4, "stride": 4},
        "mfaba": {"steps": 5, "variant": "sharp"},
        "guided_ig": {"steps": 4}, "blur_ig": {"steps": 8, "max_sigma": 4.0}, "idgi": {"steps": 8},
        # In the model's own dtype, so that count_passes sees the walk (float64 walks a copy)
        "exact_ig": {"float64": False}}


def run(method, model, x, target, **extra):
    spec = explorer.METHODS[method]
    background = torch.rand(4, *x.shape[1:], generator=torch.Generator().manual_seed(7)) * 0.2
    baseline = background if method == "expected_gradients" else None
    if spec.uses_baseline and method != "expected_gradients":
        baseline = torch.full_like(x[:1], 0.1)
    return explorer.attribute(method, model, x, target, baseline=baseline,
                              **{**FAST.get(method, {}), **extra})


@pytest.fixture(scope="module")
def cnn():
    return small_cnn()


@pytest.fixture(scope="module")
def bcos_cnn():
    return small_bcos_cnn()


@pytest.fixture(scope="module")
def vit():
    return tiny_vit()


@pytest.fixture
def model(request, cnn, bcos_cnn, vit):
    """The small CNN, or for a method that does not apply to it the first model that it does
    apply to (a small B-cos CNN for B-cos contribution, a tiny ViT for attention rollout):
    every method meets the contract on a model it applies to."""
    method = getattr(request.node, "callspec", None) and request.node.callspec.params.get("method")
    if method is None:
        return cnn
    for candidate in (cnn, bcos_cnn, vit):
        if explorer.METHODS[method].applicability(candidate) is None:
            return candidate
    raise AssertionError(f"{method} applies to no fixture model: add one it applies to")


@pytest.mark.parametrize("method", ALL)
def test_registry_metadata_is_complete(method):
    spec = explorer.METHODS[method]
    assert spec.name == method and spec.label and spec.description
    assert spec.completeness in COMPLETENESS
    for p in spec.params:
        assert p.validate(p.default, method) == p.default
    cost = spec.cost(spec.defaults(), (1, 3, 16, 16))
    assert cost.forward >= 1 and cost.backward >= 0


@pytest.mark.parametrize("method", ALL)
def test_shape_dtype_device_finite(method, model):
    x = images(3)
    a = run(method, model, x, torch.tensor([0, 2, 4]))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert not a.requires_grad
    assert torch.isfinite(a).all()
    assert a.abs().sum() > 0


@pytest.mark.parametrize("method", ALL)
def test_batch_independence(method, model):
    x = images(3)
    target = torch.tensor([1, 3, 0])
    together = run(method, model, x, target)
    for i in range(3):
        alone = run(method, model, x[i:i + 1], int(target[i]))
        torch.testing.assert_close(together[i:i + 1], alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ALL)
def test_model_left_untouched(method, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = hook_count(model)
    run(method, model, images(2), 1)
    assert not model.training
    model.train()
    with pytest.raises(explorer.InputError, match="training mode"):
        run(method, model, images(2), 1)
    assert model.training
    model.eval()
    assert hook_count(model) == hooks
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("method", ALL)
def test_deterministic(method, model):
    x = images(2)
    torch.testing.assert_close(run(method, model, x, 2), run(method, model, x, 2), rtol=0, atol=0)


@pytest.mark.parametrize("method", [m for m in ALL if explorer.METHODS[m].stochastic])
def test_seed_changes_the_draws(method, model):
    x = images(1)
    assert not torch.equal(run(method, model, x, 2, seed=1), run(method, model, x, 2, seed=2))


@pytest.mark.parametrize("method", ALL)
def test_cost_model_counts_real_passes(method, model):
    x = images(2)
    spec = explorer.METHODS[method]
    # Exact IG's layered split calls the layers one by one, never the model, so the passes
    # are counted on its probe walk (the bound both algorithms share).
    extra = {"algorithm": "walk"} if method == "exact_ig" else {}
    params = {**spec.defaults(), **FAST.get(method, {}), **extra}
    with count_passes(model) as counted:
        run(method, model, x, 0, **extra)
    cost = spec.cost(params, tuple(x.shape))
    if spec.is_cost_exact(params):
        assert counted.forward / 2 == cost.forward
        assert counted.backward / 2 == cost.backward
    else:  # early stopping: the cost model is an upper bound
        assert 0 < counted.forward / 2 <= cost.forward
        assert 0 < counted.backward / 2 <= cost.backward


@pytest.mark.parametrize("method", [m for m in ALL if "batch_size" in
                                    {p.name for p in explorer.METHODS[m].params}])
def test_batch_size_does_not_change_the_result(method, model):
    x = images(2)
    torch.testing.assert_close(run(method, model, x, 1, batch_size=3),
                               run(method, model, x, 1, batch_size=1000), rtol=1e-5, atol=1e-6)


def test_a_method_that_does_not_apply_says_why_before_running(cnn):
    """``applies_to`` refuses with the method's own reason, and nothing runs."""
    from explorer.methods.registry import METHODS, MethodOutput, register_method
    calls = []

    @register_method("_needs_linear_only", label="Needs Linear", description="test only",
                     applies_to=lambda m: None if all(
                         isinstance(c, (torch.nn.Linear, torch.nn.Flatten))
                         for c in m.modules() if c is not m)
                     else "it needs a network of Linear layers only")
    def _fn(model, x, target, *, baseline=None):
        calls.append(1)
        return MethodOutput(torch.zeros_like(x))

    try:
        with pytest.raises(explorer.InputError, match="Linear layers only"):
            explorer.attribute("_needs_linear_only", cnn, images(1), 0)
        assert calls == []
        linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4)).eval()
        assert METHODS["_needs_linear_only"].applicability(linear) is None
    finally:
        del METHODS["_needs_linear_only"]
