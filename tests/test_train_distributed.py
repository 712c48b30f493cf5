"""The training command under torchrun: 2 CPU processes (gloo, DDP, a DistributedSampler shard
each) take the same steps as one process with the same global batch."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer.models.architectures import DigitsCNN
from helpers import child_env

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["train", "--experiment", "decoy", "--priors", "x-gradient", "--subset", "128",
        "--epochs", "1", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process(tmp_path):
    pytest.importorskip("mlxtend")
    env = child_env(ROOT, OMP_NUM_THREADS="1")
    single = subprocess.Popen([sys.executable, "-m", "explorer", *ARGS, "--out",
                               str(tmp_path / "one")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "--master_addr=127.0.0.1", "-m", "explorer", *ARGS,
         "--out", str(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out, _ = single.communicate(timeout=300)
    assert single.returncode == 0, out
    assert multi.returncode == 0, multi.stdout + multi.stderr
    # rank 0 alone logs: one JSON line per model, as in the single run
    assert sum(line.startswith("{") for line in multi.stdout.splitlines()) == 3
    files = sorted(p.name for p in (tmp_path / "one").glob("*.pt"))
    assert files == sorted(p.name for p in (tmp_path / "two").glob("*.pt"))
    assert len(files) == 3  # plain regular, plain bias-free, X-Gradient prior (bias-free)
    for name in files:
        a = torch.load(tmp_path / "one" / name, weights_only=True)
        b = torch.load(tmp_path / "two" / name, weights_only=True)
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{name} {key}")
    torch.manual_seed(0)  # the runs started from these weights: they must have moved
    init = DigitsCNN(bias=True).state_dict()
    trained = torch.load(tmp_path / "two" / "decoy-digits-cnn.pt", weights_only=True)
    assert max(float((trained[k] - init[k]).abs().max()) for k in init) > 1e-3
    manifest = json.loads((tmp_path / "two" / files[0]).with_suffix(".json").read_text())
    assert "2 processes (gloo)" in manifest["machine"]
