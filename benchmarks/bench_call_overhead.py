"""Where a one-pass method's time over the limit goes: the public call with each guard taken out.

    python -m benchmarks.bench_call_overhead --model digits-cnn
    python -m benchmarks.bench_call_overhead --model resnet18 --size 64 --rounds 10 --inner 2

Times, interleaved round-robin in one process (process CPU clock, one torch thread): the limit
(one forward+backward, ``explorer.methods.core.limit_call``), ``explorer.explain`` of the method as
shipped, and ``explain`` with one guard replaced by a no-op (the finite-input scan, the target
check, the logits watch behind the NaN/Inf-logits warning, the finite-attributions warning), then
with all four out. Prints per variant the median and interquartile range of its time over the
limit's in the same round, and of the ratio. The guards are replaced here only, to measure them;
the library always runs them. Nothing is asserted; the machine is printed with the numbers.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import explorer
import explorer.methods.api as api
from explorer.methods.core import limit_call


class _NoWatch:
    def __enter__(self) -> list:
        return []

    def __exit__(self, *exc) -> bool:
        return False


SHIPPED = {"check_input": api.check_input, "checked_target": api.checked_target,
           "_warn_non_finite": api._warn_non_finite, "watch_outputs": api.watch_outputs}
WITHOUT = {
    "finite-input scan": {"check_input": lambda x, model=None: x},
    "target check": {"checked_target": lambda t, n, device: (t, None)},
    "logits watch": {"watch_outputs": _NoWatch},
    "finite-attributions warning": {"_warn_non_finite": lambda *args: None},
}


def _use(replaced: dict) -> None:
    for name, shipped in SHIPPED.items():
        setattr(api, name, replaced.get(name, shipped))


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return median, q1, q3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="digits-cnn", choices=sorted(explorer.MODELS))
    p.add_argument("--method", default="input_x_gradient")
    p.add_argument("--regular", action="store_true", help="the regular model (default: bias-free)")
    p.add_argument("--size", type=int, default=64, help="input side for 3-channel models")
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--inner", type=int, default=30, help="calls per timing in a round")
    args = p.parse_args()
    torch.set_num_threads(1)
    entry = explorer.load_model(args.model, bias_free=not args.regular,
                                pretrained=args.model == "digits-cnn")
    model = entry.module
    shape = (1, entry.spec.channels) + ((28, 28) if entry.spec.channels == 1
                                        else (args.size, args.size))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = model(x).argmax(1)
    variants = {"limit": None, "explain as shipped": {}}
    variants.update({f"without the {k}": v for k, v in WITHOUT.items()})
    variants["without all four"] = {k: v for d in WITHOUT.values() for k, v in d.items()}
    limit = limit_call(model, x, target)

    def shipped_call():
        return api.explain(args.method, model, x, target)

    times = {k: [] for k in variants}
    try:
        for _ in range(args.rounds):
            for name, replaced in variants.items():
                _use(replaced or {})  # set once per timing, outside it
                call = limit if replaced is None else shipped_call
                call()
                start = time.process_time()
                for _ in range(args.inner):
                    call()
                times[name].append((time.process_time() - start) / args.inner)
    finally:
        _use({})
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, 1 thread, process clock; {entry.title}, input {list(shape)}, "
          f"{args.method}; {args.rounds} interleaved rounds of {args.inner} calls")
    base = times["limit"]
    print(f"{'variant':40s} {'median us':>10s} {'over the limit, us (IQR)':>26s} {'x the limit (IQR)':>22s}")
    for name, ts in times.items():
        over = _quartiles([(a - b) * 1e6 for a, b in zip(ts, base)])
        ratio = _quartiles([a / b for a, b in zip(ts, base)])
        print(f"{name:40s} {statistics.median(ts) * 1e6:10.1f} "
              f"{over[0]:9.1f} ({over[1]:6.1f} to {over[2]:6.1f}) "
              f"{ratio[0]:8.3f} ({ratio[1]:.3f}-{ratio[2]:.3f})")


if __name__ == "__main__":
    main()
