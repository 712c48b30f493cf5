"""Convergence: how many steps does Integrated Gradients need on this model and input?"""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import explorer
from explorer import budget, viz_path
from explorer.methods.path import RULES
from explorer.quadrature_convergence import DEFAULT_STEPS
from explorer.ui import downloads
from explorer.ui import context, page_budget
from explorer.ui.compute import get_model, model_spec


@st.cache_data(show_spinner="Evaluating every path node once...", max_entries=32)
def convergence_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
                    steps: tuple, rules: tuple, _x: torch.Tensor, _baseline: torch.Tensor) -> dict:
    """IG's completeness error per (rule, steps) on one variant, and X-Gradient's."""
    entry = get_model(model, bias_free).entry
    c = explorer.convergence(entry.module, _x.to(entry.device), target,
                             baseline=_baseline.to(entry.device), steps=steps, rules=rules)
    return {"rules": c.rules, "steps": c.steps, "rel_error": c.rel_error[:, :, 0].cpu().numpy(),
            "x_gradient": float(c.x_gradient_error[0]), "evaluations": c.evaluations,
            "delta": float(c.delta[0])}


def render() -> None:
    ctx = context.current()
    st.title("Convergence: how many steps does IG need?")
    st.markdown(
        "Integrated Gradients approximates an integral with a quadrature rule; its completeness "
        "error (|attribution sum - (F(x) - F(x'))| / |F(x) - F(x')|) shrinks with more steps, "
        "each costing one forward and one backward pass. On a ReLU network the gradient jumps at "
        "every kink along the path, so no rule converges smoothly. On a bias-free model "
        "X-Gradient's single pass is drawn as a dashed line (its baseline is zero).")
    c1, c2 = st.columns([2, 3])
    # ~3,000 passes per model at 512 steps: a second on the digits CNN, minutes on ImageNet CPUs
    bundled = model_spec(ctx.model).family == "bundled"
    largest = c1.select_slider("Largest number of steps", DEFAULT_STEPS[2:],
                               value=512 if bundled else 64, key=f"convergence-largest-{bundled}")
    rules = c2.multiselect("Rules", RULES, default=list(RULES), key="convergence-rules")
    if not rules:
        st.info("Choose at least one rule.")
        return
    steps = tuple(s for s in DEFAULT_STEPS if s <= largest)
    pp = page_budget.per_pass(ctx)
    if pp is not None and not page_budget.allowed(
            ctx, "convergence", budget.convergence_page_work(ctx.variants, steps, rules, pp)):
        return
    panels, evaluations = {}, []
    step = page_budget.stepper(len(ctx.variants), "Evaluating every path node once:")
    for v in ctx.variants:
        step(f"the {v} model")
        try:
            p = convergence_for(ctx.model, ctx.bias_free(v), ctx.image_key, ctx.baseline_key,
                                ctx.target, steps, tuple(rules), ctx.x, ctx.baseline)
        except explorer.InputError as err:
            st.error(f"Could not evaluate the path on the {v} model: {err}")
            return
        panels[v] = {**p, "x_gradient": p["x_gradient"] if ctx.bias_free(v) else None}
        evaluations.append(p["evaluations"])
    step(None)
    downloads.plotly_chart(viz_path.convergence_figure(panels), width="stretch",
                       key="convergence-figure")
    rows = []
    for v, p in panels.items():
        for r, rule in enumerate(p["rules"]):
            rows.append({"model": v, "rule": rule,
                         **{str(s): float(p["rel_error"][r, k]) for k, s in enumerate(p["steps"])}})
        if p["x_gradient"] is not None:
            rows.append({"model": v, "rule": "X-Gradient (1 pass)",
                         **{str(s): p["x_gradient"] for s in p["steps"]}})
    st.dataframe(pd.DataFrame(rows).style.format("{:.2e}", subset=[str(s) for s in steps]),
                 hide_index=True, key="convergence-table")
    passes = len(rules) * sum(steps)
    st.caption(f"Baseline: {ctx.baseline_name}. Run one by one these {len(rules) * len(steps)} "
               f"IG calls would cost {passes:,} passes per input and model; nested rules share "
               f"their nodes, so {max(evaluations):,} distinct points were evaluated per model.")
