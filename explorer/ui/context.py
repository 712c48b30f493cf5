"""The selections every page shares: model, variants, input, target, methods, baseline.

``build()`` runs once per script run, from the entry point, before the page: it draws the shared
part of the sidebar (widgets keyed here keep their values across pages) and stores a ``Context``
for the session. A page calls ``current()`` and reads what it needs::

    ctx = context.current()          # stops the page with a message if the model did not load
    ctx.model, ctx.variants          # "digits-cnn", ("regular", "bias-free")
    ctx.loaded[v].entry              # the zoo entry of variant v (and .warning if untrained)
    ctx.x, ctx.target                # the input batch [1, ...] on the CPU, the explained class
    ctx.methods, ctx.params[m]       # selected method names, their hyper-parameters
    ctx.baseline_for(m)              # (tensor or None, cache key) to pass to that method
    ctx.budget_s                     # seconds of work a page may start without asking
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explorer
from explorer.inputs.baselines import BASELINES, make_baseline
from explorer.inputs.data import sample_digits, sample_photos
from explorer.methods.registry import not_applicable
from explorer.ui import sharing, view_settings, your_model
from explorer.ui.compute import (VARIANTS, Loaded, background_for, digest, get_model,
                                 is_session_model, model_facts, model_spec, model_variants)

DEFAULT_MODEL = "digits-cnn"
DEFAULT_METHODS = ["input_x_gradient", "integrated_gradients", "expected_gradients", "saliency"]
VARIANT_CHOICES = {"Both, side by side": ("regular", "bias-free"), "Regular only": ("regular",),
                   "Bias-free only": ("bias-free",)}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]
_KEY = "_explorer_context"
SESSION_MODELS = "session_models"  # names of models trained in this session (Priors page)


@dataclass
class Context:
    model: str
    variants: tuple[str, ...]
    loaded: dict[str, Loaded]
    image_bytes: bytes
    input_name: str
    image_key: str          # cache key of (model, input)
    x: torch.Tensor         # [1, ...] on the CPU
    facts: dict[str, dict]  # per variant: probs, top-5, homogeneity error, obstacles
    target: int
    methods: list[str]
    params: dict[str, dict]
    baseline_name: str
    baseline_key: str
    baseline: torch.Tensor  # [1, ...] for x
    device: torch.device
    notes: list[str] = field(default_factory=list)
    budget_s: float = 15.0  # the app's compute budget: above it a page asks before running
    baseline_sigma: float | None = None  # the sidebar's width for blur / noise baselines
    precision: str = "float32"  # explorer.runtime.precision.PRECISIONS: every page computes in it
    # Every registered method that cannot run on the models shown (registry ``applies_to``),
    # with the reason: the sidebar marks them, the pages leave them out.
    cannot: dict[str, str] = field(default_factory=dict)

    @property
    def entry(self) -> explorer.ZooEntry:
        return self.loaded[self.variants[0]].entry

    def runnable(self) -> tuple[list[str], dict[str, str]]:
        """The chosen methods that can run on the models shown, and why each other one cannot."""
        reasons = {m: self.cannot[m] for m in self.methods if m in self.cannot}
        return [m for m in self.methods if m not in reasons], reasons

    def keyed(self, variant: str) -> tuple:
        """What the cached page functions of one variant are keyed on first: (model, bias_free,
        image_key, baseline_key, target)."""
        return (self.model, VARIANTS[variant], self.image_key, self.baseline_key, self.target)

    @staticmethod
    def bias_free(variant: str) -> bool:
        return VARIANTS[variant]

    def baseline_for(self, method: str) -> tuple[torch.Tensor | None, str]:
        """What to pass as ``baseline`` to ``method``, and its cache key."""
        if method == "expected_gradients":
            return background_for(self.model), "background"
        if explorer.METHODS[method].uses_baseline:
            return self.baseline, self.baseline_key
        return None, "-"

    def hparams(self, method: str) -> tuple:
        """The method's hyper-parameters as a sorted tuple (hashable, for cache keys)."""
        return tuple(sorted(self.params.get(method, {}).items()))


