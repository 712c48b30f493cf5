"""Metrics: how faithful is each map? Sensitivity-n and insertion/deletion on the current input."""
from __future__ import annotations

import contextvars
import warnings

import pandas as pd
import streamlit as st
import torch

import explorer
from explorer.methods import budget
from explorer.presentation import viz
from explorer.analyses.evaluate import Evaluation, evaluate, log_grid
from explorer.methods.registry import left_out_note
from explorer.analyses.metrics import MetricWarning, feature_index
from explorer.ui import downloads
from explorer.ui import context, page_budget, sharing
from explorer.ui.cache_state import all_cached
from explorer.ui.failures import failure_text
from explorer.ui.compute import VARIANTS, get_model

ABOUT = """
**Sensitivity-n** (Ancona et al. 2018): remove a random subset S of n features (set them to the
baseline) and compare the drop of the target logit with the attribution summed over S; the
Pearson r over many subsets says how well the map predicts the effect of removing n features at
once. A complete method (IG, DeepLIFT) reaches r = 1 at n = all; occlusion of single features
is exact at n = 1. **Insertion / deletion** (RISE): add the top-ranked features into the fill,
or remove them from the input, in equal chunks; a good map makes the insertion curve rise fast
(high area) and the deletion curve fall fast (low area).
"""


def settings(ctx: context.Context) -> dict:
    """This page's own widgets (keys prefixed ``metrics-``)."""
    w = sharing.widget  # each widget from its declaration in explorer.ui.view_settings
    with st.expander("Metric settings", expanded=False):
        cols = st.columns(4)
        cols[0].caption("Model variants: the sidebar's bias removal choice (both are scored "
                        "side by side).")
        # ImageNet-size inputs start with patches (else there are 50,000 features): the key
        # changes with the input size, so each kind of model starts at its own default.
        s, key, default = w("metrics.block", ctx)
        block = int(cols[1].number_input("Feature = square patch of side", int(s.low),
                                         int(s.high), default, key=key))
        s, key, default = w("metrics.subsets", ctx)
        subsets = int(cols[2].number_input("Random subsets per n", int(s.low), int(s.high),
                                           default, key=key))
        s, key, default = w("metrics.seed", ctx)
        seed = int(cols[3].number_input("Seed of the subsets", int(s.low), int(s.high), default,
                                        key=key))
        cols = st.columns(3)
        s, key, default = w("metrics.steps", ctx)
        steps = int(cols[0].number_input("Insertion/deletion chunks", int(s.low), int(s.high),
                                         default, key=key))
        s, key, default = w("metrics.fill", ctx)
        fill = cols[1].selectbox("Fill of removed features", s.options,
                                 index=s.options.index(default), key=key,
                                 help="blur: a blurred copy; black: pixels 0; baseline: the "
                                      "baseline chosen in the sidebar")
        s, key, default = w("metrics.score", ctx)
        score = cols[2].selectbox("Score", s.options, index=s.options.index(default), key=key)
    return dict(block=block, subsets=subsets, seed=seed, steps=steps,
                fill=fill, score=score)


@st.cache_data(show_spinner=False, max_entries=32)
def compute(model: str, bias_free: bool, methods: tuple, image_key: str, baseline_key: str,
            target: int, options: tuple, _x: torch.Tensor, _baseline: torch.Tensor,
            _method_baselines: dict, _progress) -> Evaluation:
    """The evaluation of the selected methods on this input (cached on what changes it)."""
    entry = get_model(model, bias_free).entry
    device = entry.device
    x = _x.to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)  # shown on the page from ``undefined``
        return evaluate(
            entry.module, x, target, methods={m: dict(p) for m, p in methods}, bias_free=bias_free,
            baseline=_baseline.to(device),
            method_baselines={m: None if b is None else b.to(device)
                              for m, b in _method_baselines.items()},
            input_space=entry.input_space, progress=_progress, **dict(options))


def compute_args(ctx: context.Context, variant: str, methods: list[str], options: dict) -> tuple:
    """The arguments of ``compute`` for one variant, but its progress callback (also its cache
    lookup: the callback is not part of the key)."""
    baselines = {m: ctx.baseline_for(m) for m in methods}
    baseline_keys = "|".join([ctx.baseline_key] + [k for _, k in baselines.values()])
    return (ctx.model, VARIANTS[variant], tuple((m, ctx.hparams(m)) for m in methods),
            ctx.image_key, baseline_keys, ctx.target, tuple(sorted(options.items())), ctx.x,
            ctx.baseline, {m: b for m, (b, _) in baselines.items()})


