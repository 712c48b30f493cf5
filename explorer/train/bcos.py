"""Training the bundled B-cos digits CNN (``python -m explorer train --model digits-bcos``).

Same digits, split and recipe as the regular digits CNN (cross-entropy, Adam, one-cycle). Its
training time per epoch is measured interleaved with a regular DigitsCNN trained alongside with
the same recipe (epoch by epoch, alternating), so both see the same machine load; the regular
one is only timed, not written.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from explorer.inputs.data import ASSETS, SPLIT_RULE
from explorer.models.architectures import DigitsCNN
from explorer.models.bcos import BcosDigitsCNN
from explorer.models.zoo import sha256
from explorer.train.bundled import datasets, machine
from explorer.train.loop import RECIPE, Trainer, accuracy

NAME = "digits-bcos"
ARCHITECTURE = "BcosDigitsCNN(B=2, max_out=2): [x, 1-x] -> B-cos conv5+maxpool x2, B-cos linear x2"


def train_bcos(recipe: dict | None = None, *, subset: int | None = None,
               log=lambda message: None) -> tuple[torch.nn.Module, dict]:
    """Train the B-cos CNN, timing each epoch against a regular DigitsCNN's, interleaved."""
    recipe = dict(recipe or RECIPE)
    sets = datasets("digits-cnn")
    x, y = (torch.from_numpy(a[:subset]) for a in sets["train"])
    torch.manual_seed(recipe["seed"])
    bcos = Trainer(BcosDigitsCNN(), x, y, recipe)
    torch.manual_seed(recipe["seed"])
    regular = Trainer(DigitsCNN(), x, y, recipe)
    start = time.perf_counter()
    for epoch in range(recipe["epochs"]):
        seconds = bcos.epoch()
        regular.epoch()
        log(f"epoch {epoch + 1}/{recipe['epochs']}: B-cos {seconds:.1f} s "
            f"(regular {regular.epoch_seconds[-1]:.1f} s), loss {bcos.losses[-1]:.4f}")
    seconds = time.perf_counter() - start
    model = bcos.model.cpu().eval()
    acc = {"train": accuracy(model, x, y),  # the digits it was trained on (``subset``)
           **{key: accuracy(model, *sets[key]) for key in ("test_clean", "test_decoy")}}
    b, r = bcos.epoch_seconds, regular.epoch_seconds
    cost = {"epoch_seconds_median": round(statistics.median(b), 3),
            "epoch_seconds_min": round(min(b), 3), "epoch_seconds_max": round(max(b), 3),
            "regular_epoch_seconds_median": round(statistics.median(r), 3),
            "epoch_time_vs_regular": round(statistics.median(b) / statistics.median(r), 2),
            "timing": "each B-cos epoch followed by one of a regular DigitsCNN (same recipe), "
                      "medians over epochs"}
    return model, {"accuracy": acc, "regular_accuracy": accuracy(regular.model.cpu().eval(),
                                                                 *sets["test_clean"]),
                   "training_seconds": round(sum(b), 1),
                   "training_seconds_both": round(seconds, 1), "cost": cost}


def write_bcos(recipe: dict | None = None, *, subset: int | None = None, out: Path = ASSETS,
               command: str | None = None, log=lambda message: None) -> dict:
    """Train and write ``out/digits-bcos.pt`` with its manifest."""
    recipe = dict(recipe or RECIPE)
    model, info = train_bcos(recipe, subset=subset, log=log)
    path = Path(out) / f"{NAME}.pt"
    manifest = {
        "model": NAME, "variant": "b-cos", "architecture": ARCHITECTURE, "file": path.name,
        "sha256": None, "recipe": recipe, "split": SPLIT_RULE,
        "data": "MNIST digits (the digits CNN's); test_decoy adds a random gray patch",
        "accuracy": info["accuracy"],
        "regular_test_clean_this_run": info["regular_accuracy"],
        "training_seconds": info["training_seconds"],
        "training_seconds_both_interleaved": info["training_seconds_both"],
        "cost": info["cost"], "machine": machine(),
        "command": command or f"python -m explorer train --model {NAME}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    manifest["sha256"] = sha256(path)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
