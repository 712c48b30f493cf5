"""The sidebar: every control, with method widgets generated from the registry's metadata."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st
import torch

import explorer
from explorer.baselines import BASELINES
from explorer.checks import DEFAULT_RTOL
from explorer.methods.registry import MethodSpec, Param

DEFAULT_MODEL = "digits-cnn"
DEFAULT_METHODS = ["input_x_gradient", "integrated_gradients", "expected_gradients", "saliency"]
VARIANT_CHOICES = {"Both, side by side": ("regular", "bias-free"), "Regular only": ("regular",),
                   "Bias-free only": ("bias-free",)}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]


@dataclass
class Settings:
    model: str
    variants: tuple[str, ...]
    methods: list[str]
    params: dict[str, dict] = field(default_factory=dict)
    baseline: str = "zero"
    baseline_upload: object = None
    shared_scale: bool = True
    clip_percentile: float = 99.5
    overlay: bool = False
    repeats: int = 3
    rtol: float = DEFAULT_RTOL


def _model_label(name: str) -> str:
    spec = explorer.MODELS[name]
    where = {"bundled": "bundled, trained, offline", "imagenet": "ImageNet, downloads weights",
             "paper": "X-DNN paper, downloads weights"}[spec.family]
    return f"{spec.label} ({where})"


def param_widget(spec: MethodSpec, p: Param):
    key = f"param.{spec.name}.{p.name}"
    if p.choices is not None:
        return st.selectbox(p.name, p.choices, index=p.choices.index(p.default), key=key, help=p.help)
    if p.kind is bool:
        return st.checkbox(p.name, value=p.default, key=key, help=p.help)
    if p.kind is str:
        return st.text_input(p.name, value=p.default, key=key, help=p.help)
    if p.kind is int:
        return int(st.number_input(p.name, min_value=int(p.min), max_value=int(p.max),
                                   value=int(p.default), step=1, key=key, help=p.help))
    return float(st.number_input(p.name, min_value=float(p.min), max_value=float(p.max),
                                 value=float(p.default), step=(p.max - p.min) / 100 or 0.01,
                                 format="%.4g", key=key, help=p.help))


def sidebar(device: torch.device) -> Settings:
    sb = st.sidebar
    with sb:
        st.header("Model")
        names = sorted(explorer.MODELS, key=lambda n: (explorer.MODELS[n].family != "bundled", n))
        model = st.selectbox("Model", names, index=names.index(DEFAULT_MODEL),
                             format_func=_model_label, key="model")
        variant_label = st.radio("Bias removal", list(VARIANT_CHOICES), key="variants",
                                 help="Compare the regular network with its bias-free twin (X-DNN).")

        st.header("Attribution")
        methods = st.multiselect(
            "Methods", list(explorer.METHODS), default=DEFAULT_METHODS, key="methods",
            format_func=lambda m: explorer.METHODS[m].label
            + (" / X-Gradient" if explorer.METHODS[m].bias_free_label else ""))
        params = {}
        model_spec = explorer.MODELS[model]
        shape = (1, model_spec.channels, model_spec.size, model_spec.size)
        for m in methods:
            spec = explorer.METHODS[m]
            if not spec.params:
                continue
            with st.expander(f"{spec.label} settings"):
                params[m] = {p.name: param_widget(spec, p) for p in spec.params}
                try:
                    resolved = spec.resolve(params[m])
                    cost = spec.cost(resolved, shape)
                    bound = "" if spec.is_cost_exact(resolved) else "at most "
                    st.caption(f"Cost per input: {bound}{cost.forward:,.0f} forward and "
                               f"{cost.backward:,.0f} backward passes")
                except explorer.InputError as err:
                    st.caption(f"{err}")
        baseline_names = [n for n in BASELINES if n != "image"] + ["image"]
        baseline = st.selectbox(
            "Baseline", baseline_names, key="baseline",
            format_func=lambda n: "Upload an image..." if n == "image" else BASELINES[n].label,
            help="The reference input x' for IG and the fill of occlusion. Expected gradients "
                 "draws its references from a background set of the model's domain instead.")
        if baseline in BASELINES:
            st.caption(BASELINES[baseline].description)
        upload = None
        if baseline == "image":
            upload = st.file_uploader("Baseline image", type=UPLOAD_TYPES, key="baseline_upload")

        st.header("Display")
        shared = st.toggle("One colour scale for all panels", value=True, key="shared_scale")
        clip = st.slider("Clip outliers at percentile", 90.0, 100.0, 99.5, 0.1, key="clip")
        overlay = st.toggle("Overlay on the input", value=False, key="overlay")

        st.header("Checks and timing")
        rtol = st.select_slider("Completeness tolerance (relative)", [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
                                value=DEFAULT_RTOL, key="rtol", format_func=lambda v: f"{v:g}")
        # Bundled models time in milliseconds; ImageNet models on a CPU take seconds per call.
        bundled = explorer.MODELS[model].family == "bundled"
        repeats = int(st.number_input("Timing repeats (median, after 1 warm-up)", 1, 20,
                                      3 if bundled else 1, key=f"repeats-{bundled}"))
        st.caption(f"Computing on **{device}**"
                   + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
                   + f" · torch {torch.__version__}")
    return Settings(model, VARIANT_CHOICES[variant_label], methods, params, baseline, upload,
                    shared, clip, overlay, repeats, rtol)
