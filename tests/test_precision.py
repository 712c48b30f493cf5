"""The precision policy: flags off during every call (read inside the model), restored after,
shared correctly between threads, named in Explanation.info; float64 and bf16 honest on the CPU."""
import threading
import time

import pytest
import torch
from torch import nn

import explorer
from explorer.runtime import precision as P
from helpers import small_cnn

FLAGS_ON = (True, True, "medium")


@pytest.fixture
def flags_on():
    """The caller's process with every fast-math flag on; put back after the test."""
    before = P.read_flags()
    P._write_flags(*FLAGS_ON)
    yield
    P._write_flags(*before)


def spy(model: nn.Module) -> list:
    """Record the global flags each time ``model`` runs forward (inside the call)."""
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(P.read_flags()))
    return seen


@pytest.fixture
def net():
    return small_cnn(bias=False)


X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["input_x_gradient", "integrated_gradients", "smoothgrad",
                                    "occlusion", "epsilon_lrp"])
def test_flags_off_during_a_call_and_restored_after(flags_on, net, method):
    seen = spy(net)
    e = explorer.explain(method, net, X, 1)
    assert seen and all(f == (False, False, "highest") for f in seen)
    assert P.read_flags() == FLAGS_ON
    assert e.info["precision"] == "float32"


def test_tf32_is_a_named_choice_and_is_labelled(net):
    seen = spy(net)
    before = P.read_flags()
    e = explorer.explain("gradient", net, X, 0, precision="tf32")
    assert seen and all(f == (True, True, "high") for f in seen)
    assert e.info["precision"] == "tf32"
    assert P.read_flags() == before
    assert P.badge("tf32") == "[TF32]" and P.badge(None) == ""


def test_analyses_run_under_the_policy(flags_on, net):
    seen = spy(net)
    a = explorer.attribute("input_x_gradient", net, X, 1)
    seen.clear()
    explorer.completeness(net, X, a, 1)
    explorer.path_trace(net, X[:1], 1, steps=4)
    explorer.convergence(net, X[:1], 1, steps=(2, 4))
    explorer.analyses.metrics.insertion_deletion(net, X, a, 1, steps=4)
    # The model card's probabilities too (the app computes them outside a page's scope: on
    # CUDA they came out in TF32 or not depending on other sessions, test_concurrency on H200).
    explorer.presentation.report.model_facts(net, [str(k) for k in range(5)], X[:1])
    assert len(seen) > 4 and all(f == (False, False, "highest") for f in seen)
    assert P.read_flags() == FLAGS_ON


def test_flags_restored_after_an_error(flags_on, net):
    with pytest.raises(explorer.InputError):
        explorer.explain("gradient", net, torch.rand(1, 3, 7, 7), 0)  # wrong size for Linear
    assert P.read_flags() == FLAGS_ON


def test_unknown_precision_and_conflicting_nesting_are_input_errors(net):
    with pytest.raises(explorer.InputError, match="unknown precision"):
        explorer.explain("gradient", net, X, 0, precision="fp8")
    with P.precision_scope("tf32"):
        assert explorer.explain("gradient", net, X, 0).info["precision"] == "tf32"  # inherits
        with pytest.raises(explorer.InputError, match="inside a 'tf32'"):
            explorer.explain("gradient", net, X, 0, precision="float32")
    assert P.active() is None


