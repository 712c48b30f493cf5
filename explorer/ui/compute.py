"""Cached computation for the app: models once per process, results per input and settings.

Models are shared between sessions (``st.cache_resource``) and never mutated after loading;
results are cached (``st.cache_data``) on everything that changes them and nothing that does not,
so display settings re-render without recomputing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st
import torch

import explorer
from explorer.methods.path import adaptive_note
from explorer.timing import measure_method

VARIANTS = {"regular": False, "bias-free": True}


@dataclass(frozen=True)
class Loaded:
    entry: explorer.ZooEntry
    warning: str | None  # why pretrained weights could not be had, if so


@st.cache_resource(show_spinner="Loading model (downloading weights on first use)...", max_entries=8)
def get_model(name: str, bias_free: bool) -> Loaded:
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
    x = _x.to(entry.device)
    with torch.no_grad():
        # float32 on the device (MPS has no float64), widened on the CPU
        probs = torch.softmax(entry.module(x).float(), 1)[0].cpu().double()
    top = probs.topk(min(5, probs.numel()))
    return {
        "probs": probs.numpy(),
        "top": [(int(i), entry.labels[int(i)], float(p)) for p, i in zip(top.values, top.indices)],
        "homogeneity_error": explorer.homogeneity_error(entry.module, x),
        "obstacles": [(o.layer, o.type, o.reason) for o in explorer.homogeneity_obstacles(entry.module)],
    }


@st.cache_data(show_spinner=False, max_entries=512)
def run_method(name: str, bias_free: bool, method: str, params: tuple, image_key: str,
               baseline_key: str, target: int, repeats: int,
               _x: torch.Tensor, _baseline: torch.Tensor | None) -> dict:
    """One method on one variant: attributions, completeness and honest timing.

    Pass/fail is not decided here: the tolerance is a display setting (see the app)."""
    entry = get_model(name, bias_free).entry
    device = entry.device
    x = _x.to(device)
    baseline = None if _baseline is None else _baseline.to(device)
    m = measure_method(method, entry.module, x, target, baseline=baseline, repeats=repeats,
                       warmup=1, **dict(params))
    e = m.result
    record = {
        "attributions": e.attributions[0].float().cpu().numpy(),
        "median_ms": m.timing.median_s * 1e3,
        "forward_passes": m.forward_per_input,
        "backward_passes": m.backward_per_input,
        "device": str(device),
        "completeness": None,
        "note": adaptive_note(e.info),  # e.g. adaptive IG stopped by its cap
    }
    if e.references is not None:
        report = explorer.completeness(entry.module, x, e.attributions, target, e.references)
        record["completeness"] = report.rows()[0]
    return record


@st.cache_data(show_spinner=False, max_entries=8)
def background_for(name: str) -> torch.Tensor:
    """Expected gradients' references: bundled training digits, or the sample photos."""
    from explorer.data import sample_digits, sample_photos
    entry = get_model(name, False).entry
    if entry.spec.channels == 1:
        return torch.from_numpy(sample_digits()["background"]).float() / 255
    return torch.stack([entry.preprocess(p) for p in sample_photos().values()])

