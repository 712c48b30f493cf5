"""Training the bundled models reproducibly: ``python -m explorer train``.

Each variant is trained from scratch with the same recipe (the bias-free one without biases from
the start, as the X-DNN paper does) and written to assets/ with a manifest: architecture,
variant, seed, split rule, accuracies, training time, sha256 and the command that made it.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.inputs.data import ASSETS, PATCH, SAMPLES, SPLIT_RULE, add_decoy, load_digits
from explorer.runtime.distributed import World
from explorer.models.architectures import DigitsCNN
from explorer.models.zoo import sha256
from explorer.train.loop import RECIPE, SINGLE, Trainer, accuracy

DECOY_TRAIN_SEED, DECOY_TEST_SEED = 1, 2
BUNDLED = ("digits-cnn", "decoy-digits-cnn")
# The decoy model trains 6 epochs: enough to learn the shortcut (68-73% on decoyed test digits at
# 3-15 epochs in our tuning), and the prior-trained models of the experiment share its recipe.
DECOY_RECIPE = dict(RECIPE, epochs=6)
RECIPES = {"digits-cnn": RECIPE, "decoy-digits-cnn": DECOY_RECIPE}


def datasets(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training set of the model plus every evaluation set recorded in its manifest."""
    d = load_digits()
    sets = {"test_clean": (d["x_test"], d["y_test"]),
            "test_decoy": (add_decoy(d["x_test"], d["y_test"], seed=DECOY_TEST_SEED,
                                     random_gray=True), d["y_test"])}
    if name.startswith("decoy-digits-cnn"):
        sets["train"] = (add_decoy(d["x_train"], d["y_train"], seed=DECOY_TRAIN_SEED,
                                   random_gray=False), d["y_train"])
    else:
        sets["train"] = (d["x_train"], d["y_train"])
    return sets


def train_digits(name: str, bias_free: bool, recipe: dict | None = None, *,
                 world: World = SINGLE, subset: int | None = None) -> tuple[nn.Module, dict]:
    """Train one bundled model (the first ``subset`` training digits when given)."""
    recipe = recipe or RECIPES[name]
    torch.manual_seed(recipe["seed"])
    sets = datasets(name)
    x, y = (torch.from_numpy(a[:subset]) for a in sets["train"])
    trainer = Trainer(DigitsCNN(bias=not bias_free), x, y, recipe, world=world)
    start = time.perf_counter()
    model = trainer.run().cpu()
    seconds = time.perf_counter() - start
    metrics = {key: accuracy(model, *sets[key]) for key in ("train", "test_clean", "test_decoy")}
    return model, {"accuracy": metrics, "training_seconds": round(seconds, 1)}


def machine() -> str:
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def write_bundled(name: str, bias_free: bool, recipe: dict | None = None, *,
                  world: World = SINGLE, subset: int | None = None, out: Path = ASSETS,
                  command: str | None = None) -> dict:
    """Train and (on rank 0) write ``out/<name>[-x].pt`` with its manifest."""
    recipe = recipe or RECIPES[name]
    model, info = train_digits(name, bias_free, recipe, world=world, subset=subset)
    stem = name + ("-x" if bias_free else "")
    path = Path(out) / f"{stem}.pt"
    manifest = {
        "model": name, "variant": "bias-free" if bias_free else "regular",
        "architecture": "DigitsCNN" + ("(bias=False)" if bias_free else "(bias=True)"),
        "file": path.name, "sha256": None, "recipe": recipe, "split": SPLIT_RULE,
        "data": ("Decoy MNIST, %dx%d patch: train patch gray = 255 - 25*label (seed %d); test_decoy "
                 "patch gray random (seed %d)" % (PATCH, PATCH, DECOY_TRAIN_SEED, DECOY_TEST_SEED))
        if name == "decoy-digits-cnn" else "MNIST digits; test_decoy adds a random gray %dx%d "
                                           "patch (seed %d)" % (PATCH, PATCH, DECOY_TEST_SEED),
        **info,
        "machine": machine() + (f", {world.size} processes ({world.backend})"
                                if world.distributed else ""),
        "command": command or f"python -m explorer train --model {name}",
    }
    if world.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
        manifest["sha256"] = sha256(path)
        path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_samples(photos: bool = True) -> None:
    """assets/samples: 20 test digits (2 per class) clean and decoyed, a background set of 32
    training digits for expected gradients, and (``photos``) four photos from scikit-image."""
    d = load_digits()
    picks = np.concatenate([np.flatnonzero(d["y_test"] == c)[:2] for c in range(10)])
    clean = d["x_test"][picks]
    decoy = add_decoy(clean, d["y_test"][picks], seed=DECOY_TEST_SEED, random_gray=True)
    to_u8 = lambda a: (a * 255).round().astype(np.uint8)  # noqa: E731
    SAMPLES.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLES / "digits.npz", clean=to_u8(clean), decoy=to_u8(decoy),
                        labels=d["y_test"][picks], test_index=picks,
                        background=to_u8(d["x_train"][:32]))
    if not photos:
        return
    from PIL import Image
    from skimage import data as skdata
    for key in ("chelsea", "coffee", "astronaut", "rocket"):
        img = Image.fromarray(getattr(skdata, key)())
        side = min(img.size)
        left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((256, 256), Image.Resampling.LANCZOS)
        img.convert("RGB").save(SAMPLES / f"{key}.jpg", quality=90)
