"""Memory bounded by batch_size (issue 13 item 3): sampling methods draw per chunk, and running
out of memory retries in smaller chunks, then says what to lower."""
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import explorer
from explorer.runtime.tensors import seeded_generator
from explorer.runtime.heap import _glibc
from explorer.methods.path import draw_references
from helpers import images, small_cnn


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation produces while active."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@pytest.fixture(scope="module")
def model():
    return small_cnn(seed=2)


def watched(mode, method, model, x, **params):
    """``mode`` (a dispatch mode that records tensors) after one attribution of ``x``; expected
    gradients draws from a fixed 3-row background."""
    background = torch.rand(3, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    baseline = background if method == "expected_gradients" else None
    with mode() as seen:
        explorer.attribute(method, model, x, 1, baseline=baseline, **params)
    return seen


def largest(method, model, x, **params):
    return watched(LargestTensor, method, model, x, **params).numel


@pytest.mark.parametrize("method", ["smoothgrad", "expected_gradients"])
def test_peak_tensor_scales_with_batch_size_not_samples(method, model):
    x = images(2)
    per_input = x[0].numel()
    few = largest(method, model, x, samples=16, batch_size=4)
    many = largest(method, model, x, samples=64, batch_size=4)
    assert many == few  # 4x the samples, same largest tensor
    # The biggest activation of this CNN is 6 channels at full size: 2x an input, per point.
    assert many <= 4 * 2 * per_input
    assert largest(method, model, x, samples=64, batch_size=16) > many  # batch_size sets it



class LiveBytes(TorchDispatchMode):
    """The peak, over the block, of the bytes held at once by tensor storages that torch
    operations made inside it. A storage counts until the last tensor made on it is freed
    (torch keeps a tensor's Python object while the tensor lives, in autograd's saved tensors
    too, so the finalizers fire when the memory goes)."""

    def __init__(self):
        super().__init__()
        self.tensors, self.live, self.peak = {}, 0, 0  # storage address -> (tensors, bytes)

    def _freed(self, key):
        count, nbytes = self.tensors[key]
        if count > 1:
            self.tensors[key] = (count - 1, nbytes)
        else:
            del self.tensors[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                count, _ = self.tensors.get(key, (0, nbytes))
                self.live += nbytes if count == 0 else 0
                self.tensors[key] = (count + 1, nbytes)
                weakref.finalize(t, self._freed, key)
        self.peak = max(self.peak, self.live)
        return out


def live_peak(method, model, x, **params):
    return watched(LiveBytes, method, model, x, **params).peak


@pytest.mark.parametrize("method", ["smoothgrad", "expected_gradients"])
def test_no_sample_point_outlives_its_chunk(method, model):
    """Issue 21: what is alive at the peak is one chunk's work, whatever the sample count. The
    largest tensor alone would not see a list of chunk results or points kept alive."""
    x = images(1)
    few = live_peak(method, model, x, samples=8, batch_size=4)
    many = live_peak(method, model, x, samples=48, batch_size=4)
    assert few > 4 * x[0].nbytes  # it sees the chunk's points and activations
    # Only expected gradients' draws grow: an index and a position per sample (about 34 bytes
    # each with their casts, 1.4 kB here). One more sample point alive would be 3 kB.
    assert many - few < x[0].nbytes


HEAP_PROBE = textwrap.dedent("""
    import resource, torch, explorer
    torch.set_num_threads(1)
    torch.manual_seed(0)
    conv = lambda: [torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU()]
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                *conv(), *conv(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x, background = torch.rand(1, 3, 64, 64), torch.rand(4, 3, 64, 64)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run = lambda samples: explorer.attribute("expected_gradients", model, x, 0,
                                             baseline=background, samples=samples, batch_size=16)
    run(16)  # one chunk: activations of 4 MB each, above glibc's initial mmap threshold
    one = peak()
    run(128)  # eight more chunks of the same sizes
    print(peak() - one)
""")


@pytest.mark.skipif(_glibc() is None, reason="glibc only: other allocators do not move an "
                                              "mmap threshold")
def test_resident_peak_does_not_grow_after_the_first_chunk():
    """The resident set, not only torch's tensors (issue 21): in a fresh process with
    EXPLORER_STEADY_HEAP=1, eight more chunks of 4 MB activations add less than one activation
    to the peak. Without it (glibc's dynamic mmap threshold, the default) this grew by 9-14 MB
    on the build machine."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    env["EXPLORER_STEADY_HEAP"] = "1"
    done = subprocess.run([sys.executable, "-c", HEAP_PROBE], capture_output=True, text=True,
                          check=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    growth_mb = float(done.stdout.strip().splitlines()[-1])
    assert growth_mb < 4.0


def test_smoothgrad_same_as_drawing_all_noise_up_front(model):
    x, target, samples, noise = images(3), torch.tensor([0, 1, 2]), 21, 0.2
    got = explorer.attribute("smoothgrad", model, x, target, samples=samples, noise=noise,
                             seed=5, batch_size=4)
    # The former implementation's draw: every noise copy at once from the seed.
    eps = torch.randn((samples,) + tuple(x.shape[1:]), generator=seeded_generator(5),
                      dtype=torch.float64).float()
    expected = []
    for i in range(3):
        sigma = noise * (x[i].max() - x[i].min())
        points = (x[i] + sigma * eps).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(points)[:, target[i]].sum(), points)
        expected.append(grad.mean(0))
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-5, atol=1e-7)


def test_expected_gradients_same_as_gathering_all_references(model):
    x, target, samples = images(2), torch.tensor([3, 1]), 19
    background = torch.rand(5, *x.shape[1:], generator=torch.Generator().manual_seed(9))
    e = explorer.explain("expected_gradients", model, x, target, baseline=background,
                         samples=samples, seed=4, batch_size=3)
    index, alphas = draw_references(5, samples, 4)
    refs = background[index]
    expected = []
    for i in range(2):
        points = (refs + alphas.float().view(-1, 1, 1, 1) * (x[i] - refs)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(points)[:, target[i]].sum(), points)
        expected.append(((x[i] - refs) * grad).mean(0))
    torch.testing.assert_close(e.attributions, torch.stack(expected), rtol=1e-5, atol=1e-7)
    # More draws than background rows: completeness is against the whole background (a view).
    assert e.references.shape == (2, 5, *x.shape[1:])
    assert e.references.untyped_storage().data_ptr() == background.untyped_storage().data_ptr()
    few = explorer.explain("expected_gradients", model, x, target, baseline=background,
                           samples=4, seed=4)
    torch.testing.assert_close(few.references[0], background[draw_references(5, 4, 4)[0]])


class FailsAbove(torch.nn.Module):
    """Wraps a model; a batch larger than ``limit`` raises the allocator error ``error``."""

    def __init__(self, inner, limit, error):
        super().__init__()
        self.inner, self.limit, self.error = inner, limit, error
        self.sizes = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error
        return self.inner(x)


CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: "
                       "can't allocate memory: you tried to allocate 99999999999 bytes.")
DEVICE_OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.mark.parametrize("error", [CPU_OOM, DEVICE_OOM], ids=["cpu", "device"])
@pytest.mark.parametrize("method,params", [
    ("integrated_gradients", {"steps": 24}),
    ("integrated_gradients", {"steps": 64, "tolerance": 0.05}),
    ("smoothgrad", {"samples": 12}),
    ("expected_gradients", {"samples": 12}),
])
def test_out_of_memory_retries_in_smaller_chunks(model, error, method, params):
    x = images(2)
    flaky = FailsAbove(model, 5, error).eval()
    got = explorer.attribute(method, flaky, x, 1, batch_size=4096, **params)
    assert flaky.sizes[0] > 5  # it tried the big chunk first, then halved until it fitted
    expected = explorer.attribute(method, model, x, 1, batch_size=5, **params)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("error", [CPU_OOM, DEVICE_OOM], ids=["cpu", "device"])
def test_out_of_memory_even_one_at_a_time_is_an_input_error(model, error):
    with pytest.raises(explorer.InputError, match="out of memory even one point at a time"):
        explorer.attribute("integrated_gradients", FailsAbove(model, 0, error).eval(), images(1),
                           0, steps=8, batch_size=64)


def test_out_of_memory_in_a_single_pass_method_says_lower_batch_size(model):
    with pytest.raises(explorer.InputError, match="out of memory.*lower batch_size"):
        explorer.attribute("gradient", FailsAbove(model, 0, CPU_OOM).eval(), images(1), 0)


def test_other_runtime_errors_are_not_taken_for_out_of_memory(model):
    broken = FailsAbove(model, 0, RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(explorer.InputError, match="could not run"):
        explorer.attribute("integrated_gradients", broken.eval(), images(1), 0, steps=8)


def failing_subtraction(limit: int, sizes: list, name: str = "__sub__"):
    """``Tensor.<name>`` (a subtraction) raising the CPU allocator's error on 4-d tensors of
    more than ``limit`` rows: the path's own ``delta = x[i] - start`` fails before any forward
    pass (issue 21). ``sizes`` records the rows asked for."""
    original = getattr(torch.Tensor, name)

    def sub(a, b):
        if a.dim() == 4:
            sizes.append(a.shape[0])
            if a.shape[0] > limit:
                raise CPU_OOM
        return original(a, b)

    return sub


@pytest.mark.parametrize("method,params", [("integrated_gradients", {"steps": 24}),
                                           ("expected_gradients", {"samples": 12})])
def test_failing_allocation_of_the_path_itself_retries_in_halves(model, monkeypatch, method,
                                                                 params):
    x = images(2)
    expected = explorer.attribute(method, model, x, 1, batch_size=5, **params)
    sizes = []
    for name in ("__sub__", "sub_"):  # out of place or in place: the path's delta
        monkeypatch.setattr(torch.Tensor, name, failing_subtraction(5, sizes, name))
    got = explorer.attribute(method, model, x, 1, batch_size=4096, **params)
    monkeypatch.undo()
    assert sizes[0] > 5 and sizes[1] == sizes[0] // 2 and sizes[-1] <= 5  # then halves
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_failing_allocation_of_the_path_even_alone_says_what_to_lower(model, monkeypatch):
    for name in ("__sub__", "sub_"):
        monkeypatch.setattr(torch.Tensor, name, failing_subtraction(0, [], name))
    with pytest.raises(explorer.InputError, match="batch_size=64 was retried down to 1"):
        explorer.attribute("integrated_gradients", model, images(1), 0, steps=8, batch_size=64)


def test_malloc_setting_is_asked_for_and_glibc_only(monkeypatch):
    from explorer.runtime import heap
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("EXPLORER_STEADY_HEAP", raising=False)
    assert heap._fix_threshold() is False  # the default: malloc as it is
    monkeypatch.setenv("EXPLORER_STEADY_HEAP", "1")
    assert heap._fix_threshold() is (heap._glibc() is not None)
    monkeypatch.setattr(heap, "_glibc", lambda: None)  # musl, macOS, Windows
    assert heap._fix_threshold() is False
