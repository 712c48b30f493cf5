"""The axiom lab: each attribution axiom measured as a number against a tolerance.

``check_axioms(method, ...)`` runs every check for one registered method. Each check is also a
plain function over an *attributor* ``(model, x, target, baseline) -> (attributions,
references)``, so a rule that is not a registered method can be checked the same way.
Checks read on the current model say so; the others use the small constructed networks of
``explorer.axiom_networks`` (where the right answer is known) and say that instead.
"""
from __future__ import annotations

import functools

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from explorer import axiom_networks as nets
from explorer.checks import DEFAULT_RTOL, completeness
from explorer.errors import InputError
from explorer.homogeneous import homogeneity_error, is_bias_free
from explorer.methods import explain, get_method
from explorer.methods.core import (check_baseline, check_input, check_target, on_model_device,
                                   run_model, select_target)
from explorer.methods.modified import ELEMENTWISE
from explorer.report import verdict
from explorer.precision import under_precision

CURRENT = "current model"
Attributor = Callable[[nn.Module, torch.Tensor, Any, "torch.Tensor | None"],
                      "tuple[torch.Tensor, torch.Tensor | None]"]

INVARIANCE_RTOL = 1e-3   # float32 twins: rounding differs, the function does not
LINEARITY_RTOL = 1e-4
SYMMETRY_RTOL = 1e-5
DUMMY_RTOL = 1e-6
SENSITIVITY_MIN = 1e-6   # |attribution| / |F(x) - F(baseline)| below this counts as zero
HOMOGENEITY_RTOL = 1e-4
LINEAR_WEIGHTS = (1.0, -0.5)  # F = a F1 + b F2: a negative b exposes rules like |gradient|


@dataclass(frozen=True)
class AxiomResult:
    """One axiom for one method: a number, a tolerance and one plain sentence."""

    name: str
    holds: bool | None          # None: the method cannot run on that network or input
    value: float
    tolerance: float
    explanation: str
    measured_on: str            # "current model" or the constructed network's formula
    passes_when: str = "value <= tolerance"

    @property
    def constructed(self) -> bool:
        return self.measured_on != CURRENT

    def row(self) -> dict:
        return asdict(self)


def _relative(diff: torch.Tensor, scale: torch.Tensor) -> float:
    return float(diff.abs().max() / scale.abs().max().clamp_min(torch.finfo(scale.dtype).tiny))


def method_attributor(method: str, hparams: dict | None = None, *, small: bool = False) -> Attributor:
    """A registered method as an attributor; ``small``: occlusion of single features (for the
    constructed networks with a handful of inputs)."""
    spec = get_method(method)
    params = dict(hparams or {})
    if small and method == "occlusion":
        params.update(window=1, stride=1)

    def attribute(model, x, target, baseline):
        if spec.name == "expected_gradients" and baseline is not None and baseline.shape == x.shape:
            baseline = baseline[:1]  # a single reference as EG's background
        e = explain(method, model, x, target, baseline=baseline, **params)
        return e.attributions, e.references
    return attribute


def _not_applicable(name: str, err: InputError, measured_on: str, tolerance: float) -> AxiomResult:
    return AxiomResult(name, None, float("nan"), tolerance,
                       f"Cannot be measured here: {err}", measured_on)


# --- on the current model -------------------------------------------------------------------

def check_completeness(attr: Attributor, model, x, target, baseline=None, *,
                       promise: str = "none", rtol: float = DEFAULT_RTOL) -> AxiomResult:
    """sum of attributions = F(x) - F(reference); the reference is the method's own, else the
    baseline (zeros when none)."""
    a, refs = attr(model, x, target, baseline)
    report = completeness(model, x, a, target, refs if refs is not None else baseline)
    undefined = report.relative_undefined()
    if bool(undefined.all()):  # F(x) = F(baseline) exactly: judged by the absolute error
        value = float(report.abs_error.max())
        ok = value <= rtol
        return AxiomResult("completeness", ok, value, rtol, (
            f"F(x) - F(baseline) is exactly 0, so the relative error is undefined; the sum's "
            f"absolute error is {value:.1e}, {'within' if ok else 'above'} {rtol:g}."), CURRENT)
    value = float(report.rel_error[~undefined].max())
    ok = value <= rtol and bool(report.passed(rtol).all())
    if ok:
        text = f"The attributions add up to F(x) - F(baseline) (relative error {value:.1e})."
    elif promise == "none":
        text = (f"The method promises no completeness: its sum misses F(x) - F(baseline) by "
                f"{value:.0%}.")
    else:
        text = f"The sum misses F(x) - F(baseline) by {value:.1e}: {verdict(value, rtol, promise)}."
    return AxiomResult("completeness", ok, value, rtol, text, CURRENT)


