"""Plotly figures of a bench result (no streamlit): time with spread, ratios, IG error vs time."""
from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from explorer.presentation.viz_axes import EXACT_TEXT, decade_ticks, error_axis, exact_marker, line_style


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