def _png(array_u8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array_u8).save(buf, format="PNG")
    return buf.getvalue()


@st.cache_data(show_spinner=False)
def examples(channels: int) -> dict[str, bytes]:
    """Ready inputs: test digits (clean, then with a random decoy patch), or sample photos."""
    if channels == 1:
        d = sample_digits()
        out = {f"digit {d['labels'][i]} (test #{d['test_index'][i]})": _png(d["clean"][i, 0])
               for i in range(len(d["labels"]))}
        out.update({f"digit {d['labels'][i]} with decoy patch (test #{d['test_index'][i]})":
                    _png(d["decoy"][i, 0]) for i in range(len(d["labels"]))})
        return out
    return {name: path.read_bytes() for name, path in sample_photos().items()}


def _model_label(name: str) -> str:
    spec = model_spec(name)
    if is_session_model(name):
        return f"{spec.label}, trained live in this session ({name.split('@')[1]})"
    where = {"bundled": "bundled, trained, offline", "imagenet": "ImageNet, downloads weights",
             "paper": "X-DNN paper, downloads weights", "custom": "your code",
             "onnx": "ONNX", "timm": "timm, downloads weights"}.get(spec.family, spec.family)
    return f"{spec.label} ({where})"


def param_widget(spec: explorer.methods.MethodSpec, p: explorer.methods.Param):
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


def _choose_input(entry: explorer.ZooEntry,
                  notes: list[str] | None = None) -> tuple[bytes, str, torch.Tensor]:
    """The example picked, or the user's upload when there is a readable one. An upload that
    cannot be used is also added to ``notes`` (shown in the page's main area)."""
    pool = examples(entry.spec.channels)
    names = list(pool)
    if entry.name.startswith("decoy-"):  # show the shortcut first
        names = [n for n in names if "decoy" in n] + [n for n in names if "decoy" not in n]
    key = f"example-{entry.spec.channels}-{entry.name}"
    sharing.seed("input", key, names, "Input")
    choice = st.selectbox("Example input", names, key=key)
    upload = st.file_uploader("...or upload your own image (PNG, JPEG, WebP, BMP)",
                              type=UPLOAD_TYPES, key="upload")
    if upload is not None:
        data = upload.getvalue()
        try:
            x = entry.preprocess(data)[None]
            st.caption(f"Explaining your upload **{upload.name}**; the example above is not used "
                       "while an upload is here.")
            return data, upload.name, x
        except explorer.InputError as err:
            message = f"Could not use **{upload.name}**: {err}. Showing the example instead."
            st.error(message)
            if notes is not None:
                notes.append(message)
    return pool[choice], choice, entry.preprocess(pool[choice])[None]


def _methods(model: str, per_pass: "explorer.PassTime | None" = None,
             cannot: dict[str, str] | None = None) -> tuple[list[str], dict[str, dict]]:
    """The methods chosen and their settings. Methods in ``cannot`` (they cannot run on the
    models shown) stay choosable, marked in the list; the pages leave them out with a note."""
    sharing.seed("methods", "methods", list(explorer.METHODS), "Methods")
    cannot = cannot or {}
    methods = st.multiselect(
        "Methods", list(explorer.METHODS), default=DEFAULT_METHODS, key="methods",
        format_func=lambda m: explorer.METHODS[m].label
        + (" / X-Gradient" if explorer.METHODS[m].bias_free_label else "")
        + (" (not for this model)" if m in cannot else ""),
        help="A method marked 'not for this model' cannot run on it: the pages leave it out "
             "and say why. It stays chosen, and runs again on a model it applies to.")
    params = {}
    zoo = model_spec(model)
    shape = (1, zoo.channels, zoo.size, zoo.size)
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
                seconds = "" if per_pass is None else (
                    f", {bound or 'about '}{explorer.estimate(m, params[m], shape, per_pass).seconds:.3g} s here")
                st.caption(f"Cost per input: {bound}{cost.forward:,.0f} forward and "
                           f"{cost.backward:,.0f} backward passes{seconds}")
            except explorer.InputError as err:
                st.caption(f"{err}")
    return methods, params


