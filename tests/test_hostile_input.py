"""Hostile input (issue 13): every bad image, checkpoint, download or setting gets an InputError
with a message, a bounded amount of work, or an explicit NumericalWarning; never a crash."""
import functools
import http.server
import io
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

import explorer
from explorer.inputs.images import MAX_ASPECT, MAX_PIXELS, MEMORY_BOUND_MB, open_image, to_array
from explorer.models import checkpoints
from explorer.models.checkpoints import read_state_dict
from explorer.models.zoo import digits_preprocess, imagenet_preprocess

ROOT = Path(__file__).resolve().parents[1]
PREPROCESS = (digits_preprocess, imagenet_preprocess)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# ---- images: the property ------------------------------------------------------------------

MODES = ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "LAB", "YCbCr"]
FORMATS = {"PNG": {"1", "L", "P", "LA", "RGB", "RGBA", "I;16", "I"},
           "TIFF": {"1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "LAB", "YCbCr"},
           "JPEG": {"L", "RGB", "CMYK"}, "BMP": {"1", "L", "P", "RGB"},
           "WEBP": {"RGB", "RGBA"}, "GIF": {"L", "P"}}


@st.composite
def image_bytes(draw) -> bytes:
    """Valid files of any mode, format and shape (thin strips included), their truncations and
    byte flips, and raw noise."""
    kind = draw(st.sampled_from(["valid", "valid", "truncated", "flipped", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=512))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(sorted(FORMATS[fmt])))
    short = draw(st.integers(1, 40))
    long = draw(st.sampled_from([short, short * 3, short * MAX_ASPECT, short * MAX_ASPECT + 1,
                                 3000, 30000]))
    if long >= 3000:  # thin strips only: wide and tall at once would be slow to encode
        short = min(short, 3)
    w, h = (short, long) if draw(st.booleans()) else (long, short)
    seed = draw(st.integers(0, 2 ** 16))
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(noise).convert(mode) if mode not in ("I;16", "I", "F", "LAB") else (
        Image.fromarray(noise[..., 0].astype(np.uint16) * 257) if mode == "I;16" else
        Image.fromarray(noise[..., 0].astype(np.int32) * 100) if mode == "I" else
        Image.fromarray(noise[..., 0].astype(np.float32) / 255) if mode == "F" else
        Image.fromarray(noise).convert("RGB").convert("LAB"))
    try:
        data = encode(img, fmt)
    except (OSError, ValueError, KeyError):  # a format that cannot store this mode
        data = encode(img.convert("RGB"), "PNG")
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


@settings(max_examples=100, deadline=5000, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(image_bytes())
def test_any_bytes_give_a_valid_tensor_or_input_error(data):
    for preprocess, shape in zip(PREPROCESS, ([1, 28, 28], [3, 224, 224])):
        try:
            x = preprocess(data)
        except explorer.InputError as err:
            assert str(err)  # a message, whatever went wrong
            continue
        assert list(x.shape) == shape and x.dtype == torch.float32
        assert torch.isfinite(x).all()
        pixels = x if preprocess is digits_preprocess else explorer.IMAGENET.to_pixels(x[None])[0]
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


# ---- images: size, shape and memory --------------------------------------------------------

@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1), (20_000, 2), (49_999_999, 1)])
def test_strips_are_refused_from_the_header(size):
    if size[0] > 1_000_000:  # too big to encode here: a real PNG header is enough
        import struct
        import zlib
        ihdr = struct.pack(">IIBBBBB", *size, 8, 0, 0, 0, 0)
        def chunk(kind: bytes, body: bytes) -> bytes:
            return (struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body)))
        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    else:
        data = encode(Image.new("L", size))
    for preprocess in PREPROCESS:
        with pytest.raises(explorer.InputError, match="aspect ratio|limit"):
            preprocess(data)


def test_limits_cover_arrays_and_pil_images():
    with pytest.raises(explorer.InputError, match="aspect ratio"):
        open_image(np.zeros((1, 5000), np.uint8))
    with pytest.raises(explorer.InputError, match="MP"):
        open_image(Image.new("L", (6000, 6000)))


_PEAK = textwrap.dedent("""
    import re, sys
    from explorer.models.zoo import {fn}
    def status(key):
        return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    data = open(sys.argv[1], "rb").read()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    before = status("VmRSS")
    x = {fn}(data)
    print((status("VmHWM") - before) / 1024, list(x.shape))
""")


