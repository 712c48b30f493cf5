"""Section "memory": peak memory of IG at several step counts, chunked and unchunked, and of
expected gradients at few and many samples (its peak must not grow with the samples).

On a GPU: ``torch.cuda.max_memory_allocated`` around one call. On the CPU: the peak resident set
of a fresh subprocess per configuration (``ru_maxrss``), minus that of a subprocess that loads the
same model and input and makes one forward+backward, so the figure is what IG adds.
"""
from __future__ import annotations

import json
import subprocess
import sys

import torch

STEPS = (32, 128, 512)
QUICK_STEPS = (8,)
CHUNK = 16
EG_SAMPLES = (16, 1024)
QUICK_EG_SAMPLES = (4, 16)


def configurations(cfg) -> list[dict]:
    steps = QUICK_STEPS if cfg.quick else STEPS
    chunk = 4 if cfg.quick else CHUNK
    return [{"steps": s, "batch_size": b, "chunked": b < s * cfg.batch}
            for s in steps for b in (chunk, s * cfg.batch)]


def eg_configurations(cfg) -> list[dict]:
    """Expected gradients at few and many samples, one chunk size: the peak must stay flat."""
    chunk = 4 if cfg.quick else CHUNK
    return [{"method": "expected_gradients", "samples": s, "batch_size": chunk}
            for s in (QUICK_EG_SAMPLES if cfg.quick else EG_SAMPLES)]


def measure_here(cfg, steps: int, batch_size: int,
                 method: str = "integrated_gradients") -> dict:
    """Peak memory of one call in this process: CUDA bytes, else the process's peak RSS.
    ``steps``: IG's steps, or expected gradients' samples (drawn from the app's background set)."""
    import explorer
    from explorer.bench.common import batch, load
    entry = load(cfg, False)
    x, target = batch(cfg, entry)
    device = torch.device(cfg.device)
    baseline = None
    if method == "expected_gradients":
        from explorer.inputs.data import background_set
        baseline = background_set(entry).to(device)
        if baseline.shape[1:] != x.shape[1:]:
            baseline = torch.nn.functional.interpolate(baseline, size=x.shape[-2:],
                                                       mode="bilinear", align_corners=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    if steps and method == "expected_gradients":
        explorer.attribute(method, entry.module, x, target, baseline=baseline, samples=steps,
                           batch_size=batch_size)
    elif steps:
        explorer.attribute(method, entry.module, x, target, steps=steps, batch_size=batch_size)
    else:
        from explorer.methods.core import limit_call
        limit_call(entry.module, x, target)()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return {"peak_mb": (torch.cuda.max_memory_allocated(device) - before) / 2**20}
    import resource
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_subprocess(cfg, steps: int, batch_size: int,
                  method: str = "integrated_gradients") -> dict:
    args = json.dumps({"model": cfg.model, "device": cfg.device, "batch": cfg.batch,
                       "size": cfg.size, "pretrained": cfg.pretrained, "quick": cfg.quick,
                       "checkpoint": cfg.checkpoint,
                       "clock": cfg.clock, "steps": steps, "batch_size": batch_size,
                       "method": method})
    done = subprocess.run([sys.executable, "-m", "explorer.bench.memory", args],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cfg) -> dict:
    rows = []
    if torch.device(cfg.device).type == "cuda":
        for c in configurations(cfg):
            rows.append({**c, **measure_here(cfg, c["steps"], c["batch_size"])})
        for c in eg_configurations(cfg):
            rows.append({**c, **measure_here(cfg, c["samples"], c["batch_size"], c["method"])})
        return {"kind": "CUDA max allocated during the call (MB)", "rows_memory": rows, "rows": []}
    base = in_subprocess(cfg, 0, 1)["peak_rss_mb"]
    for c in configurations(cfg):
        peak = in_subprocess(cfg, c["steps"], c["batch_size"])["peak_rss_mb"]
        rows.append({**c, "peak_rss_mb": peak, "added_mb": peak - base})
    for c in eg_configurations(cfg):
        peak = in_subprocess(cfg, c["samples"], c["batch_size"], c["method"])["peak_rss_mb"]
        rows.append({**c, "peak_rss_mb": peak, "added_mb": peak - base})
    return {"kind": "peak RSS of a fresh process (MB); added_mb: minus one forward+backward's",
            "baseline_rss_mb": base, "rows_memory": rows, "rows": []}


if __name__ == "__main__":
    from explorer.bench import BenchConfig
    a = json.loads(sys.argv[1])
    steps, bs, method = a.pop("steps"), a.pop("batch_size"), a.pop("method")
    torch.set_num_threads(1)  # memory does not depend on threads; a shared machine thanks us
    print(json.dumps(measure_here(BenchConfig(**a), steps, bs, method)))