def _one_reference(baseline, x: torch.Tensor) -> torch.Tensor:
    """The baseline as one point per input; a background set [M, ...] becomes its mean."""
    if isinstance(baseline, torch.Tensor) and baseline.dim() == x.dim() \
            and baseline.shape[0] not in (1, x.shape[0]):
        baseline = baseline.mean(0, keepdim=True)
    return check_baseline(baseline, x, "sensitivity")


@torch.no_grad()
def _one_feature_inputs(model, x, t, b, candidates: int = 16):
    """Per input: b with one feature set to x's value, the feature whose change moves F most
    among the ``candidates`` features where x and b differ most."""
    n = x.shape[0]
    flat_x, flat_b = x.reshape(n, -1), b.reshape(n, -1)
    k = min(candidates, flat_x.shape[1])
    feats = (flat_x - flat_b).abs().topk(k, dim=1).indices                 # [N, k]
    trial = flat_b.unsqueeze(1).repeat(1, k, 1)                              # [N, k, D]
    trial.scatter_(2, feats.unsqueeze(2), flat_x.gather(1, feats).unsqueeze(2))
    f_base = select_target(run_model(model, b), t)
    rows = torch.arange(n, device=x.device).repeat_interleave(k)
    f_trial = select_target(run_model(model, trial.reshape(n * k, *x.shape[1:])), t[rows]).view(n, k)
    best = (f_trial - f_base[:, None]).abs().argmax(1)
    pick = torch.arange(n, device=x.device)
    inputs = trial[pick, best].reshape(x.shape)
    return inputs, feats[pick, best], f_trial[pick, best] - f_base


def check_sensitivity(attr: Attributor, model, x, target, baseline=None) -> AxiomResult:
    """Sensitivity (a) on the current model: an input that differs from the baseline in one
    feature (the one among the largest differences that moves F most) and has a different
    output must get a non-zero attribution on that feature."""
    name = "sensitivity (a)"
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    b = _one_reference(baseline, x)
    inputs, feature, delta = _one_feature_inputs(model, x, t, b)
    moved = x.reshape(x.shape[0], -1).gather(1, feature[:, None]) != \
        b.reshape(x.shape[0], -1).gather(1, feature[:, None])
    # A change within float noise of F (batched convolutions round differently) is no change.
    with torch.no_grad():
        noise = 1e-6 * select_target(run_model(model, b), t).abs().clamp_min(1.0)
    if not bool(moved.all()) or bool((delta.abs() <= noise).any()):
        return AxiomResult(name, None, float("nan"), SENSITIVITY_MIN,
                           "No single feature changes the output here: nothing to test.",
                           CURRENT, "value >= tolerance")
    a, _ = attr(model, inputs, target, b)
    share = a.reshape(x.shape[0], -1).gather(1, feature[:, None])[:, 0].abs() / delta.abs()
    value = float(share.min())
    ok = value >= SENSITIVITY_MIN
    text = (f"Changing one feature moves F by {float(delta.abs().min()):.3g}; its attribution is "
            f"{value:.2g} of that change" + ("." if ok else ": the feature is wrongly ignored."))
    return AxiomResult(name, ok, value, SENSITIVITY_MIN, text, CURRENT, "value >= tolerance")


