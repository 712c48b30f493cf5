"""The documentation site builds strictly, its tables come from the benchmark JSON, and the
README stays a front door (CI runs only the README's test command, so the docs build is here)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import bench_tables  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_site_builds_strictly_with_every_page_and_the_api(site):
    for page in ("index.html", "app/index.html", "sharing/index.html", "speed/index.html",
                 "zoo/index.html", "hostile-input/index.html"):
        assert (site / page).stat().st_size > 5000, page
    api = text((site / "api" / "index.html").read_text())
    # generated from the docstrings, not written by hand: the signatures' own parameter names
    for name in ("attribute", "remove_biases", "completeness", "load_model", "export"):
        assert re.search(rf"\b{name}\s*\(", api), name
    assert "bias_free" in api and "checkpoint" in api


def test_speed_tables_are_the_json_numbers(site):
    data = json.loads((ROOT / "benchmarks/results/bench-digits-cnn-cpu.json").read_text())
    page = text((site / "speed" / "index.html").read_text())
    for row in data["sections"]["methods"]["rows"]:
        cells = f"{row['method']} {row['variant']} {row['median_ms']:.3g} "
        assert cells in page, cells
    pair = next(p for p in data["sections"]["captum"]["pairs"] if p["method"] == "Occlusion")
    assert f"Occlusion {pair['ours_ms']:.3g} {pair['captum_ms']:.3g}" in page
    assert "<!-- bench-table" not in (site / "speed" / "index.html").read_text()


def test_a_marker_for_a_missing_table_fails_the_build(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"fresh_s": [1.0, 3.0], "fresh_median_s": 2.0,
                                                 "warm_s": [0.5], "warm_median_s": 0.5,
                                                 "visitor_s": [1.5], "visitor_median_s": 1.5}))
    table = bench_tables.render("<!-- bench-table: browser x.json -->", tmp_path)
    assert "| fresh server (first visit after a start) | 2 | 2 | 1-3 |" in table
    with pytest.raises(ValueError, match="unknown bench-table kind"):
        bench_tables.render("<!-- bench-table: nonsense x.json -->", tmp_path)
    with pytest.raises(FileNotFoundError):
        bench_tables.render("<!-- bench-table: methods gone.json -->", tmp_path)


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 200
    assert lines[3:5] == ["pip install -r requirements.txt && streamlit run streamlit_app.py",
                          "pip install -r requirements-dev.txt && python -m pytest -q"]
    assert "mkdocs serve" in readme
    for target in re.findall(r"\]\(([^)#]+)\)", readme):  # every link and the screenshot exist
        assert (ROOT / target).exists(), target
    shots = list((ROOT / "docs" / "images").glob("*.png"))
    assert shots and sum(p.stat().st_size for p in shots) < 600_000


def test_adaptive_table_is_the_json_numbers():
    """The adaptive-IG page's 20-digit table (explorer.bench.adaptive against exact IG)."""
    name = "adaptive/20-inputs/adaptive.json"
    data = json.loads((ROOT / "benchmarks/results" / name).read_text())
    assert "exact IG" in data["error"] and data["settings"]["inputs"] == 20
    assert f"<!-- bench-table: adaptive {name} -->" in (ROOT / "docs/adaptive-ig.md").read_text()
    table = bench_tables.render(f"<!-- bench-table: adaptive {name} -->")
    for r in data["results"]:
        label = r["model"] + (" (bias-free)" if r["bias_free"] else "")
        for a in r["adaptive"]:
            worst = max(i["error"] for i in a["inputs"]) / a["tolerance"]
            met = sum(i["within_tolerance"] and i["passes_ok"] for i in a["inputs"])
            row = next(line for line in table.splitlines()
                       if line.startswith(f"| {label} | {a['tolerance']:g} |"))
            assert f"| {worst:.2f} |" in row and f"| {met} of 20 |" in row, row


@pytest.mark.parametrize("clients", ["browser", "protocol"])
def test_classroom_tables_are_the_json_numbers_beside_the_floor(clients):
    """docs/classroom.md's tables: the explorer's and the floor's runs of bench_classroom."""
    name = f"classroom-{clients}.json"
    ours, floor = (json.loads((ROOT / "benchmarks/results" / n).read_text())
                   for n in (name, f"classroom-floor-{clients}.json"))
    assert ours["app"] == "explorer" and floor["app"] == "floor"
    assert ours["clients"] == floor["clients"] == clients
    assert f"<!-- bench-table: classroom {name} -->" in (ROOT / "docs/classroom.md").read_text()
    table = bench_tables.render(f"<!-- bench-table: classroom {name} -->").splitlines()
    for n, g in ours["groups"].items():
        row = next(line for line in table if line.startswith(f"| {n} |"))
        ratio = g["median_s"] / ours["groups"]["1"]["median_s"]
        assert f"| {g['median_s']:.2f} s ({g['largest_s']:.2f} s) |" in row, row
        assert f"| {ratio:.1f}x / " in row, row
        f = floor["groups"][n]
        assert f"| {f['median_s']:.2f} s ({f['largest_s']:.2f} s) |" in row, row
