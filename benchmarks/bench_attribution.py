"""Side-by-side speed of attribution methods on one model and input, in one run.

    python -m benchmarks.bench_attribution --model resnet18 --repeats 3
    python -m benchmarks.bench_attribution --model digits-cnn --methods all
    python -m benchmarks.bench_attribution --model resnet18 --methods deeplift,epsilon_lrp,grad_cam,mfaba

Prints median wall time (after warm-up, CUDA-synchronised), passes per input actually counted,
and ratios to one forward+backward pass and to Captum's IG at the same settings. Nothing here is
asserted: the numbers depend on the machine, which is printed with them.
"""
from __future__ import annotations

import argparse
import platform

import torch

import explorer
from explorer.timing import count_passes, measure_method, time_call


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
    rows = []

    def fwd_bwd():
        xx = x.detach().requires_grad_(True)
        model(xx)[:, target].sum().backward()

    with count_passes(model) as c:
        fwd_bwd()
    rows.append(("one forward+backward", time_call(fwd_bwd, repeats=args.repeats, device=device).median_s, c.forward, c.backward))

    runs = [("input_x_gradient", {}), ("integrated_gradients", {"steps": 32, "batch_size": bs}),
            ("integrated_gradients", {"steps": 128, "batch_size": bs})]
    extra = list(explorer.METHODS) if args.methods == "all" else (
        [] if args.methods == "core" else args.methods.split(","))
    runs += [(m, {}) for m in extra if m not in ("input_x_gradient", "integrated_gradients")]
    for method, hp in runs:
        baseline = None
        m = measure_method(method, model, x, target, baseline=baseline, repeats=args.repeats, **hp)
        label = explorer.method_label(method, entry.bias_free) + (f" ({hp['steps']} steps)" if "steps" in hp else "")
        rows.append((label, m.timing.median_s, m.forward_per_input, m.backward_per_input))

    captum = {}
    try:
        from captum.attr import IntegratedGradients
        ig = IntegratedGradients(model)
        for steps in (32, 128):
            run = lambda: ig.attribute(x, target=target, n_steps=steps, method="gausslegendre",  # noqa: E731
                                       internal_batch_size=bs)
            with count_passes(model) as c:
                run()
            t = time_call(run, repeats=args.repeats, device=device).median_s
            captum[steps] = t
            rows.append((f"Captum IG ({steps} steps)", t, c.forward, c.backward))
    except ImportError:
        print("captum not installed: skipping its rows (pip install -r requirements-dev.txt)")

    base = rows[0][1]
    print(f"\nmodel: {entry.title} | input {list(x.shape)} | device: {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads) | torch {torch.__version__} | median of {args.repeats}")
    print(f"{'method':34s} {'median ms':>10s} {'fwd':>6s} {'bwd':>6s} {'x fwd+bwd':>10s} {'x Captum':>9s}")
    for label, t, f, b in rows:
        vs = ""
        for steps, ct in captum.items():
            if label.endswith(f"({steps} steps)") and not label.startswith("Captum"):
                vs = f"{t / ct:.2f}"
        print(f"{label:34s} {t * 1e3:10.2f} {f:6.0f} {b:6.0f} {t / base:10.2f} {vs:>9s}")


if __name__ == "__main__":
    main()
