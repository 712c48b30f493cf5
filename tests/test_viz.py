"""Figures: signed scales centred at 0, shared or per panel, clipping, all-zero maps."""
import numpy as np
import pytest
import plotly.graph_objects as go

from explorer.presentation import viz


def heatmaps(fig):
    return [t for t in fig.data if isinstance(t, go.Heatmap)]


def test_to_map_sums_channels_so_the_total_is_kept():
    a = np.random.default_rng(0).normal(size=(3, 5, 5))
    m = viz.to_map(a)
    assert m.shape == (5, 5) and np.isclose(m.sum(), a.sum())


def test_shared_and_per_panel_scales_are_symmetric():
    maps = {("m", "a"): np.array([[1.0, -2.0]]), ("m", "b"): np.array([[0.5, 0.1]])}
    shared = heatmaps(viz.heatmap_grid(maps, ["m"], ["a", "b"], clip_percentile=100))
    assert [(h.zmin, h.zmax) for h in shared] == [(-2.0, 2.0), (-2.0, 2.0)]
    own = heatmaps(viz.heatmap_grid(maps, ["m"], ["a", "b"], shared_scale=False, clip_percentile=100))
    assert [(h.zmin, h.zmax) for h in own] == [(-2.0, 2.0), (-0.5, 0.5)]
    assert all(h.zmid == 0 for h in shared + own)


def test_clipping_ignores_an_outlier():
    m = np.ones((20, 20))  # 400 values, one outlier: the 99th percentile is 1
    m[0, 0] = 1000.0
    assert viz.color_limit([m], 99.0) < 2 < viz.color_limit([m], 100.0)


def test_all_zero_maps_render_with_a_valid_scale():
    maps = {("m", "a"): np.zeros((4, 4)), ("m", "b"): np.zeros((4, 4))}
    for shared in (True, False):
        fig = viz.heatmap_grid(maps, ["m"], ["a", "b"], image=np.zeros((4, 4, 3)),
                               shared_scale=shared, overlay=True)
        for h in heatmaps(fig):
            assert np.isfinite([h.zmin, h.zmax]).all() and h.zmin < 0 < h.zmax
        fig.to_json()  # serialises (what the browser receives)


def test_overlay_draws_the_image_under_a_transparent_zero():
    maps = {("m", "a"): np.eye(4)}
    fig = viz.heatmap_grid(maps, ["m"], ["a"], image=np.ones((4, 4, 3)) * 0.5, overlay=True)
    assert sum(isinstance(t, go.Image) for t in fig.data) == 2  # input panel + under the map
    assert heatmaps(fig)[0].colorscale[2][1].endswith(",0)")


def test_timing_figure():
    records = [{"method": "IG", "variant": "regular", "median_ms": 10.0, "forward_passes": 32,
                "backward_passes": 32, "speedup_vs_ig": 1.0},
               {"method": "X-Gradient", "variant": "bias-free", "median_ms": 1.0,
                "forward_passes": 1, "backward_passes": 1, "speedup_vs_ig": 10.0}]
    fig = viz.timing_figure(records)
    assert len(fig.data) == 2 and fig.layout.xaxis.type == "log"


