"""Axioms: each attribution axiom as a number and a mark, for every selected method."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import explorer
from explorer.methods import budget
from explorer.presentation import viz
from explorer.analyses.axioms import (axiom_table, check_axioms, homogeneity_curves, left_out_notes,
                             not_applicable_notes, unified_view)
from explorer.methods.registry import left_out_note
from explorer.ui import downloads
from explorer.ui import context, page_budget, sharing
from explorer.ui.cache_state import all_cached
from explorer.ui.failures import failure_text
from explorer.ui.compute import VARIANTS, get_model

INTRO = """
Sundararajan et al. (2017) ask of an attribution method: **completeness** (the map adds up to
F(x) - F(baseline)), **sensitivity (a)** (a feature that alone changes the output gets credit),
**implementation invariance** (two networks computing the same function get the same map),
**linearity** (the map of a F1 + b F2 is a map(F1) + b map(F2)), **symmetry-preserving** (features
the function treats alike get equal shares) and **dummy** (a feature the function ignores gets
nothing). Rows marked with a formula are read on a small constructed network where the right
answer is known; the others on the current model, input, target and baseline.
"""


@st.cache_data(show_spinner=False, max_entries=256)
def axiom_results(name: str, bias_free: bool, method: str, params: tuple, image_key: str,
                  baseline_key: str, target: int, _x: torch.Tensor, _baseline) -> list[dict]:
    model = get_model(name, bias_free).entry.module
    return [r.row() for r in check_axioms(method, model, _x, target, baseline=_baseline,
                                          **dict(params))]


@st.cache_data(show_spinner=False, max_entries=64)
def unified_rows(name: str, variants: tuple, image_key: str, target: int, _x: torch.Tensor) -> list[dict]:
    models = {v: get_model(name, VARIANTS[v]).entry.module for v in variants}
    return unified_view(models, _x, target)


@st.cache_data(show_spinner=False, max_entries=64)
def curves(name: str, variants: tuple, image_key: str, target: int, _x: torch.Tensor) -> dict:
    models = {v: get_model(name, VARIANTS[v]).entry.module for v in variants}
    c = homogeneity_curves(models, _x, target)
    return {"scales": c.scales.tolist(), "outputs": {k: v[0].tolist() for k, v in c.outputs.items()},
            "linear": {k: v[0].tolist() for k, v in c.linear.items()}}


def axiom_args(ctx: context.Context, variant: str, method: str) -> tuple:
    """The arguments of ``axiom_results`` for one method (also its cache lookup)."""
    b, bkey = ctx.baseline_for(method)
    return (ctx.model, VARIANTS[variant], method, ctx.hparams(method), ctx.image_key, bkey,
            ctx.target, ctx.x, b)


def view_args(ctx: context.Context) -> tuple:
    """The arguments of ``curves`` and ``unified_rows``: every variant at once."""
    return (ctx.model, ctx.variants, ctx.image_key, ctx.target, ctx.x)


def cached_calls(ctx: context.Context, variant: str) -> list[tuple]:
    """The page's cached calls, to ask the cache whether its work is done already."""
    return ([(axiom_results, axiom_args(ctx, variant, m), {}) for m in ctx.runnable()[0]]
            + [(curves, view_args(ctx), {}), (unified_rows, view_args(ctx), {})])


def render() -> None:
    ctx = context.current()
    st.title("Axiom lab")
    st.markdown(INTRO)
    _, key, default = sharing.widget("axioms.variant", ctx, options=ctx.variants)
    variant = st.radio("Check the methods on", ctx.variants, index=ctx.variants.index(default),
                       horizontal=True, key=key,
                       format_func=lambda v: f"the {v} model")
    methods, reasons = ctx.runnable()
    pp = page_budget.per_pass(ctx)  # priced: only what will run
    if pp is not None and not page_budget.allowed(ctx, "axioms", budget.axioms_page_work(
            {m: ctx.params.get(m, {}) for m in methods}, variant, ctx.variants,
            ctx.x.shape, pp), cached=lambda: all_cached(cached_calls(ctx, variant))):
        return
    if not ctx.methods:
        st.info("Choose at least one attribution method in the sidebar.")
    else:
        if reasons:
            st.info(left_out_note(reasons))
        if methods:
            show_axiom_table(ctx, variant, methods)
    show_homogeneity(ctx)
    show_unified_view(ctx)


def show_axiom_table(ctx: context.Context, variant: str, methods: list[str]) -> None:
    bias_free = VARIANTS[variant]
    st.subheader("The axioms, method by method")
    results, failed = {}, []
    step = page_budget.stepper(len(methods), "Checking the axioms:")
    with st.spinner("Checking the axioms..."):
        for m in methods:
            label = explorer.method_label(m, bias_free)
            step(label)
            try:
                rows = axiom_results(*axiom_args(ctx, variant, m))
            except Exception as err:  # shown on its panel; the other methods still run
                failed.append(failure_text(label, err))
                continue
            results[label] = [explorer.AxiomResult(**r) for r in rows]
    step(None)
    for message in failed:
        st.error(message)
    if not results:
        return
    st.table(pd.DataFrame(axiom_table(results)).set_index("axiom"))
    notes = not_applicable_notes(results)
    st.caption("✓ holds, ✗ fails (with the measured value). Values are relative: see the "
               "details." + (" n/a here, and why:" if notes else ""))
    if notes:
        st.markdown("\n".join(f"- n/a: {n}" for n in notes))
    with st.expander("Details: every number, its tolerance and one sentence"):
        details = pd.DataFrame([{"method": label, **r.row()} for label, found in results.items()
                                for r in found])
        st.dataframe(details, hide_index=True)


def show_homogeneity(ctx: context.Context) -> None:
    st.subheader("Homogeneity: F(a x) against a F(x)")
    c = curves(*view_args(ctx))
    downloads.plotly_chart(viz.homogeneity_figure(c["scales"], c["outputs"], c["linear"]),
                       key="axioms-homogeneity")
    st.caption("On a bias-free ReLU network the solid and dotted lines coincide (F is positively "
               "homogeneous), which is why Input x Gradient from one pass equals IG from the zero "
               "baseline there. Biases bend the regular model's curve away from the line.")


def show_unified_view(ctx: context.Context) -> None:
    st.subheader("Methods that should coincide (Ancona et al. 2018)")
    try:
        with st.spinner("Comparing the methods..."):
            rows = unified_rows(*view_args(ctx))
    except explorer.InputError as err:
        st.error(f"Could not compare the methods on this model: {err}")
        return
    notes = left_out_notes(rows)  # methods that cannot run on this model, and why
    rows = [r for r in rows if r["coincide"] is not None]
    if notes:
        st.info("Left out here:\n" + "\n".join(f"- {n}" for n in notes))
    if not rows:
        return
    table = pd.DataFrame(rows)
    table["distance"] = [f"{d:.2e}" if d == d else "" for d in table["distance"]]
    table["coincide"] = ["" if c is None else ("✓" if c else "✗") for c in table["coincide"]]
    table["applies"] = ["yes" if a else "no" for a in table["applies"]]
    st.table(table.set_index("pair"))
    st.caption("distance = max |A - B| / max |B| on this input. 'applies': the theory's condition "
               "holds for this model (ReLU network; bias-free for DeepLIFT). Where it does not, a "
               "distance well above zero is expected.")
