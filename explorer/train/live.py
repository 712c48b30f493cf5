"""A short training run for the app's Priors page: a few hundred steps on a subset of the decoy
digits, plain or with a prior, reporting each step (progress bar, loss curve). No streamlit."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from explorer.inputs.data import add_decoy, load_digits
from explorer.models.architectures import DigitsCNN
from explorer.train.bundled import DECOY_TEST_SEED, DECOY_TRAIN_SEED
from explorer.train.loop import RECIPE, Trainer, accuracy
from explorer.train.priors import Prior


@dataclass
class LiveRun:
    model: nn.Module
    bias_free: bool
    prior: Prior | None
    losses: list[float]
    accuracy: dict[str, float]   # on 500 test digits, clean and with a random decoy patch
    seconds: float

    def save(self) -> Path:
        """The weights in a temporary file, loadable as a checkpoint of decoy-digits-cnn."""
        tag = "plain" if self.prior is None else self.prior.label
        path = Path(tempfile.mkdtemp(prefix="explorer-live-")) / f"live-{tag}.pt"
        torch.save(self.model.state_dict(), path)
        return path


def train_live(prior: Prior | None, *, bias_free: bool, steps: int = 200, subset: int = 1024,
               seed: int = 0, on_step: Callable[[int, int, float], None] | None = None) -> LiveRun:
    """About ``steps`` steps (whole epochs over the first ``subset`` decoy training digits, batch
    64, the bundled recipe's schedule); ``on_step(step, total, loss)`` after each step."""
    d = load_digits()
    x, mask = add_decoy(d["x_train"][:subset], d["y_train"][:subset], seed=DECOY_TRAIN_SEED,
                        random_gray=False, return_mask=True)
    per_epoch = -(-len(x) // RECIPE["batch_size"])
    recipe = dict(RECIPE, epochs=max(1, round(steps / per_epoch)), seed=seed)
    torch.manual_seed(seed)
    trainer = Trainer(DigitsCNN(bias=not bias_free), torch.from_numpy(x),
                      torch.from_numpy(d["y_train"][:subset]), recipe, prior,
                      torch.from_numpy(mask))
    total = trainer.total_steps
    start = time.perf_counter()
    model = trainer.run(None if on_step is None else lambda i, loss: on_step(i, total, loss))
    seconds = time.perf_counter() - start
    xt, yt = d["x_test"][:500], d["y_test"][:500]
    decoyed = add_decoy(xt, yt, seed=DECOY_TEST_SEED, random_gray=True)
    acc = {"test_clean": accuracy(model, xt, yt), "test_decoy": accuracy(model, decoyed, yt)}
    return LiveRun(model, bias_free, prior, trainer.losses, acc, seconds)
