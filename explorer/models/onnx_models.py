"""ONNX models: a graph of standard operators and tensors, no executable Python, converted to
torch modules by onnx2torch. The only way a visitor's own model enters a shared server.

A file on the server may keep its tensors in external data files next to it (the server's
person trusts that folder); an upload may not: its external-data references would read files
of the server's choosing into the weights, so they are refused.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from torch import nn

from explorer.errors import InputError
from explorer.models.zoo import ModelSpec

MAX_MB_ENV = "EXPLORER_ONNX_MAX_MB"  # the upload size limit in MB (default 200)


def max_bytes() -> int:
    try:
        return int(float(os.environ.get(MAX_MB_ENV, 200)) * 1e6)
    except ValueError:
        return 200_000_000


def _onnx():
    try:
        import onnx
        import onnx2torch
    except ImportError as err:
        raise InputError("ONNX models need onnx and onnx2torch: pip install "
                         "'attribution-explorer[onnx]'") from err
    return onnx, onnx2torch


def input_shape(proto) -> tuple[int | None, int | None]:
    """(channels, size) of the graph's image input [N, C, S, S] where the file states them."""
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise InputError(f"the ONNX graph takes {len(inputs)} inputs; an image classifier "
                         "takes one")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InputError(f"the ONNX graph's input has {len(dims)} dimensions; an image "
                         "classifier takes [N, C, H, W]")
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    _, channels, height, width = values
    return channels, (height if height == width else None)


def _external_data(proto) -> list[str]:
    from onnx.external_data_helper import uses_external_data
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    return [t.name for t in tensors if uses_external_data(t)]


def _convert(proto, what: str) -> nn.Module:
    _, onnx2torch = _onnx()
    try:
        return onnx2torch.convert(proto).eval()
    except Exception as err:  # an operator onnx2torch does not know, a malformed graph
        raise InputError(f"{what} could not be converted to torch by onnx2torch "
                         f"({type(err).__name__}: {err})") from err


def _spec(name: str, label: str, what: str, proto, description) -> ModelSpec:
    from explorer.models.spec import InputDescription, module_spec
    channels, size = input_shape(proto)
    note = ""
    if description is None:
        if channels not in (1, 3) or size is None:
            raise InputError(f"{what} does not state its input's channels and square size "
                             f"(it says channels={channels}, size={size}): describe the input")
        description = InputDescription(channels=channels, size=size)
        note = "The file states no normalisation: pixels in [0, 1] assumed."
    elif (channels, size) != (None, None) and (channels not in (None, description.channels) or
                                               size not in (None, description.size)):
        raise InputError(f"{what} takes {channels} x {size} x {size} inputs, not the "
                         f"{description.channels} x {description.size} x {description.size} "
                         "described")
    module = _convert(proto, what)
    return module_spec(name, label, "onnx", f"ONNX graph {what}, converted by onnx2torch. "
                       "Bias-free: its biases removed, no retraining.", module, description,
                       note=note)


def onnx_file_spec(path: str, description=None) -> ModelSpec:
    """The ModelSpec of an ONNX file on the server (external data beside it allowed)."""
    onnx, _ = _onnx()
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"no ONNX file {path}")
    try:
        proto = onnx.load(str(file))
    except Exception as err:
        raise InputError(f"{file.name} is not a readable ONNX file ({type(err).__name__}: "
                         f"{err})") from err
    return _spec(path, file.name, file.name, proto, description)


def onnx_upload_spec(data: bytes, filename: str, description=None) -> ModelSpec:
    """The ModelSpec of uploaded ONNX bytes, named by their digest: parsed as protobuf, size
    limited, external data refused, converted operator by operator; nothing in it runs."""
    onnx, _ = _onnx()
    if len(data) > max_bytes():
        raise InputError(f"{filename} is {len(data) / 1e6:.0f} MB; this server takes ONNX files "
                         f"up to {max_bytes() / 1e6:.0f} MB ({MAX_MB_ENV})")
    try:
        proto = onnx.load_from_string(bytes(data))
    except Exception as err:
        raise InputError(f"{filename} is not an ONNX file ({type(err).__name__})") from err
    if not proto.graph.node:
        raise InputError(f"{filename} holds no ONNX graph")
    external = _external_data(proto)
    if external:
        raise InputError(f"{filename} keeps {len(external)} tensor(s) in external files "
                         f"({', '.join(external[:3])}); an upload must hold all its weights "
                         "(save with onnx.save(..., save_as_external_data=False))")
    digest = hashlib.sha256(data).hexdigest()[:12]
    name = f"upload:{filename}:{digest}" + ("" if description is None else f":{description}")
    return _spec(name, f"{filename} (uploaded ONNX)", filename, proto, description)
