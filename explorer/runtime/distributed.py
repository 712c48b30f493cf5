"""torch.distributed set-up shared by training and batch work, for runs under ``torchrun``.

``torchrun --nproc_per_node=N -m explorer <command> ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and
the rendezvous variables; a plain ``python -m explorer ...`` sets none, and everything here then
degrades to a single process (rank 0 of 1) without initialising a process group.
Backend: nccl when each rank has its own CUDA device, gloo otherwise (CPU, or a test on loopback).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(local_rank: int, requested: str | None = None) -> torch.device:
    """``requested`` ("cpu", "cuda", "cuda:1", "mps") or the best available; under torchrun each
    rank takes CUDA device ``local_rank``."""
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    from explorer.runtime.tensors import default_device
    return default_device()


@contextlib.contextmanager
def world(device: str | None = None) -> Iterator[World]:
    """The process group for the duration of a command; destroyed on exit, also on error."""
    if not launched_by_torchrun():
        yield World(0, 1, 0, pick_device(0, device), None)
        return
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = pick_device(local_rank, device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, rank=rank, world_size=size)
    try:
        yield World(rank, size, local_rank, dev, backend)
    finally:
        dist.destroy_process_group()


def shard(items: Sequence[T], w: World) -> list[T]:
    """This rank's share of ``items``: every ``size``-th item from ``rank`` (deterministic)."""
    return list(items[w.rank::w.size])


def barrier(w: World) -> None:
    if w.distributed:
        dist.barrier()


def gather_objects(obj: object, w: World) -> list[object] | None:
    """Every rank's ``obj`` on rank 0 (a list by rank); None on the other ranks."""
    if not w.distributed:
        return [obj]
    out = [None] * w.size if w.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out
