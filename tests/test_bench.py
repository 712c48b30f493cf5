"""``python -m explorer bench`` end to end on the bundled digits model with tiny settings."""
import json

import pytest

import explorer
from explorer.bench import SECTIONS, BenchConfig, run_bench
from explorer.cli import main


def test_bench_command_writes_json_and_plots(quick_bench):
    tmp_path, printed = quick_bench
    assert "one forward+backward (limit)" in printed and "Captum/ours" in printed
    assert "clock: process" in printed
    result = json.loads((tmp_path / "bench-digits-cnn-cpu.json").read_text())
    methods = result["sections"]["methods"]
    names = {(r["method"], r["variant"]) for r in methods["rows"]}
    assert ("one forward+backward (limit)", "bias-free") in names and ("X-Gradient", "bias-free") in names
    # every registered method is timed (IG and EG at several counts)
    labels = " ".join(r["method"] for r in methods["rows"])
    model = explorer.load_model("digits-cnn", device="cpu").module
    # every method that applies to the model; the others are named in the notes with the reason
    assert all(spec.label in labels for spec in explorer.METHODS.values()
               if spec.applicability(model) is None)
    assert "attention_rollout not timed: attention rollout needs a vision transformer" in printed
    for r in methods["rows"]:
        assert r["rounds"] == 2 and r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
    ig = {r["method"]: r for r in methods["rows"] if r["variant"] == "regular"}
    assert (ig["Integrated Gradients (4 steps)"]["forward_passes"],
            ig["Integrated Gradients (4 steps)"]["backward_passes"]) == (4, 4)
    # IG's completeness error falls with steps; the bias-free one is exact from zero
    errors = {(p["variant"], p["steps"]): p["rel_error"] for p in methods["ig_completeness"]}
    assert errors[("regular", 4)] < errors[("regular", 2)] and errors[("bias-free", 4)] < 1e-5
    # Captum's deterministic twins give the same maps
    pairs = {p["method"]: p for p in result["sections"]["captum"]["pairs"]}
    for name in ("Saliency", "Input x Gradient", "Integrated Gradients (4 steps)", "Occlusion"):
        assert pairs[name]["max_rel_difference"] < 1e-5
        assert pairs[name]["ours_passes"] == pairs[name]["captum_passes"]
    assert result["sections"]["mfaba"]["rows"][1]["images_per_s"] > 0
    if "adaptive" not in result["sections"]:
        assert "adaptive" in result["skipped"]
    for stem in ("time_per_method", "ratio_to_limit", "ratio_to_captum", "ig_completeness_vs_time"):
        assert (tmp_path / f"bench-digits-cnn-cpu-{stem}.html").stat().st_size > 1000
        assert (tmp_path / f"bench-digits-cnn-cpu-{stem}.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_configurations_and_an_in_process_measurement():
    from explorer.bench.memory import configurations, measure_here
    cfg = BenchConfig(quick=True, batch=2)
    assert [(c["steps"], c["batch_size"], c["chunked"]) for c in configurations(cfg)] == [
        (8, 4, True), (8, 16, False)]
    full = BenchConfig()
    assert [c["steps"] for c in configurations(full)] == [32, 32, 128, 128, 512, 512]
    assert measure_here(cfg, 8, 4)["peak_rss_mb"] > 0


def test_sections_are_lazy_and_bad_settings_raise(capsys):
    assert set(SECTIONS) >= {"methods", "captum", "memory", "mfaba", "adaptive"}
    with pytest.raises(explorer.InputError):
        run_bench(BenchConfig(sections=("nope",)))
    with pytest.raises(explorer.InputError):
        run_bench(BenchConfig(rounds=0, sections=("methods",)))
    assert main(["bench", "--model", "no-such-model"]) == 2
    assert main(["bench", "--sections", "methods,nope"]) == 2
    assert main(["bench", "--device", "warp-drive"]) == 2
    with pytest.raises(explorer.InputError):
        run_bench(BenchConfig(clock="process", device="cuda", sections=("methods",)))
    assert "unknown bench section(s) ['nope']" in capsys.readouterr().err
