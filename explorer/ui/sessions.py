"""How many sessions are running a page on this server right now.

A timing says under what load it was taken: the sessions running at once share the CPU with
it (its rounds are serialised server-wide by ``explorer.runtime.timing.MEASURING``, their maps are not).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_lock = threading.Lock()
_running = 0
_watchers: list[list[int]] = []


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Count this session's page run while the block runs (the app wraps each script run)."""
    global _running
    with _lock:
        _running += 1
        for seen in _watchers:
            seen[0] = max(seen[0], _running)
    try:
        yield
    finally:
        with _lock:
            _running -= 1


def now() -> int:
    """Sessions running a page at this moment."""
    return _running


@contextlib.contextmanager
def most_at_once() -> Iterator[list[int]]:
    """Yields ``[n]``: the most sessions that ran a page at once while the block ran."""
    with _lock:
        seen = [_running]
        _watchers.append(seen)
    try:
        yield seen
    finally:
        with _lock:
            _watchers.remove(seen)
