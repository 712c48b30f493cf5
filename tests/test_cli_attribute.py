"""``python -m explorer attribute``: files, tables, failures, resuming, and torchrun on 2 processes."""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explorer
import explorer.cli.batch
import explorer.models
from explorer.cli.batch import list_inputs, parse_params
from explorer.cli import main
from explorer.inputs.data import sample_digits

REPO = Path(__file__).resolve().parent.parent
METHODS = ("input_x_gradient", "integrated_gradients")
STEPS = 8
GOOD = [f"digit{i:02d}" for i in range(12)]
BAD = {"broken.png": "truncated or corrupt", "text.png": "not an image", "empty.png": "empty"}


def args(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["attribute", "--model", "digits-cnn", "--bias-free", "--methods", ",".join(METHODS),
            "--input", str(inp), "--out", str(out), "--batch-size", "5", "--device", "cpu",
            "--param", f"integrated_gradients.steps={STEPS}", "--no-progress", *extra]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("digits")
    clean = sample_digits()["clean"]
    for i, stem in enumerate(GOOD):
        Image.fromarray(clean[i, 0]).save(d / f"{stem}.png")
    whole = (d / "digit00.png").read_bytes()
    (d / "broken.png").write_bytes(whole[: len(whole) // 2])
    (d / "text.png").write_text("a text file renamed .png")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image suffix: not listed")
    return d


@pytest.fixture(scope="module")
def first_run(folder, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("out") / "attr"
    return out, main(args(folder, out))


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without(rs: list[dict], *fields: str) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in fields} for r in rs),
                  key=lambda r: (r["file"], r["method"]))


def stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".npy", ".png")}


def test_files_tables_and_failures(first_run):
    out, status = first_run
    assert status == 1  # three files could not be read
    for stem in GOOD:
        for m in METHODS:
            assert np.load(out / f"{stem}.{m}.npy").shape == (1, 28, 28)
            with Image.open(out / f"{stem}.{m}.png") as png:
                assert png.size == (224, 224) and png.mode == "RGB"
    table = rows(out / "results.csv")
    assert sorted((r["file"], r["method"]) for r in table) == sorted(
        (f"{s}.png", m) for s in GOOD for m in METHODS)
    errors = {r["file"]: r for r in rows(out / "errors.csv")}
    assert sorted(errors) == sorted(BAD)
    for name, reason in BAD.items():
        assert reason in errors[name]["error"] and errors[name]["method"] == ""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["methods"]["integrated_gradients"]["steps"] == STEPS
    assert manifest["runs"][-1]["computed"] == 24 and manifest["runs"][-1]["errors"] == 3
    assert not list((out / "parts").glob("*"))


def test_maps_and_rows_match_the_library(first_run, folder):
    """Each .npy equals explorer.attribute on that image alone; each row's numbers are recomputed
    here from the model and the map."""
    out, _ = first_run
    entry = explorer.load_model("digits-cnn", bias_free=True, device="cpu")
    table = {(r["file"], r["method"]): r for r in rows(out / "results.csv")}
    for stem in GOOD:
        x = entry.preprocess((folder / f"{stem}.png").read_bytes())[None]
        with torch.no_grad():
            logits = entry.module(x).double()
            probs = torch.softmax(logits, 1)[0]
            f0 = entry.module(torch.zeros_like(x)).double()
        target = int(probs.argmax())
        for m in METHODS:
            ours = np.load(out / f"{stem}.{m}.npy")
            ref = explorer.attribute(m, entry.module, x, target,
                                     **({"steps": STEPS} if m == "integrated_gradients" else {}))
            # batched (5 images) vs alone: equal up to float rounding
            np.testing.assert_allclose(ours, ref[0].numpy(), rtol=1e-5, atol=1e-6)
            row = table[(f"{stem}.png", m)]
            assert int(row["target"]) == int(row["predicted"]) == target
            assert float(row["probability"]) == pytest.approx(float(probs[target]), rel=1e-5)
            assert float(row["attribution sum"]) == pytest.approx(float(ours.astype(np.float64).sum()), rel=1e-5, abs=1e-5)
            delta = float(logits[0, target] - f0[0, target])
            assert float(row["F(x) - F(ref)"]) == pytest.approx(delta, rel=1e-5)
            # the X-DNN claim, in the file: X-Gradient is complete from the zero baseline
            assert float(row["rel error"]) < 1e-5 and row["result"] == "complete"
            passes = 1.0 if m == "input_x_gradient" else float(STEPS)
            assert float(row["forward passes"]) == float(row["backward passes"]) == passes
            assert float(row["ms per input"]) > 0