def check_invariance_on_model(attr: Attributor, model, x, target, baseline=None,
                              scale: float = 3.0) -> AxiomResult:
    """Implementation invariance against a copy of the model rescaled across a ReLU."""
    name = "implementation invariance"
    found = nets.rescaled_twin(model, check_input(x, model), scale)
    if found is None:
        return AxiomResult(name, None, float("nan"), INVARIANCE_RTOL,
                           "No two weighted layers joined by ReLU-like layers to rescale.", CURRENT)
    twin, how = found
    a, _ = attr(model, x, target, baseline)
    b, _ = attr(twin, x, target, baseline)
    value = _relative(a - b, a)
    ok = value <= INVARIANCE_RTOL
    text = (f"A twin computing the same function ({how}) gets "
            + ("the same map." if ok else f"a map that differs by {value:.1%} of the largest value."))
    return AxiomResult(name, ok, value, INVARIANCE_RTOL, text, CURRENT)


def check_linearity(attr: Attributor, model, x, target, baseline=None,
                    weights: tuple[float, float] = LINEAR_WEIGHTS) -> AxiomResult:
    """attr(a F1 + b F2) = a attr(F1) + b attr(F2); F1 the target, F2 the other top logit."""
    x = check_input(x, model)
    t = check_target(target, x.shape[0], x.device)
    with torch.no_grad():
        logits = run_model(model, x)
    classes = logits.shape[1]
    if classes < 2:
        return AxiomResult("linearity", None, float("nan"), LINEARITY_RTOL,
                           "The model has one logit: there is no second function to mix.", CURRENT)
    w1 = t.to(logits.dtype) if t.is_floating_point() else \
        torch.nn.functional.one_hot(t, classes).to(logits.dtype)
    other = logits.masked_fill(w1 != 0, float("-inf")).argmax(1)
    w2 = torch.nn.functional.one_hot(other, classes).to(logits.dtype)
    a, b = weights
    mixed, _ = attr(model, x, a * w1 + b * w2, baseline)
    one, _ = attr(model, x, w1, baseline)
    two, _ = attr(model, x, w2, baseline)
    expected = a * one + b * two
    value = _relative(mixed - expected, (a * one).abs() + (b * two).abs())
    ok = value <= LINEARITY_RTOL
    text = (f"The map of {a:g} F1 {b:+g} F2 (F1 the target logit, F2 the next-highest) "
            + ("is the same mix of their maps." if ok
               else f"differs from the same mix of their maps by {value:.1%}."))
    return AxiomResult("linearity", ok, value, LINEARITY_RTOL, text, CURRENT)


def check_homogeneity(model, x) -> AxiomResult:
    """F(a x) = a F(x) for a > 0: a property of the model, the same for every method."""
    value = homogeneity_error(model, check_input(x, model))
    ok = value <= HOMOGENEITY_RTOL
    text = ("The model is homogeneous: F(a x) = a F(x), so Input x Gradient from one pass equals "
            "IG from the zero baseline." if ok else
            f"The model is not homogeneous (F(a x) differs from a F(x) by {value:.1e} relative), "
            "e.g. because of its biases.")
    return AxiomResult("homogeneity (of the model)", ok, value, HOMOGENEITY_RTOL, text, CURRENT)


# --- on constructed networks ----------------------------------------------------------------

def check_sensitivity_constructed(attr: Attributor) -> AxiomResult:
    """Sensitivity (a) on 1 - ReLU(1 - x), where the gradient at x is zero."""
    case = nets.saturating_unit()
    name = "sensitivity (a)"
    try:
        a, _ = attr(case.model, case.x, 0, case.baseline)
    except InputError as err:
        return _not_applicable(name, err, case.title, SENSITIVITY_MIN)
    value = float(a.abs().max())  # F(x) - F(baseline) = 1
    ok = value >= SENSITIVITY_MIN
    text = (f"F goes from 0 to 1 with x alone changing; x gets {float(a.flatten()[0]):.3g}"
            + ("." if ok else ": a flat gradient at x hides it."))
    return AxiomResult(name, ok, value, SENSITIVITY_MIN, text, case.title, "value >= tolerance")


