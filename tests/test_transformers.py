"""Vision transformers, honestly: attention rollout against an independent computation, Grad-CAM
on the token grid, the homogeneity obstacles by name, and a random-weight
timm/vit_tiny_patch16_224 through every registered method."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import explorer
from explorer.methods.attention import rollout_tokens
from explorer.analyses.checks import run_checked
from helpers import small_cnn, tiny_vit


def softmax_attention_by_hooks(model, x) -> list[np.ndarray]:
    """Each block's attention probabilities [N, heads, T, T], taken where timm's own unfused
    forward applies them (the input of attn_drop): an independent path to the same numbers."""
    model = copy.deepcopy(model)
    captured = []
    for block in model.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(
            lambda m, args, out: captured.append(args[0].detach().double().numpy()))
    with torch.no_grad():
        model(x)
    return captured


def rollout_reference(attentions: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema, written out: per sample, R = prod_l normalise(mean_heads(A_l) + I)."""
    n, _, t, _ = attentions[0].shape
    out = np.empty((n, t, t))
    for i in range(n):
        rolled = np.eye(t)
        for a in attentions:
            hat = a[i].mean(0) + np.eye(t)
            hat = hat / hat.sum(1, keepdims=True)
            rolled = hat @ rolled
        out[i] = rolled
    return out


def test_attention_rollout_matches_an_independent_computation():
    model = tiny_vit(seed=2)
    x = torch.randn(3, 3, 16, 16)
    reference = rollout_reference(softmax_attention_by_hooks(model, x))
    cls_row = reference[:, 0, 1:].reshape(3, 4, 4)  # one class token, a 4 x 4 patch grid
    tokens = rollout_tokens(model, x).double().numpy()
    np.testing.assert_allclose(tokens, cls_row, rtol=1e-5, atol=1e-7)
    assert abs(reference[0].sum(1) - 1).max() < 1e-9  # rows of a product of stochastic matrices
    a = explorer.attribute("attention_rollout", model, x, 0)
    upsampled = F.interpolate(torch.from_numpy(cls_row)[:, None], size=(16, 16),
                              mode="bilinear", align_corners=False) / 3
    torch.testing.assert_close(a, upsampled.float().expand(3, 3, 16, 16), rtol=1e-5, atol=1e-7)
    # The map does not depend on the class explained: attention does not know the target.
    torch.testing.assert_close(explorer.attribute("attention_rollout", model, x, 4), a)


def test_attention_rollout_refuses_cnns_with_its_reason():
    with pytest.raises(explorer.InputError, match="needs a vision transformer with a class token"):
        explorer.attribute("attention_rollout", small_cnn(), torch.rand(1, 3, 16, 16), 0)


def test_grad_cam_on_the_token_grid_by_hand():
    model = tiny_vit(seed=4)
    x = torch.randn(2, 3, 16, 16)
    target = torch.tensor([1, 3])
    layer = model.blocks[-1].norm1
    saved = {}
    handle = layer.register_forward_hook(lambda m, a, out: saved.setdefault("t", out))
    xx = x.clone().requires_grad_(True)
    logits = model(xx)
    handle.remove()
    tokens = saved["t"]
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), tokens)
    acts = tokens[:, 1:].reshape(2, 4, 4, -1)  # patch tokens, row-major on the grid
    weights = grad[:, 1:].reshape(2, 4, 4, -1).mean((1, 2), keepdim=True)
    cam = F.relu((weights * acts).sum(-1))[:, None].detach()
    expected = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False) / 3
    a = explorer.attribute("grad_cam", model, x, target)
    torch.testing.assert_close(a, expected.expand(2, 3, 16, 16), rtol=1e-4, atol=1e-6)
    assert a.abs().sum() > 0


def test_obstacles_name_layernorm_gelu_attention_and_learned_tokens():
    model = tiny_vit()
    found = {(o.layer, o.type) for o in explorer.homogeneity_obstacles(model)}
    for block in ("blocks.0", "blocks.1"):
        assert (f"{block}.norm1", "LayerNorm") in found and (f"{block}.norm2", "LayerNorm") in found
        assert (f"{block}.mlp.act", "GELU") in found and (f"{block}.attn", "Attention") in found
    reasons = {o.layer: o.reason for o in explorer.homogeneity_obstacles(model)}
    assert "softmax attention" in reasons["blocks.0.attn"]
    assert "pos_embed" in reasons["(model)"] and "cls_token" in reasons["(model)"]
    free = explorer.remove_biases(model)
    left = {(o.layer, o.type) for o in explorer.homogeneity_obstacles(free)}
    assert ("blocks.1.attn", "Attention") in left and ("blocks.0.mlp.act", "GELU") in left
    assert not explorer.is_bias_free(free)  # the learned tokens and position embedding stay


def test_x_gradient_is_not_complete_on_a_bias_free_vit():
    free = explorer.remove_biases(tiny_vit(seed=1))
    x = torch.randn(1, 3, 16, 16)
    r = run_checked("input_x_gradient", free, x, 2, bias_free=True)
    row = r.completeness.rows()[0]
    assert row["rel_error"] > 1e-3  # measured, never assumed: the table says NOT complete
    assert explorer.homogeneity_error(free, x) > 1e-3


# Small settings: the whole registry on a 224 px ViT stays fast on 2 cores.
# Modified-gradient rules exist for linear and elementwise layers only.
REFUSED = {"deeplift": "no modified-gradient rule for LayerNorm",
           "epsilon_lrp": "no modified-gradient rule for LayerNorm"}
SMALL = {"steps": 2, "samples": 2, "window": 112, "stride": 112, "batch_size": 8}


@pytest.fixture(scope="module")
def vit224():
    return explorer.load_model("timm/vit_tiny_patch16_224", pretrained=False, device="cpu")


def test_timm_models_load_by_name_with_random_weights_labelled_untrained(vit224):
    assert not vit224.trained and vit224.title.endswith("[untrained]")
    assert vit224.spec.size == 224 and len(vit224.labels) == 1000
    assert vit224.input_space == explorer.InputSpace((0.5,) * 3, (0.5,) * 3)  # timm's config
    with pytest.raises(explorer.WeightsUnavailable, match="EXPLORER_OFFLINE"):
        explorer.load_model("timm/vit_tiny_patch16_224", device="cpu")
    for name in ("timm/convnext_atto", "timm/resnet18"):
        entry = explorer.load_model(name, pretrained=False, device="cpu")
        x = torch.rand(1, 3, 224, 224)
        assert entry.module(x).shape == (1, 1000) and not entry.trained
    free = explorer.load_model("timm/resnet18", pretrained=False, bias_free=True, device="cpu")
    assert explorer.homogeneity_obstacles(free.module) == []  # BN folded, biases gone


@pytest.mark.parametrize("method", sorted(explorer.METHODS))
def test_every_method_on_a_random_vit_tiny(method, vit224):
    spec = explorer.METHODS[method]
    x = vit224.preprocess(np.full((224, 224, 3), 120, np.uint8))[None]
    params = {p.name: SMALL[p.name] for p in spec.params if p.name in SMALL}
    baseline = None
    if method == "expected_gradients":
        baseline = torch.zeros(2, 3, 224, 224)
    try:
        a = explorer.attribute(method, vit224.module, x, 7, baseline=baseline, **params)
    except explorer.InputError as err:  # a clear refusal: the method's reason, or the layer's
        reason = spec.applicability(vit224.module)
        assert (reason is not None and reason in str(err)) or (
            method in REFUSED and REFUSED[method] in str(err)), str(err)
        return
    assert method not in REFUSED
    assert a.shape == x.shape and torch.isfinite(a).all()