def test_peak_memory_of_the_largest_upload_is_bounded(tmp_path):
    """The largest allowed upload in the widest 8-bit mode (RGBA, 25 MP; 16-bit and float
    images take no more), measured as the growth of the peak resident set of a fresh process."""
    side = int(MAX_PIXELS ** 0.5)
    path = tmp_path / "big.png"
    Image.new("RGBA", (side, side), (10, 200, 30, 128)).save(path, compress_level=1)
    out = subprocess.run([sys.executable, "-c", _PEAK.format(fn="imagenet_preprocess"),
                          str(path)], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert 4 * side * side / 2 ** 20 < float(out[0]) < MEMORY_BOUND_MB  # it did decode it all
    assert out[1].strip() == "[3, 224, 224]"


# ---- images: modes, arrays, formats ----------------------------------------------------------

def test_float_tiffs_keep_their_range_and_refuse_non_finite():
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    got = to_array(open_image(encode(Image.fromarray(ramp), "TIFF")), 1)[..., 0]
    np.testing.assert_allclose(got, ramp, atol=1e-6)  # 0..1 stays 0..1, not near black
    for bad in (np.nan, np.inf):
        img = ramp.copy()
        img[3, 3] = bad
        with pytest.raises(explorer.InputError, match="NaN or infinite"):
            to_array(open_image(encode(Image.fromarray(img), "TIFF")), 1)
    with pytest.raises(explorer.InputError, match="values reach"):
        to_array(open_image(encode(Image.fromarray(ramp * 1e6), "TIFF")), 1)


def test_lab_and_other_modes_convert_or_refuse_with_input_error():
    lab = Image.new("LAB", (16, 16), (255, 128, 128))  # L* = 100: white
    data = encode(lab, "TIFF")
    assert digits_preprocess(data).max() < 0.05  # white paper -> inverted to black
    pixels = explorer.IMAGENET.to_pixels(imagenet_preprocess(data)[None])
    assert pixels.min() > 0.97
    with pytest.raises(explorer.InputError, match="colour mode"):
        to_array(Image.new("La", (4, 4)), 1)


@pytest.mark.parametrize("shape,ok", [((9, 7), True), ((9, 7, 1), True), ((9, 7, 3), True),
                                      ((9, 7, 4), True), ((9, 7, 5), False), ((9, 7, 2), False),
                                      ((2, 9, 7, 3), False)])
def test_arrays_of_any_channel_count(shape, ok):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    if ok:
        gray = to_array(open_image(arr), 1)
        if arr.ndim == 2 or arr.shape[2] == 1:
            np.testing.assert_allclose(gray[..., 0], arr.reshape(9, 7) / 255, atol=1e-6)
        assert digits_preprocess(arr).shape == (1, 28, 28)
    else:
        with pytest.raises(explorer.InputError, match="image array"):
            digits_preprocess(arr)


def test_only_accepted_decoders_are_tried():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(explorer.InputError, match="supported format"):
        open_image(eps)
    ico = encode(Image.new("RGB", (16, 16)), "ICO")
    with pytest.raises(explorer.InputError, match="supported format"):
        open_image(ico)
    with pytest.raises(explorer.InputError, match="must be file bytes"):
        open_image(12345)


# ---- checkpoints -----------------------------------------------------------------------------

def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False)).eval()


@pytest.mark.parametrize("checkpoint", [123, torch.zeros(3), {"w": 1}, b"/tmp/x.pt"])
def test_checkpoint_that_is_not_a_path(checkpoint):
    with pytest.raises(explorer.InputError, match="checkpoint must be"):
        explorer.load_model("digits-cnn", checkpoint=checkpoint)
    with pytest.raises(explorer.InputError, match="checkpoint must be"):
        read_state_dict(checkpoint)


@pytest.mark.parametrize("tensor,kind", [(torch.empty(3, 4, device="meta"), "meta"),
                                         (torch.eye(3).to_sparse(), "sparse_coo")])
def test_meta_and_sparse_tensors_are_refused(tmp_path, tensor, kind):
    torch.save({"weight": tensor}, tmp_path / "odd.pt")
    with pytest.raises(explorer.InputError, match=f"without ordinary values.*{kind}"):
        read_state_dict(tmp_path / "odd.pt")


def test_module_prefix_clash_is_ambiguous(tmp_path):
    torch.save({"module.1.weight": torch.ones(3, 4), "1.weight": torch.zeros(3, 4)},
               tmp_path / "both.pt")
    with pytest.raises(explorer.InputError, match="ambiguous.*'1.weight'"):
        read_state_dict(tmp_path / "both.pt")
    torch.save({"module.1.weight": torch.ones(3, 4)}, tmp_path / "one.pt")
    assert torch.equal(read_state_dict(tmp_path / "one.pt")["1.weight"], torch.ones(3, 4))