def _pair_difference(attr: Attributor, pair, what: str) -> AxiomResult:
    name = "implementation invariance"
    first, second = pair
    on = f"{first.title} vs {second.title}"
    try:
        a, _ = attr(first.model, first.x, 0, first.baseline)
        b, _ = attr(second.model, second.x, 0, second.baseline)
    except InputError as err:
        return _not_applicable(name, err, on, INVARIANCE_RTOL)
    value = _relative(a - b, torch.cat([a, b]))
    ok = value <= INVARIANCE_RTOL
    show = lambda t: "(" + ", ".join(f"{v:.3g}" for v in t.flatten().tolist()) + ")"
    text = (f"Two {what} computing the same function get {show(a)} and {show(b)}"
            + ("." if ok else ": the attribution depends on the implementation."))
    return AxiomResult(name, ok, value, INVARIANCE_RTOL, text, on)


def check_invariance_relu_pair(attr: Attributor) -> AxiomResult:
    return _pair_difference(attr, nets.relu_pair(), "ReLU networks")


def check_invariance_sigmoid_pair(attr: Attributor) -> AxiomResult:
    return _pair_difference(attr, nets.sigmoid_pair(), "sigmoid networks")


def check_symmetry(attr: Attributor) -> AxiomResult:
    """Symmetric inputs of a function symmetric in them get equal attributions."""
    case = nets.symmetric_with_dummy()
    try:
        a, _ = attr(case.model, case.x, 0, case.baseline)
    except InputError as err:
        return _not_applicable("symmetry-preserving", err, case.title, SYMMETRY_RTOL)
    a = a.flatten()
    value = float((a[0] - a[1]).abs() / a[:2].abs().max().clamp_min(1e-30))
    ok = value <= SYMMETRY_RTOL
    text = (f"x1 = x2 and F is symmetric in them; they get {float(a[0]):.4g} and {float(a[1]):.4g}"
            + ("." if ok else ": symmetry is broken."))
    return AxiomResult("symmetry-preserving", ok, value, SYMMETRY_RTOL, text, case.title)


def check_dummy(attr: Attributor) -> AxiomResult:
    """A feature F does not depend on (though wired in) gets zero attribution."""
    case = nets.symmetric_with_dummy()
    try:
        a, _ = attr(case.model, case.x, 0, case.baseline)
    except InputError as err:
        return _not_applicable("dummy", err, case.title, DUMMY_RTOL)
    a = a.flatten()
    value = float(a[2].abs() / a.abs().max().clamp_min(1e-30))
    ok = value <= DUMMY_RTOL
    text = (f"F does not depend on x3; x3 gets {float(a[2]):.3g}"
            + ("." if ok else ", credit for a feature that does nothing."))
    return AxiomResult("dummy", ok, value, DUMMY_RTOL, text, case.title)


# --- curves and the unified view ------------------------------------------------------------

@dataclass
class HomogeneityCurves:
    """F(a x) and a F(x) of the target logit over the scales a, per model variant."""

    scales: torch.Tensor            # [S]
    outputs: dict[str, torch.Tensor]   # variant -> [N, S] F(a x)
    linear: dict[str, torch.Tensor]    # variant -> [N, S] a F(x)


@torch.no_grad()
def homogeneity_curves(models: dict[str, nn.Module], x: torch.Tensor, target,
                       scales=tuple(i / 10 for i in range(21))) -> HomogeneityCurves:
    """F(a x) against a F(x) for each named model (e.g. regular and bias-free), batched; the
    curves are on x's device, whichever device each model is on."""
    x = check_input(x)
    t = check_target(target, x.shape[0], x.device)
    a = torch.tensor(scales, dtype=x.dtype, device=x.device)
    if a.dim() != 1 or (a < 0).any():
        raise InputError(f"homogeneity scales must be >= 0, got {list(scales)}")
    n, s = x.shape[0], a.shape[0]
    view = (1, -1) + (1,) * (x.dim() - 1)
    scaled = (x.unsqueeze(1) * a.view(view)).reshape(n * s, *x.shape[1:])
    outputs, linear = {}, {}
    for name, model in models.items():
        on = functools.partial(on_model_device, model)
        outputs[name] = select_target(run_model(model, on(scaled)),
                                      on(t).repeat_interleave(s, 0)).view(n, s).to(x.device)
        linear[name] = select_target(run_model(model, on(x)), on(t)).to(x.device)[:, None] * a[None, :]
    return HomogeneityCurves(a, outputs, linear)


