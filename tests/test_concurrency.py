"""Eight sessions at once through the app's cached functions (one thread each, as streamlit
serves them): different bundled models, bias toggles, uploads and targets. Each must get exactly
what the same requests give when run one session at a time, and see only its own progress."""
import io
import threading

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image

import explorer.ui.compute as compute

SESSIONS = 8
METHODS = [("input_x_gradient", ()), ("integrated_gradients", (("steps", 4),)), ("deeplift", ())]


def upload(seed: int) -> bytes:
    """A user's upload: a grey digit-sized image, or a larger colour one the loader resizes."""
    rng = np.random.default_rng(seed)
    shape = (40, 36, 3) if seed % 3 == 0 else (28, 28)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def session(k: int, progress: list | None = None) -> dict:
    """What session k computes: two rounds, the bias toggle flipped between them."""
    name = ("digits-cnn", "decoy-digits-cnn")[k % 2]
    data = upload(k)
    out = {}
    for round_ in range(2):
        bias_free = bool((k // 2 + round_) % 2)
        entry = compute.get_model(name, bias_free).entry
        x = entry.preprocess(data)[None]
        key = f"{name}:{compute.digest(data)}"
        facts = compute.model_facts(name, bias_free, key, x)
        out[("probs", bias_free)] = facts["probs"]
        baseline = torch.full_like(x, 0.25)
        for method, params in METHODS:
            report = None if progress is None else (lambda done, n: progress.append(
                threading.get_ident()))
            r = compute.run_method(name, bias_free, method, params, key, "quarter", k % 10,
                                   x, baseline if method == "deeplift" else None, report)
            out[(method, bias_free)] = (r["attributions"], r["completeness"])
    return out


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if key[0] == "probs":
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-9)
            continue
        (a, c), (a0, c0) = got[key], want[key]
        np.testing.assert_allclose(a, a0, rtol=1e-4, atol=1e-7, err_msg=str(key))
        if c0 is None:
            assert c is None
        else:
            for field in ("output", "reference_output", "attribution_sum"):
                assert c[field] == pytest.approx(c0[field], rel=1e-4, abs=1e-6), (key, field)


@pytest.fixture
def one_thread_each():
    # Eight sessions on 2 cores: one intra-op thread each avoids oversubscription; results
    # do not depend on the thread count beyond float rounding.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_eight_sessions_at_once_each_get_their_own_results(one_thread_each):
    st.cache_data.clear()
    alone = [session(k) for k in range(SESSIONS)]
    assert not np.allclose(alone[0][("input_x_gradient", False)][0],
                           alone[2][("input_x_gradient", False)][0])  # sessions do differ
    st.cache_data.clear()  # the concurrent sessions compute again, not read the cache

    results, errors, seen = [None] * SESSIONS, [], [[] for _ in range(SESSIONS)]
    start = threading.Barrier(SESSIONS)

    def run(k):
        try:
            start.wait()
            results[k] = (threading.get_ident(), session(k, seen[k]))
        except Exception as err:  # pragma: no cover - reported below
            errors.append((k, err))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(SESSIONS):
        ident, got = results[k]
        assert_same(got, alone[k])
        # IG's chunk loop reported its progress to this session alone
        assert seen[k] and set(seen[k]) == {ident}, k
