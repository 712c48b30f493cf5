"""Plotly figures for attributions, timings and completeness. No streamlit here."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.presentation.viz_axes import decade_ticks, line_style, marker_style, value_ticks

DIVERGING = "RdBu_r"  # red = raises the target logit, blue = lowers it, white = 0
# For overlays: the same hues, transparent at 0 so the input shows where nothing is attributed.
OVERLAY = [[0.0, "rgba(5,48,97,1)"], [0.25, "rgba(67,147,195,0.75)"],
           [0.5, "rgba(247,247,247,0)"], [0.75, "rgba(214,96,77,0.75)"], [1.0, "rgba(103,0,31,1)"]]


def to_map(attributions: np.ndarray) -> np.ndarray:
    """[C, H, W] -> [H, W] by summing channels, which keeps the map's sum (completeness)."""
    a = np.asarray(attributions, dtype=np.float64)
    return a.sum(0) if a.ndim == 3 else a


def color_limit(maps: Sequence[np.ndarray], clip_percentile: float = 100.0) -> float:
    """Symmetric limit m for a colour scale [-m, m]; 1.0 when every value is 0."""
    values = np.concatenate([np.abs(m).ravel() for m in maps]) if maps else np.zeros(1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    m = float(np.percentile(values, clip_percentile)) if clip_percentile < 100 else float(values.max())
    if m <= 0:  # all-zero (or clipped-to-zero) maps: any positive limit shows them as white
        m = float(values.max()) or 1.0
    return m


def _image_trace(image: np.ndarray, opacity: float = 1.0) -> go.Image:
    rgb = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return go.Image(z=rgb, opacity=opacity, hoverinfo="skip")


def heatmap_grid(
    maps: Mapping[tuple[str, str], np.ndarray],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    image: np.ndarray | None = None,
    shared_scale: bool = True,
    clip_percentile: float = 99.5,
    overlay: bool = False,
    titles: Mapping[tuple[str, str], str] | None = None,
    panel_px: int = 230,
) -> go.Figure:
    """One panel per (row, col) map, signed diverging scale centred at 0.

    ``image`` (H, W, 3 in [0, 1]) is drawn in a first column and, with ``overlay``, under every
    map. ``shared_scale`` gives all panels one limit so their magnitudes compare; otherwise each
    panel is scaled to itself. ``clip_percentile`` < 100 clips outliers.
    """
    lead = 1 if image is not None else 0
    n_cols = lead + len(cols)
    panel_titles = []
    for r in rows:
        names = [(titles or {}).get((r, c), f"{r} | {c}") for c in cols]
        panel_titles += (["input"] if lead else []) + names
    fig = make_subplots(rows=max(1, len(rows)), cols=n_cols, subplot_titles=panel_titles,
                        horizontal_spacing=0.02, vertical_spacing=0.06)
    present = [to_map(m) for m in maps.values() if m is not None]
    shared = color_limit(present, clip_percentile)
    for i, r in enumerate(rows, start=1):
        if image is not None:
            fig.add_trace(_image_trace(image), row=i, col=1)
        for j, c in enumerate(cols, start=1 + lead):
            m = maps.get((r, c))
            if m is None:
                continue
            m = to_map(m)  # a [C, H, W] map would be a 3-D z, which plotly silently leaves blank
            limit = shared if shared_scale else color_limit([m], clip_percentile)
            if overlay and image is not None:
                fig.add_trace(_image_trace(image.mean(2, keepdims=True).repeat(3, 2)), row=i, col=j)
            fig.add_trace(go.Heatmap(
                z=m, zmin=-limit, zmax=limit, zmid=0,
                colorscale=OVERLAY if overlay and image is not None else DIVERGING,
                showscale=(i == 1 and j == n_cols) if shared_scale else False,
                colorbar=dict(title="attribution", len=0.6) if shared_scale else None,
                hovertemplate="x=%{x} y=%{y}<br>attribution=%{z:.4g}<extra></extra>"),
                row=i, col=j)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    for k in range(1, max(1, len(rows)) * n_cols + 1):  # square pixels in every panel
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    # Fixed margins (room for the colour bar on the right): auto-expanding margins make plotly
    # lay the whole grid out again, which dominated the page's drawing time in chromium.
    fig.update_layout(height=panel_px * max(1, len(rows)) + 40, width=None,
                      margin=dict(l=10, r=90 if shared_scale else 10, t=40, b=10, autoexpand=False))
    for ann in fig.layout.annotations:
        ann.font.size = 12
    return fig


def timing_figure(records: Sequence[Mapping]) -> go.Figure:
    """Horizontal bars of median time per (method, variant), log scale, passes in the hover."""
    fig = go.Figure()
    variants = list(dict.fromkeys(r["variant"] for r in records))
    for v in variants:
        sub = [r for r in records if r["variant"] == v]
        fig.add_trace(go.Bar(
            y=[r["method"] for r in sub], x=[r["median_ms"] for r in sub], name=v,
            orientation="h",
            error_x=None if sub[0].get("q1_ms") is None else dict(  # the interquartile range
                type="data", symmetric=False, array=[r["q3_ms"] - r["median_ms"] for r in sub],
                arrayminus=[r["median_ms"] - r["q1_ms"] for r in sub]),
            customdata=[[r["forward_passes"], r["backward_passes"], r.get("speedup_vs_ig")] for r in sub],
            hovertemplate="%{y}: %{x:.3g} ms<br>%{customdata[0]} fwd / %{customdata[1]} bwd "
                          "per input<br>%{customdata[2]:.3g}x faster than IG<extra>" + v + "</extra>"))
    times = [v for r in records for v in (r.get("median_ms"), r.get("q1_ms"), r.get("q3_ms"))
             if v and v > 0]
    if times:
        fig.update_xaxes(**decade_ticks(min(times), max(times)))
    fig.update_layout(barmode="group", xaxis_title="median time per call (ms, log scale)",
                      yaxis_title="method",
                      xaxis_type="log", height=80 + 45 * max(1, len({r['method'] for r in records})),
                      margin=dict(l=10, r=10, t=20, b=40), legend=dict(orientation="h"))
    return fig


VARIANT_COLOURS = ((99, 110, 250), (239, 85, 59), (0, 204, 150), (171, 99, 250))  # plotly's first


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def log_axis(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """log10 bounds on the 1-2-5 grid around [lo, hi] (both > 0; the lower one strictly below lo)
    and the grid's ticks between them."""
    k0, k1 = int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi)))
    grid = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    low = max(g for g in grid if g < lo * (1 - 1e-9))  # below: the smallest bar has a length
    high = min([g for g in grid if g >= hi * (1 - 1e-9) and g > low] or [low * 10])
    return float(np.log10(low)), float(np.log10(high)), [g for g in grid if low <= g <= high]


