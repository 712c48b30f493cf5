"""On a CUDA device, the same truth as on the CPU (issue 17). Every test here is marked ``cuda``
and skipped without a device; run them with ``python -m pytest -m cuda``.

- every registered method (``explorer.METHODS``, so new methods are covered) on CUDA against the
  CPU on the bundled digits models: maps within 1e-3 relative L2, completeness equal; methods
  whose draws differ between devices (SmoothGrad) are compared by statistics;
- the precision policy on a real GPU: X-Gradient complete below 1e-5 on the bias-free digits
  CNN, X-Gradient = IG-64 within 5e-3 on a bias-free ResNet-50 at 224, flags off during a call
  and restored after;
- timing synchronises with the device, bench memory reads CUDA's counters, out-of-memory on a
  real device is retried in halves, and training runs under torchrun over nccl.
"""
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import explorer
from explorer.runtime import precision as P
from helpers import child_env

pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.device("cuda") if torch.cuda.is_available() else None
MAP_RTOL = 1e-3
# Settings small enough for a quick suite; the rest are the registry's defaults.
SMALL = {"integrated_gradients": {"steps": 16}, "expected_gradients": {"samples": 16},
         "mfaba": {"steps": 10}, "smoothgrad": {"samples": 16}}
CANDIDATES = (("digits-cnn", False), ("digits-cnn", True), ("decoy-digits-cnn", False),
              ("decoy-digits-cnn", True))


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def digits_inputs(n: int = 4) -> torch.Tensor:
    from explorer.inputs.data import sample_digits
    d = sample_digits()["clean"]
    entry = explorer.load_model("digits-cnn")
    return torch.stack([entry.preprocess(d[i % len(d), 0]) for i in range(n)])


def pair(name: str, bias_free: bool):
    """The same bundled model on the CPU and on CUDA."""
    return (explorer.load_model(name, bias_free=bias_free, device="cpu"),
            explorer.load_model(name, bias_free=bias_free, device="cuda"))


def model_for(method: str):
    """The first bundled digits model the method applies to (its ``applicability``)."""
    spec = explorer.METHODS[method]
    for name, bias_free in CANDIDATES:
        cpu, gpu = pair(name, bias_free)
        if spec.applicability(cpu.module) is None:
            return cpu, gpu
    pytest.skip(f"{method} applies to none of the bundled digits models: "
                f"{spec.applicability(cpu.module)}")


def baseline_for(method: str, x: torch.Tensor, entry) -> torch.Tensor | None:
    if method == "expected_gradients":
        from explorer.inputs.data import background_set
        return background_set(entry)[:8]
    return None


@pytest.mark.parametrize("method", list(explorer.METHODS))
def test_cuda_map_equals_cpu_map(method):
    cpu, gpu = model_for(method)
    x = digits_inputs()
    target = cpu.module(x).argmax(1)
    params = SMALL.get(method, {})
    b = baseline_for(method, x, cpu)
    on_cpu = explorer.explain(method, cpu.module, x, target, baseline=b, **params)
    on_gpu = explorer.explain(method, gpu.module, x.to(CUDA), target.to(CUDA),
                              baseline=None if b is None else b.to(CUDA), **params)
    assert on_gpu.attributions.device.type == "cuda"
    assert on_gpu.info["precision"] == "float32"
    spec = explorer.METHODS[method]
    if method == "smoothgrad":
        # The noise is drawn on the device (its own stream): compare as estimates of one mean.
        # Two CPU seeds differ by sampling noise alone; CUDA must differ from the CPU by no more.
        other = explorer.explain(method, cpu.module, x, target, **dict(params, seed=1))
        spread = rel_l2(other.attributions, on_cpu.attributions)
        assert rel_l2(on_gpu.attributions, on_cpu.attributions) < 2 * spread
        return
    assert rel_l2(on_gpu.attributions, on_cpu.attributions) < MAP_RTOL, spec.label
    if spec.completeness != "none":
        refs_cpu = on_cpu.references
        c_cpu = explorer.completeness(cpu.module, x, on_cpu.attributions, target, refs_cpu)
        c_gpu = explorer.completeness(gpu.module, x.to(CUDA), on_gpu.attributions, target.to(CUDA),
                                      on_gpu.references)
        torch.testing.assert_close(c_gpu.rel_error.cpu().double(), c_cpu.rel_error.double(),
                                   rtol=0, atol=1e-5)


