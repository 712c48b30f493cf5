"""``evaluate``: Sensitivity-n and insertion/deletion of several methods over many inputs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "score methods by Sensitivity-n and insertion/deletion over many test digits or images"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    from explorer.analyses.evaluate import DEFAULT_METHODS
    from explorer.analyses.metrics import FILLS, SCORES
    parser.add_argument("--model", default="digits-cnn", help="a model spec (zoo name, file.py:function, timm/<name>, file.onnx; default: digits-cnn)")
    parser.add_argument("--bias-free", action="store_true", help="use the bias-free variant")
    parser.add_argument("--checkpoint", help="weights to load: .safetensors or a state dict")
    parser.add_argument("--methods", nargs="+", default=[",".join(DEFAULT_METHODS)],
                        help="method names, comma- or space-separated (default: "
                             f"{','.join(DEFAULT_METHODS)}; occlusion with 1x1 windows here)")
    parser.add_argument("--param", "--set", dest="param", action="append", default=[],
                        metavar="METHOD.NAME=VALUE",
                        help="a hyper-parameter, e.g. integrated_gradients.steps=64 (repeatable)")
    parser.add_argument("--inputs", type=int, default=200, help="number of test digits or images")
    parser.add_argument("--images", "--input", dest="images", type=Path,
                        help="a folder of images instead of the test digits")
    parser.add_argument("--target", choices=["predicted", "label"], default="predicted",
                        help="explain the predicted class (default) or the true label (digits)")
    parser.add_argument("--baseline", default="zero",
                        help="named baseline the methods use and Sensitivity-n removes to")
    parser.add_argument("--ns", type=int, nargs="+", help="subset sizes (default: 1, 2, 4, ... "
                        "up to 90%% of the features)")
    parser.add_argument("--subsets", type=int, default=100, help="random subsets per n and input")
    parser.add_argument("--block", type=int, default=1, help="feature = block x block patch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50, help="insertion/deletion chunks")
    parser.add_argument("--fill", choices=FILLS, default="blur")
    parser.add_argument("--score", choices=SCORES, default="logit")
    parser.add_argument("--batch-size", type=int, help="perturbed inputs per model call "
                        "(default: 256 for small inputs, 32 for photos)")
    parser.add_argument("--precision", default="float32",
                        help="number format: float32 (default, TF32 off), tf32, bf16 (autocast), "
                             "float64; non-default is labelled in the table and JSON")
    parser.add_argument("--routes", action="store_true",
                        help="compare the exact one-pass routes on the same test digits: B-cos "
                             "contribution on digits-bcos, X-Gradient on the bias-free digits "
                             "CNN, IG on the regular one (--model/--methods are ignored)")
    parser.add_argument("--out", type=Path, default=Path("evaluation"),
                        help="folder for evaluation.json and the plots")


def parse_settings(items: list[str], methods: list[str]) -> dict[str, dict]:
    """``["m.p=v", ...]`` -> {method: {param: value}} with values typed by the registry."""
    from explorer.errors import InputError
    from explorer.analyses.evaluate import EVALUATION_PARAMS
    from explorer.methods import METHODS
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}"
                         if unknown else "--methods: name at least one method")
    chosen = {m: dict(EVALUATION_PARAMS.get(m, {})) for m in methods}
    for item in items:
        key, eq, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not (eq and dot) or method not in chosen:
            raise InputError(f"--param {item!r}: expected METHOD.NAME=VALUE for one of {methods}")
        kinds = {p.name: p.kind for p in METHODS[method].params}
        if name not in kinds:
            raise InputError(f"--param {item!r}: {method} takes {sorted(kinds) or 'no parameters'}")
        kind = kinds[name]
        try:
            chosen[method][name] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise InputError(f"--param {item!r}: {value!r} is not a {kind.__name__}") from None
    return chosen


def load_inputs(args, entry):
    """The batch, its targets-to-be (labels or None), and a description of where it came from."""
    import torch
    from explorer.errors import InputError
    if args.inputs < 1:
        raise InputError("--inputs must be at least 1")
    if args.images is not None:
        from PIL import Image
        if not args.images.is_dir():
            raise InputError(f"--images {args.images} is not a folder")
        files = sorted(p for p in args.images.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"))[:args.inputs]
        if not files:
            raise InputError(f"{args.images} holds no .png/.jpg/.jpeg/.bmp/.webp images")
        x = torch.stack([entry.preprocess(Image.open(p)) for p in files])
        return x, None, f"{len(files)} images from {args.images}"
    if entry.spec.channels != 1:
        raise InputError(f"{entry.name} takes photos: give a folder with --images")
    from explorer.inputs.data import load_digits
    d = load_digits()
    n = min(args.inputs, len(d["y_test"]))
    return (torch.from_numpy(d["x_test"][:n]), torch.from_numpy(d["y_test"][:n]),
            f"the first {n} test digits")


def table(evaluation) -> str:
    """Mean ± sd over the inputs: Sensitivity-n per n, then both AUCs; and the best per n."""
    rows = evaluation.summary_rows()
    ns = evaluation.ns
    width = max(len(r["method"]) for r in rows) + 2
    head = "method".ljust(width) + "".join(f"{'n=' + str(n):>13}" for n in ns)
    head += f"{'insertion AUC':>18}{'deletion AUC':>18}"
    lines = ["Sensitivity-n: Pearson r per input, mean ± sd over inputs", head]
    for r in rows:
        cells = "".join(f"{r[f'r(n={n})']:>7.3f}±{r[f'r(n={n}) sd']:<5.2f}" for n in ns)
        aucs = "".join(f"{r[k]:>11.3f}±{r[k + ' sd']:<6.2f}" for k in ("insertion AUC", "deletion AUC"))
        lines.append(r["method"].ljust(width) + cells + aucs)
    best = evaluation.best_at()
    lines.append("best at n: " + "; ".join(f"{n}: {m}" for n, m in best.items()))
    return "\n".join(lines)


def write_plots(evaluation, out: Path) -> list[Path]:
    """The two figures as HTML (interactive) and PNG (for slides; kaleido with the system's
    chromium). Without a browser to render with, HTML only, and a line on stderr says so."""
    from explorer.presentation import figures, viz
    s = evaluation.scores
    plots = {
        "sensitivity_n": viz.sensitivity_n_figure(
            evaluation.ns, {m.label: m.sensitivity.correlation.tolist() for m in s},
            {m.label: m.sensitivity.spread.tolist() for m in s}),
        "insertion_deletion": viz.insertion_deletion_figure(
            s[0].insdel.fractions.tolist(), {m.label: m.insdel.insertion.mean(0).tolist() for m in s},
            {m.label: m.insdel.deletion.mean(0).tolist() for m in s}, evaluation.settings["score"]),
    }
    written = []
    for name, fig in plots.items():
        html = out / f"{name}.html"
        fig.write_html(str(html), include_plotlyjs=True)
        written.append(html)
        fig.update_layout(width=900, height=420)
        try:
            written.append(figures.write(fig, out / f"{name}.png", evaluation.settings))
        except Exception as err:  # no chromium for kaleido: the HTML page stands alone
            print(f"{name}: no PNG ({type(err).__name__}: {err}); HTML only", file=sys.stderr)
    return written


def progress_printer(stream=None):
    """A progress callback printing whole percents (every 5% when not on a terminal)."""
    stream = stream or sys.stderr
    last = {"shown": -1}

    def show(fraction: float, text: str) -> None:
        percent = int(100 * fraction)
        if percent != last["shown"]:
            last["shown"] = percent
            end = "\r" if stream.isatty() else "\n"
            if stream.isatty() or percent % 5 == 0:
                print(f"[{percent:3d}%] {text}", end=end if percent < 100 else "\n", file=stream,
                      flush=True)
    return show


def run_routes(args: argparse.Namespace) -> int:
    """``--routes``: each exact route's method on its own model, the same digits, one JSON."""
    import time

    from explorer.inputs.data import load_digits
    from explorer.errors import InputError
    from explorer.analyses.two_routes import compare_routes
    try:
        if args.images is not None or args.inputs < 1:
            raise InputError("--routes runs on the test digits: drop --images, --inputs >= 1")
        d = load_digits()
        n = min(args.inputs, len(d["y_test"]))
        import torch
        x, labels = torch.from_numpy(d["x_test"][:n]), torch.from_numpy(d["y_test"][:n])
        start = time.perf_counter()
        result = compare_routes(x, labels, target=args.target, ns=args.ns,
                                subsets=args.subsets, steps=args.steps, fill=args.fill,
                                score=args.score, seed=args.seed, progress=progress_printer())
        seconds = time.perf_counter() - start
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["settings"].update({"source": f"the first {n} test digits", "seconds": round(seconds, 1),
                               "command": "python -m explorer " + " ".join(sys.argv[1:])})
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "routes.json"
    path.write_text(json.dumps(result, indent=1))
    keys = ("homogeneity error", "max rel. completeness error", "forward passes",
            "test accuracy", "Sensitivity-n (mean r over n)", "insertion AUC", "deletion AUC")
    print(f"{n} test digits, target={args.target}, subsets={args.subsets}, fill={args.fill}, "
          f"score={args.score} ({seconds:.0f} s)")
    for row in result["rows"]:
        print(f"{row['route']}: " + ", ".join(f"{k} {row[k]:.4g}" for k in keys))
    print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    import time

    if args.routes:
        return run_routes(args)

    import torch

    from explorer import load_model, make_baseline
    from explorer.errors import InputError
    from explorer.analyses.evaluate import evaluate
    try:
        names = [m for item in args.methods for m in item.split(",") if m]
        methods = parse_settings(args.param, names)
        entry = load_model(args.model, bias_free=args.bias_free, checkpoint=args.checkpoint)
        x, labels, source = load_inputs(args, entry)
        x = x.to(entry.device)
        with torch.no_grad():
            predicted = entry.module(x).argmax(1)
        if args.target == "label" and labels is None:
            raise InputError("--target label needs the test digits (images have no labels)")
        target = labels.to(x.device) if args.target == "label" else predicted
        baseline = make_baseline(args.baseline, x, input_space=entry.input_space)
        start = time.perf_counter()
        result = evaluate(entry.module, x, target, methods=methods, bias_free=args.bias_free,
                          baseline=baseline, ns=args.ns, subsets=args.subsets, block=args.block,
                          seed=args.seed, steps=args.steps, fill=args.fill, score=args.score,
                          input_space=entry.input_space, batch_size=args.batch_size,
                          progress=progress_printer(), precision=args.precision)
        seconds = time.perf_counter() - start
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result.settings.update({"model": entry.title, "source": source, "target": args.target,
                            "baseline": args.baseline, "seconds": round(seconds, 1),
                            "device": str(x.device), "precision": args.precision})
    if labels is not None:
        result.settings["accuracy"] = float((predicted.cpu() == labels).double().mean())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(result.to_json(), indent=1))
    print(f"{entry.title}, {source}, target={args.target}, baseline={args.baseline}, "
          f"precision={args.precision}{'' if args.precision == 'float32' else ' (non-default)'}, "
          f"subsets={args.subsets}, fill={args.fill}, score={args.score} ({seconds:.0f} s)")
    print(table(result))
    for path in [args.out / "evaluation.json", *write_plots(result, args.out)]:
        print(f"wrote {path}")
    return 0
