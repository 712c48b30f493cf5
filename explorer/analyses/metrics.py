"""How faithful is a map? Sensitivity-n (Ancona et al. 2018) and insertion/deletion (RISE).

A *feature* is one element of a flat input [N, D], or for images [N, C, H, W] a block x block
patch with all its channels (the last patch in a row or column is clipped at the edge). Both
metrics take a tensor of attributions shaped like x, or a dict name -> tensor; with a dict the
result is a dict, and Sensitivity-n sends its perturbed inputs through the model once for all
methods (the subsets do not depend on the map). Scores are taken on the target logit unless
said otherwise. Nothing here imports streamlit.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from explorer.inputs.baselines import make_baseline
from explorer.errors import InputError
from explorer.inputs.input_space import PIXELS, InputSpace
from explorer.methods.core import (check_input, check_target, chunked_pairs, run_model,
                                   select_target)
from explorer.runtime.tensors import check_baseline
from explorer.runtime.precision import under_precision

Progress = Callable[[int, int], None]  # progress(done, total): model evaluations so far
FILLS = ("blur", "black", "baseline")
SCORES = ("logit", "probability")
BATCH_SIZE = 256


class MetricWarning(RuntimeWarning):
    """A metric is undefined for some inputs (reported as NaN, never as 0)."""


@dataclass
class SensitivityN:
    """Per input and n: Pearson r between sum_{i in S} R_i and F(x) - F(x with S removed)."""

    ns: list[int]
    per_sample: np.ndarray   # [N, len(ns)], NaN where undefined
    correlation: np.ndarray  # [len(ns)] mean over the inputs where it is defined
    spread: np.ndarray       # [len(ns)] standard deviation over those inputs
    undefined: np.ndarray    # [len(ns)] how many inputs had an undefined correlation
    subsets: int
    block: int
    features: int
    seed: int


@dataclass
class InsertionDeletion:
    """Score curves as the top-ranked features are inserted into the fill or deleted from x."""

    fractions: np.ndarray      # [steps + 1] share of the features changed, 0 .. 1
    insertion: np.ndarray      # [N, steps + 1]
    deletion: np.ndarray       # [N, steps + 1]
    insertion_auc: np.ndarray  # [N] trapezoid area over fractions (higher is better)
    deletion_auc: np.ndarray   # [N] (lower is better)
    fill: str
    score: str


def feature_index(sample_shape: Sequence[int], block: int) -> tuple[torch.Tensor, int]:
    """For one sample's shape: the feature id of every element (LongTensor), and the count."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise InputError(f"block must be a whole number >= 1, got {block!r}")
    shape = tuple(sample_shape)
    if len(shape) == 1:
        if block != 1:
            raise InputError("block > 1 needs images [N, C, H, W]; a flat input's features are "
                             "its elements (use block=1)")
        return torch.arange(shape[0]), shape[0]
    spatial = shape[1:]
    if block > min(spatial):
        raise InputError(f"block {block} is larger than the image ({'x'.join(map(str, spatial))})")
    cells = [math.ceil(s / block) for s in spatial]
    ids = torch.zeros(spatial, dtype=torch.long)
    for d, s in enumerate(spatial):
        view = [1] * len(spatial)
        view[d] = s
        ids = ids * cells[d] + (torch.arange(s) // block).view(view)
    return ids.unsqueeze(0).expand(shape).contiguous(), math.prod(cells)


def feature_sums(attributions: torch.Tensor, index: torch.Tensor, features: int) -> torch.Tensor:
    """[N, ...] attributions -> [N, features] sums per feature (float64, CPU)."""
    a = attributions.detach().to("cpu", torch.float64).reshape(attributions.shape[0], -1)
    out = torch.zeros(a.shape[0], features, dtype=torch.float64)
    return out.index_add_(1, index.reshape(-1), a)


def _subset_masks(seed: int, n: int, inputs: int, subsets: int, features: int) -> torch.Tensor:
    """[inputs, subsets, features] bool: for input i, ``subsets`` uniform draws of n features.

    Input i's draws depend on (seed, n, i) alone, so they do not change with the batch size,
    the other ns, or the methods compared.
    """
    masks = torch.zeros(inputs, subsets, features, dtype=torch.bool)
    for i in range(inputs):
        state = np.random.SeedSequence([int(seed), int(n), i]).generate_state(2)
        gen = torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))
        chosen = torch.rand(subsets, features, generator=gen, dtype=torch.float64).topk(n, 1).indices
        masks[i].scatter_(1, chosen, True)
    return masks


