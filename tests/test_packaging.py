"""The installable package: a wheel installed into a fresh virtual environment, away from the
repository, runs ``explorer --help`` and one ``explorer attribute`` on a bundled model; the
package list and the app's streamlit settings cannot drift from the repository."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from setuptools import find_packages

from explorer.cli import COMMANDS, main
from explorer.cli.app import STREAMLIT_SETTINGS, streamlit_command

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(REPO), include=["explorer*"]))
    assert found <= listed, f"add {sorted(found - listed)} to pyproject.toml's packages"
    assert listed - found == {"explorer.assets"}  # mapped from the top-level assets/


def test_app_applies_the_repository_streamlit_settings():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    flat = {f"{section}.{k}": str(v).lower() for section, values in config.items()
            for k, v in values.items()}
    assert flat == STREAMLIT_SETTINGS
    command = streamlit_command(["--server.port", "8765", "--browser.gatherUsageStats=true"])
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("explorer/ui/app.py")
    assert "--server.showEmailPrompt=false" in command
    assert "--browser.gatherUsageStats=false" not in command  # the caller's own value wins
    assert command[-3:] == ["--server.port", "8765", "--browser.gatherUsageStats=true"]


def test_app_dry_run_passes_models_and_options(capsys, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    assert main(["app", "--model", "digits-cnn", "--checkpoint", str(weights),
                 "--model", "resnet18", "--server.headless", "true", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--server.headless true" in out
    assert f'"spec": "digits-cnn", "checkpoint": "{weights}"' in out
    assert '{"spec": "resnet18", "checkpoint": null}' in out
    assert main(["app", "--model", "no-such-model", "--dry-run"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    # No build isolation: the build needs no download (setuptools is already here).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path,
                   capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # torch from the system
    python = env_dir / "bin" / "python"
    # The person's command, `pip install <wheel>`; the dependencies are the system's already.
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["EXPLORER_OFFLINE"] = "1"
    away = tmp_path / "elsewhere"
    away.mkdir()

    where = subprocess.run([str(python), "-c", "import explorer; print(explorer.__file__)"],
                           cwd=away, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout
    explorer_cmd = env_dir / "bin" / "explorer"
    help_text = subprocess.run([str(explorer_cmd), "--help"], cwd=away, env=env, check=True,
                               capture_output=True, text=True).stdout
    assert all(name in help_text for name in COMMANDS)

    from PIL import Image
    from explorer.inputs.data import sample_digits
    images = away / "digits"
    images.mkdir()
    digits = sample_digits()["clean"]
    for i in range(2):
        Image.fromarray(digits[i, 0]).save(images / f"d{i}.png")
    done = subprocess.run([str(explorer_cmd), "attribute", "--model", "digits-cnn", "--bias-free",
                           "--methods", "input_x_gradient", "--input", str(images), "--out",
                           str(away / "out"), "--device", "cpu", "--no-progress"],
                          cwd=away, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = (away / "out" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "input_x_gradient" in rows[1]
    assert len(list((away / "out").rglob("*.npy"))) == 2
