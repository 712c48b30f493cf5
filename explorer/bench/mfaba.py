"""Section "mfaba": MFABA against IG at the MFABA paper's settings, in images per second.

The paper (Zhu et al. 2024) reports 51.6 (MFABA) vs 6.8 (IG) images/s on ImageNet ResNet-50 on a
GPU. Here: MFABA "smooth", at most 50 steps, against IG with 50 Gauss-Legendre steps from zero,
on the configured model and batch, interleaved.
"""
from __future__ import annotations

from explorer.bench.common import batch, compare_settings, load
from explorer.presentation.report import Run, time_methods

PAPER = {"mfaba_images_per_s": 51.58, "ig_images_per_s": 6.76,
         "where": "ImageNet ResNet-50, GPU (Zhu et al. 2024, Table of throughput)"}


def run(cfg) -> dict:
    entry = load(cfg, False)
    x, target = batch(cfg, entry)
    steps = 3 if cfg.quick else 50
    rows = time_methods({False: entry.module},
                        [Run("mfaba", {"variant": "smooth", "steps": steps}),
                         Run("integrated_gradients", {"steps": steps},
                             name=f"Integrated Gradients ({steps} steps)")],
                        x, target, **compare_settings(cfg, "mfaba"))
    n = x.shape[0]
    for r in rows:
        r["images_per_s"] = n / (r["median_ms"] / 1e3)
    return {"model": entry.title, "input": list(x.shape), "rows": rows, "paper": PAPER}
