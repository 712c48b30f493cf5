"""Guided IG, Blur IG and IDGI on the bundled digits CNN: agreement with PAIR's `saliency`
package (the oracle; a dev dependency, never used at run time) and completeness against steps.

    python -m benchmarks.bench_path_methods [--digits 4] [--skip-oracle]

For the first ``--digits`` bundled test digits (target: the label), on the regular digits-cnn:
- Pearson correlation and max |ours - oracle| / max |oracle| per digit (worst over digits), at the
  reference's default settings, ours in float64 (the oracle's precision) and in float32 (what
  the app computes);
- the relative completeness error |sum - (F(x) - F(P_0))| / |F(x) - F(P_0)| (median and max over
  digits) against steps, P_0 being each method's reference (a zero or a uniform-noise baseline;
  the blurred digit).
"""
from __future__ import annotations

import argparse
import copy
import platform

import numpy as np
import torch

import explorer
from explorer.inputs.data import sample_digits

GUIDED_SETTINGS = ({"fraction": 0.25, "max_dist": 0.02}, {"fraction": 0.5, "max_dist": 1.0})


def _quantile_shim():
    """saliency 0.2.1 calls np.quantile(interpolation=...), removed in numpy 2 (now method=)."""
    real = np.quantile

    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs["method"] = interpolation
        return real(a, q, *args, **kwargs)
    np.quantile = quantile


def oracle_call(model, target, channels_last=False):
    """saliency's call_model_function: dF_target/dx for a numpy batch (HWC with channels_last)."""
    import saliency.core as saliency

    def call(batch, call_model_args=None, expected_keys=None):
        arr = np.transpose(batch, (0, 3, 1, 2)) if channels_last else batch
        t = torch.tensor(np.ascontiguousarray(arr), dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(model(t)[:, target].sum(), t)
        g = g.numpy()
        return {saliency.INPUT_OUTPUT_GRADIENTS: g.transpose(0, 2, 3, 1) if channels_last else g}
    return call


def agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(Pearson correlation, max |difference| / max |reference|)."""
    a, b = ours.ravel(), ref.ravel()
    return float(np.corrcoef(a, b)[0, 1]), float(np.abs(a - b).max() / np.abs(b).max())


def oracle_rows(model32, x, labels):
    import saliency.core as saliency
    _quantile_shim()
    model64 = copy.deepcopy(model32).double()
    x64 = x.double()
    rows = []
    for settings in GUIDED_SETTINGS:
        refs = [saliency.GuidedIG().GetMask(x64[i].numpy(), oracle_call(model64, int(labels[i])),
                                            x_steps=200, **settings) for i in range(len(x))]
        for name, m, xx in (("float64", model64, x64), ("float32", model32, x)):
            ours = explorer.attribute("guided_ig", m, xx, labels, steps=200, **settings)
            stats = [agreement(ours[i].double().numpy(), refs[i]) for i in range(len(x))]
            rows.append((f"guided_ig steps=200 {settings}", name, stats))
    refs = [saliency.BlurIG().GetMask(x64[i].numpy().transpose(1, 2, 0),
                                      oracle_call(model64, int(labels[i]), channels_last=True),
                                      max_sigma=50, steps=100, grad_step=0.01,
                                      batch_size=100).transpose(2, 0, 1) for i in range(len(x))]
    for name, m, xx in (("float64", model64, x64), ("float32", model32, x)):
        ours = explorer.attribute("blur_ig", m, xx, labels, steps=100, max_sigma=50.0,
                                  grad_step=0.01)
        stats = [agreement(ours[i].double().numpy(), refs[i]) for i in range(len(x))]
        rows.append(("blur_ig steps=100 max_sigma=50 grad_step=0.01", name, stats))
    return rows


def completeness_rows(model, x, labels):
    model64 = copy.deepcopy(model).double()
    x64 = x.double()
    rows = []
    # Zero baseline: most digit pixels equal it and never move. Uniform noise: every pixel moves.
    noise = torch.rand(x64.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cases = [("guided_ig", {}, None), ("guided_ig", {"max_dist": 1.0, "fraction": 0.5}, None),
             ("guided_ig", {}, noise), ("guided_ig", {"max_dist": 1.0, "fraction": 0.5}, noise),
             ("integrated_gradients", {"rule": "left"}, None),
             ("integrated_gradients", {"rule": "left"}, noise),
             ("blur_ig", {}, None), ("idgi", {"base": "integrated_gradients"}, None),
             ("idgi", {"base": "guided_ig"}, noise), ("idgi", {"base": "blur_ig"}, None)]
    for method, kw, baseline in cases:
        errors = []
        for steps in (16, 64, 256):
            e = explorer.explain(method, model64, x64, labels, baseline=baseline, steps=steps,
                                 **kw)
            refs = e.references
            rep = explorer.completeness(model64, x64, e.attributions, labels, refs)
            errors.append((steps, float(rep.rel_error.median()), float(rep.rel_error.max())))
        rows.append((method, dict(kw, baseline="zero" if baseline is None else "noise")
                     if method != "blur_ig" and kw.get("base") != "blur_ig" else kw, errors))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--skip-oracle", action="store_true",
                        help="only the completeness table (the oracle loops take minutes)")
    args = parser.parse_args(argv)
    entry = explorer.load_model("digits-cnn")
    d = sample_digits()
    x = torch.from_numpy(d["clean"][:args.digits]).float() / 255
    labels = torch.from_numpy(d["labels"][:args.digits])
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; digits-cnn (trained: {entry.trained}), "
          f"{args.digits} bundled test digits")
    print("\nagreement with saliency (worst over digits): correlation, max rel difference")
    for name, dtype, stats in ([] if args.skip_oracle else oracle_rows(entry.module, x, labels)):
        corr = min(s[0] for s in stats)
        diff = max(s[1] for s in stats)
        print(f"  {name:58s} ours {dtype}: corr {corr:.6f}  max rel diff {diff:.2e}")
    print("\nrelative completeness error against steps, float64 (median / max over digits)")
    for method, kw, errors in completeness_rows(entry.module, x, labels):
        cells = "  ".join(f"{s:4d}: {med:.1e} / {mx:.1e}" for s, med, mx in errors)
        print(f"  {method:20s} {str(kw):62s} {cells}", flush=True)


if __name__ == "__main__":
    main()
