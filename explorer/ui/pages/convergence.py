"""Convergence: how many steps does Integrated Gradients need on this model and input?"""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import explorer
from explorer.methods import budget, exact_cache
from explorer.presentation import viz_path
from explorer.analyses.quadrature_convergence import DEFAULT_STEPS
from explorer.ui import downloads
from explorer.ui import context, page_budget, sharing
from explorer.ui.cache_state import all_cached
from explorer.ui.compute import get_model, model_spec


@st.cache_data(show_spinner="Evaluating every path node once...", max_entries=32)
def convergence_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
                    steps: tuple, rules: tuple, _x: torch.Tensor, _baseline: torch.Tensor) -> dict:
    """IG's map error against exact IG and completeness error per (rule, steps) on one variant,
    and X-Gradient's completeness error."""
    entry = get_model(model, bias_free).entry
    c = explorer.convergence(entry.module, _x.to(entry.device), target,
                             baseline=_baseline.to(entry.device), steps=steps, rules=rules,
                             exact=model_spec(model).family == "bundled")
    return {"rules": c.rules, "steps": c.steps, "rel_error": c.rel_error[:, :, 0].cpu().numpy(),
            "map_error": None if c.map_error is None else c.map_error[:, :, 0].cpu().numpy(),
            "regions": None if c.exact_regions is None else int(c.exact_regions[0]),
            "exact_note": c.exact_note, "exact_source": c.exact_source,
            "x_gradient": float(c.x_gradient_error[0]), "evaluations": c.evaluations,
            "delta": float(c.delta[0])}


def convergence_args(ctx: context.Context, variant: str, steps: tuple, rules: tuple) -> tuple:
    """The arguments of ``convergence_for`` for one variant (also its cache lookup)."""
    return ctx.keyed(variant) + (steps, rules, ctx.x, ctx.baseline)


def render() -> None:
    ctx = context.current()
    st.title("Convergence: how many steps does IG need?")
    st.markdown(
        "Integrated Gradients approximates an integral with a quadrature rule, each step costing "
        "one forward and one backward pass. On a piecewise-linear network (ReLU, max-pool) IG "
        "has an exact value (**exact IG**: one gradient per linear region of the path), so the "
        "chart shows each rule's **map error**, ||IG - exact IG|| / ||exact IG||, with the "
        "completeness error (|attribution sum - (F(x) - F(x'))| / |F(x) - F(x')|) beside it "
        "in the table: the sum can be right while pixels are wrong. The gradient jumps at every "
        "kink along the path, so no rule converges smoothly. Without exact IG (other models) "
        "the chart shows the completeness error, and on a bias-free model X-Gradient's single "
        "pass as a dashed line (its baseline is zero).")
    c1, c2 = st.columns([2, 3])
    # ~3,000 passes per model at 512 steps: a second on the digits CNN, minutes on ImageNet CPUs
    bundled = model_spec(ctx.model).family == "bundled"
    s, key, default = sharing.widget("convergence.largest", ctx)  # its default: by model kind
    largest = c1.select_slider("Largest number of steps", s.options, value=default, key=key)
    s, key, default = sharing.widget("convergence.rules", ctx)
    rules = c2.multiselect("Rules", s.options, default=list(default), key=key)
    if not rules:
        st.info("Choose at least one rule.")
        return
    steps = tuple(s for s in DEFAULT_STEPS if s <= largest)
    pp = page_budget.per_pass(ctx)
    # The exact walk is priced too (thousands of regions on the regular digits CNN), unless the
    # shipped cache (assets/exact-ig) holds this very input, target, baseline and weights.
    walks = {v: exact_cache.expected_regions(
        ctx.loaded[v].entry.module, ctx.x.to(ctx.loaded[v].entry.device),
        torch.tensor([ctx.target]), ctx.baseline.to(ctx.loaded[v].entry.device))
        for v in ctx.variants} if bundled else {}
    layered = {v: exact_cache.walks_layered(
        ctx.loaded[v].entry.module, ctx.x.to(ctx.loaded[v].entry.device)) for v in walks}
    calls = [(convergence_for, convergence_args(ctx, v, steps, tuple(rules)), {})
             for v in ctx.variants]
    if pp is not None and not page_budget.allowed(
            ctx, "convergence", budget.convergence_page_work(ctx.variants, steps, rules, pp,
                                                             walks, layered),
            cached=lambda: all_cached(calls)):
        return
    panels, evaluations = {}, []
    step = page_budget.stepper(len(ctx.variants), "Evaluating every path node once:")
    for v in ctx.variants:
        step(f"the {v} model")
        try:
            p = convergence_for(*convergence_args(ctx, v, steps, tuple(rules)))
        except explorer.InputError as err:
            st.error(f"Could not evaluate the path on the {v} model: {err}")
            return
        panels[v] = {**p, "x_gradient": p["x_gradient"] if ctx.bias_free(v) else None}
        evaluations.append(p["evaluations"])
    step(None)
    exact = all(p["map_error"] is not None for p in panels.values())
    drawn = {v: {**p, "rel_error": p["map_error"], "x_gradient": None} if exact else p
             for v, p in panels.items()}
    downloads.plotly_chart(viz_path.convergence_figure(drawn, "map error against exact IG" if exact
                                                   else "relative completeness error"),
                       width="stretch", key="convergence-figure")
    if exact:
        st.caption("Exact IG crossed " + ", ".join(
            f"{p['regions']:,} linear region{'s' if p['regions'] != 1 else ''} on the {v} model"
            for v, p in panels.items()) + " (one gradient each). Exact IG: " + "; ".join(
            f"{v}: {p['exact_source']}" for v, p in panels.items()) + ".")
    else:
        st.caption("No exact IG here: " + "; ".join(
            f"{v}: {p['exact_note']}" for v, p in panels.items() if p["exact_note"]))
    rows = []
    for v, p in panels.items():
        for r, rule in enumerate(p["rules"]):
            for kind, key in (("map error", "map_error"), ("completeness", "rel_error")):
                if p[key] is not None:
                    rows.append({"model": v, "rule": rule, "error": kind, **{
                        str(s): float(p[key][r, k]) for k, s in enumerate(p["steps"])}})
        if p["x_gradient"] is not None:
            rows.append({"model": v, "rule": "X-Gradient (1 pass)", "error": "completeness",
                         **{str(s): p["x_gradient"] for s in p["steps"]}})
    st.dataframe(pd.DataFrame(rows).style.format("{:.2e}", subset=[str(s) for s in steps]),
                 hide_index=True, key="convergence-table")
    passes = len(rules) * sum(steps)
    st.caption(f"Baseline: {ctx.baseline_name}. Run one by one these {len(rules) * len(steps)} "
               f"IG calls would cost {passes:,} passes per input and model; nested rules share "
               f"their nodes, so {max(evaluations):,} distinct points were evaluated per model.")