def timing_image(records: Sequence[Mapping], *, width: int = 900, row_px: int = 26,
                 label_px: int = 300) -> np.ndarray:
    """``timing_figure`` as an RGB image: a bar per row at its median on a log axis, the
    interquartile range as a whisker, the median written after it. A static image draws at once
    in a browser, where plotly's script alone costs about a second before anything shows."""
    from PIL import Image, ImageDraw
    medians = [r["median_ms"] for r in records if r.get("median_ms") and r["median_ms"] > 0]
    if not medians:
        return np.full((row_px, width, 3), 255, np.uint8)
    spread = [v for r in records for v in (r.get("q1_ms"), r.get("q3_ms")) if v and v > 0]
    a, b, ticks = log_axis(min(medians + spread), max(medians + spread))
    left, right, top, axis_px = label_px, width - 70, 6, 34
    variants = list(dict.fromkeys(r["variant"] for r in records))
    legend_px = 22
    height = top + legend_px + row_px * len(records) + axis_px
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font, small = _font(13), _font(11)

    def x_of(ms: float) -> int:
        return round(left + (np.log10(ms) - a) / (b - a) * (right - left))

    for k, v in enumerate(variants):  # legend
        x0 = left + 150 * k
        draw.rectangle([x0, top + 3, x0 + 12, top + 13], fill=VARIANT_COLOURS[k % 4])
        draw.text((x0 + 17, top), v, fill=(40, 40, 40), font=font)
    y_axis = top + legend_px + row_px * len(records)
    for t in ticks:
        x = x_of(t)
        draw.line([x, top + legend_px, x, y_axis], fill=(225, 225, 225))
        draw.text((x - 8, y_axis + 4), f"{t:g}", fill=(80, 80, 80), font=small)
    draw.text((left, y_axis + 18), "median time per call (ms, log scale); whiskers: quartiles",
              fill=(80, 80, 80), font=small)
    for i, r in enumerate(records):
        y0 = top + legend_px + i * row_px
        colour = VARIANT_COLOURS[variants.index(r["variant"]) % 4]
        draw.text((6, y0 + 5), f"{r['method']} | {r['variant']}"[:44], fill=(40, 40, 40), font=font)
        m = r.get("median_ms")
        if not m or m <= 0:
            continue
        draw.rectangle([left, y0 + 4, x_of(m), y0 + row_px - 5], fill=colour)
        q1, q3 = r.get("q1_ms") or 0.0, r.get("q3_ms") or 0.0
        end = x_of(m)
        if q1 > 0 and q3 > 0:
            mid = y0 + row_px // 2
            draw.line([x_of(q1), mid, x_of(q3), mid], fill=(30, 30, 30), width=2)
            for q in (q1, q3):
                draw.line([x_of(q), mid - 4, x_of(q), mid + 4], fill=(30, 30, 30), width=2)
            end = max(end, x_of(q3))
        draw.text((end + 6, y0 + 6), f"{m:.3g} ms", fill=(40, 40, 40), font=small)
    draw.line([left, top + legend_px, left, y_axis], fill=(120, 120, 120))
    draw.line([left, y_axis, right, y_axis], fill=(120, 120, 120))
    return np.asarray(canvas)