def test_heatmap_colours(first_run):
    """Red where the map is most positive, blue where most negative, white where it is 0."""
    out, _ = first_run
    a = np.load(out / "digit00.integrated_gradients.npy")[0]
    with Image.open(out / "digit00.integrated_gradients.png") as png:
        rgb = np.asarray(png)[::8, ::8].astype(int)  # enlarged 8x
    hi, lo = np.unravel_index(a.argmax(), a.shape), np.unravel_index(a.argmin(), a.shape)
    assert a[hi] > 0 > a[lo]
    assert tuple(rgb[hi]) == (103, 0, 31)  # the top of the symmetric scale
    assert rgb[lo][2] > rgb[lo][0]
    zero = np.argwhere(a == 0)[0]
    assert tuple(rgb[tuple(zero)]) == (247, 247, 247)


def test_resume_does_no_work_and_overwrite_redoes(first_run, folder, tmp_path, monkeypatch):
    out = tmp_path / "attr"
    shutil.copytree(first_run[0], out)  # copy2 keeps the mtimes
    before, table = stamps(out), rows(out / "results.csv")
    calls = {"load": 0, "run": 0}
    real_load, real_run = explorer.models.load_model, explorer.cli.batch.run_checked

    def load(*a, **k):
        calls["load"] += 1
        return real_load(*a, **k)

    def run(*a, **k):
        calls["run"] += 1
        return real_run(*a, **k)

    monkeypatch.setattr(explorer.models, "load_model", load)
    monkeypatch.setattr(explorer.cli.batch, "run_checked", run)

    assert main(args(folder, out)) == 1  # the unreadable files still fail
    assert calls == {"load": 0, "run": 0}
    assert stamps(out) == before and rows(out / "results.csv") == table
    assert sorted(r["file"] for r in rows(out / "errors.csv")) == sorted(BAD)
    assert json.loads((out / "manifest.json").read_text())["runs"][-1]["skipped"] == 24

    # a changed hyper-parameter is refused, not mixed in
    assert main(args(folder, out, "--param", "integrated_gradients.steps=16")) == 2
    assert stamps(out) == before and calls["run"] == 0

    assert main(args(folder, out, "--overwrite")) == 1
    assert calls["load"] == 1 and calls["run"] == 2 * 3  # 2 methods x 3 batches of <= 5
    after = stamps(out)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)
    assert without(rows(out / "results.csv"), "ms per input") == without(table, "ms per input")


def test_resume_adds_a_method_and_picks_up_new_images(first_run, folder, tmp_path):
    out, inp = tmp_path / "attr", tmp_path / "in"
    shutil.copytree(first_run[0], out)
    shutil.copytree(folder, inp)
    before = stamps(out)
    Image.fromarray(sample_digits()["clean"][12, 0]).save(inp / "digit12.png")
    assert main(args(inp, out)) == 1
    assert set(stamps(out)) - set(before) == {f"digit12.{m}.{e}" for m in METHODS for e in ("npy", "png")}
    assert all(stamps(out)[k] == v for k, v in before.items())
    argv = args(inp, out)
    argv[argv.index("--methods") + 1] = "gradient," + ",".join(METHODS)
    assert main(argv) == 1
    table = rows(out / "results.csv")
    assert len(table) == 13 * 3 and sum(r["method"] == "gradient" for r in table) == 13
    assert all(r["rel error"] == "" and r["result"] == "not promised"
               for r in table if r["method"] == "gradient")
    assert all(stamps(out)[k] == v for k, v in before.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_one(first_run, folder, tmp_path):
    single, _ = first_run
    out = tmp_path / "attr"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "explorer", *args(folder, out)]
    # torchrun would set 1 thread per process; the single run used this process's count, and
    # the intra-op split changes float rounding (1 ulp on some maps), so both use the same
    env = dict(os.environ, EXPLORER_OFFLINE="1", OMP_NUM_THREADS=str(torch.get_num_threads()))
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr  # the three unreadable files
    assert "24 (image, method) results computed" in done.stdout, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix in (".npy", ".png")) \
        == sorted(stamps(single))
    for name in stamps(single):
        if name.endswith(".npy"):
            # batches are formed before sharding: each map comes from the same batch of images
            assert np.array_equal(np.load(out / name), np.load(single / name)), name
    assert without(rows(out / "results.csv"), "ms per input", "device") == \
        without(rows(single / "results.csv"), "ms per input", "device")
    assert rows(out / "errors.csv") == rows(single / "errors.csv")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"][-1]["machine"]["processes"] == 2
    assert manifest["runs"][-1]["command"].startswith("torchrun --nproc_per_node=2")


