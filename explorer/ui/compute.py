"""Cached computation for the app: models once per process, results per input and settings.

Models are shared between sessions (``st.cache_resource``) and never mutated after loading;
results are cached (``st.cache_data``) on everything that changes them and nothing that does not,
so display settings re-render without recomputing.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import streamlit as st
import torch

import explorer
from explorer.presentation import report
from explorer.methods.core import reporting_progress
from explorer.methods.path import adaptive_note
from explorer.runtime.precision import precision_scope
from explorer.analyses.checks import run_checked
from explorer.runtime.timing import CLOCKS
from explorer.ui import sessions

VARIANTS = {"regular": False, "bias-free": True}
LONG_CALL_S = 2.0  # a call longer than this is timed once (its own run), never repeated


@dataclass(frozen=True)
class Loaded:
    entry: explorer.ZooEntry
    warning: str | None  # why pretrained weights could not be had, if so


# A model trained in this session (the Priors page) is named "<zoo name>@<variant>@<checkpoint>"
# so that every cached function keyed on a model name serves it like a zoo model.
SESSION_SEP = "@"


def session_model_name(base: str, bias_free: bool, checkpoint: str) -> str:
    return SESSION_SEP.join((base, "bias-free" if bias_free else "regular", checkpoint))


def is_session_model(name: str) -> bool:
    return SESSION_SEP in name and name.split(SESSION_SEP, 1)[0] in explorer.MODELS


def model_spec(name: str) -> explorer.models.ModelSpec:
    """The spec of a model name: zoo, session-trained, or any model spec (your own)."""
    if is_session_model(name):
        return explorer.MODELS[name.split(SESSION_SEP, 1)[0]]
    from explorer.models.spec import model_spec as spec_of
    return spec_of(name)


def model_variants(name: str) -> tuple[bool, ...]:
    """The variants (bias_free flags) a model name has weights for."""
    if is_session_model(name):
        return (name.split(SESSION_SEP)[1] == "bias-free",)
    return tuple(model_spec(name).variants)


@st.cache_resource(show_spinner="Loading model (downloading weights on first use)...", max_entries=8)
def get_model(name: str, bias_free: bool) -> Loaded:
    if is_session_model(name):
        base, _, checkpoint = name.split(SESSION_SEP, 2)
        return Loaded(explorer.load_model(base, bias_free=bias_free, checkpoint=checkpoint), None)
    try:
        return Loaded(explorer.load_model(name, bias_free=bias_free), None)
    except explorer.WeightsUnavailable as err:
        return Loaded(explorer.load_model(name, bias_free=bias_free, pretrained=False), str(err))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@st.cache_data(show_spinner=False, max_entries=64)
def model_facts(name: str, bias_free: bool, image_key: str, _x: torch.Tensor) -> dict:
    """Prediction (top-5), homogeneity error and obstacles of one variant on the input."""
    entry = get_model(name, bias_free).entry
    return report.model_facts(entry.module, entry.labels, _x.to(entry.device))


@st.cache_data(show_spinner=False, max_entries=512)
def run_method(name: str, bias_free: bool, method: str, params: tuple, image_key: str,
               baseline_key: str, target: int,
               _x: torch.Tensor, _baseline: torch.Tensor | None, _progress=None,
               precision: str = "float32") -> dict:
    """One method on one variant: attributions, passes counted, completeness (no timing),
    all in ``precision`` (``explorer.runtime.precision``).

    ``_progress(done, total)`` is called between the method's chunks (raising there stops it).
    Pass/fail is not decided here: the tolerance is a display setting (see the page)."""
    entry = get_model(name, bias_free).entry
    device = entry.device
    x = _x.to(device)
    baseline = None if _baseline is None else _baseline.to(device)
    with reporting_progress(_progress or (lambda done, total: None)), \
            precision_scope(precision, device):
        r = run_checked(method, entry.module, x, target, bias_free=bias_free, baseline=baseline,
                        **dict(params))
    attributions = r.explanation.attributions
    return {
        "attributions": attributions[0].float().cpu().numpy(),
        "forward_passes": r.forward_per_input,
        "backward_passes": r.backward_per_input,
        "device": str(device),
        "completeness": None if r.completeness is None else r.completeness.rows()[0],
        "not_finite": not bool(torch.isfinite(attributions).all()),
        "seconds": r.seconds,  # the one call that made the map (a long call is timed by it)
        "note": adaptive_note(r.explanation.info),  # e.g. adaptive IG stopped by its cap
        "precision": r.explanation.info["precision"],
    }


@st.cache_data(show_spinner=False, max_entries=64)
def time_together(name: str, runs: tuple, image_key: str, target: int, budget_s: float,
                  min_rounds: int, _x: torch.Tensor, _baselines: dict,
                  clock: str = "wall", once: tuple = (), precision: str = "float32") -> list[dict]:
    """Every (method, variant) in ``runs`` and each variant's one-pass limit, timed interleaved.

    ``runs``: ((variant, method, params, baseline_key), ...); ``_baselines``: method -> tensor;
    ``once``: ((variant, method, params, seconds, forward, backward), ...) for long calls already
    timed by the run that made their map (never repeated).
    Cached apart from the attributions: timing never changes them, and only what is timed and
    the timing settings are in the key, so display changes never re-time."""
    models, per_variant = {}, {}
    for variant, method, params, _ in runs:
        entry = get_model(name, VARIANTS[variant]).entry
        models[VARIANTS[variant]] = entry.module
        b = _baselines.get(method)
        per_variant.setdefault(VARIANTS[variant], []).append(
            report.Run(method, dict(params), None if b is None else b.to(entry.device)))
    for variant, method, params, *_ in once:
        models.setdefault(VARIANTS[variant], get_model(name, VARIANTS[variant]).entry.module)
    timed_once = [report.TimedOnce(report.Run(method, dict(params)), VARIANTS[variant], seconds,
                                   fwd, bwd) for variant, method, params, seconds, fwd, bwd in once]
    x = _x.to(next(next(iter(models.values())).parameters()).device)
    # Cached: every session asking for the same timing shares one measurement (streamlit
    # computes a key once while the others wait); the measurement waits for any other
    # session's (explorer.runtime.timing.MEASURING), and says when and under what load it was taken.
    with sessions.most_at_once() as seen, precision_scope(precision, x.device):
        records = report.time_methods(models, per_variant, x, target, budget_s=budget_s,
                                      min_rounds=min_rounds, max_rounds=200, min_time_s=0.01,
                                      once_above_s=LONG_CALL_S, clock=CLOCKS[clock],
                                      timed_once=timed_once)
    when = time.strftime("%H:%M:%S UTC", time.gmtime())  # a cached timing says when it was taken
    return [{**r, "timed_at": when, "concurrent_sessions": max(seen[0], 1)} for r in records]


def timing_note(records: list[dict]) -> str:
    """Under how many sessions at once a page's timing was taken."""
    n = records[0].get("concurrent_sessions") if records else None
    if n is None:
        return ""
    return (f" {n} session{'s' if n != 1 else ''} ran pages on this server meanwhile; one timing "
            "runs at a time server-wide, and identical requests share it.")


@st.cache_data(show_spinner=False, max_entries=16)
def two_routes(image_key: str, _x: torch.Tensor) -> dict:
    """``explorer.analyses.two_routes.compare_routes`` on one digit, with the maps (models from the
    shared cache). ``image_key`` names the digit."""
    from explorer.analyses.two_routes import compare_routes
    return compare_routes(_x.cpu(), load=lambda name, bias_free: get_model(name, bias_free).entry,
                          keep_maps=True)


@st.cache_data(show_spinner=False, max_entries=8)
def background_for(name: str) -> torch.Tensor:
    """Expected gradients' references: bundled training digits, or the sample photos."""
    from explorer.inputs.data import background_set
    return background_set(get_model(name, model_variants(name)[0]).entry)  # a variant it has


def page_seconds(estimate_s: float, min_rounds: int) -> float:
    """Seconds the page spends on a call estimated at ``estimate_s``: the counted call that makes
    the map, then its timing: none more when the call is long (that run is its timing),
    otherwise a warm-up and at least ``min_rounds`` timed rounds."""
    return estimate_s if estimate_s > LONG_CALL_S else estimate_s * (2 + min_rounds)