def pearson_rows(a: torch.Tensor, b: torch.Tensor, b_tol: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Pearson r of each row of a with the same row of b; NaN where either row is constant.

    A row is constant when its spread is below 1e-12 of its magnitude (rounding), or for b
    below ``b_tol`` (per row: the model's own float noise, which a correlation must not read).
    """
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    flat_a = ac.abs().amax(1) <= 1e-12 * a.abs().amax(1)
    flat_b = bc.abs().amax(1) <= torch.maximum(1e-12 * b.abs().amax(1),
                                               torch.as_tensor(b_tol, dtype=b.dtype))
    r = (ac * bc).sum(1) / ((ac * ac).sum(1) * (bc * bc).sum(1)).sqrt()
    return torch.where(flat_a | flat_b, torch.full_like(r, float("nan")), r.clamp(-1.0, 1.0))


def target_scores(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                  batch_size: int) -> torch.Tensor:
    """The target logit of every input, ``batch_size`` inputs at a time."""
    return torch.cat([select_target(run_model(model, x[lo:lo + batch_size]), target[lo:lo + batch_size])
                      for lo in range(0, x.shape[0], batch_size)])


def _check_maps(attributions, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], bool]:
    single = isinstance(attributions, torch.Tensor)
    maps = {"attributions": attributions} if single else attributions
    if not isinstance(maps, Mapping) or not maps:
        raise InputError("attributions must be a tensor shaped like x, or a non-empty dict of them")
    for name, a in maps.items():
        if not isinstance(a, torch.Tensor) or a.shape != x.shape:
            got = list(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise InputError(f"{name}: attributions must have the input's shape {list(x.shape)}, "
                             f"got {got}")
        if not torch.isfinite(a).all():
            raise InputError(f"{name}: attributions contain NaN or infinite values")
    return {name: a.to(x.device) for name, a in maps.items()}, single


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name} must be {bound}, got {value}")
    return value


def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise InputError("the model is in training mode: call model.eval() first")


@under_precision
@torch.no_grad()
def sensitivity_n(model: torch.nn.Module, x: torch.Tensor, attributions, target, *,
                  ns: Sequence[int], subsets: int = 100, baseline: torch.Tensor | None = None,
                  block: int = 1, seed: int = 0, batch_size: int = BATCH_SIZE,
                  progress: Progress | None = None):
    """Sensitivity-n of ``attributions`` (a tensor, or a dict name -> tensor) for every n in ``ns``.

    For each n and input, ``subsets`` random subsets S of n features are set to ``baseline``
    (None: zeros); the Pearson correlation across the subsets between the attribution sum over S
    and the drop of the target logit F(x) - F(x_S) is taken per input, then averaged over the
    inputs where it is defined. Where it is not (constant sums or drops, e.g. n = all features)
    it is NaN and a ``MetricWarning`` says so. Returns a ``SensitivityN`` (a dict of them for a
    dict of maps).

    ``seed`` fixes the subsets, whatever ``batch_size`` and the other inputs in the batch: the
    same call gives the same numbers; another ``batch_size`` or device gives them to
    floating-point rounding (BLAS and cuDNN sum in batch-size-dependent orders).
    """
    _check_model(model)
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    maps, single = _check_maps(attributions, x)
    base = check_baseline(baseline, x, "sensitivity_n")
    index, features = feature_index(x.shape[1:], block)
    subsets = _check_int(subsets, "subsets", 2)
    batch_size = _check_int(batch_size, "batch_size", 1)
    seed = _check_int(seed, "seed", 0)
    if isinstance(ns, (int, np.integer)) or not isinstance(ns, Sequence) or len(ns) == 0:
        raise InputError(f"ns must be a non-empty list of subset sizes, got {ns!r}")
    ns = [_check_int(n, f"n (features per subset; there are {features} features)", 1, features)
          for n in ns]
    n_inputs = x.shape[0]
    sums = {name: feature_sums(a, index, features) for name, a in maps.items()}
    flat_index = index.reshape(-1).to(x.device)
    total, done = len(ns) * n_inputs * subsets, 0
    clean = target_scores(model, x, t, batch_size)
    # Outputs that differ by a few ulps of the model's precision are equal, not a signal.
    noise = 16 * torch.finfo(clean.dtype).eps * clean.abs().cpu().to(torch.float64)
    clean = clean.to(torch.float64)
    per_sample = {name: np.full((n_inputs, len(ns)), np.nan) for name in maps}
    for col, n in enumerate(ns):
        masks = _subset_masks(seed, n, n_inputs, subsets, features)
        drops = torch.empty(n_inputs, subsets, dtype=torch.float64)
        device_masks = masks.to(x.device)
        for i, j in chunked_pairs(n_inputs, subsets, batch_size, x.device):
            removed = device_masks[i, j][:, flat_index].view(-1, *x.shape[1:])
            out = select_target(run_model(model, torch.where(removed, base[i], x[i])), t[i])
            drops[i.cpu(), j.cpu()] = (clean[i] - out.to(torch.float64)).cpu()
            done += i.shape[0]
            if progress is not None:
                progress(done, total)
        for name, s in sums.items():
            # One input at a time: a float64 copy of all masks would be 8x their size.
            subset_sums = torch.stack([masks[k].to(torch.float64) @ s[k] for k in range(n_inputs)])
            per_sample[name][:, col] = pearson_rows(subset_sums, drops, noise).numpy()
    results = {name: _summarise(name, ns, ps, subsets, block, features, seed)
               for name, ps in per_sample.items()}
    return results["attributions"] if single else results


def _summarise(name: str, ns: list[int], per_sample: np.ndarray, subsets: int, block: int,
               features: int, seed: int) -> SensitivityN:
    undefined = np.isnan(per_sample).sum(0)
    if undefined.any():
        where = ", ".join(f"n={n}: {k}/{per_sample.shape[0]}" for n, k in zip(ns, undefined) if k)
        warnings.warn(f"Sensitivity-n of {name}: the correlation is undefined (constant "
                      f"attribution sums or output drops over the subsets) for {where} inputs; "
                      "those are NaN and left out of the mean", MetricWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        mean = np.nanmean(per_sample, 0)
        spread = np.nanstd(per_sample, 0)
    return SensitivityN(list(ns), per_sample, mean, spread, undefined, subsets, block, features, seed)


def trapezoid(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under each row of ``curves`` over ``fractions`` by the trapezoid rule."""
    widths = np.diff(fractions)
    return ((curves[:, 1:] + curves[:, :-1]) * 0.5 * widths).sum(1)


def fill_for(x: torch.Tensor, fill: str, *, baseline: torch.Tensor | None = None,
             input_space: InputSpace = PIXELS) -> torch.Tensor:
    """What removed features become: a blurred copy, black (in pixels), or ``baseline``."""
    if fill == "baseline":
        return check_baseline(baseline, x, "insertion_deletion")
    if fill not in FILLS:
        raise InputError(f"fill must be one of {list(FILLS)}, got {fill!r}")
    return make_baseline(fill, x, input_space=input_space)


@under_precision
@torch.no_grad()
def insertion_deletion(model: torch.nn.Module, x: torch.Tensor, attributions, target, *,
                       steps: int = 50, fill: str = "blur", score: str = "logit",
                       baseline: torch.Tensor | None = None, block: int = 1,
                       input_space: InputSpace = PIXELS, batch_size: int = BATCH_SIZE,
                       progress: Progress | None = None):
    """Insertion and deletion curves of ``attributions`` (a tensor, or a dict name -> tensor).

    Features are ranked by attribution (highest first, ties by position). Deletion replaces the
    top k features of x by the fill, insertion puts them into the fill, for k = j * F // steps,
    j = 0..steps. ``fill``: "blur" (a Gaussian-blurred copy), "black" (pixels 0 in
    ``input_space``) or "baseline" (``baseline``, None: zeros). ``score``: the target "logit"
    or its softmax "probability". The areas are trapezoids over the share of features changed.
    """
    _check_model(model)
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    maps, single = _check_maps(attributions, x)
    index, features = feature_index(x.shape[1:], block)
    steps = _check_int(steps, f"steps (there are {features} features)", 1, features)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if score not in SCORES:
        raise InputError(f"score must be one of {list(SCORES)}, got {score!r}")
    filled = fill_for(x, fill, baseline=baseline, input_space=input_space)
    counts = torch.arange(steps + 1) * features // steps
    fractions = (counts.to(torch.float64) / features).numpy()
    flat_index = index.reshape(-1).to(x.device)
    n_inputs, points = x.shape[0], 2 * (steps + 1)  # per input: deletion points, then insertion
    total, done = len(maps) * n_inputs * points, 0
    results = {}
    for name, a in maps.items():
        ranking = feature_sums(a, index, features).argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(ranking).scatter_(
            1, ranking, torch.arange(features).expand(n_inputs, -1).contiguous()).to(x.device)
        curves = torch.empty(n_inputs, points, dtype=torch.float64)
        for i, j in chunked_pairs(n_inputs, points, batch_size, x.device):
            k = counts.to(x.device)[j % (steps + 1)]
            top = (rank[i] < k[:, None])[:, flat_index].view(-1, *x.shape[1:])
            deleting = (j <= steps).view((-1,) + (1,) * (x.dim() - 1))
            changed = torch.where(deleting, torch.where(top, filled[i], x[i]),
                                  torch.where(top, x[i], filled[i]))
            logits = run_model(model, changed)
            if score == "probability":
                logits = logits.to(torch.float64).softmax(1)
            curves[i.cpu(), j.cpu()] = select_target(logits, t[i]).to(torch.float64).cpu()
            done += i.shape[0]
            if progress is not None:
                progress(done, total)
        deletion, insertion = curves[:, :steps + 1].numpy(), curves[:, steps + 1:].numpy()
        results[name] = InsertionDeletion(
            fractions, insertion, deletion, trapezoid(insertion, fractions),
            trapezoid(deletion, fractions), fill, score)
    return results["attributions"] if single else results
