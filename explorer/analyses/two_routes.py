"""Two routes to exact attributions from one pass, side by side, computed from the models.

- X-DNN (Hesse et al. 2021): remove the biases, the ReLU network becomes positively homogeneous,
  and X-Gradient (x * dF/dx) sums to F(x) - F(0) by Euler's theorem.
- B-cos (Böhle et al. 2022): every layer is dynamic linear, F(x) = W(x) z with z = [x, 1 - x],
  and the contribution map W(x) ⊙ z sums to F(x) - 0 with W detached.

Beside them, Integrated Gradients on the regular CNN: exact only in the limit of many steps.
Each route is measured on the same inputs: homogeneity error, its method's completeness and
passes, the model's test accuracy (from its manifest), Sensitivity-n and insertion/deletion.
Used by ``python -m explorer evaluate --routes`` (200 test digits) and the Explore page (one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from explorer.analyses.evaluate import Stage, evaluate, log_grid
from explorer.models.homogeneous import homogeneity_error
from explorer.analyses.metrics import feature_index
from explorer.analyses.checks import run_checked


@dataclass(frozen=True)
class Route:
    label: str
    model: str
    bias_free: bool
    method: str
    params: dict = field(default_factory=dict)
    why: str = ""


ROUTES = (
    Route("B-cos contribution on the B-cos CNN", "digits-bcos", False, "bcos", {},
          "dynamic linear: F(x) = W(x) [x, 1-x] with W detached"),
    Route("X-Gradient on the X-DNN", "digits-cnn", True, "input_x_gradient", {},
          "positively homogeneous: Euler's theorem, F(x) - F(0)"),
    Route("IG on the regular CNN", "digits-cnn", False, "integrated_gradients", {"steps": 64},
          "no exact one-pass method: IG's quadrature, exact only as steps grow"),
)


def _default_load(name: str, bias_free: bool):
    from explorer.models.zoo import load_model
    return load_model(name, bias_free=bias_free, device="cpu")


def compare_routes(x: torch.Tensor, labels: torch.Tensor | None = None, *,
                   routes: Sequence[Route] = ROUTES, target: str = "predicted",
                   load: Callable = _default_load, ns: Sequence[int] | None = None,
                   subsets: int = 100, steps: int = 50, fill: str = "blur",
                   score: str = "logit", seed: int = 0, keep_maps: bool = False,
                   progress: Stage | None = None) -> dict:
    """Every route on the digits ``x`` [N, 1, 28, 28]: one row of facts per route.

    ``target``: "predicted" (each model explains its own top class) or "label" (``labels``).
    ``load(name, bias_free)`` returns a zoo entry (the app passes its cached loader).
    Sensitivity-n removes features to zero (black), the reference of the X-DNN's completeness;
    all routes share its random subsets (same ``seed``) and the insertion/deletion settings.
    ``keep_maps``: also return each route's first map, [H, W] summed over channels ("maps").
    """
    report = progress or (lambda fraction, text: None)
    ns = list(ns) if ns is not None else log_grid(feature_index(x.shape[1:], 1)[1])
    rows, evaluations, maps = [], {}, {}
    for k, route in enumerate(routes):
        entry = load(route.model, route.bias_free)
        model = entry.module
        xx = x.to(entry.device)
        with torch.no_grad():
            predicted = model(xx).argmax(1)
        t = labels.to(xx.device) if target == "label" and labels is not None else predicted
        checked = run_checked(route.method, model, xx, t, bias_free=route.bias_free,
                              **route.params)
        rel = checked.completeness.rel_error if checked.completeness is not None else None

        def within(fraction, text, k=k):
            report((k + fraction) / len(routes), f"{route.label}: {text}")
        ev = evaluate(model, xx, t, methods={route.method: dict(route.params)},
                      bias_free=route.bias_free, ns=ns, subsets=subsets, steps=steps, fill=fill,
                      score=score, seed=seed, input_space=entry.input_space, progress=within)
        summary = ev.summary_rows()[0]
        accuracy = (entry.manifest or {}).get("accuracy", {}).get("test_clean")
        correlations = [summary[f"r(n={n})"] for n in ns]
        rows.append({
            "route": route.label, "model": entry.title, "method": checked.label,
            "why exact": route.why, "homogeneity error": homogeneity_error(model, xx),
            "completeness": checked.explanation.spec.completeness,
            "max rel. completeness error": float(rel.max()) if rel is not None else float("nan"),
            "forward passes": checked.forward_per_input,
            "backward passes": checked.backward_per_input,
            "test accuracy": float("nan") if accuracy is None else float(accuracy),
            "agreement with labels": (float((predicted.cpu() == labels.cpu()).double().mean())
                                      if labels is not None else float("nan")),
            "Sensitivity-n (mean r over n)": float(np.nanmean(correlations)),
            "insertion AUC": summary["insertion AUC"], "deletion AUC": summary["deletion AUC"],
        })
        evaluations[route.label] = ev
        if keep_maps:
            maps[route.label] = checked.explanation.attributions[0].double().sum(0).cpu().numpy()
    report(1.0, "Done")
    settings = {"inputs": int(x.shape[0]), "ns": ns, "subsets": subsets, "steps": steps,
                "fill": fill, "score": score, "seed": seed, "target": target,
                "sensitivity_baseline": "zero"}
    result = {"settings": settings, "rows": rows,
              "evaluations": {label: ev.to_json() for label, ev in evaluations.items()}}
    return {**result, "maps": maps} if keep_maps else result