def _baseline(entry: explorer.ZooEntry,
              x: torch.Tensor) -> tuple[str, str, torch.Tensor, float | None]:
    names = [n for n in BASELINES if n != "image"] + ["image"]
    sharing.seed("baseline", "baseline", names, "Baseline")
    choice = st.selectbox(
        "Baseline", names, key="baseline",
        format_func=lambda n: "Upload an image..." if n == "image" else BASELINES[n].label,
        help="The reference input x' for IG and the fill of occlusion. Expected gradients "
             "draws its references from a background set of the model's domain instead.")
    name, key, image, sigma = choice, choice, None, None
    if choice in BASELINES and choice != "image":
        st.caption(BASELINES[choice].description)
        spec = BASELINES[choice].sigma
        if spec is not None:
            low, high, default = spec.bounds(tuple(x.shape))
            sigma_key = f"baseline-sigma-{choice}-{high:g}"
            sharing.seed_number("sigma", sigma_key, float(low), float(high), spec.label)
            sigma = float(st.slider(spec.label, float(low), float(high), float(default),
                                    key=sigma_key))
            key = f"{choice}:sigma={sigma:g}"
    if choice == "image":
        name = key = "zero"  # until a readable image is there
        upload = st.file_uploader("Baseline image", type=UPLOAD_TYPES, key="baseline_upload")
        if upload is None:
            st.info("Upload a baseline image; using the zero baseline until then.")
        else:
            data = upload.getvalue()
            try:
                image = entry.preprocess(data)
                name, key = "image", f"image:{digest(data)}"
                st.caption(f"Baseline image resized to the model's input "
                           f"({entry.spec.size} x {entry.spec.size}).")
            except explorer.InputError as err:
                st.error(f"Could not use the baseline image: {err}. Using the zero baseline.")
    return name, key, make_baseline(name, x, input_space=entry.input_space, image=image,
                                    sigma=sigma), sigma


def _per_pass(entry: explorer.ZooEntry, x: torch.Tensor) -> "explorer.PassTime | None":
    """This model's measured seconds per pass (cached per model), None if it cannot be had."""
    try:
        return explorer.pass_time(entry.module, x.shape[1:], device=entry.device)
    except Exception:  # the estimate is a help, never a reason to fail the sidebar
        return None


BUDGET_ENV = "EXPLORER_BUDGET_S"  # the server's default budget in seconds (else 15)


def default_budget() -> float:
    try:
        return min(max(float(os.environ.get(BUDGET_ENV, 15)), 1.0), 3600.0)
    except ValueError:
        return 15.0


def _budget() -> float:
    return float(st.number_input(
        "Compute budget (s)", min_value=1.0, max_value=3600.0, value=default_budget(), step=5.0,
        key="budget_s", help="Work estimated above this (cost model x measured time per pass) "
        "waits for a click on 'Run anyway'; methods under it still run."))


def _precision(device: torch.device) -> str:
    from explorer.runtime.precision import DEFAULT, PRECISIONS, availability
    s = view_settings.BY_NAME["precision"]  # seeded from a link by sharing.start (read early)
    name = st.selectbox(
        "Precision", s.options, index=s.options.index(s.default), key=s.key,
        format_func=lambda n: PRECISIONS[n].label,
        help="The number format every page computes in. float32 (full, TF32 off) is the "
             "default: TF32 and bf16 are faster on a GPU but round enough to make an exact "
             "identity look broken; see the Precision page.")
    if name != DEFAULT:
        st.caption(f"{PRECISIONS[name].label}: {availability(name, device)}. "
                   "Numbers on every page are computed in it and marked.")
    return name


