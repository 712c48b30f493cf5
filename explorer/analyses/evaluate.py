"""Judge several methods at once: Sensitivity-n and insertion/deletion over a batch of inputs.

Used by ``python -m explorer evaluate`` (many test digits or a folder of images) and by the
app's Metrics page (the current input). Sensitivity-n removes the features to the same baseline
the methods explain against, as in Ancona et al.; its random subsets are drawn once and shared
by all methods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from explorer.errors import InputError
from explorer.inputs.input_space import PIXELS, InputSpace
from explorer.methods import METHODS, explain, method_label
from explorer.analyses.metrics import (InsertionDeletion, SensitivityN, feature_index, insertion_deletion,
                              sensitivity_n)
from explorer.runtime.precision import under_precision

# The paper's set: saliency, Gradient*Input, IG, DeepLIFT, epsilon-LRP and occlusion of single
# features (occlusion-1).
DEFAULT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "deeplift",
                   "epsilon_lrp", "occlusion")
EVALUATION_PARAMS = {"occlusion": {"window": 1, "stride": 1}}

Stage = Callable[[float, str], None]  # progress(fraction of all work done, what runs now)


def log_grid(features: int, top: float = 0.9) -> list[int]:
    """n = 1, 2, 4, ... up to ``top`` of the features (most of them, as in the paper)."""
    last = max(1, int(top * features))
    grid = [2 ** k for k in range(int(math.log2(last)) + 1)]
    return grid + ([last] if grid[-1] != last else [])


def params_label(method: str, params: Mapping[str, Any], bias_free: bool = False) -> str:
    """The method's display name plus the hyper-parameters that differ from its defaults."""
    defaults = METHODS[method].defaults()
    changed = [f"{k}={v}" for k, v in params.items() if k != "batch_size" and defaults.get(k) != v]
    label = method_label(method, bias_free)
    return f"{label} ({', '.join(changed)})" if changed else label


@dataclass
class MethodScores:
    method: str
    label: str
    params: dict
    attributions: torch.Tensor
    sensitivity: SensitivityN
    insdel: InsertionDeletion


@dataclass
class Evaluation:
    """Every method's scores on one batch, and the settings that produced them."""

    scores: list[MethodScores]
    settings: dict = field(default_factory=dict)

    @property
    def ns(self) -> list[int]:
        return self.scores[0].sensitivity.ns

    def summary_rows(self) -> list[dict]:
        """One row per method: mean (and spread) over the inputs of every metric."""
        return [metrics_row(s.label, s.sensitivity, s.insdel) for s in self.scores]

    def best_at(self) -> dict[int, str]:
        """For each n, the method with the highest mean correlation (NaN never wins)."""
        best = {}
        for k, n in enumerate(self.ns):
            values = [(s.sensitivity.correlation[k], s.label) for s in self.scores
                      if np.isfinite(s.sensitivity.correlation[k])]
            best[n] = max(values)[1] if values else "undefined"
        return best

    def to_json(self) -> dict:
        """Everything needed to redraw the plots: settings, per-input values, mean curves."""
        methods = []
        for s in self.scores:
            sn, idl = s.sensitivity, s.insdel
            methods.append({
                "method": s.method, "label": s.label, "params": s.params,
                "sensitivity_n": {"ns": sn.ns, "mean": _floats(sn.correlation),
                                  "sd": _floats(sn.spread), "undefined": sn.undefined.tolist(),
                                  "per_input": [_floats(r) for r in sn.per_sample]},
                "insertion_deletion": {
                    "fractions": _floats(idl.fractions),
                    "insertion_mean": _floats(idl.insertion.mean(0)),
                    "deletion_mean": _floats(idl.deletion.mean(0)),
                    "insertion_auc": _floats(idl.insertion_auc),
                    "deletion_auc": _floats(idl.deletion_auc)},
            })
        return {"settings": self.settings, "summary": self.summary_rows(),
                "best_at_n": {str(k): v for k, v in self.best_at().items()}, "methods": methods}


def _floats(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float).ravel()]


