"""Path: watch Integrated Gradients integrate, and see how much the baseline decides."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

import explorer
from explorer.methods import budget, exact_cache
from explorer.presentation import viz, viz_path
from explorer.analyses.baseline_compare import DEFAULT_NAMES, compare_baselines, named_baselines
from explorer.ui import downloads
from explorer.ui import context, page_budget, sharing
from explorer.ui.cache_state import all_cached
from explorer.analyses.integration_path import linear_regions
from explorer.ui.compute import background_for, get_model, model_spec

STRAIGHT = 1e-4  # linearity error and gradient spread below this: a straight line, in float32
REFERENCES = 8


def _maps(t: torch.Tensor) -> np.ndarray:
    """[S, C, H, W] -> [S, H, W] float32 (channels summed, as every heatmap here)."""
    t = t.float().cpu()
    return (t.sum(1) if t.dim() == 4 else t).numpy()


@st.cache_data(show_spinner="Tracing the path...", max_entries=32)
def trace_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
              steps: int, _x: torch.Tensor, _baseline: torch.Tensor) -> dict:
    """One path trace of one variant, reduced to what the page draws (numpy, channels summed)."""
    entry = get_model(model, bias_free).entry
    tr = explorer.path_trace(entry.module, _x.to(entry.device), target,
                             baseline=_baseline.to(entry.device), steps=steps)
    zero = torch.zeros_like(tr.accumulated[0, :1])
    return {
        "alphas": tr.alphas.cpu().numpy(), "outputs": tr.outputs[0].double().cpu().numpy(),
        "sums": tr.attribution_sums[0].double().cpu().numpy(),
        "baseline_output": float(tr.baseline_output[0]), "delta": float(tr.delta[0]),
        # index 0 is alpha = 0: the gradient at x' and nothing accumulated yet
        "gradients": _maps(torch.cat([tr.baseline_gradient[:1], tr.gradients[0]])),
        "accumulated": _maps(torch.cat([zero, tr.accumulated[0]])),
        "linearity": float(tr.linearity_error()[0]), "spread": float(tr.gradient_spread()[0]),
        "completeness": float(tr.completeness_error[0]),
    }


@st.cache_data(show_spinner="Walking the path's linear regions (exact IG)...", max_entries=32)
def regions_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
                _x: torch.Tensor, _baseline: torch.Tensor) -> dict:
    """Exact IG's region boundaries along alpha on one variant (bundled models only: elsewhere
    the walk can take thousands of passes), or why there are none."""
    if model_spec(model).family != "bundled":
        return {"boundaries": None, "count": None,
                "note": "region boundaries are walked on the bundled models only (cost)"}
    entry = get_model(model, bias_free).entry
    r = linear_regions(entry.module, _x.to(entry.device), target,
                       baseline=_baseline.to(entry.device))[0]
    return {"boundaries": None if r.boundaries is None else r.boundaries.numpy(),
            "count": r.count, "note": r.note}


@st.cache_data(show_spinner="Integrating from every baseline...", max_entries=32)
def baselines_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
                  ig_params: tuple, _x: torch.Tensor, _image: torch.Tensor | None,
                  sigmas: tuple = ()) -> list[dict]:
    """IG from each baseline on one variant: display image, map, F(x') and completeness.
    ``sigmas``: ((baseline name, width), ...) set in the sidebar."""
    entry = get_model(model, bias_free).entry
    x = _x.to(entry.device)
    refs = background_for(model)[:REFERENCES].to(entry.device)
    bases = named_baselines(x, input_space=entry.input_space, references=refs,
                            image=None if _image is None else _image.to(entry.device),
                            sigmas=dict(sigmas))
    out = []
    for r in compare_baselines(entry.module, x, target, bases, **dict(ig_params)):
        row = r.report.rows()[0]
        out.append({"name": r.name, "image": entry.to_image(r.baseline[0].cpu()),
                    "map": viz.to_map(r.attributions[0].float().cpu().numpy()),
                    "F(x')": row["reference_output"], "F(x) - F(x')": row["delta"],
                    "attribution sum": row["attribution_sum"], "rel error": row["rel_error"]})
    return out


def straight_line_sentence(variant: str, t: dict) -> str | None:
    """The one sentence the page says when F is measured straight and the gradient constant."""
    if t["linearity"] < STRAIGHT and t["spread"] < STRAIGHT:
        return (f"On the **{variant}** model F is a straight line in alpha (largest deviation "
                f"{t['linearity']:.1e} of F(x) - F(x')) and the gradient is the same at every point "
                f"of the path (spread {t['spread']:.1e}): one gradient gives the whole integral, "
                f"so IG needs a single pass here (from the zero baseline on a bias-free network, "
                f"that pass is X-Gradient).")
    return None


def trace_args(ctx: context.Context, variant: str, steps: int) -> tuple:
    """The arguments of ``trace_for`` (also its cache lookup)."""
    return ctx.keyed(variant) + (steps, ctx.x, ctx.baseline)


def regions_args(ctx: context.Context, variant: str) -> tuple:
    """The arguments of ``regions_for`` (also its cache lookup)."""
    return ctx.keyed(variant) + (ctx.x, ctx.baseline)


def walk_allowed(ctx: context.Context) -> bool:
    """Whether the region walk fits the budget (or was approved): priced per variant from the
    regions expected (0 when the shipped exact-IG cache has this view)."""
    pp = page_budget.per_pass(ctx)
    if pp is None or model_spec(ctx.model).family != "bundled":
        return True
    work = []
    for v in ctx.variants:
        entry = ctx.loaded[v].entry
        regions = exact_cache.expected_regions(entry.module, ctx.x.to(entry.device),
                                               torch.tensor([ctx.target]),
                                               ctx.baseline.to(entry.device))
        if regions:
            work.append(budget.exact_walk_work(f"exact IG walk, ~{regions:,} regions ({v})",
                                               regions, pp,
                                               layered=exact_cache.walks_layered(
                                                   entry.module, ctx.x.to(entry.device))))
    return page_budget.allowed(ctx, "path-regions", work, cached=lambda: all_cached(
        [(regions_for, regions_args(ctx, v), {}) for v in ctx.variants]))


@st.fragment  # moving the slider reruns only this part: the baselines below are not redrawn
def show_path(ctx: context.Context, steps: int) -> None:
    traces = {v: trace_for(*trace_args(ctx, v, steps)) for v in ctx.variants}
    # A new number of steps is a new slider (its step changes): start it where alpha was.
    s, key, default = sharing.widget("path.alpha", ctx)
    kept = round(st.session_state.get("path-alpha-kept", default) * steps) / steps
    alpha = st.slider("alpha: position on the path from the baseline x' (0) to the input x (1)",
                      s.low, s.high, kept, 1.0 / steps, key=key, format="%.3f")
    st.session_state["path-alpha-kept"] = alpha
    sharing.follow("path.alpha", alpha, ctx)  # this fragment's reruns do not reach the sidebar
    k = int(round(alpha * steps))
    point = ctx.baseline + (k / steps) * (ctx.x - ctx.baseline)
    image = ctx.entry.to_image(point[0])
    limits = {v: (float(np.abs(t["gradients"]).max()), float(np.abs(t["accumulated"]).max()))
              for v, t in traces.items()}
    maps = {v: (t["gradients"][k], t["accumulated"][k]) for v, t in traces.items()}
    downloads.plotly_chart(viz_path.path_maps_figure(image, maps, limits, k / steps),
                       width="stretch", key="path-maps")
    for v, t in traces.items():
        if k == 0 and not np.any(t["gradients"][0]):
            st.info(f"The **{v}** gradient panel is blank at alpha = 0 because the point is the "
                    "baseline itself. From the zero input, every ReLU of a bias-free network "
                    "sits exactly at its kink (its input is 0), where the gradient is taken as "
                    "0. Any alpha > 0 shows the gradient that is the same along the rest of the "
                    "path.")
    _, key, default = sharing.widget("path.regions", ctx)
    walk = st.toggle("Mark the linear regions (exact IG's walk: one pass per region, thousands "
                     "on the regular digits CNN)", value=default, key=key)
    sharing.follow("path.regions", walk, ctx)
    none = {"boundaries": None, "count": None, "note": "switch on 'Mark the linear regions'"}
    if walk and not walk_allowed(ctx):
        walk, none = False, {**none, "note": "the walk waits for 'Run anyway' above"}
    regions = {v: regions_for(*regions_args(ctx, v)) if walk else none
               for v in ctx.variants}
    for v, col in zip(ctx.variants, st.columns(len(ctx.variants))):
        t, r = traces[v], regions[v]
        with col:
            downloads.plotly_chart(viz_path.path_chart(t["alphas"], t["outputs"], t["sums"],
                                                   t["baseline_output"], k / steps, title=v,
                                                   boundaries=r["boundaries"]),
                               width="stretch", key=f"path-chart-{v}")
            where = (f" {r['count']:,} linear region{'s' if r['count'] != 1 else ''} along the "
                     "path (ticks: where the gradient can change)." if r["count"] is not None
                     else "" if not walk else f" No region ticks: {r['note']}.")
            st.caption(f"Completeness error at alpha = 1 ({steps} steps, right Riemann sum): "
                       f"{t['completeness']:.2e} of F(x) - F(x') = {t['delta']:.4g}.{where}")
    sentences = [s for v in ctx.variants if (s := straight_line_sentence(v, traces[v]))]
    for s in sentences:
        st.success(s)


PATH_POINTS_SHOWN = 5


@st.cache_data(show_spinner="Walking the method's path...", max_entries=32)
def method_path_for(model: str, bias_free: bool, image_key: str, baseline_key: str, target: int,
                    method: str, params: tuple, _x: torch.Tensor, _baseline: torch.Tensor) -> dict:
    """One method's path on one variant, reduced to what the page draws."""
    entry = get_model(model, bias_free).entry
    p = explorer.method_path(method, entry.module, _x.to(entry.device), target,
                             baseline=_baseline.to(entry.device), **dict(params))
    shown = np.linspace(0, len(p.positions) - 1, PATH_POINTS_SHOWN).round().astype(int)
    return {"positions": p.positions, "outputs": p.outputs[0].cpu().numpy(),
            "sums": p.attribution_sums[0].cpu().numpy(),
            "distance": float(p.straight_distance[0].max()),
            "images": [entry.to_image(p.points[0, k].cpu()) for k in shown],
            "titles": [f"k/S = {p.positions[k]:.2f}" for k in shown]}


def method_path_params(ctx: context.Context, method: str, steps: int) -> dict:
    """The sidebar's settings for ``method`` (Explore's), with this page's number of steps."""
    return dict(ctx.params.get(method, {}), steps=steps)


def chosen_path_method(ctx: context.Context) -> str:
    """The "Other paths" selectbox's method before it is drawn (its choice from the last run;
    the first run, its default)."""
    s, key, default = sharing.widget("path.method", ctx)  # seeded here: priced before drawn
    return st.session_state.get(key, default)


def method_path_work(ctx: context.Context, steps: int, pp) -> list:
    """The "Other paths" section's work: the chosen method once per variant."""
    method = chosen_path_method(ctx)
    return [budget.method_work(f"{explorer.METHODS[method].label} path ({v})", method,
                               method_path_params(ctx, method, steps), ctx.x.shape, pp)
            for v in ctx.variants]


def method_path_args(ctx: context.Context, variant: str, method: str, steps: int) -> tuple:
    """The arguments of ``method_path_for`` (also its cache lookup)."""
    params = method_path_params(ctx, method, steps)
    return ctx.keyed(variant) + (method, tuple(sorted(params.items())), ctx.x, ctx.baseline)


def show_method_path(ctx: context.Context, steps: int) -> None:
    """The path another path method integrates along (Guided IG's is not straight)."""
    st.subheader("Other paths: Guided IG, Blur IG, IDGI")
    s, key, _ = sharing.widget("path.method", ctx)
    method = st.selectbox("Path of", s.options, key=key,
                          format_func=lambda m: explorer.METHODS[m].label)
    for v, col in zip(ctx.variants, st.columns(len(ctx.variants))):
        t = method_path_for(*method_path_args(ctx, v, method, steps))
        with col:
            downloads.plotly_chart(viz_path.image_strip(t["images"], t["titles"], panel_px=110),
                                   width="stretch", key=f"path-method-points-{v}")
            downloads.plotly_chart(viz_path.path_chart(t["positions"][1:], t["outputs"][1:],
                                                       t["sums"][1:], float(t["outputs"][0]),
                                                       title=v, f_name="F(P_k) - F(P_0)"),
                                   width="stretch", key=f"path-method-chart-{v}")
            st.caption(f"{explorer.METHODS[method].label}, {steps} steps: P_0 is its reference "
                       f"(the blurred input for Blur IG), P_S the input. Largest distance from "
                       f"the straight line P_0 to x: {t['distance']:.2e} of its length.")


def baselines_args(ctx: context.Context, variant: str) -> tuple:
    """The arguments of ``baselines_for`` (also its cache lookup)."""
    image = ctx.baseline if ctx.baseline_name == "image" else None
    sigmas = () if ctx.baseline_sigma is None else ((ctx.baseline_name, ctx.baseline_sigma),)
    return ctx.keyed(variant) + (ctx.hparams("integrated_gradients"), ctx.x, image, sigmas)


def cached_calls(ctx: context.Context, steps: int) -> list[tuple]:
    """The page's priced cached calls (path traces, the other path, the baselines), to ask the
    cache whether its work is done already."""
    method = chosen_path_method(ctx)
    return [call for v in ctx.variants for call in (
        (trace_for, trace_args(ctx, v, steps), {}),
        (method_path_for, method_path_args(ctx, v, method, steps), {}),
        (baselines_for, baselines_args(ctx, v), {}))]


def show_baselines(ctx: context.Context) -> None:
    st.subheader("Baselines side by side: Integrated Gradients from each")
    ig_params = ctx.hparams("integrated_gradients")
    image = ctx.baseline if ctx.baseline_name == "image" else None
    step = page_budget.stepper(len(ctx.variants), "Integrating from every baseline:")
    results = {}
    for v in ctx.variants:
        step(f"the {v} model")
        results[v] = baselines_for(*baselines_args(ctx, v))
    step(None)
    first = results[ctx.variants[0]]
    names = [r["name"] for r in first]
    downloads.plotly_chart(viz_path.image_strip([r["image"] for r in first], names),
                       width="stretch", key="path-baseline-images")
    maps, titles, rows = {}, {}, []
    for v, res in results.items():
        for r in res:
            maps[(v, r["name"])] = r["map"]
            f_ref = r["F(x')"]
            titles[(v, r["name"])] = f"{v}: F(x')={f_ref:.3g}, err {r['rel error']:.1e}"
            rows.append({"baseline": r["name"], "model": v, **{c: r[c] for c in (
                "F(x')", "F(x) - F(x')", "attribution sum", "rel error")}})
    downloads.plotly_chart(viz.heatmap_grid(maps, list(ctx.variants), names, titles=titles,
                                        panel_px=170), width="stretch", key="path-baseline-maps")
    st.dataframe(pd.DataFrame(rows).style.format(
        {"F(x')": "{:.4g}", "F(x) - F(x')": "{:.4g}", "attribution sum": "{:.4g}",
         "rel error": "{:.2e}"}), hide_index=True, key="path-baseline-table")
    upload = "" if image is not None else (" Choose **Upload an image...** as the baseline in "
                                           "the sidebar to add your own.")
    means = [n for n in names if n.startswith("mean of ")]
    k = int(means[0].split()[2]) if means else 0  # what was run: fewer when the set is smaller
    source = "training inputs" if ctx.entry.spec.channels == 1 else "sample photos"
    mean = (f" The {means[0]} averages IG from {k} {source} (as expected gradients does) and is "
            "complete against the mean of F over them.") if means else ""
    st.caption(f"IG with {dict(ig_params).get('steps', 32)} steps "
               f"({dict(ig_params).get('rule', 'gauss_legendre')}).{mean}" + upload)


def render() -> None:
    ctx = context.current()
    st.title("Path: watch Integrated Gradients integrate")
    st.markdown(
        "IG adds up the gradient along the straight line from the baseline x' to the input x. "
        "Move alpha to walk the path: the gradient there, and the attribution accumulated so "
        "far. The chart compares F along the path with the accumulated sum; at alpha = 1 the "
        "sum should reach F(x) - F(x') (completeness).")
    s, key, default = sharing.widget("path.steps", ctx)
    steps = st.select_slider("Steps on the path", s.options, value=default, key=key)
    pp = page_budget.per_pass(ctx)
    if pp is not None:
        extra = 1 if ctx.baseline_name == "image" else 0
        work = budget.path_page_work(ctx.variants, int(steps), ctx.params.get(
            "integrated_gradients", {}), ctx.x.shape, pp, baselines=len(DEFAULT_NAMES) + extra,
            references=min(REFERENCES, int(background_for(ctx.model).shape[0])))
        work += method_path_work(ctx, int(steps), pp)
        if not page_budget.allowed(ctx, "path", work,
                                   cached=lambda: all_cached(cached_calls(ctx, int(steps)))):
            return
    try:
        show_path(ctx, int(steps))
        show_method_path(ctx, int(steps))
        show_baselines(ctx)
    except explorer.InputError as err:
        st.error(f"Could not trace the path on this model and input: {err}")
