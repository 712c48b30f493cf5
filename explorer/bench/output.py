"""Writing a bench result: the terminal table, the JSON file, the plots (HTML and PNG)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping

from explorer.bench import SECTIONS, section_function


def _num(v, fmt="{:.3g}") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def table(result: Mapping) -> str:
    """The timing rows of every section, then the section-specific facts."""
    m = result["machine"]
    lines = [f"machine: {m['processor']}, {m['cpu_count']} CPUs, {m['threads']} torch threads, "
             f"{m.get('gpu', 'no GPU')}; device {m['device']}; torch {m['torch']}; "
             f"clock: {result['config']['clock']}; precision: "
             f"{result['config'].get('precision', 'float32')}"]
    for name, sec in result["sections"].items():
        rows = sec.get("rows", [])
        if rows:
            lines.append(f"\n[{name}] {sec.get('model', '')} input {sec.get('input', '')}: "
                         f"median and quartiles of {rows[0]['rounds']} interleaved rounds")
            lines.append(f"{'method':40s} {'variant':9s} {'median ms':>10s} {'q1-q3 ms':>17s} "
                         f"{'rep':>4s} {'fwd':>5s} {'bwd':>5s} {'x limit':>8s} {'x IG':>7s}  too close to rank")
            for r in rows:
                lines.append(
                    f"{r['method'][:40]:40s} {r['variant']:9s} {_num(r['median_ms']):>10s} "
                    f"{_num(r['q1_ms']) + '-' + _num(r['q3_ms']):>17s} {r['repeats']:>4d} "
                    f"{_num(r['forward_passes'], '{:.0f}'):>5s} {_num(r['backward_passes'], '{:.0f}'):>5s} "
                    f"{_num(r['x_limit']):>8s} {_num(r['speedup_vs_ig']):>7s}  {r['too_close_to_rank'][:70]}")
        for p in sec.get("pairs", []):
            lines.append(f"  {p['method']:34s} Captum/ours x{p['captum_over_ours']:.2f}  "
                         f"max rel diff {p['max_rel_difference']:.1e}  {p['caveat']}")
        for k, v in sec.get("captum_failed", {}).items():
            lines.append(f"  {k}: Captum failed ({v[:100]})")
        for r in sec.get("rows_memory", []):
            what = (f"EG {r['samples']:4d} samples" if r.get("method") == "expected_gradients"
                    else f"IG {r['steps']:4d} steps")
            lines.append(f"  {what}, batch_size {r['batch_size']:4d}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in r.items() if k.endswith("mb")))
        if "paper" in sec:
            lines.append("  images/s: " + ", ".join(f"{r['method']} {r['images_per_s']:.2f}"
                                                   for r in sec["rows"] if "images_per_s" in r)
                         + f"  (paper: MFABA {sec['paper']['mfaba_images_per_s']}, "
                         f"IG {sec['paper']['ig_images_per_s']}, {sec['paper']['where']})")
    for v in result.get("skipped", {}).values():
        lines.append(f"\n{v}")
    for note in result["config"].get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def figures(result: Mapping) -> dict:
    from explorer.bench.figures import bench_figures
    figs = bench_figures(result)
    for name in result["sections"]:
        extra = section_function(name, "figures") if name in SECTIONS else None
        if extra is not None:
            figs.update(extra(result["sections"][name]))
    return figs


def write(result: Mapping, out: Path) -> dict[str, list[str]]:
    """JSON and plots under ``out``; returns the files written and what could not be."""
    from explorer.presentation import figures as export
    out.mkdir(parents=True, exist_ok=True)
    cfg = result["config"]
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg["model"])  # a spec may hold / and :
    stem = f"bench-{model}-{cfg['device'].replace(':', '')}"
    if cfg.get("precision", "float32") != "float32":
        stem += f"-{cfg['precision']}"
    path = out / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    written, problems = [str(path)], []
    for name, fig in figures(result).items():
        html = out / f"{stem}-{name}.html"
        fig.write_html(html, include_plotlyjs="cdn")
        written.append(str(html))
        try:
            written.append(str(export.write(fig, out / f"{stem}-{name}.png", cfg)))
        except Exception as err:  # no chromium for kaleido: the HTML stands alone
            problems.append(f"{name}: no PNG ({type(err).__name__}: {err}); HTML only")
    return {"written": written, "problems": problems}
