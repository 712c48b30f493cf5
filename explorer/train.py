"""Training the bundled models reproducibly: ``python -m explorer train``.

Each variant is trained from scratch with the same recipe (the bias-free one without biases from
the start, as the X-DNN paper does) and written to assets/ with a manifest: architecture,
variant, seed, split rule, accuracies, training time, sha256 and the command that made it.
"""
from __future__ import annotations

import json
import platform
import time

import numpy as np
import torch
from torch import nn

from explorer.data import ASSETS, SAMPLES, SPLIT_RULE, add_decoy, load_digits
from explorer.models.architectures import DigitsCNN
from explorer.models.zoo import sha256

RECIPE = {"optimizer": "Adam", "schedule": "OneCycleLR", "max_lr": 2e-3, "batch_size": 64,
          "epochs": 15, "seed": 0}
DECOY_TRAIN_SEED, DECOY_TEST_SEED = 1, 2
BUNDLED = ("digits-cnn", "decoy-digits-cnn")


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a model in eval mode (the caller's mode is left alone)."""
    pred = torch.cat([model(torch.from_numpy(x[i:i + 500])).argmax(1)
                      for i in range(0, len(x), 500)])
    return float((pred.numpy() == y).mean())


def datasets(name: str) -> dict[str, np.ndarray]:
    """Training set of the model plus every evaluation set recorded in its manifest."""
    d = load_digits()
    sets = {"test_clean": (d["x_test"], d["y_test"]),
            "test_decoy": (add_decoy(d["x_test"], d["y_test"], seed=DECOY_TEST_SEED,
                                     random_gray=True), d["y_test"])}
    if name == "decoy-digits-cnn":
        sets["train"] = (add_decoy(d["x_train"], d["y_train"], seed=DECOY_TRAIN_SEED,
                                   random_gray=False), d["y_train"])
    else:
        sets["train"] = (d["x_train"], d["y_train"])
    return sets


def train_digits(name: str, bias_free: bool, recipe: dict = RECIPE) -> tuple[nn.Module, dict]:
    torch.manual_seed(recipe["seed"])
    sets = datasets(name)
    x, y = (torch.from_numpy(a) for a in sets["train"])
    model = DigitsCNN(bias=not bias_free)
    optim = torch.optim.Adam(model.parameters(), lr=recipe["max_lr"])
    steps = recipe["epochs"] * -(-len(x) // recipe["batch_size"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optim, recipe["max_lr"], total_steps=steps)
    gen = torch.Generator().manual_seed(recipe["seed"])
    start = time.perf_counter()
    for _ in range(recipe["epochs"]):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(recipe["batch_size"]):
            optim.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optim.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    metrics = {key: accuracy(model, *sets[key]) for key in ("train", "test_clean", "test_decoy")}
    return model, {"accuracy": metrics, "training_seconds": round(seconds, 1)}


def write_bundled(name: str, bias_free: bool) -> dict:
    model, info = train_digits(name, bias_free)
    stem = name + ("-x" if bias_free else "")
    path = ASSETS / f"{stem}.pt"
    ASSETS.mkdir(exist_ok=True)
    torch.save(model.state_dict(), path)
    manifest = {
        "model": name, "variant": "bias-free" if bias_free else "regular",
        "architecture": "DigitsCNN" + ("(bias=False)" if bias_free else "(bias=True)"),
        "file": path.name, "sha256": sha256(path), "recipe": RECIPE, "split": SPLIT_RULE,
        "data": ("Decoy MNIST: train patch gray = 255 - 25*label (seed %d); test_decoy patch gray "
                 "random (seed %d)" % (DECOY_TRAIN_SEED, DECOY_TEST_SEED))
        if name == "decoy-digits-cnn" else "MNIST digits; test_decoy adds a random gray patch "
                                           "(seed %d)" % DECOY_TEST_SEED,
        **info,
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "command": f"python -m explorer train --model {name}",
    }
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_samples() -> None:
    """assets/samples: 20 test digits (2 per class) clean and decoyed, a background set of 32
    training digits for expected gradients, and four photos from scikit-image."""
    d = load_digits()
    picks = np.concatenate([np.flatnonzero(d["y_test"] == c)[:2] for c in range(10)])
    clean = d["x_test"][picks]
    decoy = add_decoy(clean, d["y_test"][picks], seed=DECOY_TEST_SEED, random_gray=True)
    to_u8 = lambda a: (a * 255).round().astype(np.uint8)  # noqa: E731
    SAMPLES.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SAMPLES / "digits.npz", clean=to_u8(clean), decoy=to_u8(decoy),
                        labels=d["y_test"][picks], test_index=picks,
                        background=to_u8(d["x_train"][:32]))
    from PIL import Image
    from skimage import data as photos
    for key in ("chelsea", "coffee", "astronaut", "rocket"):
        img = Image.fromarray(getattr(photos, key)())
        side = min(img.size)
        left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((256, 256), Image.Resampling.LANCZOS)
        img.convert("RGB").save(SAMPLES / f"{key}.jpg", quality=90)
