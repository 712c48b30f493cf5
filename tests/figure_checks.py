"""One check for every plotly figure the explorer draws: each heatmap's z is a 2-D map that is
not constant (plotly silently draws nothing for a 3-D z), and every axis that shows tick labels
has a title."""
from __future__ import annotations

import numpy as np


def figure_problems(fig) -> list[str]:
    """What would make ``fig`` unreadable; empty when nothing does."""
    problems = []
    for k, trace in enumerate(fig.data):
        if trace.type != "heatmap":
            continue
        z = np.asarray(trace.z, dtype=float)
        if z.ndim != 2:
            problems.append(f"heatmap {k} ({trace.name}) has a {z.ndim}-D z {z.shape}: drawn blank")
        elif not np.isfinite(z).any() or np.nanmax(z) == np.nanmin(z):
            problems.append(f"heatmap {k} ({trace.name}) is constant: it shows nothing")
    # Axes that carry data a reader must read: those of scatter and bar traces.
    read = {(getattr(t, "xaxis", None) or "x", getattr(t, "yaxis", None) or "y")
            for t in fig.data if t.type in ("scatter", "bar", "scattergl")}
    for xa, ya in read:
        for ref in (xa, ya):
            name = ref[0] + "axis" + ref[1:]
            axis = fig.layout[name]
            if axis.showticklabels is False:
                continue  # a shared axis: its title is on the panel that shows the labels
            if not (axis.title and axis.title.text):
                problems.append(f"{name} has no title")
    return problems
