"""Precision: the X-Gradient = IG identity in float64, float32, TF32 and bf16, side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import explorer
from explorer.precision_lesson import precision_lesson
from explorer.ui import context, sharing
from explorer.ui.compute import get_model, model_variants

COLUMNS = {"label": "format", "status": "here", "xgrad_completeness": "X-Gradient completeness error",
           "ig_completeness": "IG completeness error", "xgrad_max_diff": "X-Gradient: max diff from float64",
           "ig_max_diff": "IG: max diff from float64", "ms_per_pass": "ms per pass"}


@st.cache_data(show_spinner="Computing in float64, float32, TF32 and bf16...", max_entries=32)
def lesson_for(model: str, image_key: str, target: int, steps: int, _x: torch.Tensor) -> list[dict]:
    """The lesson's rows on the bias-free variant (or the model as it is, when it has no other)."""
    entry = get_model(model, True in model_variants(model)).entry
    rows = precision_lesson(entry.module, _x.to(entry.device), target, steps=steps)
    return [r.row() for r in rows]


def render() -> None:
    ctx = context.current()
    st.title("Precision: how much does each number format cost the identity?")
    st.markdown(
        "On a bias-free network X-Gradient (x times the gradient, one pass) *is* Integrated "
        "Gradients from the zero baseline, and its sum is exactly F(x) - F(0): in exact "
        "arithmetic. Computers round. Here the same model and input run in **float64** (the "
        "reference), **float32** (this app's default), **TF32** (NVIDIA's 10-bit-mantissa "
        "format, which PyTorch allows in convolutions by default on recent GPUs) and **bf16** "
        "autocast. Completeness errors are measured against float64's F(x) - F(0); the map "
        "differences are the largest |map - float64 map| over the largest |float64 map|.")
    if True not in model_variants(ctx.model):
        st.caption("This model has no bias-free variant: X-Gradient's completeness is not "
                   "promised on it, so its error here includes the biases' share.")
    s, key, default = sharing.widget("precision.steps", ctx)
    steps = int(st.select_slider("IG steps", s.options, value=default, key=key))
    if not st.button("Run the comparison", key="precision-run", type="primary"):
        st.caption(f"Runs X-Gradient and IG ({steps} steps) four times on {ctx.entry.title}, "
                   f"on {ctx.device}.")
        return
    try:
        rows = lesson_for(ctx.model, ctx.image_key, ctx.target, steps, ctx.x)
    except explorer.InputError as err:
        st.error(f"Could not run the comparison: {err}")
        return
    table = pd.DataFrame(rows)[list(COLUMNS)].rename(columns=COLUMNS)
    numbers = [c for c in COLUMNS.values() if c not in ("format", "here")]
    st.dataframe(table.style.format("{:.2e}", subset=numbers[:-1], na_rep="n/a")
                 .format("{:.3g}", subset=numbers[-1:], na_rep="n/a"),
                 hide_index=True, key="precision-table")
    for r in rows:
        if r["status"] != "computed":
            st.caption(f"**{r['label']}** ({r['status']}): {r['note']}.")
    st.caption(f"{ctx.entry.title} (bias-free variant where it has one) on {ctx.device}; "
               "time per pass: X-Gradient's one forward and one backward, median of 5 calls "
               "(float64 timed on a copy made beforehand).")