def markdown_table(table) -> str:
    """A pandas DataFrame as a GitHub-flavoured markdown table, its index as the first column.
    Cells are shown as they are (format numbers first); pipes are escaped."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for idx, row in zip(table.index, table.itertuples(index=False)):
        lines.append("| " + " | ".join(cell(v) for v in (idx, *row)) + " |")
    return "\n".join(lines)


def parse_markdown_table(text: str):
    """``markdown_table``'s output (any pipe table whose second line is the separator) read back
    as a DataFrame of its cell strings indexed by the first column; None if ``text`` is not one."""
    import re

    import pandas as pd
    lines = text.strip().splitlines()
    if len(lines) < 2 or not lines[0].startswith("|") or set(lines[1]) - set("|-: "):
        return None
    cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
             for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0]).set_index(cells[0][0])


def diverging_rgb(attribution_map: np.ndarray, limit: float) -> np.ndarray:
    """[H, W] map -> uint8 RGB [H, W, 3] in the app's colours (plotly's RdBu_r) on the symmetric
    scale [-limit, limit]: red raises the target logit, blue lowers it, white is 0."""
    from plotly.colors import diverging, unlabel_rgb
    anchors = np.array([unlabel_rgb(c) for c in diverging.RdBu[::-1]], dtype=np.float64)
    m = np.nan_to_num(np.asarray(attribution_map, dtype=np.float64))
    pos = (np.clip(m / (limit if limit > 0 else 1.0), -1, 1) + 1) / 2 * (len(anchors) - 1)
    grid = np.arange(len(anchors))
    rgb = np.stack([np.interp(pos, grid, anchors[:, k]) for k in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def upscale(rgb: np.ndarray, min_side: int = 224) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor, so small maps stay crisp (browsers blur
    an upscaled image)."""
    k = max(1, -(-min_side // max(1, min(rgb.shape[:2]))))
    return rgb.repeat(k, axis=0).repeat(k, axis=1)


def heatmap_images(maps: Mapping[tuple[str, str], np.ndarray], *, image: np.ndarray | None = None,
                   shared_scale: bool = True, clip_percentile: float = 99.5,
                   overlay: bool = False, min_side: int = 224) -> tuple[dict, float]:
    """The maps of ``heatmap_grid`` as RGB uint8 images (same colours, scales and clipping), and
    the shared limit. Plain images draw in milliseconds in a browser, where a plotly grid costs
    about a second of layout; ``overlay`` blends each map over the input's gray levels, the map
    fading out where it is near zero."""
    shared = color_limit([m for m in maps.values() if m is not None], clip_percentile)
    gray = None if image is None else np.asarray(image, dtype=np.float64).mean(2, keepdims=True)
    out = {}
    for key, m in maps.items():
        if m is None:
            continue
        limit = shared if shared_scale else color_limit([m], clip_percentile)
        rgb = diverging_rgb(m, limit).astype(np.float64)
        if overlay and gray is not None and gray.shape[:2] == m.shape:
            alpha = np.clip(np.abs(np.nan_to_num(m)) / limit, 0, 1)[..., None] * 0.85
            rgb = alpha * rgb + (1 - alpha) * np.clip(gray, 0, 1) * 255
        out[key] = upscale(rgb.round().astype(np.uint8), min_side)
    return out, shared


def compose_grid(panels: Mapping[tuple[str, str], np.ndarray], rows: Sequence[str],
                 cols: Sequence[str], titles: Mapping[tuple[str, str], str], *,
                 lead: np.ndarray | None = None, lead_title: str = "input",
                 pad: int = 8, title_px: int = 22) -> np.ndarray:
    """One RGB image of equally sized panels, a row per ``rows`` entry and a column per ``cols``
    entry (``lead`` first in every row), each under its title. One image is one element for the
    browser to draw, where a panel per element costs it a message and a render each."""
    from PIL import Image, ImageDraw
    sample = lead if lead is not None else next(iter(panels.values()))
    h, w = sample.shape[:2]
    n_cols = len(cols) + (lead is not None)
    canvas = Image.new("RGB", (n_cols * (w + pad) + pad, len(rows) * (h + title_px + pad) + pad),
                       "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, title_px - 8))
    for i, r in enumerate(rows):
        top = pad + i * (h + title_px + pad)
        cells = ([(lead, lead_title)] if lead is not None else []) + [
            (panels.get((r, c)), titles.get((r, c), f"{r} | {c}")) for c in cols]
        for j, (panel, title) in enumerate(cells):
            if panel is None:
                continue
            left = pad + j * (w + pad)
            draw.text((left, top), title, fill=(40, 40, 40), font=font)
            canvas.paste(Image.fromarray(panel), (left, top + title_px))
    return np.asarray(canvas)


def colorbar_image(width: int = 256, height: int = 14) -> np.ndarray:
    """The diverging scale from -limit (left) to +limit (right) as an RGB strip."""
    ramp = np.linspace(-1.0, 1.0, width)[None, :].repeat(height, axis=0)
    return diverging_rgb(ramp, 1.0)


def labelled_colorbar(limit: float | None, width: int = 320, bar_px: int = 14) -> np.ndarray:
    """``colorbar_image`` with its numbers under it: -limit, 0, +limit (or "-max", "0", "+max"
    of each panel when ``limit`` is None: panels scaled to themselves)."""
    from PIL import Image, ImageDraw
    canvas = Image.new("RGB", (width, bar_px + 18), "white")
    canvas.paste(Image.fromarray(colorbar_image(width, bar_px)), (0, 0))
    draw, font = ImageDraw.Draw(canvas), _font(12)
    texts = (["-max", "0", "+max"] if limit is None
             else [f"-{limit:.3g}", "0", f"+{limit:.3g}"])
    for frac, text in zip((0.0, 0.5, 1.0), texts):
        tw = draw.textlength(text, font=font)
        x = min(max(frac * width - tw / 2, 0), width - tw)
        draw.text((x, bar_px + 2), text, fill=(40, 40, 40), font=font)
    return np.asarray(canvas)


def homogeneity_figure(scales: Sequence[float], outputs: Mapping[str, Sequence[float]],
                       linear: Mapping[str, Sequence[float]]) -> go.Figure:
    """F(a x) (solid) against a F(x) (dotted) over a, one colour per model variant."""
    fig = go.Figure()
    colours = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")
    for k, name in enumerate(outputs):
        c = colours[k % len(colours)]
        fig.add_trace(go.Scatter(x=list(scales), y=list(outputs[name]), name=f"F(a x), {name}",
                                 mode="lines+markers", line=dict(color=c)))
        fig.add_trace(go.Scatter(x=list(scales), y=list(linear[name]), name=f"a F(x), {name}",
                                 mode="lines", line=dict(color=c, dash="dot")))
    fig.update_layout(xaxis_title="a (input scaled by a)", yaxis_title="target logit",
                      height=380, margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig


# One colour per method, in the same order in every metrics figure.
METHOD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf"]


def sensitivity_n_figure(ns: Sequence[int], correlations: Mapping[str, Sequence[float]],
                         spreads: Mapping[str, Sequence[float]] | None = None) -> go.Figure:
    """Sensitivity-n: mean Pearson r against n (log axis), one line per method, sd as error bars."""
    fig = go.Figure()
    for k, (label, r) in enumerate(correlations.items()):
        sd = (spreads or {}).get(label)
        fig.add_trace(go.Scatter(
            x=list(ns), y=[None if v is None or v != v else v for v in r], name=label,
            mode="lines+markers", marker=marker_style(k),
            line=dict(color=METHOD_COLOURS[k % len(METHOD_COLOURS)], **line_style(k)),
            error_y=dict(type="data", array=list(sd), visible=True, thickness=1) if sd is not None else None,
            hovertemplate="n=%{x}: r=%{y:.3f}<extra>" + label + "</extra>"))
    fig.update_layout(xaxis=dict(type="log", title="n (features removed at once)", **value_ticks(ns)),
                      yaxis=dict(title="Pearson r (mean over inputs)", range=[-0.2, 1.05]),
                      height=380, margin=dict(l=10, r=10, t=30, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def insertion_deletion_figure(fractions: Sequence[float], insertion: Mapping[str, Sequence[float]],
                              deletion: Mapping[str, Sequence[float]], score: str = "logit") -> go.Figure:
    """Mean insertion (left) and deletion (right) curves, one line per method in each."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Insertion (higher is better)",
                                                        "Deletion (lower is better)"))
    for k, label in enumerate(insertion):
        colour = METHOD_COLOURS[k % len(METHOD_COLOURS)]
        for col, curves in ((1, insertion), (2, deletion)):
            fig.add_trace(go.Scatter(x=list(fractions), y=list(curves[label]), name=label,
                                     line=dict(color=colour, **line_style(k)), legendgroup=label,
                                     showlegend=col == 1,
                                     hovertemplate="%{x:.0%}: %{y:.3g}<extra>" + label + "</extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="share of features changed", tickformat=".0%")
    fig.update_yaxes(title_text=f"target {score}")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def prior_cost_figure(rows: Sequence[Mapping], clean_accuracy: float | None = None) -> go.Figure:
    """Decoyed-test accuracy against time per epoch (relative to plain), one point per model of
    the decoy experiment; the clean-trained model's accuracy as a dashed line."""
    fig = go.Figure()
    for r in rows:
        prior = r.get("prior")
        name = "plain" if not prior else f"{prior['attribution']} (k={prior['k']})"
        name += " · bias-free" if r["variant"] == "bias-free" else ""
        fig.add_trace(go.Scatter(
            x=[r["epoch_time_vs_plain"]], y=[100 * r["accuracy"]["test_decoy"]],
            mode="markers+text", text=[name], textposition="top center", name=name,
            marker=dict(size=12, symbol="circle" if prior else "x"),
            hovertemplate=f"{name}<br>%{{x:.2f}}x plain epoch time<br>decoyed test %{{y:.1f}}%"
                          f"<br>clean test {100 * r['accuracy']['test_clean']:.1f}%<extra></extra>"))
    if clean_accuracy is not None:
        fig.add_hline(y=100 * clean_accuracy, line_dash="dash",
                      annotation_text=f"clean-trained digits-cnn {100 * clean_accuracy:.1f}%")
    fig.update_layout(xaxis_title="time per epoch / plain (interleaved run)",
                      yaxis_title="accuracy on decoyed test digits (%)", showlegend=False,
                      height=420, margin=dict(l=10, r=10, t=30, b=40))
    return fig


def loss_figure(losses: Sequence[float]) -> go.Figure:
    """Training loss per step."""
    fig = go.Figure(go.Scatter(y=list(losses), mode="lines", name="loss"))
    fig.update_layout(xaxis_title="step", yaxis_title="training loss", yaxis_type="log",
                      height=300, margin=dict(l=10, r=10, t=20, b=40))
    return fig
