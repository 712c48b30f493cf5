"""``exact-cache``: walk exact IG on the bundled digits models' default views, store in assets/exact-ig."""
from __future__ import annotations

import argparse

HELP = "precompute exact IG for the bundled digits models' sample digits (assets/exact-ig)"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--digits", type=int, default=1,
                        help="how many of the bundled test digits, first first (default 1: the "
                             "app's default input; the regular model takes ~50 s each)")
    parser.add_argument("--baselines", nargs="+", default=["zero"],
                        help="baselines (explorer.inputs.baselines names without a width; default zero)")
    parser.add_argument("--out", default=None, help="directory (default assets/exact-ig)")


def _png(array_u8) -> bytes:
    """The bytes the app's example picker makes (explorer/ui/context.py: PNG of the digit)."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array_u8).save(buf, format="PNG")
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    import explorer
    from explorer.methods import exact_cache
    from explorer.inputs.baselines import make_baseline
    from explorer.inputs.data import sample_digits

    out = Path(args.out) if args.out else exact_cache.CACHE_DIR
    d = sample_digits()
    models = {bias_free: explorer.load_model("digits-cnn", bias_free=bias_free, device="cpu")
              for bias_free in (False, True)}
    for i in range(min(args.digits, len(d["labels"]))):
        regular = models[False]
        x = regular.preprocess(_png(d["clean"][i, 0]))[None]
        with torch.no_grad():  # the app explains the regular model's predicted class
            target = int(regular.module(x).argmax(1)[0])
        for b in args.baselines:
            base = make_baseline(b, x, input_space=regular.input_space)
            for bias_free, entry in models.items():
                variant = "bias-free" if bias_free else "regular"
                name = f"digits-cnn-{variant}-test{int(d['test_index'][i])}-{b}"
                meta = {"model": "digits-cnn", "variant": variant,
                        "model_file_sha256": (entry.manifest or {}).get("sha256"),
                        "input": f"assets/samples/digits.npz clean #{i} (test "
                                 f"#{int(d['test_index'][i])}, label {int(d['labels'][i])}), "
                                 "as the app's PNG example", "baseline": b}
                e = exact_cache.write_entry(out, name, entry.module, x[0], target, base[0], meta)
                print(f"{name}: {e['regions']:,} regions, {e['seconds']} s, completeness "
                      f"error {e['completeness_error']:.2e}")
    return 0