@under_precision
def evaluate(model: torch.nn.Module, x: torch.Tensor, target, *,
             methods: Mapping[str, Mapping[str, Any]] | Sequence[str] = DEFAULT_METHODS,
             bias_free: bool = False, baseline: torch.Tensor | None = None,
             method_baselines: Mapping[str, torch.Tensor | None] | None = None,
             ns: Sequence[int] | None = None, subsets: int = 100, block: int = 1, seed: int = 0,
             steps: int = 50, fill: str = "blur", score: str = "logit",
             input_space: InputSpace = PIXELS, batch_size: int | None = None,
             progress: Stage | None = None) -> Evaluation:
    """Explain ``x`` with each method, then score every map by Sensitivity-n and insertion/deletion.

    ``methods``: names (each with ``EVALUATION_PARAMS`` or the registry's defaults) or a dict
    name -> hyper-parameters. ``batch_size`` (None: 256 for small inputs, 32 for photos) bounds
    the inputs per model call, of the metrics and of methods that take one. ``baseline`` (None:
    zeros) is what the methods integrate from and what Sensitivity-n removes features to;
    ``method_baselines`` overrides what a method gets (e.g. expected gradients' background
    set). ``ns`` defaults to ``log_grid`` of the features.
    """
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, Mapping):
        methods = {m: dict(EVALUATION_PARAMS.get(m, {})) for m in methods}
    if not methods:
        raise InputError("choose at least one method to evaluate")
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method {m!r}; choose from {sorted(METHODS)}")
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise InputError("x must be a batch [N, ...]")
    ns = list(ns) if ns is not None else log_grid(feature_index(x.shape[1:], block)[1])
    if batch_size is None:  # perturbed copies of a 224x224 photo through a ResNet: keep it small
        batch_size = 256 if x[0].numel() <= 64 * 64 * 3 else 32
    stages = len(methods) + 2
    report = progress or (lambda fraction, text: None)

    def within(stage: int, text: str):
        return lambda done, total: report((stage + done / max(total, 1)) / stages, text)

    maps, labels, params = {}, {}, {}
    for k, (m, hp) in enumerate(methods.items()):
        labels[m] = params_label(m, METHODS[m].resolve(hp), bias_free)
        report(k / stages, f"Explaining with {labels[m]}")
        base = baseline if METHODS[m].uses_baseline else None
        base = (method_baselines or {}).get(m, base)
        if any(p.name == "batch_size" for p in METHODS[m].params):
            hp = {"batch_size": batch_size, **hp}
        e = explain(m, model, x, target, baseline=base, **hp)
        maps[m], params[m] = e.attributions, e.params
    k = len(methods)
    sens = sensitivity_n(model, x, maps, target, ns=ns, subsets=subsets, baseline=baseline,
                         block=block, seed=seed, batch_size=batch_size,
                         progress=within(k, "Sensitivity-n"))
    curves = insertion_deletion(model, x, maps, target, steps=steps, fill=fill, score=score,
                                baseline=baseline, block=block, input_space=input_space,
                                batch_size=batch_size, progress=within(k + 1, "Insertion/deletion"))
    report(1.0, "Done")
    scores = [MethodScores(m, labels[m], params[m], maps[m], sens[m], curves[m]) for m in methods]
    settings = {"inputs": int(x.shape[0]), "ns": ns, "subsets": subsets, "block": block,
                "seed": seed, "steps": steps, "fill": fill, "score": score,
                "bias_free": bias_free}
    return Evaluation(scores, settings)


def metrics_row(label: str, sensitivity, insdel) -> dict:
    """One faithfulness row: mean and sd over the inputs of Sensitivity-n at every n and of both
    areas (``explorer.analyses.metrics.SensitivityN`` and ``InsertionDeletion`` of one method)."""
    row = {"method": label}
    for n, r, sd in zip(sensitivity.ns, sensitivity.correlation, sensitivity.spread):
        row[f"r(n={n})"] = float(r)
        row[f"r(n={n}) sd"] = float(sd)
    for name, auc in (("insertion AUC", insdel.insertion_auc), ("deletion AUC", insdel.deletion_auc)):
        row[name] = float(auc.mean())
        row[f"{name} sd"] = float(auc.std())
    return row
