"""Section "methods": the one-pass limit, every registered method at stated settings, IG and EG
at several step/reference counts, all interleaved; IG's completeness error against its time."""
from __future__ import annotations

import explorer
from explorer.bench.common import background, batch, compare_settings, load
from explorer.presentation.report import Run, time_methods
from explorer.analyses.checks import run_checked

IG_STEPS = (16, 32, 64, 128)
EG_SAMPLES = (16, 64)
QUICK_IG_STEPS = (2, 4)
QUICK_EG_SAMPLES = (2,)


def settings(cfg, x) -> dict[str, dict]:
    """Each method's stated settings (registry defaults unless said here)."""
    side = x.shape[-1]
    if cfg.quick:
        window = max(side // 2, 1)
        return {"smoothgrad": {"samples": 2}, "mfaba": {"steps": 3},
                "occlusion": {"window": window, "stride": window}}
    # Inputs larger than digits: 14 x 14 windows of occlusion (196 forward passes), not 4-pixel steps.
    return {"occlusion": {"window": 4, "stride": 2} if side <= 32 else
            {"window": side // 14, "stride": side // 14}}


def runs(cfg, x, bg, model=None) -> list[Run]:
    """The timed runs; methods that do not apply to ``model`` are left out, with a note."""
    stated = settings(cfg, x)
    out = []
    for name in explorer.METHODS:
        reason = None if model is None else explorer.METHODS[name].applicability(model)
        if reason is not None:
            note = f"{name} not timed: {reason}"
            if note not in cfg.notes:
                cfg.notes.append(note)
        elif name == "integrated_gradients":
            out += [Run(name, {"steps": s}, name=f"Integrated Gradients ({s} steps)")
                    for s in (QUICK_IG_STEPS if cfg.quick else IG_STEPS)]
        elif name == "expected_gradients":
            out += [Run(name, {"samples": s}, bg, name=f"Expected Gradients ({s} samples)")
                    for s in (QUICK_EG_SAMPLES if cfg.quick else EG_SAMPLES)]
        else:
            out.append(Run(name, stated.get(name, {})))
    return out


def run(cfg) -> dict:
    regular, free = load(cfg, False), load(cfg, True)
    x, target = batch(cfg, regular)
    bg = background(cfg, regular, x)
    everything = runs(cfg, x, bg, regular.module)
    steps = QUICK_IG_STEPS if cfg.quick else IG_STEPS
    ig_mid = steps[min(1, len(steps) - 1)]
    # The bias-free twin: its X-Gradient against its own limit, and IG beside it.
    on_free = [Run("input_x_gradient"),
               Run("integrated_gradients", {"steps": ig_mid}, name=f"Integrated Gradients ({ig_mid} steps)")]
    rows = time_methods({False: regular.module, True: free.module},
                        {False: everything, True: on_free}, x, target, **compare_settings(cfg, "methods"))
    # IG's completeness error at each step count (passes and error do not depend on timing)
    times = {(r["method"], r["variant"]): r["median_ms"] for r in rows}
    completeness = []
    for variant, entry in (("regular", regular), ("bias-free", free)):
        for s in steps:
            report = run_checked("integrated_gradients", entry.module, x, target, steps=s).completeness
            ms = times.get((f"Integrated Gradients ({s} steps)", variant))
            if ms is not None:
                completeness.append({"variant": variant, "steps": s, "median_ms": ms,
                                     "rel_error": float(report.rel_error.max())})
    return {"model": regular.title, "input": list(x.shape), "rows": rows,
            "settings": {r.name or r.method: r.params for r in everything},
            "ig_completeness": completeness}
