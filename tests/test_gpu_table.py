"""The GPU table is generated from bench JSON: every timed row appears with its numbers, and each
command it prints parses back (with the bench's own parser) to the run's configuration."""
import argparse
import shlex

import pytest

from benchmarks.gpu_table import command, load, markdown
from explorer.bench import BenchConfig, run_bench
from explorer.bench.output import write


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two real quick bench runs (float32, tf32), the methods section cut to three methods to
    keep the test fast: the table's rows come from whatever the JSON holds."""
    import explorer.bench.methods as section
    out = tmp_path_factory.mktemp("gpu")
    with pytest.MonkeyPatch.context() as mp:
        real = section.runs
        mp.setattr(section, "runs", lambda cfg, x, bg, model=None: real(cfg, x, bg, model)[:3])
        mp.setattr("explorer.bench.output.figures", lambda result: {})  # JSON only
        for precision in ("float32", "tf32"):
            cfg = BenchConfig(model="digits-cnn", rounds=1, quick=True, precision=precision,
                              sections=("methods", "mfaba"), out=out)
            write(run_bench(cfg, say=lambda s: None), out)
    return out


def test_every_row_and_both_precisions_are_in_the_table(folder):
    results = load(folder)
    assert [r["config"]["precision"] for r in results] == ["float32", "tf32"]
    text = markdown(results)
    for r in results:
        for row in r["sections"]["methods"]["rows"]:
            line = next(l for l in text.splitlines()
                        if l.startswith(f"| {row['method']} | {row['variant']} |"))
            assert f"{row['median_ms']:.3g} (" in line
        assert f"`{command(r)}`" in text
    assert "float32 ms | float32 x limit | tf32 ms | tf32 x limit" in text
    assert "MFABA against IG-50 (tf32), images/s" in text and "Paper: MFABA 51.58" in text


def test_the_printed_command_parses_back_to_the_run(folder):
    from explorer.cli import bench
    for r in load(folder):
        words = shlex.split(command(r))
        assert words[:4] == ["python", "-m", "explorer", "bench"]
        parser = argparse.ArgumentParser()
        bench.add_arguments(parser, "bench")
        args = parser.parse_args(words[4:])
        c = r["config"]
        assert (args.model, args.device, args.batch, args.rounds, args.precision, args.quick) == \
            (c["model"], c["device"], c["batch"], c["rounds"], c["precision"], c["quick"])
        assert args.sections.split(",") == c["sections"]