def test_same_setting_shares_and_a_different_one_waits(net):
    """Two float32 calls run at once; a tf32 call waits until both left; flags as asked inside."""
    inside, release, order = threading.Barrier(2, timeout=10), threading.Event(), []
    seen = {}

    def hold(name: str):
        with P.precision_scope("float32"):
            seen[name] = P.read_flags()
            inside.wait()          # both float32 holders are in at the same time
            release.wait(10)
            order.append(f"{name} out")

    def tf32():
        with P.precision_scope("tf32"):
            order.append("tf32 in")
            seen["tf32"] = P.read_flags()

    holders = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in holders:
        t.start()
    inside_by = time.monotonic() + 10
    while P._holders < 2 and time.monotonic() < inside_by:
        time.sleep(0.001)
    assert P._holders == 2
    waiter = threading.Thread(target=tf32)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and "tf32 in" not in order   # it waits for the float32 holders
    release.set()
    for t in holders + [waiter]:
        t.join(10)
    assert order.index("tf32 in") > max(order.index("a out"), order.index("b out"))
    assert seen["a"] == seen["b"] == (False, False, "highest")
    assert seen["tf32"] == (True, True, "high")
    assert P._holders == 0


def test_threads_computing_in_different_precisions_get_their_own_flags(net):
    results, errors = {}, []

    def work(k: int):
        try:
            name = ("float32", "tf32")[k % 2]
            model = small_cnn(bias=False)
            flags = spy(model)
            for _ in range(5):
                explorer.explain("input_x_gradient", model, X, 1, precision=name)
            results[k] = (name, set(flags))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name, flags in results.values():
        assert flags == {(name == "tf32", name == "tf32", "high" if name == "tf32" else "highest")}
    assert P._holders == 0


def test_float64_is_exact_arithmetic_and_leaves_the_model_alone():
    net = explorer.remove_biases(small_cnn())   # homogeneous: X-Gradient is exactly complete
    e64 = explorer.explain("input_x_gradient", net, X, 1, precision="float64")
    assert e64.attributions.dtype == torch.float64 and e64.info["precision"] == "float64"
    assert next(net.parameters()).dtype == torch.float32
    rep = explorer.completeness(net, X, e64.attributions, 1, precision="float64")
    assert float(rep.rel_error.max()) < 1e-12   # Euler's theorem, in float64
    e32 = explorer.explain("input_x_gradient", net, X, 1)
    diff = (e32.attributions.double() - e64.attributions).abs().max() / e64.attributions.abs().max()
    assert 0 < float(diff) < 1e-5


def test_bf16_autocast_on_the_cpu_is_close_but_not_float32(net):
    e32 = explorer.explain("input_x_gradient", net, X, 1)
    e16 = explorer.explain("input_x_gradient", net, X, 1, precision="bf16")
    assert e16.info["precision"] == "bf16" and e16.attributions.dtype == torch.float32
    rel = float((e16.attributions - e32.attributions).norm() / e32.attributions.norm())
    assert 1e-6 < rel < 0.1      # bf16's 8-bit mantissa: visibly rounded, not a different map
    assert not torch.is_autocast_enabled("cpu")
    assert "emulated" in P.availability("bf16", "cpu")
    assert "not available" in P.availability("tf32", "cpu")


def test_lesson_on_the_command_line(capsys):
    from explorer.cli import main
    assert main(["precision", "--batch", "1", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:6]}
    assert float(rows["float64"][2]) < 1e-12            # X-Gradient, exact arithmetic
    assert 0 < float(rows["float32"][3]) < 1e-5          # X-Gradient in float32 (label has 2 words)
    assert rows["TF32"][1:3] == ["not", "available"]
    assert "emulated" in rows["bf16"]


def test_lesson_rows_against_a_direct_float64_reference():
    from explorer.analyses.precision_lesson import precision_lesson
    net = explorer.remove_biases(small_cnn())
    rows = {r.precision: r for r in precision_lesson(net, X, 1, steps=4, repeats=1)}
    e64 = explorer.explain("input_x_gradient", net, X, 1, precision="float64").attributions
    e32 = explorer.explain("input_x_gradient", net, X, 1).attributions
    want = float((e32.double() - e64).abs().max() / e64.abs().max())
    assert rows["float32"].xgrad_max_diff == pytest.approx(want, rel=1e-6)
    assert rows["float64"].xgrad_completeness < 1e-12 and rows["tf32"].status == "not available"
