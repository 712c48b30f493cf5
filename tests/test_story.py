"""The Explore page's opening sentences come from the numbers they are given."""
import numpy as np

from explorer.presentation.story import map_distance, story

A = np.arange(12.0).reshape(3, 4)


def results(ixg_free, ig_free, regular_error):
    return {("input_x_gradient", "bias-free"): {"attributions": ixg_free, "forward_passes": 1,
                                                "completeness": {"rel_error": 1e-7}},
            ("integrated_gradients", "bias-free"): {"attributions": ig_free, "forward_passes": 32,
                                                    "completeness": {"rel_error": 1e-7}},
            ("input_x_gradient", "regular"): {"attributions": A, "forward_passes": 1,
                                              "completeness": {"rel_error": regular_error}}}


def test_the_finding_is_computed_from_the_maps_and_the_completeness_report():
    close = A + 1.1e-6  # 1.1e-6 / 11 = 1e-7 of the largest value
    s = story(results(close, A, 0.0912), target_label="7", input_name="digit 7",
              baseline_name="zero")
    assert len(s) == 3 and "**digit 7**" in s[0] and "**7**" in s[0]
    assert "X-Gradient (one pass) equals Integrated Gradients (32 passes) to 1e-7" in s[1]
    assert "regular** model Input x Gradient misses F(x) - F(0) by 9%" in s[1]
    assert "arxiv.org/abs/2111.07668" in s[2] and "docs/" in s[2]


def test_a_map_that_differs_is_not_called_equal():
    s = story(results(A * 1.5, A, 0.2), target_label="7", input_name="x", baseline_name="blur")
    assert "differs from Integrated Gradients (32 passes) to 5e-1" in s[1]
    assert "blur baseline" in s[1]
    assert map_distance(A * 1.5, A) == 0.5


def test_without_the_two_methods_the_page_says_what_to_select():
    s = story({}, target_label="7", input_name="x", baseline_name="zero")
    assert "Select Input x Gradient and Integrated Gradients" in s[1]


def test_a_non_finite_completeness_error_is_named_not_formatted_away():
    # NaN weights (the hostile-weights test) give a NaN relative error: no crash, no "only".
    for bad in (float("nan"), float("inf")):
        s = story(results(A, A, bad), target_label="7", input_name="x", baseline_name="zero")
        assert f"completeness error is {bad} (not finite)" in s[1]
        assert "only" not in s[1]