def test_nan_weights_warn_and_are_recorded_on_the_entry(tmp_path):
    state = explorer.load_model("digits-cnn", pretrained=False).module.state_dict()
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.warns(explorer.NumericalWarning, match="NaN or Inf"):
        entry = explorer.load_model("digits-cnn", checkpoint=tmp_path / "nan.pt")
    assert len(entry.warnings) == 1 and key in entry.warnings[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", explorer.NumericalWarning)
        assert explorer.load_model("digits-cnn").warnings == ()


# ---- downloads -------------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.delenv(checkpoints.OFFLINE_ENV, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return checkpoints.cache_dir()


def test_a_user_url_cannot_poison_a_known_file(server, hub, monkeypatch):
    import torchvision
    known = Path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url).name  # resnet18-f37072fd.pth
    root, base = server
    torch.save({"1.weight": torch.ones(3, 4)}, root / known)
    path = checkpoints.fetch(f"{base}/{known}")
    assert path.read_bytes() == (root / known).read_bytes()
    assert path.parent == hub / "user-urls" and not (hub / known).exists()
    # Another URL with the same file name gets its own copy; the first is reused offline.
    (root / "other").mkdir()
    torch.save({"1.weight": torch.zeros(3, 4)}, root / "other" / known)
    assert checkpoints.fetch(f"{base}/other/{known}") != path
    monkeypatch.setenv(checkpoints.OFFLINE_ENV, "1")
    assert checkpoints.fetch(f"{base}/{known}") == path
    # The default load never sees the user's file: not cached -> unavailable offline.
    with pytest.raises(explorer.WeightsUnavailable):
        explorer.load_model("resnet18")


def test_a_cached_file_that_fails_its_hash_is_refused(hub, monkeypatch):
    import torchvision
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    hub.mkdir(parents=True)
    torch.save({"fake": torch.zeros(1)}, hub / Path(url).name)  # poisoned by an older version
    monkeypatch.setenv(checkpoints.OFFLINE_ENV, "1")
    with pytest.raises(explorer.InputError, match="fails its integrity check.*delete"):
        explorer.load_model("resnet18")
    # The paper's checkpoints: checked against the recorded sha256 once one is recorded.
    paper = checkpoints.paper_url("xalexnet")
    (hub / Path(paper).name).write_bytes(b"the real file")
    good = __import__("hashlib").sha256(b"the real file").hexdigest()
    monkeypatch.setitem(checkpoints.PAPER_SHA256, "xalexnet", good)
    assert checkpoints.fetch(paper) == hub / Path(paper).name
    monkeypatch.setitem(checkpoints.PAPER_SHA256, "xalexnet", "0" * 64)
    with pytest.raises(explorer.InputError, match="fails its integrity check"):
        checkpoints.fetch(paper)


def test_a_download_that_fails_its_hash_is_not_kept(server, hub, monkeypatch):
    root, base = server
    (root / "xalexnet_model_best.pth.tar").write_bytes(b"tampered")
    url = f"{base}/xalexnet_model_best.pth.tar"
    monkeypatch.setattr(checkpoints, "PAPER_URL", base + "/{name}_model_best.pth.tar")
    monkeypatch.setitem(checkpoints.PAPER_SHA256, "xalexnet", "1" * 64)
    with pytest.raises(explorer.InputError, match="fails its integrity check"):
        checkpoints.fetch(url)
    assert not list(hub.rglob("*xalexnet*"))


# ---- methods: non-finite values and settings ------------------------------------------------