@pytest.mark.parametrize("extra, message", [
    (["--methods", "no_such_method"], "unknown method"),
    (["--param", "integrated_gradients.stepz=3"], "has no parameter 'stepz'"),
    (["--param", "steps=3"], "METHOD.NAME=VALUE"),
    (["--param", "integrated_gradients.steps=0"], "at least"),
    (["--target", "10"], "out of range"),
    (["--target", "cat"], "'predicted' or a class index"),
    (["--baseline", "sepia"], "unknown baseline"),
    (["--device", "banana"], "unknown device"),
    pytest.param(["--device", "cuda"], "no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_arguments_exit_2_with_a_message(folder, tmp_path, capsys, extra, message):
    assert main(args(folder, tmp_path / "out", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_inputs_listing_and_param_parsing(tmp_path):
    for name in ("a.png", "a.jpg", "b.PNG", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"")
    listed = list_inputs(tmp_path)
    assert [(f.name, f.key) for f in listed] == [("a.jpg", "a.jpg"), ("a.png", "a.png"), ("b.PNG", "b")]
    globbed = list_inputs(str(tmp_path / "**" / "b.*"))
    assert [(f.name, f.key) for f in globbed] == [("b.PNG", "b.PNG"), ("sub/b.png", "sub__b.png")]
    with pytest.raises(explorer.InputError, match="neither a folder"):
        list_inputs(str(tmp_path / "*.webp"))
    assert parse_params(["integrated_gradients.steps=64", "integrated_gradients.rule=middle",
                         "smoothgrad.noise=0.2"]) == {
        "integrated_gradients": {"steps": 64, "rule": "middle"}, "smoothgrad": {"noise": 0.2}}


def test_a_model_that_cannot_load_is_reported_not_raised(folder, tmp_path, capsys):
    """Found only after the work starts (so every rank reaches the merge): exit 1, the reason
    printed, the unreadable files still listed, no rows."""
    bad = tmp_path / "weights.pt"
    bad.write_text("not a checkpoint")
    out = tmp_path / "out"
    assert main(args(folder, out, "--checkpoint", str(bad))) == 1
    assert "could not read checkpoint weights.pt" in capsys.readouterr().out
    assert rows(out / "results.csv") == []
    assert sorted(r["file"] for r in rows(out / "errors.csv")) == sorted(BAD)
    assert "could not read checkpoint" in json.loads((out / "manifest.json").read_text())["runs"][-1]["fatal"][0]


def test_a_new_file_with_the_same_stem_renames_without_duplicate_rows(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    clean = sample_digits()["clean"]
    Image.fromarray(clean[0, 0]).save(inp / "a.png")
    argv = ["attribute", "--model", "digits-cnn", "--methods", "gradient", "--input", str(inp),
            "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    assert [r["key"] for r in rows(out / "results.csv")] == ["a"]
    Image.fromarray(clean[1, 0]).save(inp / "a.bmp")
    assert main(argv) == 0
    table = rows(out / "results.csv")
    assert sorted((r["file"], r["key"]) for r in table) == [("a.bmp", "a.bmp"), ("a.png", "a.png")]
    for r in table:
        assert (out / f"{r['key']}.gradient.npy").exists()
