"""``python -m explorer bench``: interleaved speed and memory measurements, section by section.

Each section is a function ``run(cfg) -> dict`` named in ``SECTIONS`` by a dotted path
("module:function") and imported only when it runs, so a section can need Captum or a GPU
without ``import explorer`` needing them. A section module may also define
``figures(result) -> dict[str, plotly Figure]``. Section results hold ``rows`` (timing rows from
``explorer.presentation.report``) and whatever else they measure; ``explorer.bench.output`` writes the
terminal table, the JSON and the plots.
"""
from __future__ import annotations

import importlib
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

CLOCKS = {
    "wall": "wall-clock time (time.perf_counter): what a user waits",
    "process": "CPU time of this process (time.process_time): on a shared machine, time other "
               "processes take is not counted; CPU only, and with one torch thread it is the work",
}

SECTIONS = {
    "methods": "explorer.bench.methods:run",
    "captum": "explorer.bench.captum:run",
    "memory": "explorer.bench.memory:run",
    "mfaba": "explorer.bench.mfaba:run",
    "adaptive": "explorer.bench.adaptive:run",
}


@dataclass
class BenchConfig:
    """What to measure: zoo model, device, rounds (>= 10 for a report), tiny settings or not."""

    model: str = "digits-cnn"
    device: str = "cpu"
    rounds: int = 10
    quick: bool = False
    out: Path = Path("bench-out")
    batch: int = 1
    size: int | None = None          # input side for ImageNet-size models (None: the model's own)
    budget_s: float = 0.0            # more rounds while time is left (at least ``rounds``)
    pretrained: bool = True          # False: random weights (speed does not depend on them)
    checkpoint: str | None = None    # weights to load instead (a file or URL)
    clock: str = "wall"              # "process": CPU time of this process (see CLOCKS)
    precision: str = "float32"       # every section runs inside this precision scope
    sections: tuple[str, ...] = ("methods", "captum", "memory", "mfaba", "adaptive")
    notes: list[str] = field(default_factory=list)
    progress: Callable[[str, int, float], Any] | None = field(default=None, repr=False)
    # progress(section, rounds done, fraction of the section's rounds): the app's progress bar

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        d.pop("progress")
        return d


RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def shipped_results(folder: Path | None = None) -> list[dict]:
    """Every readable bench JSON in ``folder`` (default ``RESULTS``), newest first."""
    import json
    folder = RESULTS if folder is None else folder
    found = []
    for path in folder.glob("bench-*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: r.get("started", ""), reverse=True)


def section_function(name: str, attr: str = "run") -> Callable | None:
    """The section's function (``attr``: "run" or "figures"), or None if it cannot be imported."""
    module_name, func = SECTIONS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, func if attr == "run" else attr, None)


def machine(device: str) -> dict:
    """Where the figures were taken."""
    import os

    import torch
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_bench(cfg: BenchConfig, say: Callable[[str], Any] = print) -> dict:
    """Run the chosen sections in order; a section that cannot be imported is skipped, said so."""
    from explorer.errors import InputError
    unknown = [s for s in cfg.sections if s not in SECTIONS]
    if unknown:
        raise InputError(f"unknown bench section(s) {unknown}; choose from {sorted(SECTIONS)}")
    if cfg.clock not in CLOCKS:
        raise InputError(f"unknown clock {cfg.clock!r}; choose one of {sorted(CLOCKS)}")
    if cfg.clock == "process" and not cfg.device.startswith("cpu"):
        raise InputError("the process clock measures CPU time: use it with --device cpu only")
    if cfg.rounds < 1:
        raise InputError(f"rounds must be at least 1, got {cfg.rounds}")
    from explorer.runtime.precision import get_precision, precision_scope
    get_precision(cfg.precision)
    result = {"config": cfg.as_dict(), "machine": machine(cfg.device),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    for name in cfg.sections:
        fn = section_function(name)
        if fn is None:
            note = f"section {name!r} skipped: {SECTIONS[name]} is not importable"
            say(note)
            result.setdefault("skipped", {})[name] = note
            continue
        say(f"[{name}] running ...")
        start = time.perf_counter()
        # Ours, Captum's and the one-pass limit all run under the same flags: equal settings.
        with precision_scope(cfg.precision, cfg.device):
            result["sections"][name] = fn(cfg)
        result["sections"][name]["wall_s"] = time.perf_counter() - start
    result["config"]["notes"] = cfg.notes
    return result