def _is_relu_network(model: nn.Module) -> bool:
    acts = [m for m in model.modules() if isinstance(m, ELEMENTWISE)]
    return bool(acts) and all(type(m) is nn.ReLU for m in acts)


# Ancona et al.'s pairs measured on the current model: (pair, theory, method compared with
# Input x Gradient, whether the theory needs a bias-free model too).
UNIFIED_PAIRS = (
    ("epsilon-LRP vs Input x Gradient", "equal on ReLU networks (eps -> 0)", "epsilon_lrp", False),
    ("DeepLIFT (zero baseline) vs Input x Gradient", "equal on bias-free ReLU networks",
     "deeplift", True),
)
LEFT_OUT = "left out: "


def unified_view(models: dict[str, nn.Module], x: torch.Tensor, target, *,
                 max_features: int = 4096) -> list[dict]:
    """Ancona et al.'s equivalences measured: for each named model, the relative distance
    max|A - B| / max|B| between methods the theory says coincide, and whether it applies.

    A method that cannot run on a model (``applies_to``, e.g. epsilon-LRP has no rule for a
    ViT's LayerNorm) leaves its pair out: a row with ``coincide`` None, no distance, and
    "left out: <why>" as its theory (``left_out_notes`` words them); the other pairs still run."""
    x = check_input(x)
    rows = []

    def row(pair, variant, theory, applies, a, b):
        value = _relative(a - b, b)
        rows.append({"pair": pair, "model": variant, "theory": theory, "applies": applies,
                     "distance": value, "coincide": value <= INVARIANCE_RTOL})

    def left_out(pair, variant, why):
        rows.append({"pair": pair, "model": variant, "theory": why, "applies": False,
                     "distance": float("nan"), "coincide": None})

    for variant, model in models.items():
        x = on_model_device(model, x)  # explain would move it back and forth for each method
        ixg = explain("input_x_gradient", model, x, target).attributions
        relu = _is_relu_network(model)
        for pair, theory, method, needs_bias_free in UNIFIED_PAIRS:
            try:
                other = explain(method, model, x, target).attributions
            except InputError as err:  # applies_to, or a rule refused while running
                left_out(pair, variant, f"{LEFT_OUT}{err}")
                continue
            row(pair, variant, theory, relu and (is_bias_free(model) or not needs_bias_free),
                other, ixg)
        pixels = x[0, 0].numel() if x.dim() >= 3 else x.shape[1]
        pair = "Occlusion-1 vs Sensitivity-1 (output drop, one feature removed)"
        if pixels <= max_features:
            occ = explain("occlusion", model, x, target, window=1, stride=1,
                          batch_size=256).attributions
            row(pair, variant, "equal by construction", True, occ,
                _single_feature_drops(model, x, target))
        else:
            left_out(pair, variant, f"skipped: {pixels} pixels (more than {max_features})")
    return rows


