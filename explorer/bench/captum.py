"""Section "captum": each method Captum shares, ours and Captum's at equal settings, interleaved
in one run, with the largest difference between the two maps. Captum is imported here only."""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from explorer.bench.common import background, batch, compare_settings, load
from explorer.methods import method_label
from explorer.methods.cam import find_layer
from explorer.presentation.report import Run, comparison_rows, method_call
from explorer.runtime.timing import Call, compare


def pairs(cfg, model, x, target, bg) -> list[tuple[Run, Callable[[], torch.Tensor], str]]:
    """(our run, Captum's call, what may differ) at equal settings."""
    from captum import attr as ca
    bs = 64
    steps = 4 if cfg.quick else 32
    samples = 2 if cfg.quick else 16
    side = x.shape[-1]
    window = side // 2 if cfg.quick else (4 if side <= 32 else side // 14)
    stride = window if cfg.quick or side > 32 else 2
    c = x.shape[1]
    flat = x.flatten(1)
    sigma = float(0.15 * (flat.max(1).values - flat.min(1).values)[0])  # ours: relative to range
    layer_name, layer = find_layer(model, "")
    zeros = torch.zeros_like(x)
    # Equal settings means the same rows per forward pass. Captum's NoiseTunnel and Occlusion
    # batch per input (nt_samples_batch_size / perturbations_per_eval x the inputs) and
    # GradientShap runs all its draws at once, while our batch_size counts (input, point) rows:
    # give ours the rows Captum sends. (Before, ours ran 1/N of Captum's rows per pass at batch
    # N, which on a GPU is where SmoothGrad, EG and occlusion lost.)
    n = x.shape[0]
    rows = {"smoothgrad": min(4096, n * min(samples, bs)), "occlusion": min(4096, n * bs),
            "expected_gradients": min(4096, n * samples)}

    def grad_cam():
        cam = ca.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
        return ca.LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")

    return [
        (Run("saliency"), lambda: ca.Saliency(model).attribute(x, target=target, abs=True), ""),
        (Run("input_x_gradient"), lambda: ca.InputXGradient(model).attribute(x, target=target), ""),
        (Run("integrated_gradients", {"steps": steps, "batch_size": bs},
             name=f"Integrated Gradients ({steps} steps)"),
         lambda: ca.IntegratedGradients(model).attribute(
             x, baselines=zeros, target=target, n_steps=steps, method="gausslegendre",
             internal_batch_size=bs), ""),
        (Run("expected_gradients", {"samples": samples, "batch_size": rows["expected_gradients"]}, bg,
             name=f"Expected Gradients ({samples} samples)"),
         lambda: ca.GradientShap(model).attribute(x, baselines=bg, target=target,
                                                  n_samples=samples, stdevs=0.0),
         "random draws differ (GradientShap's own generator)"),
        (Run("smoothgrad", {"samples": samples, "noise": 0.15, "batch_size": rows["smoothgrad"]}),
         lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(
             x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=bs,
             stdevs=sigma, target=target, abs=False),
         "random noise differs (Captum draws its own)"),
        (Run("occlusion", {"window": window, "stride": stride, "batch_size": rows["occlusion"]}),
         lambda: ca.Occlusion(model).attribute(
             x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
             baselines=0.0, target=target, perturbations_per_eval=bs), ""),
        (Run("deeplift"), lambda: ca.DeepLift(model).attribute(x, baselines=zeros, target=target),
         "Captum's max-pool rule differs (it misses completeness)"),
        (Run("epsilon_lrp"), lambda: ca.LRP(model).attribute(x, target=target),
         "where the maps differ Captum's rules compute something else (a residual sum in "
         "forward(), a module called twice): the time ratio is then not like for like"),
        (Run("grad_cam", {"layer": layer_name}), grad_cam, "ours: the CAM spread over channels"),
    ]


def max_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest |ours - theirs| relative to the largest |theirs| (channels summed for Grad-CAM)."""
    ours, theirs = ours.detach(), theirs.detach()
    if theirs.shape != ours.shape:
        ours = ours.sum(1, keepdim=True)
    theirs = theirs.to(ours.dtype)
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))


def run(cfg) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns on every call that it set requires_grad
        return _run(cfg)


def _run(cfg) -> dict:
    entry = load(cfg, False)
    model = entry.module
    x, target = batch(cfg, entry)
    bg = background(cfg, entry, x)
    calls, keys, compared, failed = [], {}, [], {}
    for ours, theirs, caveat in pairs(cfg, model, x, target, bg):
        label = ours.name or method_label(ours.method)
        ours_call = method_call(model, x, target, ours)
        try:
            diff = max_difference(ours_call().attributions, theirs())
        except Exception as err:  # Captum's rules do not cover every layer (e.g. LRP on Flatten)
            failed[label] = f"{type(err).__name__}: {err}"[:300]
            continue
        calls += [Call(f"ours: {label}", ours_call, model, x.shape[0]),
                  Call(f"Captum: {label}", theirs, model, x.shape[0])]
        keys[f"ours: {label}"] = (ours.method, False, f"ours: {label}")
        keys[f"Captum: {label}"] = (ours.method, False, f"Captum: {label}")
        compared.append({"method": label, "max_rel_difference": diff, "caveat": caveat})
    comparison = compare(calls, device=x.device, **compare_settings(cfg, "captum"))
    rows = comparison_rows(comparison, keys, str(x.device))
    for c in compared:
        o, t = comparison.rows[f"ours: {c['method']}"], comparison.rows[f"Captum: {c['method']}"]
        c.update(ours_ms=o.median_s * 1e3, captum_ms=t.median_s * 1e3,
                 captum_over_ours=t.median_s / o.median_s,
                 ours_passes=o.forward_passes, captum_passes=t.forward_passes,
                 verdict=comparison.verdict(o.name, t.name))
    return {"model": entry.title, "input": list(x.shape), "rows": rows, "pairs": compared,
            "captum_failed": failed}