def render() -> None:
    ctx = context.current()
    st.title("How faithful is each map?")
    st.caption("Sensitivity-n and insertion/deletion of the selected methods on this input.")
    with st.expander("What these metrics measure"):
        st.markdown(ABOUT)
    if not ctx.methods:
        st.info("Choose at least one attribution method in the sidebar.")
        return
    s = settings(ctx)
    entry = ctx.entry
    # A method that cannot run on this model (registry ``applies_to``) is left out, said once;
    # the others are scored.
    methods, reasons = ctx.runnable()
    if reasons:
        st.info(left_out_note(reasons))
    if not methods:
        return
    try:
        features = feature_index(ctx.x.shape[1:], s["block"])[1]
    except explorer.InputError as err:
        st.error(f"{err}")
        return
    options = dict(ns=tuple(log_grid(features)), subsets=s["subsets"], block=s["block"],
                   seed=s["seed"], steps=min(s["steps"], features), fill=s["fill"],
                   score=s["score"])
    pp = page_budget.per_pass(ctx)
    if pp is not None and not page_budget.allowed(ctx, "metrics", budget.metrics_page_work(
            {m: ctx.params.get(m, {}) for m in methods}, ctx.variants, ctx.x.shape, pp,
            ns=len(options["ns"]), subsets=s["subsets"], steps=options["steps"]),
            cached=lambda: all_cached([(compute, compute_args(ctx, v, methods, options) + (None,), {})
                                       for v in ctx.variants])):
        return
    bar = st.progress(0.0, text="Scoring the maps...")
    results = {}
    outer = contextvars.copy_context()  # progress drawn outside the cached call's recording
    for i, v in enumerate(ctx.variants):
        def report(fraction, text, i=i, v=v):
            outer.run(bar.progress, min((i + fraction) / len(ctx.variants), 1.0),
                      text=f"{v} model: {text}")
        try:
            results[v] = compute(*compute_args(ctx, v, methods, options), report)
        except Exception as err:  # shown here; the page keeps working
            st.error(failure_text(f"Scoring the maps ({v} model)", err))
    bar.empty()
    if not results:
        return

    st.subheader("Sensitivity-n")
    st.caption(f"{entry.title}, class {entry.labels[ctx.target]}; {features} features "
               f"({s['block']}x{s['block']} patches, all channels), {s['subsets']} random subsets "
               f"per n, removed to the **{ctx.baseline_name}** baseline; "
               f"{' and '.join(results)} model{'s' if len(results) > 1 else ''}.")
    for col, (v, result) in zip(st.columns(len(results)), results.items()):
        scores = result.scores
        with col:
            st.markdown(f"**{v} model**")
            downloads.plotly_chart(viz.sensitivity_n_figure(
                result.ns, {r.label: r.sensitivity.correlation.tolist() for r in scores}),
                key=f"metrics-sensitivity-{v}")
            undefined = sorted({n for r in scores
                                for n, k in zip(r.sensitivity.ns, r.sensitivity.undefined) if k})
            if undefined:
                st.caption(f"r is undefined (a gap in the plot) at n = "
                           f"{', '.join(map(str, undefined))}: the attribution sums or the output "
                           "drops did not vary over the subsets.")

    st.subheader("Insertion and deletion")
    for col, (v, result) in zip(st.columns(len(results)), results.items()):
        scores = result.scores
        with col:
            st.markdown(f"**{v} model**")
            downloads.plotly_chart(viz.insertion_deletion_figure(
                scores[0].insdel.fractions.tolist(),
                {r.label: r.insdel.insertion[0].tolist() for r in scores},
                {r.label: r.insdel.deletion[0].tolist() for r in scores}, s["score"]),
                key=f"metrics-insdel-{v}")
            rows = pd.DataFrame(result.summary_rows()).set_index("method")  # one input
            table = rows[["insertion AUC", "deletion AUC"]].rename(columns={
                "insertion AUC": "insertion AUC (higher is better)",
                "deletion AUC": "deletion AUC (lower is better)"})
            st.table(table.style.format("{:.4g}"))
    st.caption(f"Fill: {s['fill']}; score: target {s['score']}; {options['steps']} chunks. "
               + fill_sentence(s["fill"], ctx.baseline_name)
               + " The same over many inputs: `python -m explorer evaluate`.")


def fill_sentence(fill: str, baseline: str) -> str:
    """Whether the two metrics remove features the same way, and if not why."""
    if fill == "baseline":
        return f"Both metrics replace features by the same **{baseline}** baseline."
    return (f"Sensitivity-n removes features to the **{baseline}** baseline (what the methods "
            f"integrate from, as its definition asks), insertion/deletion fills them with "
            f"**{fill}** (RISE's choice: sharp edges of a constant fill are out of the model's "
            "domain). Choose the fill *baseline* to use one fill for both.")
