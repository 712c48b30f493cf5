"""The analysis pages' estimates against their real time: each page's work (explorer.methods.budget's
*_page_work) priced with the measured pass time, then the same library calls the page makes,
timed once each. Run: python -m benchmarks.bench_page_budget [--model digits-cnn]."""
from __future__ import annotations

import argparse
import platform
import time

import torch

import explorer
from explorer.methods import budget
from explorer.analyses.baseline_compare import DEFAULT_NAMES, compare_baselines, named_baselines
from explorer.inputs.data import background_set
from explorer.analyses.evaluate import evaluate, log_grid
from explorer.methods.path import RULES
from explorer.analyses.metrics import feature_index
from explorer.analyses.quadrature_convergence import DEFAULT_STEPS


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits-cnn")
    args = ap.parse_args(argv)
    entry = explorer.load_model(args.model, bias_free=True, pretrained=args.model.startswith(
        ("digits", "decoy")))
    m = entry.module
    x = background_set(entry)[:1]
    target = int(m(x).argmax())
    pt = explorer.pass_time(m, x.shape[1:])
    rows = []
    steps = 64
    refs = background_set(entry)[:8]
    est = budget.total_seconds(budget.path_page_work(["bias-free"], steps, {}, x.shape, pt,
                                                     baselines=len(DEFAULT_NAMES),
                                                     references=refs.shape[0]))

    def path():
        explorer.path_trace(m, x, target, baseline=torch.zeros_like(x), steps=steps)
        compare_baselines(m, x, target, named_baselines(x, input_space=entry.input_space,
                                                        references=refs))
    rows.append(("Path (64 steps)", est, _time(path)))
    st = tuple(s for s in DEFAULT_STEPS if s <= 512)
    est = budget.total_seconds(budget.convergence_page_work(["bias-free"], st, RULES, pt))
    rows.append(("Convergence (5 rules to 512)", est, _time(lambda: explorer.convergence(
        m, x, target, baseline=torch.zeros_like(x), steps=st, rules=RULES))))
    methods = {"input_x_gradient": {}, "integrated_gradients": {}, "saliency": {}}
    est = budget.total_seconds(budget.axioms_page_work(methods, "bias-free", ["bias-free"],
                                                       x.shape, pt))
    rows.append(("Axioms (3 methods, axiom table only)", est, _time(lambda: [
        explorer.check_axioms(k, m, x, target, baseline=torch.zeros_like(x)) for k in methods])))
    features = feature_index(x.shape[1:], 1 if x.shape[-1] <= 64 else 16)[1]
    ns = log_grid(features)
    est = budget.total_seconds(budget.metrics_page_work(methods, ["bias-free"], x.shape, pt,
                                                        ns=len(ns), subsets=50, steps=25))
    rows.append(("Metrics (3 methods)", est, _time(lambda: evaluate(
        m, x, target, methods=methods, bias_free=True, baseline=torch.zeros_like(x), ns=ns,
        subsets=50, steps=25, block=1 if x.shape[-1] <= 64 else 16))))
    print(f"{args.model} on {platform.machine()} CPU, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; pass time {1e3 * (pt.forward_s + pt.backward_s):.3g} ms "
          f"per input + {1e3 * pt.call_s:.3g} ms per call")
    print("| page work | estimate (s) | measured (s) | ratio |")
    print("|---|---|---|---|")
    for name, e, t in rows:
        print(f"| {name} | {e:.3g} | {t:.3g} | {e / t:.2g} |")


if __name__ == "__main__":
    main()
