"""A shipped cache of exact IG results: the bundled models' default views without the walk.

Exact IG on the regular digits CNN crosses thousands of linear regions (~50 s per digit on a
2-core CPU with the probe walk, several times less with the layered split that a plain chain of
layers gets), so the Convergence page's default view is shipped rather than walked.
``python -m explorer exact-cache`` walks the bundled sample digits once and writes
``assets/exact-ig/`` (one ``.npz`` per result, float64 map and region boundaries, and ``manifest.json`` saying how each
was made). ``exact_ig_cached`` returns a stored result only on an exact key: sha256 of the
model's state dict as it runs (names, dtypes, shapes, bytes), sha256 of the input's bytes, the
target, sha256 of the baseline's bytes, and float64. Anything else is a miss and walks live.
"""
from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path

import numpy as np
import torch

from explorer.inputs.data import ASSETS
from explorer.methods.exact import DEFAULT_MAX_REGIONS, exact_ig, piecewise_linear_reason
from explorer.methods.exact_layered import layer_chain

CACHE_DIR = ASSETS / "exact-ig"  # in the wheel too (pyproject's package-data)
COMMAND = "python -m explorer exact-cache"
_MANIFESTS: dict[Path, dict] = {}


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (C order, on the CPU)."""
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 of the model's state dict (names, dtypes, shapes, bytes), in its order."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor_sha256(t).encode())
    return h.hexdigest()


def manifest(directory: Path | None = None) -> dict:
    """The cache's manifest ({"entries": {key: {...}}}); empty when there is none."""
    directory = Path(directory or CACHE_DIR)
    if directory not in _MANIFESTS:
        path = directory / "manifest.json"
        _MANIFESTS[directory] = json.loads(path.read_text()) if path.exists() else {"entries": {}}
    return _MANIFESTS[directory]


def clear() -> None:
    """Forget the manifests read (after writing a cache)."""
    _MANIFESTS.clear()


def cache_key(weights: str, x_row: torch.Tensor, target: int, base_row: torch.Tensor) -> str:
    return f"{weights}:{tensor_sha256(x_row)}:{int(target)}:{tensor_sha256(base_row)}:float64"


def _entries(model, x, target, base, directory) -> list[dict] | None:
    """The manifest entry of every row, or None when any row is missing."""
    entries = manifest(directory)["entries"]
    inputs = {e["input_sha256"] for e in entries.values()}
    if not entries or any(tensor_sha256(r) not in inputs for r in x):  # cheap test first
        return None
    weights = weights_sha256(model)
    found = [entries.get(cache_key(weights, x[i], int(target[i]), base[i]))
             for i in range(x.shape[0])]
    return None if any(e is None for e in found) else found


def lookup(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, base: torch.Tensor,
           directory: Path | None = None) -> tuple[torch.Tensor, dict] | None:
    """The stored (map [N, ...] float64, info) when every row has an entry, else None.

    info: ``regions``, ``boundaries``, ``completeness_error`` as ``exact_ig`` gives them, and
    ``source``: "cached exact reference (COMMAND, machine)"."""
    found = _entries(model, x, target, base, directory)
    if found is None:
        return None
    directory = Path(directory or CACHE_DIR)
    maps, boundaries = [], []
    for e in found:
        with np.load(directory / e["file"]) as z:
            maps.append(torch.from_numpy(z["map"]))
            boundaries.append(torch.from_numpy(z["boundaries"]))
    total = torch.stack(maps).to(device=x.device).reshape((x.shape[0],) + tuple(x.shape[1:]))
    info = {"regions": torch.tensor([e["regions"] for e in found]),
            "boundaries": boundaries,
            "completeness_error": torch.tensor([e["completeness_error"] for e in found],
                                               dtype=torch.float64),
            "source": f"cached exact reference (made by `{found[0]['command']}` on "
                      f"{found[0]['machine']})"}
    return total, info


def exact_ig_cached(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                    base: torch.Tensor, max_regions: int = DEFAULT_MAX_REGIONS,
                    batch_size: int = 64, directory: Path | None = None
                    ) -> tuple[torch.Tensor, dict]:
    """``exact_ig`` in float64, from the cache on an exact hit, else walked (info["source"]:
    "walked now")."""
    hit = lookup(model, x, target, base, directory)
    if hit is not None and int(hit[1]["regions"].max()) <= max_regions:  # else the cap speaks
        return hit
    total, info = exact_ig(model, x, target, base, max_regions, batch_size)
    return total, {**info, "source": "walked now"}


def expected_regions(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                     base: torch.Tensor, directory: Path | None = None) -> int:
    """Probes the walk is expected to need for the batch: 0 on a cache hit or a model it
    refuses; else per input the most regions a cached result of these weights met (the bundled
    samples of this model), or ``DEFAULT_MAX_REGIONS`` (the cost model's bound) when none."""
    if piecewise_linear_reason(model) is not None or _entries(model, x, target, base,
                                                              directory) is not None:
        return 0
    weights = weights_sha256(model)
    seen = [e["regions"] for e in manifest(directory)["entries"].values()
            if e["weights_sha256"] == weights]
    return x.shape[0] * (max(seen) if seen else DEFAULT_MAX_REGIONS)


_LAYERED: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def walks_layered(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether exact IG takes the layered split on ``model`` (a plain chain of torch.nn
    layers; one forward of ``x[:1]`` tells), which the budget prices lower than the probe
    walk; cached while the model lives."""
    if model not in _LAYERED:
        _LAYERED[model] = layer_chain(model, x[:1]) is not None
    return _LAYERED[model]


def write_entry(directory: Path, name: str, model: torch.nn.Module, x_row: torch.Tensor,
                target: int, base_row: torch.Tensor, meta: dict) -> dict:
    """Walk one input (float64) and store its map, boundaries and manifest entry."""
    import platform
    import time
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    total, info = exact_ig(model, x_row[None], torch.tensor([target]), base_row[None],
                           DEFAULT_MAX_REGIONS, 256)
    seconds = time.perf_counter() - t0
    np.savez_compressed(directory / f"{name}.npz", map=total[0].cpu().numpy(),
                        boundaries=info["boundaries"][0].numpy())
    entry = {**meta, "file": f"{name}.npz", "command": COMMAND,
             "weights_sha256": weights_sha256(model), "input_sha256": tensor_sha256(x_row),
             "baseline_sha256": tensor_sha256(base_row), "target": int(target), "float64": True,
             "regions": int(info["regions"][0]), "passes": int(info["passes"][0]),
             "algorithm": info.get("algorithm", "walk"),
             "completeness_error": float(info["completeness_error"][0]),
             "seconds": round(seconds, 1),
             "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, "
                        f"torch {torch.__version__}"}
    path = directory / "manifest.json"
    data = json.loads(path.read_text()) if path.exists() else {"entries": {}}
    data["entries"][cache_key(entry["weights_sha256"], x_row, target, base_row)] = entry
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    clear()
    return entry
