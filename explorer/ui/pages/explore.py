"""Explore: the model's facts, heatmaps side by side, completeness and timing."""
from __future__ import annotations

import contextvars
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

import explorer
from explorer.presentation import report, story, timing_table, viz
from explorer.inputs.input_report import describe_input
from explorer.methods.registry import left_out_note
from explorer.analyses.checks import DEFAULT_RTOL
from explorer.ui import downloads
from explorer.ui import context, sharing
from explorer.ui.cache_state import is_cached
from explorer.ui.failures import failure_text
from explorer.runtime.precision import badge
from explorer.ui.compute import (LONG_CALL_S, VARIANTS, model_spec, page_seconds, run_method,
                                 time_together, timing_note, two_routes)


@dataclass(frozen=True)
class Settings:
    """This page's own display, check and timing settings."""

    shared_scale: bool = True
    clip_percentile: float = 99.5
    overlay: bool = False
    interactive: bool = False
    rtol: float = DEFAULT_RTOL
    budget_s: float = 2.0
    min_rounds: int = 10
    clock: str = "wall"


def display_settings(ctx: context.Context) -> Settings:
    """The sidebar's display, check and timing widgets, each drawn from its declaration in
    ``explorer.ui.view_settings`` (``explore.*``: what a link carries)."""
    w = sharing.widget
    with st.sidebar:
        st.header("Display")
        _, key, default = w("explore.scale", ctx)
        shared = st.toggle("One colour scale for all panels", value=default, key=key)
        s, key, default = w("explore.clip", ctx)
        clip = st.slider("Clip outliers at percentile", s.low, s.high, default, 0.1, key=key)
        _, key, default = w("explore.overlay", ctx)
        overlay = st.toggle("Overlay on the input", value=default, key=key)
        _, key, default = w("explore.interactive", ctx)
        interactive = st.toggle("Interactive charts (values on hover)", value=default, key=key,
                                help="Plotly heatmaps and timing chart: slower to draw in the "
                                     "browser.")
        st.header("Checks and timing")
        s, key, default = w("explore.rtol", ctx)
        rtol = st.select_slider("Completeness tolerance (relative)", s.options, value=default,
                                key=key, format_func=lambda v: f"{v:g}")
        # Bundled models time in milliseconds; ImageNet models on a CPU take seconds per call:
        # the key changes with the kind of model, so each starts at its own default.
        s, key, default = w("explore.timing", ctx)
        budget = float(st.number_input(
            "Timing budget (s)", s.low, s.high, default, 0.5, key=key,
            help="Interleaved rounds go on until this much time is spent (at least the "
                 "minimum number of rounds)."))
        s, key, default = w("explore.rounds", ctx)
        rounds = int(st.number_input("Timing rounds (at least)", int(s.low), int(s.high),
                                     default, key=key))
        clocks = ["wall", "process"] if ctx.device.type == "cpu" else ["wall"]
        _, key, _ = w("explore.clock", ctx, options=clocks)
        clock = st.radio("Timing clock", clocks,
                         key=key, horizontal=True,
                         format_func={"wall": "elapsed", "process": "CPU time"}.get,
                         help="CPU time of this process: time other programs take on a shared "
                              "machine is not counted (exact with one torch thread; other "
                              "sessions of this app are counted).")
    return Settings(shared, clip, overlay, interactive, rtol, budget, rounds, clock)

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
            for warning in entry.warnings:
                st.warning(warning)
            if not np.isfinite(f["probs"]).all():
                st.warning("The model's outputs are NaN or Inf on this input: predictions, "
                           "attributions and checks below are not meaningful.")
            err = f["homogeneity_error"]
            st.metric("homogeneity error  max |F(ax) - aF(x)| / |aF(x)|",
                      f"{err:.2e}" if np.isfinite(err) else "not finite",
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
    s = display_settings(ctx)
    st.title("Axiomatic attribution explorer")
    st.caption("Integrated Gradients needs tens to hundreds of passes; on a bias-free ReLU "
               "network (an X-DNN) Input x Gradient equals it from one. See it, check it, time it.")
    # Filled once the maps are computed: the first thing a visitor reads is what to look at.
    lead = st.container()
    show_input(ctx)
    facts = st.container()
    if not ctx.methods:
        with facts:
            show_model_facts(ctx)
        st.info("Choose at least one attribution method in the sidebar.")
        return

    # A method that cannot run on this model (registry ``applies_to``: e.g. epsilon-LRP on a
    # ViT's LayerNorm) is left out with one note, not an error per panel.
    methods, reasons = ctx.runnable()
    if reasons:
        st.info(left_out_note(reasons))
    jobs = budget_gate(ctx, s, [(m, v) for m in methods for v in ctx.variants])
    results, total = {}, max(len(jobs), 1)
    progress = st.progress(0.0, text="Computing attributions...")
    for k, (m, v) in enumerate(jobs):
        label = explorer.method_label(m, VARIANTS[v])
        text = f"{label} on the {v} model"
        progress.progress(k / total, text=text + "...")
        try:
            results[(m, v)] = run_method(*run_args(ctx, m, v),
                                         _progress=chunk_progress(progress, k, total, text),
                                         precision=ctx.precision)
        except Exception as err:  # shown on its panel; the other methods still run
            st.error(failure_text(f"{label} ({v})", err))
    progress.empty()
    if not results:
        with facts:
            show_model_facts(ctx)
        return
    for (m, v), r in results.items():
        if r.get("not_finite"):
            st.warning(f"{explorer.method_label(m, VARIANTS[v])} ({v}): the attributions are "
                       "not finite (NaN or Inf): the model or the settings overflow.")
        if r.get("note"):
            st.warning(f"{explorer.method_label(m, VARIANTS[v])} ({v}): {r['note']}")

    with lead:
        for sentence in story.story(results, target_label=ctx.entry.labels[ctx.target],
                                    input_name=ctx.input_name, baseline_name=ctx.baseline_name):
            st.markdown(sentence)
    show_heatmaps(s, ctx, results)
    st.subheader("The model on this input")
    show_model_facts(ctx)  # after the maps: the picture first, the model's numbers next
    show_completeness(s, results)
    show_two_routes(s, ctx)
    args = timing_args(s, ctx, results)
    timing = time_results(s, args)
    show_timing(s, timing, args)
    show_downloads(s, results, timing)


def chunk_progress(bar, k: int, total: int, text: str):
    """A callback moving ``bar`` between a method's chunks. Each update is a point where
    Streamlit's Stop button ends the run; run outside the cached function's context, so the
    updates are not recorded for replay."""
    outer = contextvars.copy_context()

    def report(done: int, n: int) -> None:
        outer.run(bar.progress, (k + done / max(n, 1)) / total, text=f"{text}: {done:,}/{n:,}")

    return report


def run_args(ctx: context.Context, m: str, v: str) -> tuple:
    """The positional arguments of ``run_method`` for one (method, variant); ``precision`` goes
    by keyword (also in its cache lookup)."""
    b, bkey = ctx.baseline_for(m)
    return (ctx.model, VARIANTS[v], m, ctx.hparams(m), ctx.image_key, bkey, ctx.target, ctx.x, b)


def map_cached(ctx: context.Context, m: str, v: str) -> bool:
    """Whether the server holds this (method, variant)'s map already."""
    return is_cached(run_method, *run_args(ctx, m, v), precision=ctx.precision)


def job_seconds(ctx: context.Context, s: Settings, m: str, v: str, cached: bool = False) -> float:
    """Estimated seconds of one (method, variant) on this page, timing repeats included; of
    its timing only when its map is ``cached``."""
    entry = ctx.loaded[v].entry
    try:
        per_pass = explorer.pass_time(entry.module, ctx.x.shape[1:], device=entry.device)
        est = explorer.estimate(m, ctx.params.get(m, {}), ctx.x.shape, per_pass)
    except Exception:  # a request that cannot be estimated shows its error when it runs
        return 0.0
    seconds = page_seconds(est.seconds, s.min_rounds)
    # A cached map is not made again; a long call was timed by the run that made it.
    return (0.0 if est.seconds > LONG_CALL_S else seconds - est.seconds) if cached else seconds


def all_cached(ctx: context.Context, s: Settings, jobs: list) -> bool:
    """Whether every map of ``jobs`` and their timing are in the server's cache already."""
    if not jobs or not all(map_cached(ctx, m, v) for m, v in jobs):
        return False
    results = {(m, v): run_method(*run_args(ctx, m, v), precision=ctx.precision)  # cache hits
               for m, v in jobs}
    return is_cached(time_together, *timing_args(s, ctx, results))


def budget_gate(ctx: context.Context, s: Settings, jobs: list) -> list:
    """The jobs to run now: all when their estimate fits the budget, their results are cached
    (another visitor ran them) or the user said "Run anyway"; otherwise those that fit, with a
    note of what waits and a button to run it. A cached map is priced at its timing only."""
    approved = st.session_state.setdefault("explore-approved", set())
    key = {(m, v): (ctx.model, v, m, ctx.hparams(m), ctx.image_key, ctx.baseline_for(m)[1],
                    ctx.target, s.min_rounds) for m, v in jobs}
    pending = [j for j in jobs if key[j] not in approved]
    seconds = {j: job_seconds(ctx, s, *j) for j in jobs}
    if sum(seconds[j] for j in pending) <= ctx.budget_s:
        return jobs
    # Over the budget: what the server holds already costs nothing (the cache is asked only
    # here, where it can change the answer).
    if all_cached(ctx, s, jobs):
        return jobs
    seconds = {j: job_seconds(ctx, s, *j, cached=map_cached(ctx, *j)) for j in jobs}
    total = sum(seconds[j] for j in pending)
    if total <= ctx.budget_s:
        return jobs
    if st.session_state.get("explore-run-anyway"):
        approved.update(key[j] for j in pending)
        return jobs
    now, used = [], 0.0
    for j in jobs:
        if j not in pending or used + seconds[j] <= ctx.budget_s:
            now.append(j)
            used += seconds[j] if j in pending else 0.0
    waiting = [j for j in pending if j not in now]
    st.warning(
        f"The selected work would take about **{total:.3g} s** here, above the compute budget "
        f"of {ctx.budget_s:g} s (sidebar). Not run yet: "
        + "; ".join(f"{explorer.method_label(m, VARIANTS[v])} ({v}) ~{seconds[(m, v)]:.3g} s"
                    for m, v in waiting)
        + ". Lower their settings, raise the budget, or run them anyway (Stop cancels).")
    st.button("Run anyway", key="explore-run-anyway", type="primary")
    return now


def show_heatmaps(s: Settings, ctx: context.Context, results: dict) -> None:
    st.subheader("Attributions")
    rows = [m for m in ctx.methods if any((m, v) in results for v in ctx.variants)]
    maps = {(m, v): viz.to_map(r["attributions"]) for (m, v), r in results.items()}
    titles = {(m, v): f"{explorer.method_label(m, VARIANTS[v])} | {v}"
              + (" | NOT FINITE" if results[(m, v)].get("not_finite") else "") for (m, v) in results}
    picture = ctx.entry.to_image(ctx.x[0])
    scale = ("One colour scale for all panels" if s.shared_scale else "Each panel scaled to itself")
    if s.interactive:
        fig = viz.heatmap_grid(maps, rows, list(ctx.variants), image=picture,
                               shared_scale=s.shared_scale, clip_percentile=s.clip_percentile,
                               overlay=s.overlay, titles=titles)
        downloads.plotly_chart(fig, key="heatmaps")
        st.caption(f"Red raises the explained logit, blue lowers it; channels summed. {scale}.")
        return
    # Images by default: the page's first map draws at once (a plotly grid costs the browser
    # about a second of layout; see benchmarks/bench_browser.py).
    images, limit = viz.heatmap_images(maps, image=picture, shared_scale=s.shared_scale,
                                       clip_percentile=s.clip_percentile, overlay=s.overlay)
    lead = viz.upscale((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
    if lead.shape[:2] != next(iter(images.values())).shape[:2]:
        lead = None  # a model whose maps are not the input's size (none in the zoo today)
    st.image(viz.compose_grid(images, rows, list(ctx.variants), titles, lead=lead))
    st.image(viz.labelled_colorbar(limit if s.shared_scale else None), width=320)
    st.caption("**Red raises the logit, blue lowers it**, white is 0 (attribution in logit "
               f"units, channels summed). {scale}" + (f" (limit ±{limit:.3g})." if s.shared_scale
                                                     else ": ±max is each panel's own largest value.")
               + " Turn on interactive charts in the sidebar to read values on hover.")
    downloads.figure_buttons(lambda: viz.heatmap_grid(  # drawn as a figure only on a click
        maps, rows, list(ctx.variants), image=picture, shared_scale=s.shared_scale,
        clip_percentile=s.clip_percentile, overlay=s.overlay, titles=titles), "heatmaps",
        page="explore")


def show_input(ctx: context.Context) -> None:
    """Which input is explained, what preprocessing did to it, and any reason to doubt it."""
    for note in ctx.notes:  # e.g. an upload that could not be read (also in the sidebar)
        st.error(note)
    spec = ctx.entry.spec
    try:
        r = describe_input(ctx.input_name, ctx.image_bytes, channels=spec.channels,
                           size=spec.size, digits=spec.channels == 1)
    except explorer.InputError:  # the model took it; the description is a help only
        return
    st.caption(r.sentence)
    for warning in r.warnings:
        st.warning(warning)


def completeness_table(s: Settings, results: dict) -> pd.DataFrame:
    table = pd.DataFrame([report.completeness_row(m, VARIANTS[v], r["completeness"], s.rtol)
                          for (m, v), r in results.items()])
    marks = [badge(r.get("precision")) for r in results.values()]
    if any(marks) and "method" in table:  # numbers of a non-default precision say so
        table["method"] = [f"{m} {b}".strip() for m, b in zip(table["method"], marks)]
    return table


def _formatted(table: pd.DataFrame, fmt: str, *scientific: str) -> pd.DataFrame:
    """Numbers as short strings for display (blank where not applicable); index hidden."""
    out = table.copy()
    # Blank means "not applicable"; a row whose result is not finite shows its NaN/Inf.
    shown = (out["result"] == "not finite") if "result" in out else pd.Series(False, out.index)
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            f = "{:.2e}" if col in scientific else fmt
            out[col] = [("" if pd.isna(v) and not keep else f.format(v))
                        for v, keep in zip(out[col], shown)]
    return out.set_index(out.columns[0])


def show_completeness(s: Settings, results: dict) -> None:
    st.subheader("Completeness: does the map add up to F(x) - F(baseline)?")
    st.markdown(viz.markdown_table(_formatted(completeness_table(s, results), "{:.4g}",
                                              "rel error", "abs error")))
    st.caption(f"Pass: relative error <= {s.rtol:g}. For expected gradients F(ref) is the mean "
               "over the references drawn; for input x gradient the reference is the zero input.")
    with st.expander("Why does X-Gradient pass on the bias-free model and fail on the regular one?",
                     expanded=False):
        st.markdown(COMPLETENESS_WHY)


TWO_ROUTES = """Two ways to get an attribution that adds up exactly from one pass. The **X-DNN**
drops the biases: the ReLU network becomes positively homogeneous and X-Gradient sums to
F(x) - F(0) (Euler). The **B-cos** network makes every layer dynamic linear, F(x) = W(x) z with
z = [x, 1 - x]: with W detached, W(x) ⊙ z sums to F(x) - 0. Its encoding adds a constant, so it is
*not* homogeneous in x and X-Gradient is not exact on it. IG on the regular CNN is the many-pass
reference. Every number below is measured on this digit (accuracy: the 5,000 test digits;
Sensitivity-n: mean Pearson r over n, removing features to black)."""


def show_two_routes(s: Settings, ctx: context.Context) -> None:
    """The X-DNN and the B-cos CNN side by side on this digit (digits models only)."""
    if model_spec(ctx.model).channels != 1 or "digits-bcos" not in explorer.MODELS:
        return
    _, key, default = sharing.widget("explore.bcos", ctx)
    if not st.toggle("Compare with B-cos: two routes to exactness", value=default, key=key,
                     help="X-Gradient on the X-DNN and the B-cos contribution on the B-cos CNN, "
                          "with IG on the regular CNN, on this digit."):
        return
    st.subheader("Two routes to exactness")
    st.markdown(TWO_ROUTES)
    try:
        with st.spinner("Explaining and scoring the digit on three models..."):
            result = two_routes(ctx.image_key, ctx.x)
    except Exception as err:
        st.error(failure_text("Two routes", err))
        return
    table = pd.DataFrame(result["rows"]).drop(columns=["why exact", "agreement with labels"])
    st.markdown(viz.markdown_table(_formatted(table, "{:.4g}", "homogeneity error",
                                              "max rel. completeness error")))
    labels = list(result["maps"])
    maps = {("map", label): m for label, m in result["maps"].items()}
    picture = ctx.entry.to_image(ctx.x[0])
    images, _ = viz.heatmap_images(maps, image=picture, shared_scale=False,
                                   clip_percentile=s.clip_percentile)
    lead = viz.upscale((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
    if lead.shape[:2] != next(iter(images.values())).shape[:2]:
        lead = None
    st.image(viz.compose_grid(images, ["map"], labels,
                              {k: k[1].replace(" on the ", " | ") for k in maps}, lead=lead))
    st.caption("Each map on its own colour scale (the logits differ between models); red raises "
               "the explained logit (each model's predicted class), blue lowers it.")


def timing_args(s: Settings, ctx: context.Context, results: dict) -> tuple:
    """The arguments of ``time_together`` for what computed: the call, and the key of this
    visitor's timing in the cache (Re-time clears that key only)."""
    done = [(m, v) for v in ctx.variants for m in ctx.methods if (m, v) in results]
    long = [j for j in done if results[j]["seconds"] > LONG_CALL_S]
    runs = tuple((v, m, ctx.hparams(m), ctx.baseline_for(m)[1]) for m, v in done
                 if (m, v) not in long)
    once = tuple((v, m, ctx.hparams(m), results[(m, v)]["seconds"],
                  results[(m, v)]["forward_passes"], results[(m, v)]["backward_passes"])
                 for m, v in long)
    baselines = {m: ctx.baseline_for(m)[0] for m in ctx.methods}
    return (ctx.model, runs, ctx.image_key, ctx.target, s.budget_s, s.min_rounds, ctx.x,
            baselines, s.clock, once, ctx.precision)


def time_results(s: Settings, args: tuple) -> list[dict]:
    """Everything that computed, timed together with each variant's one-pass limit."""
    runs = args[1]
    try:
        with st.spinner(f"Timing {len(runs)} calls and the one-pass limit, interleaved "
                        f"(at least {s.min_rounds} rounds, {s.budget_s:g} s budget)..."):
            return time_together(*args)
    except Exception as err:  # timing must not take the maps down with it
        st.error(f"Timing failed: {type(err).__name__}: {err}")
        return []


def show_timing(s: Settings, records: list[dict], args: tuple) -> None:
    """The timing table, its warnings and Re-time: ``args`` are the ``time_together`` call's."""
    st.subheader("Timing")
    if not records:
        return
    table = timing_table.display_table(records)
    st.markdown(viz.markdown_table(_formatted(table, "{:.3g}")))
    noisy = timing_table.noisy_rows(records)
    if noisy:
        st.warning(f"The spread is too wide to trust for {', '.join(noisy)} (interquartile range "
                   f"above {timing_table.NOISY_SPREAD:.0%} of the median): the machine was busy. "
                   "Re-time when it is quieter.")
    if st.button("Re-time", key="explore-retime",
                 help="Timings are cached per server; this measures this page's again."):
        # This request's timing only: other sessions' timings (other keys) stay cached.
        time_together.clear(*args)
        st.rerun()
    if s.interactive:
        downloads.plotly_chart(viz.timing_figure(records), key="timing-chart")
    else:  # plotly's script alone holds the page's first map back by about a second
        st.image(viz.timing_image(records))
        downloads.figure_buttons(lambda: viz.timing_figure(records), "timing-chart", page="explore")
    r = records[0]
    on_gpu = str(r["device"]).startswith("cuda")
    when = f" Timed at {r['timed_at']} (cached since; Re-time to measure again)." \
        if r.get("timed_at") else ""
    st.caption(f"All rows timed together, round-robin: {r['rounds']} rounds on {r['device']} "
               f"({'CPU time of this process' if s.clock == 'process' else 'elapsed time'}), "
               "each call repeated inside a measurement until it lasts 10 ms"
               + (", synchronised with the GPU" if on_gpu else "") + ". Median and quartiles "
               "(error bars) per row; passes are per explained input. 'Too close to rank "
               "against' lists the rows (by #) whose quartile ranges overlap." + when
               + timing_note(records))


def attributions_npz(results: dict) -> bytes:
    """Every map of the page in one compressed ``.npz``, keyed ``<variant>__<method>``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{v}__{m}": r["attributions"] for (m, v), r in results.items()})
    return buf.getvalue()


def show_downloads(s: Settings, results: dict, timing: list[dict]) -> None:
    """The page's numbers as files. Each is made only when its button is clicked (streamlit
    calls ``data`` then, on another thread), and a click does not rerun the page."""
    cols = st.columns(3)
    cols[0].download_button("Attributions (.npz)", lambda: attributions_npz(results),
                            file_name="attributions.npz", mime="application/octet-stream",
                            on_click="ignore")
    cols[1].download_button("Completeness (.csv)",
                            lambda: completeness_table(s, results).to_csv(index=False),
                            file_name="completeness.csv", mime="text/csv", on_click="ignore")
    cols[2].download_button("Timing (.csv)", lambda: pd.DataFrame(timing).to_csv(index=False),
                            file_name="timing.csv", mime="text/csv", on_click="ignore")
