"""The three sentences at the top of the Explore page, computed from what was just run.

They say what the picture shows, the one finding to look at (X-Gradient against IG on the
bias-free model and on the regular one), and where to go next. Every number in them comes from
the results passed in; a sentence whose numbers are missing is left out or said plainly.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

PAPER_URL = "https://arxiv.org/abs/2111.07668"  # Hesse, Schaub-Meyer, Roth, NeurIPS 2021
# The docs page in the repository; becomes the MkDocs site's address once it is published.
DOCS_PATH = "docs/first-lesson.md"


def map_distance(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: how far map a is from map b, relative to b's largest value."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a).max())


def _sci(v: float) -> str:
    """1e-07 -> '1e-7'; readable for a first-time reader (no SI prefixes, no padding zero);
    'nan' / 'inf' as they are."""
    if not math.isfinite(v):
        return f"{v}"
    mantissa, exp = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def story(results: Mapping[tuple[str, str], Mapping], *, target_label: str, input_name: str,
          baseline_name: str) -> list[str]:
    """Up to three Markdown sentences from ``results[(method, variant)]`` (each with
    "attributions", "forward_passes" and "completeness": a report row or None)."""
    out = [f"Each map shows which pixels of **{input_name}** raise (red) or lower (blue) the "
           f"logit of **{target_label}**; white pixels do not matter to it."]
    ixg, ig = "input_x_gradient", "integrated_gradients"
    free, regular = (ixg, "bias-free"), (ixg, "regular")
    finding = []
    if free in results and (ig, "bias-free") in results:
        passes = results[(ig, "bias-free")].get("forward_passes")
        d = map_distance(results[free]["attributions"], results[(ig, "bias-free")]["attributions"])
        same = "equals" if d < 1e-3 else "differs from"
        where = "" if baseline_name == "zero" else f" (IG here starts from the {baseline_name} baseline, X-Gradient from zero)"
        finding.append(f"on the **bias-free** model X-Gradient (one pass) {same} Integrated "
                       f"Gradients ({passes:.0f} passes) to {_sci(d)}{where}")
    elif free in results and results[free].get("completeness"):
        err = results[free]["completeness"]["rel_error"]
        finding.append(f"on the **bias-free** model X-Gradient (one pass) adds up to "
                       f"F(x) - F(0) to {_sci(err)}")
    if regular in results and results[regular].get("completeness"):
        err = results[regular]["completeness"]["rel_error"]
        if not math.isfinite(err):  # e.g. NaN weights: no percentage, no "only"
            finding.append("on the **regular** model Input x Gradient's completeness error is "
                           f"{_sci(err)} (not finite)")
        elif err >= 0.005:
            finding.append(f"on the **regular** model Input x Gradient misses F(x) - F(0) by "
                           f"{err:.0%}")
        else:
            finding.append(f"on the **regular** model Input x Gradient misses F(x) - F(0) by "
                           f"only {_sci(err)} on this input")
    if finding:
        s = "; ".join(finding)
        out.append(s[0].upper() + s[1:] + ": biases break the homogeneity that makes one "
                   "gradient enough.")
    else:
        out.append("Select Input x Gradient and Integrated Gradients with both variants (the "
                   "defaults) to see one gradient pass match IG on the bias-free model.")
    out.append(f"Look at the pairs of panels side by side, then at the completeness table "
               f"below. Why: [the paper]({PAPER_URL}) and the docs (`{DOCS_PATH}` in the "
               "repository).")
    return out