def test_explain_warns_on_nan_weights_and_is_quiet_otherwise():
    model, x = _mlp(), torch.rand(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", explorer.NumericalWarning)
        explorer.attribute("integrated_gradients", model, x, 0, steps=4)
    with torch.no_grad():
        model[1].weight[2, 0] = float("nan")  # only logit 2 is NaN; explaining logit 0 ...
    with pytest.warns(explorer.NumericalWarning, match="logits were NaN or Inf"):
        a = explorer.attribute("occlusion", model, x, 0, window=1, stride=1)
    assert torch.isfinite(a).all()  # ... gives finite attributions, but the model is broken
    with pytest.warns(explorer.NumericalWarning, match=r"attributions of sample\(s\) \[0, 1\]"):
        explorer.attribute("gradient", model, x, 2)


def test_homogeneity_error_is_nan_when_the_outputs_are():
    model, x = _mlp(), torch.rand(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", explorer.NumericalWarning)  # finite: no warning
        assert explorer.homogeneity_error(model, x) < 1e-6
    for bad in (float("nan"), float("inf")):
        with torch.no_grad():
            model[1].weight[0, 0] = bad
        with pytest.warns(explorer.NumericalWarning, match="homogeneity_error.*NaN or Inf"):
            assert np.isnan(explorer.homogeneity_error(model, x))


def test_homogeneity_error_of_infinite_outputs_warns_as_the_methods_do():
    model = nn.Sequential(nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(3e38)  # float32 overflows: every logit is +Inf
    x = torch.ones(2, 4)
    assert torch.isinf(model(x)).all()
    with pytest.warns(explorer.NumericalWarning, match="homogeneity_error.*NaN or Inf"):
        assert np.isnan(explorer.homogeneity_error(model, x))


def _sigmoid_chain(depth: int = 4) -> nn.Sequential:
    """Rows sum to 0: a constant input gives z = 0 at every sigmoid, where f(z)/z explodes."""
    layers = [nn.Flatten()]
    for _ in range(depth):
        lin = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(4) - torch.roll(torch.eye(4), 1, dims=1))
        layers += [lin, nn.Sigmoid()]
    torch.manual_seed(0)
    return nn.Sequential(*layers, nn.Linear(4, 2, bias=False)).eval()


def _lrp_replica(model: nn.Sequential, x: torch.Tensor, target: int, eps: float) -> torch.Tensor:
    """The epsilon rule written as explicit relevance messages, layer by layer."""
    acts, a = [], x
    for layer in list(model)[1:]:
        z = a
        a = layer(a)
        acts.append((layer, z, a))
    grad = torch.zeros_like(a)
    grad[:, target] = 1
    for layer, z, y in reversed(acts):
        if isinstance(layer, nn.Linear):
            grad = grad @ layer.weight
        else:
            grad = grad * y / (z + eps * torch.where(z >= 0, 1.0, -1.0))
    return x * grad


def test_epsilon_lrp_refuses_overflow_and_matches_a_replica_otherwise():
    model, x = _sigmoid_chain(), torch.full((1, 4), 0.3)
    with pytest.raises(explorer.InputError, match="overflowed.*Sigmoid.*larger eps"):
        explorer.attribute("epsilon_lrp", model, x, 0, eps=1e-12)
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    for eps in (1e-2, 1e-9):
        ours = explorer.attribute("epsilon_lrp", model, x, 1, eps=eps)
        torch.testing.assert_close(ours, _lrp_replica(model, x, 1, eps), rtol=1e-4, atol=1e-6)


def test_occlusion_covers_everything_or_refuses():
    torch.manual_seed(0)
    w = torch.rand(10) + 0.5
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 1, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(w[None])
    x = torch.rand(1, 10) + 0.5
    # stride 5 > size - window = 4: windows at 0 and 5 (clipped at the edge) cover all ten.
    got = explorer.attribute("occlusion", model, x, 0, window=6, stride=5)
    windows = [range(0, 6), range(5, 10)]
    expected = torch.zeros(10)
    for i in range(10):
        drops = [sum(float(w[j] * x[0, j]) for j in win) for win in windows if i in win]
        expected[i] = sum(drops) / len(drops)
    torch.testing.assert_close(got[0], expected)
    with pytest.raises(explorer.InputError, match="stride 7 is larger than the window 6"):
        explorer.attribute("occlusion", model, x, 0, window=6, stride=7)
    assert explorer.attribute("occlusion", model, x, 0, window=10, stride=30).ne(0).all()


@pytest.mark.parametrize("target", [2 ** 63, 2 ** 64 + 1, -(2 ** 63) - 1])
def test_targets_beyond_int64(target):
    with pytest.raises(explorer.InputError, match="out of range"):
        explorer.attribute("gradient", _mlp(), torch.rand(1, 4), target)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_completeness_rows_say_not_finite(bad):
    from explorer.presentation import report
    row = report.completeness_row("integrated_gradients", False, {
        "attribution_sum": bad, "delta": 1.0, "abs_error": bad, "rel_error": bad})
    assert row["result"] == "not finite"
    assert report.completeness_row("integrated_gradients", False, {
        "attribution_sum": 1.0, "delta": 1.0, "abs_error": 0.0, "rel_error": 0.0})["result"] == "complete"
