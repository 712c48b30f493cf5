"""The timing table's display: units, blanks, row numbers and the noisy-spread flag."""
import math

from explorer.presentation.timing_table import display_table, noisy_rows, timing_unit


def row(method, variant, median, q1, q3, speedup=None, close=""):
    return {"method": method, "variant": variant, "median_ms": median, "q1_ms": q1, "q3_ms": q3,
            "forward_passes": 1, "backward_passes": 1, "x_limit": 1.0,
            "speedup_vs_ig": speedup, "too_close_to_rank": close}


def test_seconds_once_a_median_passes_one_second_and_no_none():
    records = [row("Gradient", "regular", 2120.0, 2000.0, 2200.0, None, "IG (regular)"),
               row("IG", "regular", 2200.0, 2100.0, 2300.0, 1.0, "Gradient (regular)")]
    assert timing_unit(records) == "s"
    t = display_table(records)
    assert abs(t["median (s)"][0] - 2.12) < 1e-12
    assert math.isnan(t["x faster than IG"][0])  # blank on screen, never "None"
    assert list(t["too close to rank against"]) == ["#2", "#1"]


def test_milliseconds_below_a_second_and_a_wide_spread_is_flagged():
    records = [row("Gradient", "regular", 1.0, 0.9, 1.1), row("IG", "regular", 30.0, 10.0, 60.0)]
    assert timing_unit(records) == "ms"
    assert "median (ms)" in display_table(records)
    assert noisy_rows(records) == ["IG (regular)"]  # (60 - 10) / 30 > 0.5
