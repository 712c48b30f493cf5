"""The Speed page through AppTest: the shipped benchmark with zero clicks, and a live run."""
import json

import pytest
from streamlit.testing.v1 import AppTest

import explorer.bench as bench


def speed_page():
    from explorer.ui import context
    from explorer.ui.pages import speed
    context.build()
    speed.render()


@pytest.fixture(scope="module")
def results_folder(quick_bench):
    """A tiny bench result written by the real command, as if shipped in benchmarks/results."""
    return quick_bench[0]


@pytest.fixture
def shipped(results_folder, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", results_folder)
    return json.loads(next(results_folder.glob("bench-*.json")).read_text())


def test_zero_clicks_show_the_shipped_benchmark_and_a_button(shipped):
    at = AppTest.from_function(speed_page, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == ["Latest benchmark in the repository",
                                               "A short live benchmark on this machine"]
    assert shipped["started"] in at.caption[1].value and "digits-cnn" in at.caption[1].value
    table = at.dataframe[0].value
    limit = table[table["method"] == "one forward+backward (limit)"]
    assert sorted(limit["variant"]) == ["bias-free", "regular"]
    assert (limit["x the one-pass limit"] == 1).all()
    assert len(at.get("plotly_chart")) >= 3  # time, ratio to the limit, IG error against time
    assert at.button(key="speed-run").value is False


def test_shipped_results_come_newest_first(tmp_path):
    for started in ("2026-01-02T00:00:00Z", "2026-03-01T00:00:00Z", "2025-12-31T00:00:00Z"):
        (tmp_path / f"bench-{started[:10]}.json").write_text(json.dumps({"started": started}))
    (tmp_path / "bench-broken.json").write_text("{not json")
    assert bench.shipped_results(tmp_path)[0]["started"] == "2026-03-01T00:00:00Z"
    assert bench.shipped_results(tmp_path / "none") == []


def test_the_live_button_runs_the_current_model_and_shows_it(shipped, monkeypatch):
    from explorer.ui.pages import speed
    seen = []

    def fake_run_bench(cfg, say=print):  # the real run is the bench test's; here: the wiring
        seen.append(cfg)
        cfg.progress("methods", 1, 0.5)
        return {**shipped, "started": "live-run"}

    monkeypatch.setattr(speed, "run_bench", fake_run_bench)
    at = AppTest.from_function(speed_page, default_timeout=120)
    at.run()
    at.number_input(key="speed-rounds").set_value(4)
    at.button(key="speed-run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (cfg,) = seen
    assert (cfg.model, cfg.rounds, cfg.sections) == ("digits-cnn", 4, ("methods",))
    assert any("live-run" in c.value for c in at.caption)
