"""One training loop for every model the project trains: plain or with an attribution prior,
one process or several under ``torchrun`` (DistributedDataParallel, a DistributedSampler shard
of each global batch per rank).

Batch order: each epoch one permutation of the training set from a seeded generator (the same
on every rank); global batch j is positions [j*B, (j+1)*B) of it, and rank r takes every
``world.size``-th of them (DistributedSampler without its own shuffle). With equal shards, DDP's
averaged gradient is the gradient of the global batch's mean loss, so N processes take the same
steps as one process with the same global batch (to float rounding). One process is exactly
the loop the bundled models were first trained with.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from explorer.runtime.distributed import World
from explorer.errors import InputError
from explorer.runtime.timing import count_passes
from explorer.train.priors import Prior, prior_loss

RECIPE = {"optimizer": "Adam", "schedule": "OneCycleLR", "max_lr": 2e-3, "batch_size": 64,
          "epochs": 15, "seed": 0}
SINGLE = World(0, 1, 0, torch.device("cpu"), None)


@dataclass
class Trainer:
    """A model being trained; ``epoch()`` runs one epoch, so runs can be interleaved."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    recipe: dict = field(default_factory=lambda: dict(RECIPE))
    prior: Prior | None = None
    mask: torch.Tensor | None = None
    world: World = SINGLE
    losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    forward_per_sample: float | None = None

    def __post_init__(self):
        batch, size = self.recipe["batch_size"], self.world.size
        if batch % size:
            raise InputError(f"batch size {batch} is not divisible by {size} processes")
        if self.prior is not None and self.prior.kind == "rrr" and self.mask is None:
            raise InputError("the rrr prior needs a mask for the training set")
        self.model.to(self.world.device)
        self.net = self.model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.world.device] if self.world.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=self.recipe["max_lr"])
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optim, self.recipe["max_lr"], total_steps=self.total_steps)
        self.order = torch.Generator().manual_seed(self.recipe["seed"])
        # The prior's own draws (EG references) have their own stream: the batch order stays
        # that of plain training.
        self.draws = torch.Generator().manual_seed(self.recipe["seed"] + 1)

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.x) // self.recipe["batch_size"])

    @property
    def total_steps(self) -> int:
        return self.recipe["epochs"] * self.steps_per_epoch

    def batches(self) -> list[torch.Tensor]:
        perm = torch.randperm(len(self.x), generator=self.order)
        shard = DistributedSampler(range(len(perm)), num_replicas=self.world.size,
                                   rank=self.world.rank, shuffle=False)
        return perm[list(shard)].split(self.recipe["batch_size"] // self.world.size)

    def step(self, idx: torch.Tensor) -> float:
        dev = self.world.device
        x, y = self.x[idx].to(dev), self.y[idx].to(dev)
        self.optim.zero_grad()
        if self.prior is None:
            loss = nn.functional.cross_entropy(self.net(x), y)
        else:
            mask = None if self.mask is None else self.mask[idx].to(dev)
            loss, _ = prior_loss(self.prior, self.net, x, y, mask, self.draws)
        loss.backward()
        self.optim.step()
        self.schedule.step()
        return float(loss.detach())

    def epoch(self, on_step: Callable[[int, float], None] | None = None) -> float:
        """One epoch; returns its wall time in seconds. ``on_step(step, loss)`` after each step."""
        self.model.train()
        start = time.perf_counter()
        for idx in self.batches():
            if self.forward_per_sample is None:  # counted once: the passes do not change
                with count_passes(self.model) as counts:
                    self.losses.append(self.step(idx))
                self.forward_per_sample = counts.forward / len(idx)
            else:
                self.losses.append(self.step(idx))
            if on_step is not None:
                on_step(len(self.losses), self.losses[-1])
        seconds = time.perf_counter() - start
        self.epoch_seconds.append(seconds)
        self.model.eval()
        return seconds

    def run(self, on_step: Callable[[int, float], None] | None = None) -> nn.Module:
        for _ in range(self.recipe["epochs"] - len(self.epoch_seconds)):
            self.epoch(on_step)
        return self.model

    def cost(self) -> dict:
        """Time per epoch (median, min, max over epochs) and passes per step."""
        t = self.epoch_seconds
        return {"epoch_seconds_median": round(statistics.median(t), 3),
                "epoch_seconds_min": round(min(t), 3), "epoch_seconds_max": round(max(t), 3),
                "forward_passes_per_sample": self.forward_per_sample,
                "input_gradient_passes_per_sample": 0 if self.prior is None else self.prior.passes}


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    """Top-1 accuracy (numpy or torch inputs) of a model in eval mode, on its device."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    dev = next(model.parameters()).device
    pred = torch.cat([model(x[i:i + 500].to(dev)).argmax(1).cpu() for i in range(0, len(x), 500)])
    return float((pred == y).double().mean())
