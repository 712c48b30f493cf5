"""Bench section: adaptive Integrated Gradients against fixed Gauss-Legendre IG.

For each bundled model (regular and bias-free) and the first 8 (``--inputs``) of the 20 bundled
digits, from the zero baseline:
the map error (relative L2 against exact IG, ``exact_ig``: the bundled CNNs are piecewise
linear, so the truth is computable; its linear regions per input are reported) of fixed IG at 8..512
steps (doubling), and of adaptive IG at two tolerances with the passes it used. The issue's
target per input: error <= 1.5 x tolerance, and passes <= the smallest fixed step count that
reliably reaches the tolerance (it and every larger count on the grid). Counts, not times, so
the result does not depend on the machine's load.

Run alone: ``python -m explorer.bench.adaptive [--quick] [--inputs N] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

BUNDLED = ("digits-cnn", "decoy-digits-cnn")
GRID = (8, 16, 32, 64, 128, 256, 512)
TOLERANCES = (1e-2, 1e-3)
MAX_REGIONS = 100_000  # exact IG's cap: the regular digits CNN meets about 5,000 per digit
CAP = 4096
INPUTS = 8  # of the 20 bundled digits


def settings(quick: bool, inputs: int | None = None) -> dict[str, Any]:
    """Tiny settings for a test, the issue's for a report; ``inputs`` overrides the digit count."""
    if quick:
        # A test's settings: exact IG walks ~5,000 regions per digit on the regular CNN (minutes
        # on a shared CPU), so the quick run measures against Gauss-Legendre at 256 steps.
        s = {"grid": (8, 16, 32), "tolerances": (5e-2, 1e-2), "cap": 256, "inputs": 2,
             "reference": "gauss_legendre-256"}
    else:
        s = {"grid": GRID, "tolerances": TOLERANCES, "cap": CAP, "inputs": INPUTS,
             "reference": "exact"}
    if inputs:
        s["inputs"] = inputs
    return s


def digits_for(model: str, count: int) -> torch.Tensor:
    """The bundled test digits the model was made for (decoyed for the decoy model)."""
    from explorer.inputs.data import sample_digits
    d = sample_digits()
    images = d["decoy"] if model.startswith("decoy") else d["clean"]
    return torch.from_numpy(images[:count]).float() / 255.0


