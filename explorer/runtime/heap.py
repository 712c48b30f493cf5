"""A steady C heap for chunked methods, on request: glibc's mmap threshold fixed once per process.

Chunked loops (``run_in_chunks``: IG, SmoothGrad, expected gradients) allocate and free the same
activation-sized blocks on every chunk. glibc's malloc serves blocks above its mmap threshold
(128 KiB at start) with mmap and unmaps them on free, but after the first such free it raises the
threshold to that block's size (up to 32 MiB), so from the second chunk on a network's
activations come from the heap. There, as far as we can tell, the blocks one chunk frees are
interleaved with blocks that stay (small tensors and Python objects made meanwhile), the next
chunk cannot reuse all of them, and the resident set grows with the number of chunks: on ResNet-18 at 224 x 224,
``batch_size=16``, expected gradients' peak RSS was 1196 MB at 16 samples (one chunk) and
1292 MB at 1024; with the threshold fixed at glibc's own default it is 1114 MB and 1116 MB
(docs/classroom.md). Fixed, the threshold no longer moves: every large block is mapped and
unmapped again. The price is page faults: the kernel zeroes each fresh page, 35-45% more
CPU time per chunk on that model, and 60% on IG-32 of the bundled digits CNN (19.5 ms against
12.1 ms of process time, interleaved fresh processes). A higher fixed threshold either cost about
as much (4 MiB) or let the growth back (32 MiB), so glibc's default it is.

That price would make every IG, SmoothGrad and EG timing the app shows slower than the method
is, so the setting is a choice, not a default: ``EXPLORER_STEADY_HEAP=1`` (a long-running server
that runs many-sample expected gradients and needs its memory flat more than its speed). Without
it the resident peak of EG on ResNet-18 grew by 93-128 MB from 16 to 1024 samples on the build
machine (docs/classroom.md).

The setting is process-wide (malloc has no other scope); it only changes where large blocks come
from. It is made once, on the first chunked call, and only on glibc: musl, macOS and Windows
have other allocators without this adjustment, and ``mallopt`` does not exist there. A value the
user already gave (``MALLOC_MMAP_THRESHOLD_``, read by glibc at start) is left alone.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

ASK = "EXPLORER_STEADY_HEAP"
M_MMAP_THRESHOLD = -3  # glibc's <malloc.h> constant
MMAP_THRESHOLD = 128 * 1024  # glibc's default; once set explicitly, it no longer moves

_lock = threading.Lock()
_state: dict[str, bool] = {}


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it exports gnu_get_libc_version), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (an AttributeError says: not glibc)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def steady_heap() -> bool:
    """Fix glibc's mmap threshold, once per process, when ``EXPLORER_STEADY_HEAP=1`` asks for it.
    True when this process's threshold is fixed (by this call, an earlier one or the user's
    environment), False where it cannot be (not glibc) or was not asked for."""
    done = _state.get("fixed")
    if done is not None:
        return done
    with _lock:
        if "fixed" not in _state:
            _state["fixed"] = _fix_threshold()
    return _state["fixed"]


def _fix_threshold() -> bool:
    libc = _glibc()
    if libc is None:
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return True  # glibc read the user's value at start: already fixed
    if os.environ.get(ASK, "") in ("", "0"):
        return False  # the default: malloc as it is, chunked methods at full speed
    return libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