def test_smoothgrad_on_cuda_is_seeded_by_the_seed_alone():
    _, gpu = pair("digits-cnn", False)
    x = digits_inputs().to(CUDA)
    a = explorer.attribute("smoothgrad", gpu.module, x, 3, samples=24, batch_size=7)
    b = explorer.attribute("smoothgrad", gpu.module, x, 3, samples=24, batch_size=64)
    c = explorer.attribute("smoothgrad", gpu.module, x[1:2], 3, samples=24)
    assert rel_l2(a, b) < 1e-5            # batch_size bounds memory, never the draws
    assert rel_l2(a[1:2], c) < 1e-5        # a sample's map does not depend on its position


def test_x_gradient_complete_on_bias_free_digits_cnn_on_cuda():
    _, gpu = pair("digits-cnn", True)
    x = digits_inputs(8).to(CUDA)
    e = explorer.explain("input_x_gradient", gpu.module, x, gpu.module(x).argmax(1))
    report = explorer.completeness(gpu.module, x, e.attributions, gpu.module(x).argmax(1))
    assert float(report.rel_error.max()) < 1e-5


def test_x_gradient_equals_ig64_on_bias_free_resnet50_at_224_on_cuda():
    entry = explorer.load_model("resnet50", bias_free=True, pretrained=False, device="cuda")
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(CUDA)
    target = entry.module(x).argmax(1)
    xg = explorer.attribute("input_x_gradient", entry.module, x, target)
    ig = explorer.attribute("integrated_gradients", entry.module, x, target, steps=64,
                            batch_size=64)
    assert rel_l2(xg, ig) < 5e-3


def test_flags_off_during_a_cuda_call_and_restored_after():
    _, gpu = pair("digits-cnn", True)
    seen = []
    hook = gpu.module.register_forward_hook(lambda m, i, o: seen.append(P.read_flags()))
    before = P.read_flags()
    try:
        P._write_flags(True, True, "high")
        explorer.attribute("integrated_gradients", gpu.module, digits_inputs().to(CUDA), 1, steps=4)
        assert P.read_flags() == (True, True, "high")
    finally:
        hook.remove()
        P._write_flags(*before)
    assert seen and set(seen) == {(False, False, "highest")}


def test_tf32_on_cuda_is_a_different_number_format():
    """TF32 really changes the numbers on an Ampere+ GPU (else the default would be moot)."""
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs an NVIDIA Ampere or newer GPU")
    entry = explorer.load_model("resnet18", bias_free=True, pretrained=False, device="cuda")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(CUDA)
    full = explorer.explain("gradient", entry.module, x, 0)
    fast = explorer.explain("gradient", entry.module, x, 0, precision="tf32")
    assert fast.info["precision"] == "tf32"
    assert rel_l2(fast.attributions, full.attributions) > 1e-5


def test_timing_waits_for_the_device():
    """A kernel that keeps the GPU busy for a measured time: the timed median covers it."""
    from explorer.runtime.timing import Call, compare
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(1000)
    start.record()
    torch.cuda._sleep(50_000_000)
    end.record()
    torch.cuda.synchronize()
    kernel_s = start.elapsed_time(end) / 1e3
    assert kernel_s > 1e-3
    result = compare([Call("sleep", lambda: torch.cuda._sleep(50_000_000))], min_rounds=3,
                     device=CUDA, min_time_s=0.0)
    assert result.rows["sleep"].median_s > 0.8 * kernel_s


