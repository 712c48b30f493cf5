"""Path and convergence figures draw the numbers they are given (plotly only, no streamlit)."""
import numpy as np

from explorer.presentation import viz_path


def test_path_chart_starts_both_curves_at_zero_and_marks_the_gap():
    alphas = np.array([0.25, 0.5, 0.75, 1.0])
    outputs = np.array([1.5, 2.0, 2.5, 3.0])  # F(x') = 1: a straight line to F(x) - F(x') = 2
    sums = np.array([0.4, 0.9, 1.4, 1.9])
    fig = viz_path.path_chart(alphas, outputs, sums, 1.0, alpha=0.5, title="t")
    f, s = fig.data
    assert list(f.x) == [0, 0.25, 0.5, 0.75, 1.0]
    assert np.allclose(f.y, [0, 0.5, 1.0, 1.5, 2.0]) and np.allclose(s.y, [0, 0.4, 0.9, 1.4, 1.9])
    shapes = {(sh.type, sh.y0, sh.x0) for sh in fig.layout.shapes}
    assert ("line", 2.0, 0) in shapes and any(sh.x0 == 0.5 for sh in fig.layout.shapes)
    texts = [a.text for a in fig.layout.annotations]
    assert "gap -1.00e-01" in texts and "F(x) - F(x') = 2" in texts


def test_convergence_figure_draws_exact_zeros_as_exact_and_x_gradient_only_when_given():
    panel = {"rules": ("right", "left"), "steps": (8, 16), "rel_error": np.array([[0.0, 1e-7], [0.1, 0.05]])}
    fig = viz_path.convergence_figure({"regular": {**panel, "x_gradient": None},
                                       "bias-free": {**panel, "x_gradient": 0.0}})
    assert len(fig.data) == 5  # 2 rules x 2 panels + one X-Gradient line
    right, left = fig.data[:2]
    # the exact zero sits on the axis's "exact" row, a decade below the smallest error (1e-7)
    assert np.allclose(right.y, [1e-8, 1e-7]) and list(right.customdata) == ["exact", "1e-07"]
    assert right.marker.symbol[0] == "star" and right.marker.symbol[1] != "star"
    ticks = dict(zip(fig.layout.yaxis.tickvals, fig.layout.yaxis.ticktext))
    assert ticks[1e-8] == "exact" and ticks[1e-7] == "10<sup>-7</sup>"
    assert not any(t[-1] in "pnµm" for t in fig.layout.yaxis.ticktext)  # no SI prefixes
    assert list(fig.layout.xaxis.ticktext) == ["8", "16"]  # the steps themselves
    assert right.line.dash != left.line.dash  # overlapping rules stay distinguishable
    xg = fig.data[-1]
    assert xg.name.startswith("X-Gradient") and np.allclose(xg.y, [1e-8, 1e-8])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_path_maps_use_the_fixed_limits():
    img = np.zeros((4, 4, 3))
    g, a = np.ones((4, 4)), -np.ones((4, 4))
    fig = viz_path.path_maps_figure(img, {"regular": (g, a), "bias-free": (g, a)},
                                    {"regular": (2.0, 5.0), "bias-free": (3.0, 0.0)}, 0.5)
    heat = [d for d in fig.data if d.type == "heatmap"]
    assert [(h.zmin, h.zmax) for h in heat] == [(-2, 2), (-5, 5), (-3, 3), (-1, 1)]  # 0 -> 1
    texts = [t.text for t in fig.layout.annotations]
    # each panel names its own scale; the one colour bar reads in shares of it
    assert "regular: accumulated 0..0.5 (limit ±5)" in texts
    assert "bias-free: gradient at alpha = 0.5 (limit ±3)" in texts
    assert "bias-free: accumulated 0..0.5 (limit ±1)" in texts
    bar = next(h for h in heat if h.showscale).colorbar
    assert bar.ticktext[0] == "-limit" and bar.ticktext[-1] == "+limit"
