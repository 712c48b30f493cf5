"""Attribution over a folder of images: list, load, batch, run each method, write files.

The headless work behind ``python -m explorer attribute`` (and its ``torchrun`` form). Images are
read with the zoo entry's ``preprocess``, the loader the app uses. In OUT:

- ``<key>.<method>.npy``: the attribution, the model input's shape [C, H, W], float32;
- ``<key>.<method>.png``: a heatmap of it (channels summed; red raises the explained logit, blue
  lowers it; symmetric scale per map);
- ``results.csv``: a row per (image, method), built from ``explorer.presentation.report``'s rows; "ms per
  input" is the wall time of the batched call divided by its size, after one untimed call per
  method and process (not a median: compare speeds with the benchmarks);
- ``errors.csv``: a row per file (and method) that failed in the latest run, with the reason;
- ``manifest.json``: the settings results were made with, and each run's command, versions,
  machine and counts.

``<key>`` is the image's stem, or its path below the input root (slashes as ``__``) when stems
collide. (image, method) is *done* when its .npy and .png exist and results.csv holds its row;
a run over an OUT made with other settings is refused unless ``overwrite`` (new methods may be
added; a changed model, baseline, target, device type or hyper-parameter may not).

Under torchrun the batches (formed over every rank's work) are dealt out round-robin
(``distributed.shard``); each rank writes its rows to ``OUT/parts/results.rank<r>.csv`` as it
goes, and rank 0 merges them into results.csv. A batch holds the same images under any number of
processes, so a fresh run's maps are float-identical to a single-process run; in general a map
depends on its batch only through float rounding (methods are batch-independent, random draws
depend on the seed alone), e.g. when a resumed run batches the remaining images differently.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from explorer.inputs.baselines import BASELINES, make_baseline
from explorer.inputs.data import background_set
from explorer.runtime.distributed import World, barrier, gather_objects, shard
from explorer.errors import InputError
from explorer.methods import METHODS, explain
from explorer.methods.registry import get_method
from explorer.presentation.report import completeness_row, timing_row
from explorer.analyses.checks import run_checked

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESULT_FIELDS = ("file", "key", "method", "label", "target", "predicted", "probability",
                 "attribution sum", "F(x) - F(ref)", "rel error", "result", "ms per input",
                 "forward passes", "backward passes", "device")
ERROR_FIELDS = ("file", "method", "error")
MIN_PNG_SIDE = 224  # small inputs (28 x 28 digits) are enlarged by a whole factor to be seen


# ---- inputs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # as shown in the tables: the path below the input root
    key: str   # output file stem


def list_inputs(spec: str | os.PathLike) -> list[InputFile]:
    """A folder's image files (by suffix; not recursive), or every file a glob matches, sorted."""
    spec = str(spec)
    root = Path(spec)
    if root.is_dir():
        paths = sorted(p for p in root.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"{spec} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    else:
        paths = sorted(Path(m) for m in glob.glob(spec, recursive=True) if Path(m).is_file())
        if not paths:
            raise InputError(f"{spec} is neither a folder nor a pattern matching any file")
        root = Path(os.path.commonpath([str(p.parent.resolve()) for p in paths]))
    names = [p.resolve().relative_to(root.resolve()).as_posix() for p in paths]
    stems = [p.stem for p in paths]
    keys = [s if stems.count(s) == 1 else n.replace("/", "__") for s, n in zip(stems, names)]
    return [InputFile(p, n, k) for p, n, k in zip(paths, names, keys)]


# ---- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchSettings:
    """What a batch run computes. ``params``: each method's resolved hyper-parameters."""

    model: str
    methods: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    bias_free: bool = False
    checkpoint: str | None = None
    baseline: str = "zero"
    baseline_image: str | None = None
    target: str | int = "predicted"
    batch_size: int = 16
    precision: str = "float32"   # explorer.runtime.precision.PRECISIONS; others are labelled in the rows


def make_settings(model: str, methods: Sequence[str] | str, *,
                  params: dict[str, dict[str, Any]] | None = None, bias_free: bool = False,
                  checkpoint: str | None = None, baseline: str = "zero",
                  baseline_image: str | None = None, target: str | int = "predicted",
                  batch_size: int = 16, precision: str = "float32") -> BatchSettings:
    """Validated settings; every problem raises InputError before any work starts."""
    from explorer.models.spec import resolve
    from explorer.runtime.precision import get_precision
    precision = get_precision(precision).name
    spec = resolve(model)  # any model spec: zoo name, file.py:function, timm/<name>, file.onnx
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = tuple(dict.fromkeys(methods))
    if not methods:
        raise InputError("no methods given: pass --methods a,b (see `python -m explorer methods`)")
    for m in methods:
        get_method(m)
    params = dict(params or {})
    stray = sorted(set(params) - set(methods))
    if stray:
        raise InputError(f"parameters given for {stray}, which are not among the methods {list(methods)}")
    resolved = {m: METHODS[m].resolve(params.get(m, {})) for m in methods}
    if baseline not in BASELINES:
        raise InputError(f"unknown baseline {baseline!r}; choose one of {sorted(BASELINES)}")
    if baseline == "image":
        if not baseline_image:
            raise InputError("the 'image' baseline needs --baseline-image PATH")
        if not Path(baseline_image).is_file():
            raise InputError(f"baseline image {baseline_image} does not exist")
    elif baseline_image:
        raise InputError("--baseline-image is used only with --baseline image")
    if checkpoint and checkpoint != "paper" and "://" not in checkpoint and not Path(checkpoint).is_file():
        raise InputError(f"checkpoint {checkpoint} does not exist")
    target = parse_target(target)
    classes = len(spec.labels())
    if isinstance(target, int) and target >= classes:
        raise InputError(f"target {target} is out of range: {model} has {classes} classes "
                         f"(0..{classes - 1})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"the batch size must be a whole number >= 1, got {batch_size!r}")
    return BatchSettings(model, methods, resolved, bias_free, checkpoint, baseline,
                         baseline_image, target, batch_size, precision)


def check_device(requested: str | None) -> str | None:
    """'auto' (or None), or a device this machine has; InputError otherwise."""
    if requested in (None, "auto"):
        return requested
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {requested!r}: this machine has no CUDA GPU (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {requested!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {requested!r}: MPS is not available here (use cpu or auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {requested!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return requested


def parse_target(target: str | int) -> str | int:
    """'predicted' or a class index >= 0 (the upper bound is checked against the model)."""
    if isinstance(target, bool):
        raise InputError(f"target must be 'predicted' or a class index, got {target!r}")
    if isinstance(target, int):
        value = target
    elif str(target).strip().lower() == "predicted":
        return "predicted"
    else:
        try:
            value = int(str(target).strip())
        except ValueError:
            raise InputError(f"target must be 'predicted' or a class index, got {target!r}") from None
    if value < 0:
        raise InputError(f"target must be a class index >= 0, got {value}")
    return value


def parse_params(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["integrated_gradients.steps=64", ...]`` -> {method: {name: value}}, each value read as
    its parameter's type (validated later by the registry)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, sep, text = item.partition("=")
        method, dot, name = head.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise InputError(f"--param takes METHOD.NAME=VALUE (e.g. integrated_gradients.steps=64), got {item!r}")
        spec = get_method(method)
        known = {p.name: p for p in spec.params}
        if name not in known:
            raise InputError(f"{method} has no parameter {name!r}; it takes {sorted(known) or 'none'}")
        out.setdefault(method, {})[name] = _read_value(known[name], text.strip(), method)
    return out


def _read_value(param, text: str, method: str) -> Any:
    where = f"{method}.{param.name}"
    if param.kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{where} takes true or false, got {text!r}")
    if param.kind in (int, float):
        try:
            return int(text) if param.kind is int and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise InputError(f"{where} takes a number, got {text!r}") from None
    return text


# ---- the record of what OUT holds -----------------------------------------------------------

def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(settings: BatchSettings, device: torch.device) -> dict:
    """What results depend on: two runs may share an OUT only when these agree (methods may be
    added). The batch size is left out: it changes float rounding only."""
    checkpoint = settings.checkpoint
    if checkpoint and checkpoint != "paper" and "://" not in checkpoint:
        checkpoint = f"sha256:{file_digest(checkpoint)}"
    return {
        "model": settings.model, "bias_free": settings.bias_free, "checkpoint": checkpoint,
        "baseline": settings.baseline,
        "baseline_image": (f"sha256:{file_digest(settings.baseline_image)}"
                           if settings.baseline_image else None),
        "target": settings.target, "device_type": device.type,
        "methods": {m: settings.params[m] for m in settings.methods},
        # only when not the default, so folders written before the precision policy still match
        **({} if settings.precision == "float32" else {"precision": settings.precision}),
    }


def check_compatible(old: dict, new: dict) -> None:
    """Raise InputError naming what differs between OUT's settings and this run's."""
    old = json.loads(json.dumps(old))  # compare as stored (tuples -> lists)
    new = json.loads(json.dumps(new))
    diffs = [f"{k}: {old.get(k)!r} there, {new[k]!r} now"
             for k in new if k != "methods" and old.get(k) != new[k]]
    old_methods = old.get("methods", {})
    diffs += [f"{m} parameters: {old_methods[m]} there, {p} now"
              for m, p in new["methods"].items() if m in old_methods and old_methods[m] != p]
    if diffs:
        raise InputError("the output folder holds results made with other settings ("
                         + "; ".join(diffs) + "); choose another --out, or pass --overwrite to redo it")


def versions() -> dict:
    import PIL
    import torchvision
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__}


def machine(device: torch.device, world_size: int) -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": device.type, "processes": world_size}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, fields: Sequence[str], rows: Iterable[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _stored_rows(out: Path) -> dict[tuple[str, str], dict]:
    """results.csv plus the per-rank parts an interrupted run left, by (key, method)."""
    rows = {}
    for path in [out / "results.csv", *sorted((out / "parts").glob("results.rank*.csv"))]:
        for row in read_rows(path):
            rows[(row["key"], row["method"])] = row
    return rows


def _sorted_rows(rows: Iterable[dict], methods: Sequence[str]) -> list[dict]:
    order = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda r: (r["file"], order.get(r["method"], len(order)), r["method"]))


# ---- writing one result ---------------------------------------------------------------------

def _cell(value: Any) -> str:
    """CSV text: repr for floats (exact round trip), empty for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def heatmap_png(attribution: np.ndarray, path: Path) -> None:
    """The heatmap PNG: channels summed, symmetric scale, enlarged by a whole factor if small."""
    from PIL import Image

    from explorer.presentation import viz
    m = viz.to_map(attribution)
    rgb = viz.diverging_rgb(m, viz.color_limit([m]))
    factor = max(1, MIN_PNG_SIDE // max(m.shape))
    if factor > 1:
        rgb = rgb.repeat(factor, 0).repeat(factor, 1)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(rgb).save(tmp, format="PNG")
    os.replace(tmp, path)


def save_npy(array: np.ndarray, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def output_paths(out: Path, key: str, method: str) -> tuple[Path, Path]:
    return out / f"{key}.{method}.npy", out / f"{key}.{method}.png"


def _is_done(out: Path, rows: dict, key: str, method: str) -> bool:
    return (key, method) in rows and all(p.exists() for p in output_paths(out, key, method))


# ---- the run --------------------------------------------------------------------------------

@dataclass
class Summary:
    """Counts over all ranks (on rank 0; other ranks hold their own share)."""

    images: int = 0
    computed: int = 0   # (image, method) pairs computed in this run
    skipped: int = 0    # (image, method) pairs already done
    errors: list[dict] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    out: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.fatal

    def text(self) -> str:
        failed_files = len({e["file"] for e in self.errors})
        lines = [f"{self.images} images: {self.computed} (image, method) results computed, "
                 f"{self.skipped} already done, {failed_files} files with errors"
                 + (f" (see {self.out / 'errors.csv'})" if self.errors else "")]
        lines += [f"error: {msg}" for msg in self.fatal]
        if self.out is not None:
            lines.append(f"results: {self.out / 'results.csv'}")
        return "\n".join(lines)


def run_batch(settings: BatchSettings, inputs: str | os.PathLike, out: str | os.PathLike, *,
              world: World, overwrite: bool = False, command: str = "",
              progress: bool = True) -> Summary:
    """Attribute every readable image under ``inputs`` into ``out``; see the module docstring.

    Raises InputError (on every rank alike) for bad settings or an incompatible ``out``; failures
    of single files are recorded in errors.csv, never raised."""
    files = list_inputs(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ident = identity(settings, world.device)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    stored = _stored_rows(out)
    # a file whose key changed (a new file with the same stem arrived) is redone under its new key
    current = {f.name: f.key for f in files}
    rows = {k: r for k, r in stored.items() if current.get(r["file"], r["key"]) == r["key"]}
    if not overwrite:
        if manifest is None and stored:
            raise InputError(f"{out} holds results.csv but no manifest.json, so its settings are "
                             "unknown; choose another --out, or pass --overwrite")
        if manifest is not None:
            check_compatible(manifest.get("identity", {}), ident)
    barrier(world)  # every rank has read OUT before rank 0 changes it

    if overwrite:
        if world.is_main:
            for key, method in stored:
                for p in output_paths(out, key, method):
                    p.unlink(missing_ok=True)
        rows, manifest = {}, None
    methods_all = list(dict.fromkeys([*(manifest or {}).get("identity", {}).get("methods", {}),
                                      *settings.methods]))
    if world.is_main:
        write_rows(out / "results.csv", RESULT_FIELDS, _sorted_rows(rows.values(), methods_all))
        for p in (out / "parts").glob("*.csv"):
            p.unlink()
        record = dict(ident, methods={**(manifest or {}).get("identity", {}).get("methods", {}),
                                      **ident["methods"]})
        runs = (manifest or {}).get("runs", [])
        runs.append({"command": command, "started": _now(), "versions": versions(),
                     "machine": machine(world.device, world.size),
                     "settings": {"methods": list(settings.methods), "batch_size": settings.batch_size,
                                  "device": str(world.device)}})
        manifest = {"identity": record, "runs": runs}
        manifest_path.write_text(json.dumps(manifest, indent=2))
    barrier(world)

    # Batches are formed over all ranks' work first and then dealt out, so a batch holds the
    # same images under any number of processes and the maps come out float-identical.
    todo = [(f, [m for m in settings.methods if not _is_done(out, rows, f.key, m)]) for f in files]
    skipped = sum(len(settings.methods) - len(ms) for _, ms in shard(todo, world))
    todo = [(f, ms) for f, ms in todo if ms]
    batches = shard([todo[i:i + settings.batch_size]
                     for i in range(0, len(todo), settings.batch_size)], world)
    work = _Work(settings, out, world)
    try:
        work.run(batches, progress)
    except Exception as err:  # reported by rank 0 after the others finish, never a hang
        work.fatal = f"rank {world.rank}: {_reason(err)}"
    finally:
        work.close()

    barrier(world)
    gathered = gather_objects((work.computed, skipped, work.errors, work.fatal), world)
    summary = Summary(images=len(files), out=out)
    if gathered is None:
        summary.computed, summary.skipped, summary.errors = work.computed, skipped, work.errors
        summary.fatal = [work.fatal] if work.fatal else []
        barrier(world)  # rank 0 has merged: nobody leaves before (torchrun ends all at the first exit)
        return summary
    for computed, skip, errors, fatal in gathered:
        summary.computed += computed
        summary.skipped += skip
        summary.errors += errors
        summary.fatal += [fatal] if fatal else []
    summary.errors.sort(key=lambda e: (e["file"], e["method"]))
    try:
        _finish(out, manifest, summary, methods_all)
    finally:
        barrier(world)  # rank 0 has merged: nobody leaves before (torchrun ends all at the first exit)
    return summary


def _finish(out: Path, manifest: dict, summary: Summary, methods: list[str]) -> None:
    """Rank 0: the parts merged into results.csv, errors.csv, the run's counts in the manifest."""
    merged = _stored_rows(out)
    write_rows(out / "results.csv", RESULT_FIELDS, _sorted_rows(merged.values(), methods))
    write_rows(out / "errors.csv", ERROR_FIELDS, summary.errors)
    for p in (out / "parts").glob("*.csv"):
        p.unlink()
    manifest["runs"][-1].update({
        "finished": _now(), "images": summary.images, "computed": summary.computed,
        "skipped": summary.skipped, "errors": len(summary.errors), "fatal": summary.fatal})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, InputError) else f"{type(err).__name__}: {err}"


class _Work:
    """One rank's share: load the model only if there is work, then batch by batch."""

    def __init__(self, settings: BatchSettings, out: Path, world: World):
        self.s, self.out, self.world = settings, out, world
        self.computed, self.errors, self.fatal = 0, [], None
        self._part = None
        self._writer = None
        self._warm: set[str] = set()

    def run(self, batches: list[list[tuple[InputFile, list[str]]]], progress: bool) -> None:
        # Unreadable files are found before the model is loaded: a resumed run whose only
        # remaining files are broken loads nothing.
        batches = [c for c in ([(f, ms) for f, ms in chunk if self._readable(f)]
                               for chunk in batches) if c]
        if not batches:
            return
        from tqdm import tqdm
        entry = self._load_model()
        bar = tqdm(total=sum(map(len, batches)), unit="img", disable=not progress or None,
                   desc=f"rank {self.world.rank}" if self.world.distributed else "attribute",
                   position=self.world.rank, leave=True, file=sys.stderr)
        with bar:
            for chunk in batches:
                self._batch(entry, chunk)
                bar.update(len(chunk))

    def _readable(self, f: InputFile) -> bool:
        from explorer.inputs.images import open_image
        try:
            open_image(f.path.read_bytes())
            return True
        except (InputError, OSError) as err:
            self._error(f, "", err)
            return False

    def _load_model(self):
        from explorer.models import WeightsUnavailable, load_model
        try:
            entry = load_model(self.s.model, bias_free=self.s.bias_free, device=self.world.device,
                               checkpoint=self.s.checkpoint)
        except WeightsUnavailable as err:
            raise InputError(f"no trained weights for {self.s.model}: {err}") from err
        if isinstance(self.s.target, int) and self.s.target >= len(entry.labels):
            raise InputError(f"target {self.s.target} is out of range: {self.s.model} has "
                             f"{len(entry.labels)} classes (0..{len(entry.labels) - 1})")
        self.baseline_image = None
        if self.s.baseline == "image":
            self.baseline_image = entry.preprocess(Path(self.s.baseline_image).read_bytes())
        self.background = (background_set(entry).to(self.world.device)
                           if "expected_gradients" in self.s.methods else None)
        return entry

    def _batch(self, entry, chunk: list[tuple[InputFile, list[str]]]) -> None:
        loaded, tensors = [], []
        for f, methods in chunk:
            try:
                tensors.append(entry.preprocess(f.path.read_bytes()))
                loaded.append((f, methods))
            except (InputError, OSError) as err:
                self._error(f, "", err)
        if not loaded:
            return
        x = torch.stack(tensors).to(entry.device)
        with torch.no_grad():
            probs = torch.softmax(entry.module(x).float(), 1)
        predicted = probs.argmax(1)
        target = predicted if self.s.target == "predicted" else torch.full_like(predicted, self.s.target)
        baseline = make_baseline(self.s.baseline, x, input_space=entry.input_space,
                                 image=self.baseline_image)
        for method in self.s.methods:
            idx = [i for i, (_, ms) in enumerate(loaded) if method in ms]
            if not idx:
                continue
            spec = METHODS[method]
            b = self.background if method == "expected_gradients" else (
                baseline[idx] if spec.uses_baseline else None)
            try:
                self._method(entry, method, [loaded[i][0] for i in idx], x[idx], target[idx],
                             probs[idx], b)
            except Exception:  # isolate the image(s) it fails on; the rest go on
                for j, i in enumerate(idx):
                    bi = b if b is None or method == "expected_gradients" else b[[j]]
                    try:
                        self._method(entry, method, [loaded[i][0]], x[[i]], target[[i]],
                                     probs[[i]], bi)
                    except Exception as err:
                        self._error(loaded[i][0], method, err)

    def _method(self, entry, method, files, x, target, probs, baseline) -> None:
        from explorer.runtime.precision import badge, precision_scope
        with precision_scope(self.s.precision, x.device):
            self._method_in_scope(entry, method, files, x, target, probs, baseline,
                                  badge(self.s.precision))

    def _method_in_scope(self, entry, method, files, x, target, probs, baseline, mark) -> None:
        if method not in self._warm:  # one untimed call on one image: first-call costs stay out
            b = baseline if baseline is None or method == "expected_gradients" else baseline[:1]
            explain(method, entry.module, x[:1], target[:1], baseline=b, **self.s.params[method])
            self._warm.add(method)
        r = run_checked(method, entry.module, x, target, bias_free=self.s.bias_free,
                        baseline=baseline, **self.s.params[method])
        attributions = r.explanation.attributions.float().cpu().numpy()
        reports = r.completeness.rows() if r.completeness is not None else [None] * len(files)
        timing = timing_row(method, self.s.bias_free, median_ms=r.seconds * 1e3 / len(files),
                            forward_passes=r.forward_per_input,
                            backward_passes=r.backward_per_input, device=str(x.device))
        for i, f in enumerate(files):
            npy, png = output_paths(self.out, f.key, method)
            save_npy(attributions[i], npy)
            heatmap_png(attributions[i], png)
            c = completeness_row(method, self.s.bias_free, reports[i])
            t, p = int(target[i]), probs[i]
            self._write_row({
                "file": f.name, "key": f.key, "method": method,
                "label": f"{c['method']} {mark}".strip(),
                "target": t, "predicted": int(p.argmax()), "probability": float(p.max()),
                "attribution sum": c["attribution sum"], "F(x) - F(ref)": c["F(x) - F(ref)"],
                "rel error": c["rel error"],
                "result": c["result"], "ms per input": timing["median_ms"],
                "forward passes": timing["forward_passes"],
                "backward passes": timing["backward_passes"], "device": timing["device"]})
            self.computed += 1

    def _write_row(self, row: dict) -> None:
        if self._writer is None:
            (self.out / "parts").mkdir(exist_ok=True)
            self._part = open(self.out / "parts" / f"results.rank{self.world.rank}.csv", "w",
                              newline="")
            self._writer = csv.DictWriter(self._part, fieldnames=list(RESULT_FIELDS))
            self._writer.writeheader()
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._part.flush()  # an interrupted run keeps what it finished

    def _error(self, f: InputFile, method: str, err: BaseException) -> None:
        self.errors.append({"file": f.name, "method": method, "error": _reason(err)})

    def close(self) -> None:
        if self._part is not None:
            self._part.close()