def build() -> Context | None:
    """Draw the shared sidebar and store this run's Context (None if the model cannot load)."""
    st.session_state[_KEY] = None
    device = explorer.default_device()
    with st.sidebar:
        st.header("Model")
        names = sorted(explorer.MODELS, key=lambda n: (explorer.MODELS[n].family != "bundled", n))
        launched = your_model.launched()  # explorer app --model SPEC: the first is the default
        yours = your_model.names(launched)  # and the ONNX files uploaded in this session
        names = yours + [n for n in names if n not in yours]
        names += st.session_state.get(SESSION_MODELS, [])  # trained on the Priors page
        sharing.seed("model", "model", names, "Model")
        model = st.selectbox("Model", names, index=names.index(launched[0] if launched else DEFAULT_MODEL),
                             format_func=_model_label, key="model")
        your_model.onnx_upload()
        sharing.seed("variants", "variants", list(VARIANT_CHOICES), "Bias removal",
                     to_option={v: k for k, v in VARIANT_CHOICES.items()}.get)
        variants = VARIANT_CHOICES[st.radio(
            "Bias removal", list(VARIANT_CHOICES), key="variants",
            help="Compare the regular network with its bias-free twin (X-DNN).")]
        exists = model_variants(model)  # a prior-trained model exists one way only
        if any(VARIANTS[v] not in exists for v in variants):
            variants = tuple(v for v in VARIANTS if VARIANTS[v] in exists)
            st.caption(model_spec(model).variants_note
                       or f"This model was trained {' and '.join(variants)} only.")
        try:
            loaded = {v: get_model(model, VARIANTS[v]) for v in variants}
        except explorer.InputError as err:
            st.error(f"Could not load {model}: {err}")
            return None
        entry = loaded[variants[0]].entry

        st.header("Input")
        notes: list[str] = []
        image_bytes, input_name, x = _choose_input(entry, notes)
        image_key = f"{model}:{digest(image_bytes)}"
        # Every cached result is keyed on the image key: the precision joins it, so a number
        # computed in one precision is never served for another.
        precision = st.session_state.get("precision", "float32")
        if precision != "float32":
            image_key += f":{precision}"
        try:
            facts = {v: model_facts(model, VARIANTS[v], image_key, x) for v in variants}
        except Exception as err:  # e.g. a custom checkpoint that does not run on this input
            st.error(f"{entry.title} could not run on this input: {type(err).__name__}: {err}")
            return None
        probs = facts[variants[0]]["probs"]
        predicted = int(np.argmax(probs))
        sharing.seed("target", f"target-{image_key}", range(len(entry.labels)), "Class")
        target = st.selectbox(
            "Explain the logit of class", list(range(len(entry.labels))), index=predicted,
            key=f"target-{image_key}",
            format_func=lambda k: f"{entry.labels[k]} ("
            + (f"{probs[k]:.1%})" if np.isfinite(probs[k]) else "output not finite)")
            + ("  <- predicted" if k == predicted else ""))

        st.header("Attribution")
        cannot = not_applicable(list(explorer.METHODS), [loaded[v].entry.module for v in variants])
        methods, params = _methods(model, _per_pass(entry, x), cannot)
        baseline_name, baseline_key, baseline, sigma = _baseline(entry, x)
        budget_s = _budget()
        chosen = _precision(device)
        st.caption(f"Computing on **{device}** in **{chosen}**"
                   + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
                   + f" · torch {torch.__version__}")
    ctx = Context(model, variants, loaded, image_bytes, input_name, image_key, x, facts, target,
                  methods, params, baseline_name, baseline_key, baseline, device, budget_s=budget_s,
                  baseline_sigma=sigma, notes=notes, precision=precision, cannot=cannot)
    st.session_state[_KEY] = ctx
    return ctx


def current() -> Context:
    """This run's Context; stops the page (the sidebar says why) when there is none."""
    ctx = st.session_state.get(_KEY)
    if ctx is None:
        st.info("Choose a model and an input in the sidebar.")
        st.stop()
    return ctx