def test_timing_image_draws_each_median_on_a_log_axis():
    records = [{"method": "a", "variant": "regular", "median_ms": 1.0},
               {"method": "b", "variant": "regular", "median_ms": 10.0},
               {"method": "c", "variant": "bias-free", "median_ms": 100.0, "q1_ms": 80.0,
                "q3_ms": 120.0}]
    img = viz.timing_image(records, width=600, row_px=20, label_px=100)
    lo, hi, ticks = viz.log_axis(1.0, 120.0)
    assert 10 ** lo < 1.0 and 10 ** hi >= 120.0 and 1.0 in ticks and 100.0 in ticks
    left, right = 100, 600 - 70

    def x_of(ms: float) -> float:  # the axis, written out independently of the drawing code
        return left + (np.log10(ms) - lo) / (hi - lo) * (right - left)

    def bar_end(row: int, colour) -> int:  # the last pixel of the bar's colour on the row
        y = 6 + 22 + row * 20 + 6  # top + legend + row, above the whisker at mid-row
        hits = np.flatnonzero((img[y] == colour).all(axis=1))
        return int(hits.max())

    blue, red = viz.VARIANT_COLOURS[0], viz.VARIANT_COLOURS[1]
    ends = [bar_end(0, blue), bar_end(1, blue), bar_end(2, red)]
    np.testing.assert_allclose(ends, [x_of(m) for m in (1, 10, 100)], atol=1.0)
    assert ends[1] - ends[0] == pytest.approx(ends[2] - ends[1], abs=2)  # decades equally wide
    mid = 6 + 22 + 2 * 20 + 10
    dark = np.flatnonzero((img[mid] == (30, 30, 30)).all(axis=1))  # the quartile whisker
    assert abs(dark.min() - x_of(80.0)) <= 2 and abs(dark.max() - x_of(120.0)) <= 2


def test_heatmap_images_match_the_plotly_colours_and_scales():
    a = np.array([[0.0, 1.0], [-2.0, 0.5]])
    b = np.array([[0.0, 0.25], [0.0, 0.0]])
    maps = {("m", "x"): a, ("m", "y"): b}
    shared, limit = viz.heatmap_images(maps, clip_percentile=100, min_side=4)
    assert limit == 2.0 and shared[("m", "x")].shape == (4, 4, 3)  # enlarged 2x, crisp
    assert tuple(shared[("m", "x")][0, 0]) == (247, 247, 247)  # zero is the scale's white
    np.testing.assert_array_equal(shared[("m", "x")][2, 0], viz.diverging_rgb(np.array(-1.0), 1.0))
    own, _ = viz.heatmap_images(maps, shared_scale=False, clip_percentile=100, min_side=2)
    # each panel scaled to itself: b's maximum is as red as a's would be at its own maximum
    np.testing.assert_array_equal(own[("m", "y")][0, 1], viz.diverging_rgb(np.array(1.0), 1.0))
    over, _ = viz.heatmap_images(maps, image=np.zeros((2, 2, 3)), overlay=True,
                                 clip_percentile=100, min_side=2)
    assert tuple(over[("m", "x")][0, 0]) == (0, 0, 0)  # nothing attributed: the input shows
    bar = viz.colorbar_image(width=5, height=1)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]  # blue left, red right


def test_compose_grid_places_each_panel_under_its_title():
    lead = np.zeros((4, 4, 3), np.uint8)
    panels = {("m", "a"): np.full((4, 4, 3), 100, np.uint8),
              ("m", "b"): np.full((4, 4, 3), 200, np.uint8)}
    grid = viz.compose_grid(panels, ["m"], ["a", "b"], {}, lead=lead, pad=2, title_px=10)
    assert grid.shape == (2 + 10 + 4 + 2, 2 + 3 * (4 + 2), 3)
    top = 2 + 10
    assert (grid[top:top + 4, 2:6] == 0).all()  # the input first
    assert (grid[top:top + 4, 8:12] == 100).all() and (grid[top:top + 4, 14:18] == 200).all()
    assert (grid[:2] == 255).all()  # white padding above the titles


def test_markdown_table_reads_back_as_the_table_it_shows():
    import pandas as pd

    table = pd.DataFrame({"result": ["complete", "a | b"], "rel error": ["1e-07", ""]},
                         index=pd.Index(["X-Gradient", "IG"], name="method"))
    text = viz.markdown_table(table)
    assert text.splitlines()[0] == "| method | result | rel error |"
    pd.testing.assert_frame_equal(viz.parse_markdown_table(text), table)
    written = "| a | b |\n|:--|--:|\n| x | 1 |\n| y \\| z |  |"  # by hand, aligned columns
    assert viz.parse_markdown_table(written).to_dict() == {"b": {"x": "1", "y | z": ""}}
    assert viz.parse_markdown_table("**Prediction:** 1 | 2") is None
