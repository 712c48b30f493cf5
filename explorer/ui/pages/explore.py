"""Explore: the model's facts, heatmaps side by side, completeness and timing."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

import explorer
from explorer import report, viz
from explorer.checks import DEFAULT_RTOL
from explorer.ui import context
from explorer.ui.compute import VARIANTS, run_method


@dataclass(frozen=True)
class Settings:
    """This page's own display, check and timing settings."""

    shared_scale: bool = True
    clip_percentile: float = 99.5
    overlay: bool = False
    repeats: int = 3
    rtol: float = DEFAULT_RTOL


def display_settings(model: str) -> Settings:
    with st.sidebar:
        st.header("Display")
        shared = st.toggle("One colour scale for all panels", value=True, key="shared_scale")
        clip = st.slider("Clip outliers at percentile", 90.0, 100.0, 99.5, 0.1, key="clip")
        overlay = st.toggle("Overlay on the input", value=False, key="overlay")
        st.header("Checks and timing")
        rtol = st.select_slider("Completeness tolerance (relative)",
                                [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1], value=DEFAULT_RTOL,
                                key="rtol", format_func=lambda v: f"{v:g}")
        # Bundled models time in milliseconds; ImageNet models on a CPU take seconds per call.
        bundled = explorer.MODELS[model].family == "bundled"
        repeats = int(st.number_input("Timing repeats (median, after 1 warm-up)", 1, 20,
                                      3 if bundled else 1, key=f"repeats-{bundled}"))
    return Settings(shared, clip, overlay, repeats, rtol)

COMPLETENESS_WHY = """
**Why X-Gradient passes exactly on the bias-free model.** Without biases (and with batch norm
reduced to a per-channel scale) a ReLU network is positively homogeneous: F(a x) = a F(x) for
a >= 0, and F(0) = 0. Euler's theorem then gives sum_i x_i dF/dx_i = F(x) = F(x) - F(0), so
Input x Gradient *is* Integrated Gradients from the zero baseline, from one pass: completeness
holds to float precision. On the regular model the biases break homogeneity, F(0) != 0 and the
gradient changes along the path, so Input x Gradient misses part of F(x) - F(0) and fails.
IG meets completeness up to its quadrature error (more steps, smaller error); expected gradients
meets it in expectation over its references; gradient, saliency, SmoothGrad and occlusion promise
no completeness at all.
"""


def show_model_facts(ctx: context.Context) -> None:
    cols = st.columns(len(ctx.variants))
    for col, v in zip(cols, ctx.variants):
        loaded, f = ctx.loaded[v], ctx.facts[v]
        entry = loaded.entry
        with col:
            st.markdown(f"**{entry.title}**")
            if loaded.warning:
                st.warning(f"Pretrained weights unavailable, showing **random weights** "
                           f"(untrained): {loaded.warning}")
            if entry.note:
                st.info(entry.note)
            err = f["homogeneity_error"]
            st.metric("homogeneity error  max |F(ax) - aF(x)| / |aF(x)|", f"{err:.2e}",
                      help="Measured at a = 0.5, 2, 3 on this input. ~1e-7 means homogeneous.")
            if f["obstacles"]:
                lines = "\n".join(f"- `{layer}` {typ}: {why}" for layer, typ, why in f["obstacles"][:8])
                more = len(f["obstacles"]) - 8
                st.markdown("Not homogeneous because of:\n" + lines + (f"\n- ... and {more} more" if more > 0 else ""))
            else:
                st.markdown("No layer breaks homogeneity: an **X-DNN**.")
            # Text, not a chart: every plotly figure costs the browser hundreds of ms to lay out.
            st.markdown("**Prediction (top 5):** " + " · ".join(
                f"{lab}{'' if lab == str(i) else f' ({i})'} **{p:.1%}**" for i, lab, p in f["top"]))


