"""Side-by-side speed of attribution methods on one model and input, in one run.

    python -m benchmarks.bench_attribution --model resnet18 --repeats 3
    python -m benchmarks.bench_attribution --model digits-cnn --methods all
    python -m benchmarks.bench_attribution --model resnet18 --methods deeplift,epsilon_lrp,grad_cam,mfaba

Prints median wall time (one counted warm-up call each, then round-robin rounds so that drift
hits every method alike; CUDA-synchronised), passes per input actually counted, and ratios to one
forward+backward pass and to Captum's IG at the same settings. Nothing here is
asserted: the numbers depend on the machine, which is printed with them.
"""
from __future__ import annotations

import argparse
import platform
import statistics

import torch

import explorer
from explorer.timing import count_passes, time_call


def sample_input(entry) -> torch.Tensor:
    from explorer.data import sample_digits, sample_photos
    if entry.spec.channels == 1:
        return entry.preprocess(sample_digits()["clean"][0, 0])[None]
    return entry.preprocess(sample_photos()["chelsea"])[None]


def load(name: str, bias_free: bool, device):
    try:
        return explorer.load_model(name, bias_free=bias_free, device=device)
    except explorer.WeightsUnavailable:
        return explorer.load_model(name, bias_free=bias_free, pretrained=False, device=device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18", choices=sorted(explorer.MODELS))
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="IG points per chunk, ours and Captum's")
    p.add_argument("--methods", default="core",
                   help="'core' (X-Gradient and IG), 'all' registered, or a comma list to add")
    args = p.parse_args()

    device = torch.device(args.device) if args.device else explorer.default_device()
    entry = load(args.model, True, device)  # bias-free: X-Gradient == IG(zero) holds here
    model = entry.module
    x = sample_input(entry).to(device)
    target = int(model(x).argmax(1))
    bs = args.batch_size

    def fwd_bwd():
        xx = x.detach().requires_grad_(True)
        model(xx)[:, target].sum().backward()

    # (label, call) pairs; passes are counted on each call's first (warm-up) run.
    calls = [("one forward+backward", fwd_bwd)]
    runs = [("input_x_gradient", {}), ("integrated_gradients", {"steps": 32, "batch_size": bs}),
            ("integrated_gradients", {"steps": 128, "batch_size": bs})]
    extra = list(explorer.METHODS) if args.methods == "all" else (
        [] if args.methods == "core" else args.methods.split(","))
    runs += [(m, {}) for m in extra if m not in ("input_x_gradient", "integrated_gradients")]
    for method, hp in runs:
        label = explorer.method_label(method, entry.bias_free) + (f" ({hp['steps']} steps)" if "steps" in hp else "")
        calls.append((label, lambda method=method, hp=hp: explorer.attribute(method, model, x, target, **hp)))
    captum = {}
    try:
        from captum.attr import IntegratedGradients
        ig = IntegratedGradients(model)
        for steps in (32, 128):
            calls.append((f"Captum IG ({steps} steps)", lambda steps=steps: ig.attribute(
                x, target=target, n_steps=steps, method="gausslegendre", internal_batch_size=bs)))
    except ImportError:
        print("captum not installed: skipping its rows (pip install -r requirements-dev.txt)")

    passes = {}
    for label, call in calls:  # warm-up, counted
        with count_passes(model) as c:
            call()
        passes[label] = (c.forward, c.backward)
    # Round-robin: every call is timed once per round, so drift hits all of them alike.
    times = {label: [] for label, _ in calls}
    for _ in range(args.repeats):
        for label, call in calls:
            times[label].append(time_call(call, repeats=1, warmup=0, device=device).median_s)
    rows = [(label, statistics.median(times[label]), *passes[label]) for label, _ in calls]
    captum = {steps: t for label, t, *_ in rows for steps in (32, 128)
              if label == f"Captum IG ({steps} steps)"}

    base = rows[0][1]
    print(f"\nmodel: {entry.title} | input {list(x.shape)} | device: {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads) | torch {torch.__version__} | median of {args.repeats} round-robin rounds")
    print(f"{'method':34s} {'median ms':>10s} {'fwd':>6s} {'bwd':>6s} {'x fwd+bwd':>10s} {'x Captum':>9s}")
    for label, t, f, b in rows:
        vs = ""
        for steps, ct in captum.items():
            if label.endswith(f"({steps} steps)") and not label.startswith("Captum"):
                vs = f"{t / ct:.2f}"
        print(f"{label:34s} {t * 1e3:10.2f} {f:6.0f} {b:6.0f} {t / base:10.2f} {vs:>9s}")


if __name__ == "__main__":
    main()