def map_error(a: torch.Tensor, ref: torch.Tensor) -> list[float]:
    """Relative L2 error of each sample's map."""
    err = (a - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp_min(1e-30)
    return [float(v) for v in err]


def smallest_reliable(errors: dict[int, float], tolerance: float) -> int | None:
    """The smallest step count whose error, and every larger count's, is <= tolerance."""
    best = None
    for steps in sorted(errors, reverse=True):
        if errors[steps] > tolerance:
            break
        best = steps
    return best


def measure(model_name: str, bias_free: bool, device: str, s: dict[str, Any]) -> dict[str, Any]:
    """Fixed and adaptive IG errors and passes on one model variant."""
    import explorer
    entry = explorer.load_model(model_name, bias_free=bias_free, device=device)
    model = entry.module
    x = digits_for(model_name, s["inputs"]).to(device)
    with torch.no_grad():
        target = model(x).argmax(1)

    def run(**params):
        return explorer.explain("integrated_gradients", model, x, target, batch_size=512,
                                **params)

    if s["reference"] == "exact":
        truth = explorer.explain("exact_ig", model, x, target, batch_size=512,
                                 max_regions=MAX_REGIONS)
        ref, regions = truth.attributions, truth.info["regions"].tolist()
    else:  # "gauss_legendre-<steps>"
        ref, regions = run(steps=int(s["reference"].split("-")[1])).attributions, None
    fixed = {steps: map_error(run(steps=steps).attributions, ref) for steps in s["grid"]}
    adaptive = []
    for tol in s["tolerances"]:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            e = run(steps=s["cap"], tolerance=tol)
        errors = map_error(e.attributions, ref)
        per_input = []
        for k in range(x.shape[0]):
            errs = {n: fixed[n][k] for n in fixed}
            need = smallest_reliable(errs, tol)
            passes = int(e.info["steps_used"][k])
            per_input.append({
                "passes": passes, "error": errors[k], "estimate": float(e.info["map_error"][k]),
                "completeness_error": float(e.info["completeness_error"][k]),
                "cap_hit": bool(e.info["cap_hit"][k]), "fixed_steps_needed": need,
                "within_tolerance": errors[k] <= 1.5 * tol,
                # None: no grid count reaches it, so fixed GL needs at least twice the largest.
                "passes_ok": passes <= (need or 2 * max(s["grid"])),
                # The stricter reading: fixed steps that reliably reach the error reached.
                "fixed_steps_for_error_reached": smallest_reliable(errs, errors[k]),
            })
        adaptive.append({"tolerance": tol, "inputs": per_input,
                         "target_met": all(r["within_tolerance"] and r["passes_ok"]
                                           for r in per_input)})
    return {"model": model_name, "bias_free": bias_free, "targets": target.tolist(),
            "exact_regions": regions,
            "fixed": {str(n): errs for n, errs in fixed.items()}, "adaptive": adaptive}


def run(cfg) -> dict[str, Any]:
    """The section: every bundled model (when quick only ``cfg.model``, if bundled), both variants."""
    s = settings(bool(cfg.quick), getattr(cfg, "inputs", None))
    models = ((cfg.model if cfg.model in BUNDLED else BUNDLED[0]),) if cfg.quick else BUNDLED
    results = [measure(m, bf, str(cfg.device), s) for m in models for bf in (False, True)]
    summary = [{"model": r["model"], "bias_free": r["bias_free"], "tolerance": a["tolerance"],
                "target_met": a["target_met"],
                "max_error_over_tolerance": max(i["error"] for i in a["inputs"]) / a["tolerance"],
                "passes": [i["passes"] for i in a["inputs"]],
                "fixed_steps_needed": [i["fixed_steps_needed"] for i in a["inputs"]],
                "fixed_steps_for_error_reached": [i["fixed_steps_for_error_reached"]
                                                  for i in a["inputs"]]}
               for r in results for a in r["adaptive"]]
    return {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()},
            "baseline": "zero", "error": "relative L2 of the map against "
            + ("exact IG (exact_ig)" if s["reference"] == "exact" else s["reference"]),
            "results": results, "summary": summary}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """Map error against passes per input: fixed Gauss-Legendre (lines) and adaptive (markers)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    runs = result["results"]
    fig = make_subplots(rows=1, cols=len(runs), shared_yaxes=True, subplot_titles=[
        f"{r['model']}{' (bias-free)' if r['bias_free'] else ''}" for r in runs])
    from explorer.presentation.viz_axes import error_axis, value_ticks
    symbols = ("circle", "diamond", "square")
    axis = error_axis([e for r in runs for errs in r["fixed"].values() for e in errs]
                      + [i["error"] for r in runs for a in r["adaptive"] for i in a["inputs"]])
    passes = {int(n) for r in runs for n in r["fixed"]}
    for c, r in enumerate(runs, start=1):
        steps = [int(n) for n in r["fixed"]]
        for k in range(len(r["targets"])):
            fig.add_trace(go.Scatter(
                x=steps, y=axis.y([r["fixed"][str(n)][k] for n in steps]), mode="lines",
                line={"color": "lightgray"}, name="fixed Gauss-Legendre", legendgroup="fixed",
                showlegend=c == 1 and k == 0), row=1, col=c)
        for t, a in enumerate(r["adaptive"]):
            fig.add_trace(go.Scatter(
                x=[i["passes"] for i in a["inputs"]],
                y=axis.y([i["error"] for i in a["inputs"]]), mode="markers",
                marker={"symbol": symbols[t % 3], "size": 9},
                name=f"adaptive, tolerance {a['tolerance']:g}", legendgroup=f"tol{t}",
                showlegend=c == 1), row=1, col=c)
            fig.add_hline(y=a["tolerance"], line_dash="dot", line_color="gray", row=1, col=c)
    fig.update_xaxes(type="log", title_text="gradient passes per input", **value_ticks(passes))
    fig.update_yaxes(**axis.layout())  # an exact zero on the "exact" row, powers of ten
    fig.update_yaxes(title_text="map error vs " + (
        "exact IG" if result["settings"].get("reference") == "exact" else "reference"), col=1)
    fig.update_layout(title="Adaptive IG: passes and map error reached (zero baseline)",
                      height=420, width=max(600, 330 * len(runs)))
    return {"adaptive_ig": fig}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits-cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny settings (a test)")
    parser.add_argument("--inputs", type=int, default=None,
                        help=f"bundled digits per model, 1..20 (default {INPUTS})")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)
    cfg = SimpleNamespace(model=args.model, device=args.device, rounds=1, quick=args.quick,
                          out=args.out, inputs=args.inputs)
    result = run(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adaptive.json").write_text(json.dumps(result, indent=1))
    from explorer.presentation import figures as export
    for name, fig in figures(result).items():
        fig.write_html(args.out / f"{name}.html", include_plotlyjs="cdn")
        try:
            export.write(fig, args.out / f"{name}.png", result.get("config", {}))
        except Exception as err:  # no chromium for kaleido: the HTML stands alone
            print(f"{name}: no PNG ({type(err).__name__}: {err}); HTML only", file=sys.stderr)
    print(f"{'model':<18}{'bias-free':<10}{'tol':>7}  {'met':<5}{'err/tol':>8}  passes "
          "(fixed GL steps reliably within the tolerance / within the error adaptive reached)")
    for row in result["summary"]:
        pairs = ", ".join(f"{p} ({n or '>grid'}/{m or '>grid'})" for p, n, m in zip(
            row["passes"], row["fixed_steps_needed"], row["fixed_steps_for_error_reached"]))
        print(f"{row['model']:<18}{str(row['bias_free']):<10}{row['tolerance']:>7g}  "
              f"{str(row['target_met']):<5}{row['max_error_over_tolerance']:>8.2f}  {pairs}")
    print(f"wrote {args.out / 'adaptive.json'} and {args.out / 'adaptive_ig.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