def left_out_notes(rows: list[dict]) -> list[str]:
    """One sentence per pair ``unified_view`` left out or skipped, and why, the models with
    the same reason named together: "epsilon-LRP vs Input x Gradient (regular and bias-free
    models): epsilon-LRP cannot run on this model: no modified-gradient rule for LayerNorm ..."."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["coincide"] is None:
            why = r["theory"][len(LEFT_OUT):] if r["theory"].startswith(LEFT_OUT) else r["theory"]
            grouped.setdefault((r["pair"], why), []).append(r["model"])
    plural = lambda models: "model" if len(models) == 1 else "models"
    return [f"{pair} ({' and '.join(models)} {plural(models)}): {why}"
            for (pair, why), models in grouped.items()]


@torch.no_grad()
def _single_feature_drops(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """F(x) - F(x with one pixel, all channels, set to 0), written out per pixel; x's shape."""
    n = x.shape[0]
    t = check_target(target, n, x.device)
    spatial = x.shape[2:] if x.dim() >= 3 else x.shape[1:]
    d = int(torch.tensor(spatial).prod())
    clean = select_target(run_model(model, x), t)
    drops = torch.empty(n, d, dtype=x.dtype, device=x.device)
    eye = torch.eye(d, dtype=torch.bool, device=x.device)
    for lo in range(0, d, 256):
        mask = eye[lo:lo + 256].view(-1, *([1] if x.dim() >= 3 else []), *spatial)
        for i in range(n):
            removed = torch.where(mask, torch.zeros((), dtype=x.dtype), x[i:i + 1])
            drops[i, lo:lo + mask.shape[0]] = clean[i] - select_target(
                run_model(model, removed), t[i:i + 1].expand(mask.shape[0], *t.shape[1:]))
    shape = (n, 1, *spatial) if x.dim() >= 3 else (n, *spatial)
    return drops.view(shape).expand_as(x)


# --- the side-by-side table ------------------------------------------------------------------

def mark(result: AxiomResult) -> str:
    """A table cell: pass/fail mark and the measured value."""
    if result.holds is None:
        return "n/a"
    return f"{'✓' if result.holds else '✗'} {result.value:.2g}"


def axiom_table(results: dict[str, list[AxiomResult]]) -> list[dict]:
    """One row per (axiom, network it is measured on), one column per method label."""
    rows: dict[tuple[str, str], dict] = {}
    for label, found in results.items():
        for r in found:
            row = rows.setdefault((r.name, r.measured_on), {
                "axiom": r.name, "measured on": r.measured_on,
                "passes when": r.passes_when.replace("tolerance", f"{r.tolerance:g}")})
            row[label] = mark(r)
    return list(rows.values())


def not_applicable_notes(results: dict[str, list[AxiomResult]]) -> list[str]:
    """Why each "n/a" cell is n/a, from the results themselves: one line per distinct reason,
    naming the axiom and the methods it applies to."""
    reasons: dict[tuple[str, str], list[str]] = {}
    for label, found in results.items():
        for r in found:
            if r.holds is None:
                reasons.setdefault((r.name, r.explanation), []).append(label)
    return [f"{name} ({', '.join(labels)}): {why}" for (name, why), labels in reasons.items()]


# --- all of them ----------------------------------------------------------------------------

@under_precision
def check_axioms(method: str, model: nn.Module, x: torch.Tensor, target, *,
                 baseline: torch.Tensor | None = None, **hparams: Any) -> list[AxiomResult]:
    """Every axiom for ``method`` (with ``hparams``) on ``model``, ``x``, ``target`` and
    ``baseline``, plus the constructed networks; in a fixed order."""
    spec = get_method(method)
    spec.resolve(hparams)  # unknown or out-of-range hyper-parameters fail before any work
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise InputError("the model is in training mode: call model.eval() before checking axioms")
    x = check_input(x, model)
    with torch.no_grad():  # a bad target or an input the model cannot take fails here, once
        select_target(run_model(model, x), check_target(target, x.shape[0], x.device))
    on_model = method_attributor(method, hparams)
    small = method_attributor(method, hparams, small=True)
    base = baseline if spec.uses_baseline else None
    on_current = (
        ("completeness", lambda: check_completeness(on_model, model, x, target, base,
                                                    promise=spec.completeness)),
        ("sensitivity (a)", lambda: check_sensitivity(on_model, model, x, target, base)),
        ("implementation invariance",
         lambda: check_invariance_on_model(on_model, model, x, target, base)),
        ("linearity", lambda: check_linearity(on_model, model, x, target, base)),
    )
    results = []
    for name, check in on_current:
        try:
            results.append(check())
        except InputError as err:  # e.g. Grad-CAM on a model without convolutions
            results.append(_not_applicable(name, err, CURRENT, float("nan")))
    results += [check_sensitivity_constructed(small), check_invariance_relu_pair(small),
                check_invariance_sigmoid_pair(small), check_symmetry(small), check_dummy(small),
                check_homogeneity(model, x)]
    return results

