"""MkDocs hook: the benchmark tables of the docs, generated from ``benchmarks/results/*.json``
at every build, so that a table can never drift from its JSON.

A page asks for a table with a marker on a line of its own::

    <!-- bench-table: methods bench-digits-cnn-cpu.json -->

Kinds: ``methods`` (time per method), ``captum`` (ours against Captum), ``memory`` (IG's peak
memory), ``mfaba`` (MFABA against IG, images/s), ``browser`` (page load in chromium),
``adaptive`` (adaptive IG against fixed Gauss-Legendre, ``explorer.bench.adaptive``),
``classroom`` (N visitors together, the explorer beside streamlit's floor:
``benchmarks/bench_classroom.py``; the marker names the explorer's file, the floor's is the
same name with ``classroom-floor-``). Plain
Python and json only, so that the docs build without torch.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
MARKER = re.compile(r"^<!-- bench-table: (\w+)(?: (\S+))? -->$", re.M)


def _g(value: float) -> str:
    """Three significant digits, as the bench prints them."""
    return f"{value:.3g}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _source(name: str, data: dict) -> str:
    cfg, machine = data.get("config", {}), data.get("machine", {})
    what = (f"`benchmarks/results/{name}`, started {data.get('started', '?')}: {cfg.get('model')}"
            + (f" at {cfg['size']} px" if cfg.get("size") else "")
            + f" on {machine.get('device', cfg.get('device'))} ({machine.get('processor', '?')}, "
            f"{machine.get('cpu_count', '?')} cores), torch {machine.get('torch', '?')}, "
            f"{machine.get('threads', '?')} torch thread(s), {cfg.get('rounds')} interleaved "
            f"rounds, {cfg.get('clock', 'wall')} clock")
    notes = "; ".join(cfg.get("notes") or [])
    return f"*Generated from {what}.*" + (f" *{notes}.*" if notes else "")


def methods(name: str, data: dict) -> str:
    rows = [[r["method"], r["variant"], _g(r["median_ms"]), f"{_g(r['q1_ms'])}-{_g(r['q3_ms'])}",
             f"{r['forward_passes']:g} / {r['backward_passes']:g}", _g(r["x_limit"])]
            for r in data["sections"]["methods"]["rows"]]
    return _table(["method", "variant", "median ms", "IQR ms", "passes fwd / bwd", "x the limit"],
                  rows) + "\n\n" + _source(name, data)


def captum(name: str, data: dict) -> str:
    sec = data["sections"]["captum"]
    rows = [[p["method"], _g(p["ours_ms"]), _g(p["captum_ms"]), _g(p["captum_over_ours"]),
             f"{p['max_rel_difference']:.2g}" + (f" ({p['caveat']})" if p.get("caveat") else "")]
            for p in sec["pairs"]]
    rows += [[m, "", "", "", f"not compared: Captum failed ({why.split(':')[0]})"]
             for m, why in (sec.get("captum_failed") or {}).items()]
    return _table(["method", "ours ms", "Captum ms", "Captum / ours (> 1: ours faster)",
                   "largest difference (relative to the map's max)"], rows) \
        + "\n\n" + _source(name, data)


def memory(name: str, data: dict) -> str:
    sec = data["sections"]["memory"]
    rows = [[r["steps"], r["batch_size"], "chunked" if r["chunked"] else "all points at once",
             f"{r['peak_rss_mb']:.0f}", f"{r['added_mb']:.0f}"] for r in sec["rows_memory"]]
    return _table(["IG steps", "batch_size", "", "peak RSS MB", "added MB"], rows) \
        + f"\n\n*{sec['kind']} ({sec['baseline_rss_mb']:.0f} MB).* " + _source(name, data)


def mfaba(name: str, data: dict) -> str:
    rows = [[r["method"], _g(r["median_ms"]), f"{r['forward_passes']:g}", _g(r["images_per_s"])]
            for r in data["sections"]["mfaba"]["rows"]]
    return _table(["method", "median ms", "passes", "images / s"], rows) + "\n\n" \
        + _source(name, data)


def browser(name: str, data: dict) -> str:
    rows = [[label, len(data[f"{key}_s"]), _g(data[f"{key}_median_s"]),
             f"{_g(min(data[f'{key}_s']))}-{_g(max(data[f'{key}_s']))}"]
            for key, label in (("fresh", "fresh server (first visit after a start)"),
                               ("warm", "warm reload (F5 in the same tab)"),
                               ("visitor", "new visitor (new browser context), warm server"))]
    return _table(["load", "runs", "median s to the first map", "range s"], rows) \
        + f"\n\n*Generated from `benchmarks/results/{name}` ({data.get('machine', '?')}).*"


def _span(values: list) -> str:
    """"a" when all equal, else "lo-hi" (None: beyond the grid)."""
    known = [v for v in values if v is not None]
    if not known:
        return "beyond the grid"
    lo, hi = min(known), max(known)
    text = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return text + (f" ({len(values) - len(known)} beyond the grid)" if len(known) < len(values)
                   else "")


def adaptive(name: str, data: dict) -> str:
    """Adaptive IG against fixed Gauss-Legendre per model and tolerance (bench.adaptive)."""
    rows = []
    for r in data["results"]:
        label = r["model"] + (" (bias-free)" if r["bias_free"] else "")
        regions = r.get("exact_regions")
        for a in r["adaptive"]:
            inputs, tol = a["inputs"], a["tolerance"]
            met = sum(i["within_tolerance"] and i["passes_ok"] for i in inputs)
            rows.append([label, f"{tol:g}", _span([i["passes"] for i in inputs]),
                         _span([i["fixed_steps_needed"] for i in inputs]),
                         f"{max(i['error'] for i in inputs) / tol:.2f}",
                         f"{sum(i['within_tolerance'] for i in inputs)} of {len(inputs)}",
                         f"{met} of {len(inputs)}",
                         _span(regions) if regions else "-"])
    s = data["settings"]
    return _table(["model", "tolerance", "adaptive passes per input",
                   "fixed GL steps reliably within the tolerance", "max error / tolerance",
                   "error <= 1.5 x tolerance", "inputs meeting the target (error and passes)",
                   "exact IG regions per input"], rows) + (
        f"\n\n*Generated from `benchmarks/results/{name}`: {s['inputs']} bundled test digits "
        f"per model, {data.get('baseline', 'zero')} baseline, map error = {data['error']}; "
        f"fixed grid {', '.join(str(g) for g in s['grid'])} steps, adaptive cap {s['cap']}.*")


def floor_file(name: str) -> str:
    """The floor's results beside the explorer's: classroom-X.json -> classroom-floor-X.json."""
    return name.replace("classroom-", "classroom-floor-", 1)


def classroom(name: str, data: dict, results: Path | None = None) -> str:
    """Time to the first map for N visitors together: the explorer and the one-image floor."""
    floor_name = floor_file(name)
    floor = json.loads(((results or RESULTS) / floor_name).read_text())
    if floor.get("clients") != data.get("clients"):
        raise ValueError(f"{name} and {floor_name} measure different clients")

    def cell(run: dict, n: str) -> str:
        g = run["groups"].get(n)
        return f"{g['median_s']:.2f} s ({g['largest_s']:.2f} s)" if g else "not run"

    def cpu(run: dict, n: str) -> str:
        g = run["groups"].get(n)
        return f"{g['server_cpu_s']:.2f} s / {g['machine_cpu_s']:.1f} s" if g else "-"

    sizes = sorted({*data["groups"], *floor["groups"]}, key=int)
    one = data["groups"].get("1"), floor["groups"].get("1")
    rows = [[n, cell(data, n), cell(floor, n),
             " / ".join(f"{run['groups'][n]['median_s'] / base['median_s']:.1f}x"
                        if base and n in run["groups"] else "-"
                        for run, base in zip((data, floor), one)),
             cpu(data, n), cpu(floor, n)] for n in sizes]
    clients = data.get("clients", "browser")
    taken = "; ".join(f"`{n}` taken {r['taken']} at a load average of "
                      f"{r['load_average_before']:.1f} (`{r['command']}`)"
                      for n, r in ((name, data), (floor_name, floor)))
    return _table(["visitors together", f"explorer ({clients}): median to the first map "
                   "(largest)", "floor: median (largest)", "x one visitor: explorer / floor",
                   "explorer CPU per group: server / machine", "floor CPU: server / machine"],
                  rows) + f"\n\n*Generated from `benchmarks/results/`: {taken}; " \
        f"{data.get('machine', '?')}.*"


KINDS = {"methods": methods, "captum": captum, "memory": memory, "mfaba": mfaba,
         "browser": browser, "adaptive": adaptive, "classroom": classroom}


def render(markdown: str, results: Path = RESULTS) -> str:
    """``markdown`` with every marker replaced by its table (an unknown kind or a missing file
    raises, which fails the build: a table that cannot be generated must not silently vanish)."""
    def table(m: re.Match) -> str:
        kind, name = m.group(1), m.group(2) or f"{m.group(1)}.json"
        if kind not in KINDS:
            raise ValueError(f"unknown bench-table kind {kind!r}; known: {', '.join(KINDS)}")
        data = json.loads((results / name).read_text())
        if kind == "classroom":  # two files: the explorer's names the floor's
            return classroom(name, data, results)
        return KINDS[kind](name, data)
    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:  # the MkDocs hook
    return render(markdown)
