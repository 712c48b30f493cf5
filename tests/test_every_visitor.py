"""Every page serves every visitor (issue 21 item 1): a second session on a warm cache, twenty
sessions at once, and identical work requested together computed once.

Streamlit replays what a cached function drew when a later session hits its cache; an element
called inside a cached function on a block made outside it fails that replay
(CacheReplayClosureError), so only the second visitor sees it. Hence every page twice here.
"""
from __future__ import annotations

import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.ui.pages import PAGES

NAMES = [p.name for p in PAGES]


def page_script(name: str) -> None:
    """The shared sidebar, then one page (what st.navigation runs for it)."""
    import importlib

    from explorer.ui import context
    context.build()
    importlib.import_module(f"explorer.ui.pages.{name}").render()


@pytest.fixture(autouse=True)
def scan_components_once(monkeypatch):
    """Each AppTest scans every installed distribution for streamlit components (about a second
    of metadata parsing): twenty sessions share one scan, as the sessions of a server do."""
    import streamlit.components.v2.manifest_scanner as scanner
    monkeypatch.setattr(scanner, "scan_component_manifests",
                        functools.cache(scanner.scan_component_manifests))


@pytest.fixture
def sessions_in_threads(monkeypatch):
    """AppTest installs a mock streamlit runtime for each run and removes it at the end, which
    would pull it from under another session's run in another thread. A server has one runtime
    for all its sessions: here too, the last one installed stays for every thread."""
    from streamlit.runtime.runtime import Runtime
    last = {}

    def instance(cls):
        if cls._instance is not None:
            last["runtime"] = cls._instance
        if "runtime" not in last:
            raise RuntimeError("Runtime hasn't been created!")
        return last["runtime"]

    monkeypatch.setattr(Runtime, "instance", classmethod(instance))
    monkeypatch.setattr(Runtime, "exists", classmethod(
        lambda cls: cls._instance is not None or "runtime" in last))
    # Each run also sets the config option global.appTest and restores the value it found when
    # it ends: with runs overlapping, one ending would switch it off under another (whose page
    # then comes back empty). Set for the whole test, every restore puts back True.
    from streamlit.config import get_option, set_option
    before = get_option("global.appTest")
    set_option("global.appTest", True)
    yield
    set_option("global.appTest", before)


_making = threading.Lock()


def visit(name: str) -> AppTest:
    """A new session (a new visitor) opening one page."""
    # AppTest writes a function's script to one temporary file named by its hash: sessions
    # made at once in threads would truncate it under each other (an empty page, no error).
    for _ in range(10):
        with _making:
            at = AppTest.from_function(page_script, args=(name,), default_timeout=300)
        at.run()
        # AppTest itself is not thread-safe: a run overlapping another one's set-up can end
        # successfully with none of its elements delivered (an empty page, no error). A real
        # page always draws a title, so such a run is the harness's and is made again; a run
        # with an exception or other numbers is never repeated.
        if at.main.children or at.exception:
            return at
    return at


def problems(at: AppTest) -> list[str]:
    """Exceptions, and errors a page caught and showed (a failed replay is shown as an error)."""
    return [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]


def numbers(at: AppTest) -> list:
    """What a visitor reads: text, tables, charts' data (the same for every visitor)."""
    out = [("markdown", e.value) for e in at.markdown] + [("caption", e.value) for e in at.caption]
    out += [("table", e.value.to_csv()) for e in at.table]
    out += [("dataframe", e.value.to_csv()) for e in at.dataframe]
    out += [("metric", e.value) for e in at.metric]
    out += [("chart", json.loads(c.proto.spec)["data"]) for c in at.get("plotly_chart")]
    out += [("image", [img.url for img in e.proto.imgs]) for e in at.get("imgs")]
    return out


@pytest.fixture(scope="module")
def first_visits():
    """One visitor on every page of a fresh server: fills the caches."""
    st.cache_data.clear()
    visits = {}
    for name in NAMES:
        at = visit(name)
        assert not problems(at), (name, problems(at))
        visits[name] = numbers(at)
    return visits


@pytest.mark.parametrize("name", NAMES)
def test_a_second_visitor_on_a_warm_cache_sees_the_same_page(first_visits, name):
    second = visit(name)
    assert not problems(second), problems(second)
    assert numbers(second) == first_visits[name]
    second.run()  # and the same session again (a rerun): still no exception
    assert not problems(second), problems(second)
    assert numbers(second) == first_visits[name]


def test_twenty_sessions_at_once_over_all_pages_see_what_one_visitor_saw(first_visits,
                                                                          sessions_in_threads):
    def session(k: int) -> list:
        out = []
        for name in NAMES[k % len(NAMES):] + NAMES[:k % len(NAMES)]:  # all pages, rotated
            at = visit(name)
            out.append((name, problems(at), numbers(at)))
        return out

    with ThreadPoolExecutor(20) as pool:
        sessions = list(pool.map(session, range(20)))
    for visits in sessions:
        for name, errors, seen in visits:
            assert not errors, (name, errors)
            assert seen == first_visits[name], name


def test_identical_work_requested_together_is_computed_once(monkeypatch, sessions_in_threads):
    """Four sessions opening the default page at once on a fresh cache: each map and the timing
    are computed by one of them; the others wait for it and share the result."""
    import explorer.presentation.report as report
    st.cache_data.clear()
    calls = {"run_checked": 0, "time_methods": 0}
    lock = threading.Lock()

    def counted(name, real):
        def wrapper(*args, **kwargs):
            with lock:
                calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    import explorer.ui.compute as compute
    monkeypatch.setattr(compute, "run_checked", counted("run_checked", compute.run_checked))
    monkeypatch.setattr(report, "time_methods", counted("time_methods", report.time_methods))
    alone = visit("explore")
    assert not problems(alone)
    once = dict(calls)
    assert once["run_checked"] >= 4 and once["time_methods"] == 1
    st.cache_data.clear()
    calls.update(run_checked=0, time_methods=0)
    barrier = threading.Barrier(4)

    def session(_):
        barrier.wait()
        at = visit("explore")
        return problems(at), numbers(at)

    with ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(session, range(4)))
    assert calls == once  # each (method, variant) map and the timing: once, not four times
    assert all(not errors for errors, _ in seen)
    assert all(s == seen[0][1] for _, s in seen)  # one timing, shared: the same numbers
