"""Every figure builder, on representative data, passes the one readability check
(tests/figure_checks.py), and the check itself catches the faults it names."""
import numpy as np
import plotly.graph_objects as go
import pytest

from explorer.presentation import viz, viz_path
from explorer.bench import figures
from figure_checks import figure_problems

RNG = np.random.default_rng(0)
MAP = RNG.standard_normal((8, 8))
RECORDS = [{"method": m, "variant": v, "median_ms": t, "q1_ms": t * 0.9, "q3_ms": t * 1.1,
            "forward_passes": 1, "backward_passes": 1, "speedup_vs_ig": 3.0}
           for m, t in (("Gradient", 1.0), ("IG", 32.0)) for v in ("regular", "bias-free")]
BENCH = {"sections": {
    "methods": {"model": "m", "rows": [{**r, "x_limit": 2.0} for r in RECORDS],
                "ig_completeness": [{"variant": "regular", "steps": s, "median_ms": s * 1.0,
                                     "rel_error": e} for s, e in ((16, 0.0), (128, 1e-6))]},
    "captum": {"pairs": [{"method": "IG", "captum_over_ours": 1.7}]}}}


def builders():
    yield "heatmap_grid", viz.heatmap_grid({("r", "a"): MAP, ("r", "b"): RNG.standard_normal((3, 8, 8))},
                                           ["r"], ["a", "b"], image=np.zeros((8, 8, 3)))
    yield "timing_figure", viz.timing_figure(RECORDS)
    yield "homogeneity_figure", viz.homogeneity_figure([0.5, 1, 2], {"m": [1, 2, 4]}, {"m": [1, 2, 4]})
    yield "sensitivity_n_figure", viz.sensitivity_n_figure([1, 10, 100], {"a": [0.1, 0.5, 0.9]})
    yield "insertion_deletion_figure", viz.insertion_deletion_figure(
        [0, 0.5, 1], {"a": [0, 1, 2]}, {"a": [2, 1, 0]})
    yield "prior_cost_figure", viz.prior_cost_figure(
        [{"prior": None, "variant": "regular", "epoch_time_vs_plain": 1.0,
          "accuracy": {"test_decoy": 0.5, "test_clean": 0.9}}], 0.98)
    yield "loss_figure", viz.loss_figure([1.0, 0.5, 0.2])
    yield "path_maps_figure", viz_path.path_maps_figure(
        np.zeros((8, 8, 3)), {"regular": (MAP, -MAP)}, {"regular": (2.0, 3.0)}, 0.5)
    yield "path_chart", viz_path.path_chart(np.array([0.5, 1.0]), np.array([1.0, 2.0]),
                                            np.array([0.4, 1.0]), 0.0, 0.5)
    yield "image_strip", viz_path.image_strip([np.zeros((8, 8, 3))], ["zero"])
    yield "convergence_figure", viz_path.convergence_figure(
        {"regular": {"rules": ("right",), "steps": (8, 16), "rel_error": np.array([[0.1, 0.0]]),
                     "x_gradient": None}})
    for name, fig in figures.bench_figures(BENCH).items():
        yield f"bench:{name}", fig


@pytest.mark.parametrize("name,fig", list(builders()), ids=[n for n, _ in builders()])
def test_every_figure_reads(name, fig):
    assert figure_problems(fig) == []


def test_the_check_catches_a_3d_map_a_constant_map_and_an_untitled_axis():
    fig = go.Figure([go.Heatmap(z=np.zeros((1, 4, 4)).tolist()), go.Heatmap(z=np.ones((4, 4))),
                     go.Scatter(x=[1, 2], y=[1, 2])])
    problems = figure_problems(fig)
    assert any("3-D" in p for p in problems) and any("constant" in p for p in problems)
    assert any("xaxis has no title" in p for p in problems)
