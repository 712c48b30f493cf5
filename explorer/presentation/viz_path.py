"""Figures of the integration path and of IG's convergence (plotly, no streamlit)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.presentation.viz import DIVERGING
from explorer.presentation.viz_axes import EXACT_SYMBOL, EXACT_TEXT, SYMBOLS, error_axis, line_style, value_ticks

RULE_COLORS = {"left": "#1f77b4", "right": "#ff7f0e", "middle": "#2ca02c", "trapezoid": "#9467bd",
               "gauss_legendre": "#d62728"}


def _rgb(image: np.ndarray) -> go.Image:
    return go.Image(z=(np.clip(image, 0, 1) * 255).round().astype(np.uint8), hoverinfo="skip")


def _heatmap(m: np.ndarray, limit: float, name: str, showscale: bool, colorbar_x: float) -> go.Heatmap:
    limit = limit if limit > 0 else 1.0
    # Panels have their own limits (written in their titles): the one colour bar reads in
    # fractions of each panel's limit, not in the units of whichever panel carries it.
    return go.Heatmap(z=m, zmin=-limit, zmax=limit, zmid=0, colorscale=DIVERGING, showscale=showscale,
                      colorbar=dict(title="share of the<br>panel's limit", len=0.45, x=colorbar_x,
                                    thickness=12, tickmode="array",
                                    tickvals=[-limit, -limit / 2, 0, limit / 2, limit],
                                    ticktext=["-limit", "-limit/2", "0", "+limit/2", "+limit"]),
                      hovertemplate="x=%{x} y=%{y}<br>" + name + "=%{z:.4g}<extra></extra>")


def _square(fig: go.Figure, panels: int) -> None:
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"


def path_maps_figure(image: np.ndarray, maps: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     limits: Mapping[str, tuple[float, float]], alpha: float,
                     panel_px: int = 220) -> go.Figure:
    """Per variant (row): the interpolated input, dF/dx at alpha, the attribution accumulated
    from 0 to alpha. ``limits[variant]`` = (gradient, attribution) colour limits, fixed along
    the path so that the accumulated map visibly grows as alpha moves."""
    rows = list(maps)
    titles = []
    for v in rows:
        g_lim, a_lim = (lim if lim > 0 else 1.0 for lim in limits[v])
        titles += [f"x' + {alpha:.3g} (x - x')",
                   f"{v}: gradient at alpha = {alpha:.3g} (limit ±{g_lim:.2g})",
                   f"{v}: accumulated 0..{alpha:.3g} (limit ±{a_lim:.2g})"]
    fig = make_subplots(rows=len(rows), cols=3, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.08)
    for i, v in enumerate(rows, start=1):
        grad, acc = maps[v]
        g_lim, a_lim = limits[v]
        fig.add_trace(_rgb(image), row=i, col=1)
        fig.add_trace(_heatmap(grad, g_lim, "gradient", False, 0.64), row=i, col=2)
        fig.add_trace(_heatmap(acc, a_lim, "attribution", i == 1, 1.0), row=i, col=3)
    _square(fig, 3 * len(rows))
    fig.update_layout(height=panel_px * len(rows) + 50, margin=dict(l=10, r=10, t=40, b=10))
    for ann in fig.layout.annotations:
        ann.font.size = 12
    return fig


def path_chart(alphas: np.ndarray, outputs: np.ndarray, attribution_sums: np.ndarray,
               baseline_output: float, alpha: float | None = None, title: str = "",
               f_name: str = "F(x' + a(x - x')) - F(x')",
               boundaries: np.ndarray | None = None) -> go.Figure:
    """F(x' + a (x - x')) - F(x') and the attribution sum accumulated up to a, both against a
    (both start at 0 at a = 0), with F(x) - F(x') as a dashed line: the gap between the sum and
    that line at a = 1 is the completeness error. ``f_name`` names the F curve (another path's
    points, e.g. Guided IG's). ``boundaries``: alphas where the network's linear region changes
    (exact IG's walk), drawn as ticks along the bottom."""
    a = np.concatenate([[0.0], np.asarray(alphas, dtype=float)])
    f = np.concatenate([[0.0], np.asarray(outputs, dtype=float) - baseline_output])
    s = np.concatenate([[0.0], np.asarray(attribution_sums, dtype=float)])
    delta = float(f[-1])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=a, y=f, name=f_name, mode="lines",
                             line=dict(color="#444")))
    fig.add_trace(go.Scatter(x=a, y=s, name="attribution sum, 0..a", mode="lines",
                             line=dict(color="#d62728")))
    fig.add_hline(y=delta, line_dash="dash", line_color="#1f77b4",
                  annotation_text=f"F(x) - F(x') = {delta:.4g}", annotation_position="top left")
    gap = float(s[-1]) - delta
    fig.add_annotation(x=1.0, y=float(s[-1]), text=f"gap {gap:+.2e}", showarrow=True, ax=-50, ay=-25)
    if alpha is not None:
        fig.add_vline(x=alpha, line_color="#999", line_width=1)
    if boundaries is not None:
        b = np.asarray(boundaries, dtype=float)
        fig.add_trace(go.Scatter(
            x=b, y=np.full(b.shape, min(f.min(), s.min())), mode="markers",
            name=f"region boundaries ({len(b) + 1:,} linear regions)",
            marker=dict(symbol="line-ns-open", size=12, color="#2ca02c", line=dict(width=1)),
            hovertemplate="boundary at alpha = %{x:.6f}<extra></extra>"))
    fig.update_layout(title=dict(text=title, font=dict(size=13)), xaxis_title="alpha",
                      yaxis_title="logit units", height=320, margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(range=[0, 1])
    return fig


def image_strip(images: Sequence[np.ndarray], titles: Sequence[str], panel_px: int = 150) -> go.Figure:
    """A row of RGB images (H, W, 3 in [0, 1]) with titles: the baselines being compared."""
    fig = make_subplots(rows=1, cols=max(1, len(images)), subplot_titles=list(titles),
                        horizontal_spacing=0.02)
    for j, im in enumerate(images, start=1):
        fig.add_trace(_rgb(im), row=1, col=j)
    _square(fig, len(images))
    fig.update_layout(height=panel_px + 40, margin=dict(l=10, r=10, t=40, b=0))
    for ann in fig.layout.annotations:
        ann.font.size = 11
    return fig


def convergence_figure(panels: Mapping[str, dict],
                       error: str = "relative completeness error") -> go.Figure:
    """Log-log: IG's error (``error`` names it) against steps, one line per rule (each its own
    dash and marker: nested rules share nodes and their lines overlap), one panel per variant.
    ``panels[variant]`` = {"rules", "steps", "rel_error" [R, K], "x_gradient" (float or None:
    drawn as a horizontal line, X-Gradient's single-pass error)}. An exact zero is drawn on the
    axis's "exact" row with a star, never as a tiny number."""
    names = list(panels)
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names, shared_yaxes=True,
                        horizontal_spacing=0.04)
    axis = error_axis([e for p in panels.values() for e in np.ravel(p["rel_error"])]
                      + [p["x_gradient"] for p in panels.values() if p.get("x_gradient") is not None])
    all_steps = set()
    for col, v in enumerate(names, start=1):
        p = panels[v]
        steps = np.asarray(p["steps"], dtype=float)
        all_steps.update(steps.tolist())
        for r, rule in enumerate(p["rules"]):
            err = np.asarray(p["rel_error"][r], dtype=float)
            k = list(RULE_COLORS).index(rule) if rule in RULE_COLORS else r
            symbols = [EXACT_SYMBOL if e == 0 else SYMBOLS[k % len(SYMBOLS)] for e in err]
            fig.add_trace(go.Scatter(
                x=steps, y=axis.y(err), mode="lines+markers", name=rule,
                legendgroup=rule, showlegend=col == 1,
                line=dict(color=RULE_COLORS.get(rule), **line_style(k)),
                marker=dict(symbol=symbols, size=[12 if e == 0 else 7 for e in err]),
                customdata=[EXACT_TEXT if e == 0 else f"{e:.3g}" for e in err],
                hovertemplate=rule + ", %{x} steps: %{customdata}<extra>" + v + "</extra>"),
                row=1, col=col)
        if p.get("x_gradient") is not None:
            xg = float(p["x_gradient"])
            fig.add_trace(go.Scatter(
                x=[steps.min(), steps.max()], y=axis.y([xg, xg]), mode="lines",
                name="X-Gradient (1 pass)", line=dict(color="black", dash="dash", width=3),
                legendgroup="xg", hovertemplate="X-Gradient, 1 pass: "
                + (EXACT_TEXT if xg == 0 else f"{xg:.3g}") + "<extra></extra>"),
                row=1, col=col)
    fig.update_xaxes(type="log", title_text="steps (forward + backward passes per input)",
                     **value_ticks(all_steps))
    fig.update_yaxes(**axis.layout())
    fig.update_yaxes(title_text=error, row=1, col=1)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=40))
    return fig
