"""Your own models in the sidebar: those given to ``explorer app --model SPEC`` and ONNX files
uploaded in this session. The resolving and converting is ``explorer.models.spec``'s and
``explorer.models.onnx_models``'s; this module only draws.
"""
from __future__ import annotations

import json
import os

import streamlit as st

import explorer
from explorer.cli.app import MODELS_ENV
from explorer.models import onnx_models
from explorer.models.spec import InputDescription, register, resolve, with_checkpoint

UPLOADED = "uploaded_models"  # session state: names of the ONNX models uploaded here
NORMALISATIONS = {"pixels in [0, 1]": None,
                  "ImageNet mean/std": (explorer.IMAGENET.mean, explorer.IMAGENET.std),
                  "mean 0.5, std 0.5 per channel": ((0.5,) * 3, (0.5,) * 3)}


def _launched_specs() -> list[dict]:
    try:
        given = json.loads(os.environ.get(MODELS_ENV) or "[]")
    except json.JSONDecodeError:
        return []
    return [g for g in given if isinstance(g, dict) and isinstance(g.get("spec"), str)]


def launched() -> list[str]:
    """Names of the models the server was launched with (``explorer app --model``); those that
    cannot be resolved are named in the sidebar with the reason."""
    names = []
    for given in _launched_specs():
        try:
            spec = (with_checkpoint(given["spec"], given["checkpoint"]) if given.get("checkpoint")
                    else resolve(given["spec"]))
        except explorer.InputError as err:
            st.error(f"--model {given['spec']}: {err}")
            continue
        names.append(spec.name)
    return names


def names(launched_names: list[str]) -> list[str]:
    """The launched models, then this session's uploads."""
    return list(dict.fromkeys(launched_names + st.session_state.get(UPLOADED, [])))


@st.cache_data(show_spinner=False, max_entries=16)
def _stated(data: bytes) -> tuple[int | None, int | None, str]:
    """(channels, size) the file states, or an error message."""
    import onnx
    try:
        proto = onnx.load_from_string(data)
        return (*onnx_models.input_shape(proto), "")
    except Exception as err:  # InputError or a protobuf parse error: said next to the upload
        return None, None, str(err) or type(err).__name__


def _add(data: bytes, filename: str, description: InputDescription) -> None:
    """Button callback: convert, register, select (an error stays for the next run to show)."""
    try:
        spec = register(onnx_models.onnx_upload_spec(data, filename, description))
    except explorer.InputError as err:
        st.session_state["onnx_error"] = f"Could not use **{filename}**: {err}"
        return
    st.session_state.pop("onnx_error", None)
    uploaded = st.session_state.setdefault(UPLOADED, [])
    if spec.name not in uploaded:
        uploaded.append(spec.name)
    st.session_state["model"] = spec.name


def onnx_upload() -> None:
    """An expander: upload an ONNX file, say what it takes when the file does not, add it."""
    with st.expander("Add your model (ONNX)"):
        upload = st.file_uploader(
            f"ONNX file (up to {onnx_models.max_bytes() / 1e6:.0f} MB)", type=["onnx"],
            key="onnx_upload", help="An ONNX graph holds operators and tensors, no code: it is "
            "converted to torch by onnx2torch. PyTorch pickles, .pt2 and torch.package files "
            "run code when loaded and are not accepted.")
        if "onnx_error" in st.session_state:
            st.error(st.session_state["onnx_error"])
        if upload is None:
            return
        data = upload.getvalue()
        channels, size, problem = _stated(data)
        if problem:
            st.error(f"Could not read **{upload.name}**: {problem}")
            return
        stated = channels in (1, 3) and size is not None
        st.caption(f"The file states its input: {channels} x {size} x {size}." if stated else
                   "The file does not state its input's channels and size: give them.")
        channels = st.selectbox("Channels", (1, 3), index=0 if channels == 1 else 1,
                                key="onnx_channels", disabled=stated)
        size = int(st.number_input("Side (pixels)", 8, 1024, value=size or 224,
                                   key="onnx_size", disabled=stated))
        norm = st.selectbox("Normalisation (ONNX files do not state it)", list(NORMALISATIONS),
                            key="onnx_norm")
        labels = st.text_area("Class names, one per line (optional)", key="onnx_labels")
        mean_std = NORMALISATIONS[norm]
        try:
            description = InputDescription(
                channels=channels, size=size,
                mean=None if mean_std is None else mean_std[0][:channels],
                std=None if mean_std is None else mean_std[1][:channels],
                labels=tuple(line.strip() for line in labels.splitlines() if line.strip()) or None)
        except explorer.InputError as err:
            st.error(str(err))
            return
        st.button("Add to the model list", key="onnx_add", on_click=_add,
                  args=(data, upload.name, description))