def render() -> None:
    ctx = context.current()
    s = display_settings(ctx.model)
    st.title("Axiomatic attribution explorer")
    st.caption("Integrated Gradients needs tens to hundreds of passes; on a bias-free ReLU "
               "network (an X-DNN) Input x Gradient equals it from one. See it, check it, time it.")
    show_model_facts(ctx)
    if not ctx.methods:
        st.info("Choose at least one attribution method in the sidebar.")
        return

    results, total = {}, len(ctx.methods) * len(ctx.variants)
    progress = st.progress(0.0, text="Computing attributions...")
    for k, (m, v) in enumerate((m, v) for m in ctx.methods for v in ctx.variants):
        label = explorer.method_label(m, VARIANTS[v])
        progress.progress(k / total, text=f"{label} on the {v} model...")
        b, bkey = ctx.baseline_for(m)
        try:
            results[(m, v)] = run_method(ctx.model, VARIANTS[v], m, ctx.hparams(m), ctx.image_key,
                                         bkey, ctx.target, s.repeats, ctx.x, b)
        except explorer.InputError as err:
            st.error(f"{label} ({v}): {err}")
        except Exception as err:  # an unusual model must not take the page down
            st.error(f"{label} ({v}) failed: {type(err).__name__}: {err}")
    progress.empty()
    if not results:
        return
    for (m, v), r in results.items():
        if r.get("note"):
            st.warning(f"{explorer.method_label(m, VARIANTS[v])} ({v}): {r['note']}")

    show_heatmaps(s, ctx, results)
    show_completeness(s, results)
    show_timing(s, results)
    show_downloads(s, results)


def show_heatmaps(s: Settings, ctx: context.Context, results: dict) -> None:
    st.subheader("Attributions")
    rows = [m for m in ctx.methods if any((m, v) in results for v in ctx.variants)]
    maps = {(m, v): viz.to_map(r["attributions"]) for (m, v), r in results.items()}
    titles = {(m, v): f"{explorer.method_label(m, VARIANTS[v])} | {v}" for (m, v) in results}
    fig = viz.heatmap_grid(maps, rows, list(ctx.variants), image=ctx.entry.to_image(ctx.x[0]),
                           shared_scale=s.shared_scale, clip_percentile=s.clip_percentile,
                           overlay=s.overlay, titles=titles)
    st.plotly_chart(fig, key="heatmaps")
    st.caption("Red raises the explained logit, blue lowers it; channels summed. "
               + ("One colour scale for all panels." if s.shared_scale else "Each panel scaled to itself."))


def completeness_table(s: Settings, results: dict) -> pd.DataFrame:
    return pd.DataFrame([report.completeness_row(m, VARIANTS[v], r["completeness"], s.rtol)
                         for (m, v), r in results.items()])


def _formatted(table: pd.DataFrame, fmt: str, *scientific: str) -> pd.DataFrame:
    """Numbers as short strings for display (blank where not applicable); index hidden."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            f = "{:.2e}" if col in scientific else fmt
            out[col] = [("" if pd.isna(v) else f.format(v)) for v in out[col]]
    return out.set_index(out.columns[0])


def show_completeness(s: Settings, results: dict) -> None:
    st.subheader("Completeness: does the map add up to F(x) - F(baseline)?")
    st.table(_formatted(completeness_table(s, results), "{:.4g}", "rel error", "abs error"))
    st.caption(f"Pass: relative error <= {s.rtol:g}. For expected gradients F(ref) is the mean "
               "over the references drawn; for input x gradient the reference is the zero input.")
    with st.expander("Why does X-Gradient pass on the bias-free model and fail on the regular one?",
                     expanded=False):
        st.markdown(COMPLETENESS_WHY)


def timing_records(results: dict) -> list[dict]:
    records = []
    for (m, v), r in results.items():
        ig = results.get(("integrated_gradients", v))
        records.append(report.timing_row(
            m, VARIANTS[v], median_ms=r["median_ms"], forward_passes=r["forward_passes"],
            backward_passes=r["backward_passes"], device=r["device"],
            ig_median_ms=ig["median_ms"] if ig else None))
    return records


def show_timing(s: Settings, results: dict) -> None:
    st.subheader("Timing")
    records = timing_records(results)
    table = pd.DataFrame(records).rename(columns={
        "median_ms": "median (ms)", "forward_passes": "forward passes", "backward_passes":
        "backward passes", "speedup_vs_ig": "x faster than IG"})
    st.table(_formatted(table, "{:.3g}"))
    st.plotly_chart(viz.timing_figure(records), key="timing-chart")
    st.caption(f"Median of {s.repeats} timed calls after one warm-up call (whose passes are "
               "counted), synchronised on GPU; passes are per explained input.")


def show_downloads(s: Settings, results: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{v}__{m}": r["attributions"] for (m, v), r in results.items()})
    cols = st.columns(3)
    cols[0].download_button("Attributions (.npz)", buf.getvalue(), file_name="attributions.npz",
                            mime="application/octet-stream")
    cols[1].download_button("Completeness (.csv)", completeness_table(s, results).to_csv(index=False),
                            file_name="completeness.csv", mime="text/csv")
    cols[2].download_button("Timing (.csv)", pd.DataFrame(timing_records(results)).to_csv(index=False),
                            file_name="timing.csv", mime="text/csv")
