"""Plotly figures of a bench result (no streamlit): time with spread, ratios, IG error vs time."""
from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from explorer.viz_axes import EXACT_TEXT, decade_ticks, error_axis, exact_marker, line_style


def _bar_height(n: int) -> int:
    return 120 + 26 * max(1, n)


def time_figure(rows: Sequence[Mapping], title: str) -> go.Figure:
    """Median time per row (log scale), the interquartile range as error bars."""
    fig = go.Figure()
    for v in dict.fromkeys(r["variant"] for r in rows):
        sub = [r for r in rows if r["variant"] == v]
        fig.add_trace(go.Bar(
            y=[r["method"] for r in sub], x=[r["median_ms"] for r in sub], name=v, orientation="h",
            error_x=dict(type="data", symmetric=False,
                         array=[r["q3_ms"] - r["median_ms"] for r in sub],
                         arrayminus=[r["median_ms"] - r["q1_ms"] for r in sub]),
            hovertemplate="%{y}: %{x:.3g} ms<extra>" + v + "</extra>"))
    times = [v for r in rows for v in (r["median_ms"], r["q1_ms"], r["q3_ms"]) if v and v > 0]
    fig.update_layout(title=title, barmode="group", xaxis_type="log",
                      xaxis_title="median ms per call (bars: interquartile range)",
                      yaxis_title="method",
                      height=_bar_height(len(rows)), margin=dict(l=10, r=10, t=40, b=40),
                      yaxis=dict(autorange="reversed"))
    if times:
        fig.update_xaxes(**decade_ticks(min(times), max(times)))
    return fig


def ratio_figure(labels: Sequence[str], ratios: Sequence[float], title: str, axis: str) -> go.Figure:
    fig = go.Figure(go.Bar(y=list(labels), x=list(ratios), orientation="h",
                           hovertemplate="%{y}: x%{x:.3g}<extra></extra>"))
    fig.add_vline(x=1.0, line_dash="dot")
    fig.update_layout(title=title, xaxis_type="log", xaxis_title=axis, yaxis_title="method",
                      height=_bar_height(len(labels)), margin=dict(l=10, r=10, t=40, b=40),
                      yaxis=dict(autorange="reversed"))
    shown = [r for r in ratios if r and r > 0]
    if shown:
        fig.update_xaxes(**decade_ticks(min(shown + [1.0]), max(shown + [1.0])))
    return fig


def completeness_figure(points: Sequence[Mapping], title: str) -> go.Figure:
    """IG's completeness error against its median time, one line per variant. An exact zero is
    drawn on the error axis's "exact" row with a star (a log axis has no 0)."""
    fig = go.Figure()
    axis = error_axis(p["rel_error"] for p in points)
    times = [p["median_ms"] for p in points if p["median_ms"] and p["median_ms"] > 0]
    for k, v in enumerate(dict.fromkeys(p["variant"] for p in points)):
        sub = [p for p in points if p["variant"] == v]
        err = [p["rel_error"] for p in sub]
        fig.add_trace(go.Scatter(x=[p["median_ms"] for p in sub], y=axis.y(err),
                                 text=[f"{p['steps']} steps" + (f" ({EXACT_TEXT})" if e == 0 else "")
                                       for p, e in zip(sub, err)],
                                 mode="lines+markers+text", marker=exact_marker(err),
                                 line=line_style(k), textposition="top center", name=v))
    fig.update_layout(title=title, xaxis_type="log",
                      xaxis_title="median ms per call", yaxis_title="completeness error (relative)",
                      height=420, margin=dict(l=10, r=10, t=40, b=40))
    fig.update_yaxes(**axis.layout())
    if times:
        fig.update_xaxes(**decade_ticks(min(times), max(times)))
    return fig


def bench_figures(result: Mapping) -> dict[str, go.Figure]:
    """Every figure the sections' results allow, by file stem."""
    figs: dict[str, go.Figure] = {}
    sections = result.get("sections", {})
    methods = sections.get("methods")
    if methods:
        rows = methods["rows"]
        figs["time_per_method"] = time_figure(rows, f"Time per method, {methods['model']}")
        figs["ratio_to_limit"] = ratio_figure(
            [f"{r['method']} [{r['variant']}]" for r in rows], [r["x_limit"] for r in rows],
            "Time / one forward+backward (the one-pass limit)", "x the limit (log)")
        if methods.get("ig_completeness"):
            figs["ig_completeness_vs_time"] = completeness_figure(
                methods["ig_completeness"], "Integrated Gradients: completeness error against time")
    captum = sections.get("captum")
    if captum and captum.get("pairs"):
        figs["ratio_to_captum"] = ratio_figure(
            [p["method"] for p in captum["pairs"]], [p["captum_over_ours"] for p in captum["pairs"]],
            "Captum's median / ours at equal settings (> 1: ours faster)", "Captum / ours (log)")
    return figs


def write_png(fig: go.Figure, path) -> None:
    """A PNG of a bar or scatter figure drawn with matplotlib (plotly's PNG export needs kaleido
    and a browser, which an offline machine may not have)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layout = fig.layout
    bars = [t for t in fig.data if t.type == "bar"]
    categories = list(dict.fromkeys(lab for t in bars for lab in t.y))  # the union, in order
    f, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(categories)) if bars else (8, 5))
    for k, t in enumerate(fig.data):
        if t.type == "bar":
            labels, values = list(t.y), list(t.x)
            offset = (k - (len(bars) - 1) / 2) * 0.8 / len(bars)
            pos = [categories.index(lab) + offset for lab in labels]
            err = None
            if t.error_x is not None and t.error_x.array is not None:
                err = [list(t.error_x.arrayminus), list(t.error_x.array)]
            ax.barh(pos, values, height=0.8 / len(bars), xerr=err, label=t.name, capsize=2)
            ax.set_yticks(range(len(categories)), categories, fontsize=8)
        else:
            ax.plot(list(t.x), list(t.y), marker="o", label=t.name)
            for xv, yv, s in zip(t.x, t.y, t.text or []):
                ax.annotate(s, (xv, yv), fontsize=7)
    if bars:
        ax.invert_yaxis()
    if layout.xaxis.type == "log":
        ax.set_xscale("log")
    if layout.yaxis.type == "log":
        ax.set_yscale("log")
    ax.set_xlabel(layout.xaxis.title.text or "")
    ax.set_ylabel(layout.yaxis.title.text or "")
    ax.set_title(layout.title.text or "", fontsize=10)
    if len(fig.data) > 1:
        ax.legend(fontsize=8)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)