def test_bench_memory_reads_cuda_counters():
    from explorer.bench import BenchConfig
    from explorer.bench.memory import measure_here
    cfg = BenchConfig(model="digits-cnn", device="cuda", batch=4, quick=True)
    small = measure_here(cfg, 32, 8)["peak_mb"]
    large = measure_here(cfg, 32, 4 * 32)["peak_mb"]
    assert 0 < small < large


class Hog(torch.nn.Module):
    """Linear logits, plus a scratch allocation of ``per_row`` bytes for each row of the batch."""

    def __init__(self, per_row: int, features: int = 8):
        super().__init__()
        self.per_row = per_row
        self.linear = torch.nn.Linear(features, 3, bias=False)

    def forward(self, x):
        scratch = torch.empty((x.shape[0], self.per_row // 4), device=x.device)
        return self.linear(x) + 0 * scratch[:, :1]


def test_out_of_memory_on_the_device_is_retried_in_halves():
    free, _ = torch.cuda.mem_get_info()
    per_row = int(free // 128)            # 128 rows would take all free memory; 32 fit
    model = Hog(per_row).to(CUDA).eval()
    x = torch.rand(4, 8, device=CUDA)
    small = explorer.attribute("integrated_gradients", model, x, 1, steps=64, batch_size=16)
    big = explorer.attribute("integrated_gradients", model, x, 1, steps=64, batch_size=256)
    assert rel_l2(big, small) < 1e-6
    huge = Hog(int(free * 2)).to(CUDA).eval()
    with pytest.raises(explorer.InputError, match="out of memory even one point at a time"):
        explorer.attribute("integrated_gradients", huge, x[:1], 1, steps=4, batch_size=4)
    torch.cuda.empty_cache()


def test_torchrun_trains_over_nccl(tmp_path):
    pytest.importorskip("mlxtend")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env(ROOT, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
         f"--master_port={port}", "--master_addr=127.0.0.1", "-m", "explorer", "train",
         "--experiment", "decoy", "--priors", "x-gradient", "--subset", "128", "--epochs", "1",
         "--device", "cuda", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifests = list(tmp_path.glob("*.json"))
    assert manifests
    assert "(nccl)" in json.loads(manifests[0].read_text())["machine"]


def test_cpu_input_to_a_cuda_model_is_moved_once_by_every_entry_point():
    """load_model puts a model on default_device() (CUDA here) while the app, the CLI and the
    tests make inputs on the CPU: every analysis function moves x (and maps, baselines) to the
    model's device itself, and explain hands the map back on x's device, equal to the CPU's."""
    from explorer.analyses import checks, metrics
    from explorer.presentation import report
    from explorer.analyses.axioms import homogeneity_curves
    from explorer.inputs.data import sample_digits
    x = torch.from_numpy(sample_digits()["clean"][:2]).float() / 255
    gpu = explorer.load_model("digits-cnn", device=CUDA).module
    cpu = explorer.load_model("digits-cnn", device="cpu").module
    target = cpu(x).argmax(1)
    a = explorer.attribute("input_x_gradient", gpu, x, target)
    assert a.device.type == "cpu"
    assert rel_l2(a, explorer.attribute("input_x_gradient", cpu, x, target)) < MAP_RTOL
    got = checks.completeness(gpu, x, a, target).rel_error
    want = checks.completeness(cpu, x, a, target).rel_error
    assert torch.allclose(got.cpu(), want, rtol=1e-3, atol=1e-6)
    curves = homogeneity_curves({"regular": gpu}, x, target)
    assert curves.outputs["regular"].device.type == "cpu"
    facts = report.model_facts(gpu, [str(i) for i in range(10)], x[:1])
    assert abs(float(facts["probs"].sum()) - 1) < 1e-6
    on_gpu = metrics.sensitivity_n(gpu, x, a, target, ns=[64], subsets=8).per_sample
    on_cpu = metrics.sensitivity_n(cpu, x, a, target, ns=[64], subsets=8).per_sample
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-4)  # the same seeded subsets
