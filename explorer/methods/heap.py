"""A steady C heap for chunked methods: glibc's mmap threshold fixed once per process.

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
CPU time per chunk on that model. A higher fixed threshold either cost about as much (4 MiB) or
let the growth back (32 MiB), so glibc's default it is.

The setting is process-wide (malloc has no other scope); it only changes where large blocks come
from. It is made once, on the first chunked call, and only on glibc: musl, macOS and Windows
have other allocators without this adjustment, and ``mallopt`` does not exist there. A value the
user already gave (``MALLOC_MMAP_THRESHOLD_``, read by glibc at start) is left alone, and
``EXPLORER_KEEP_MALLOC=1`` (for a server that needs the speed more) leaves malloc as it is.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

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
    """Fix glibc's mmap threshold, once per process. True when this process's threshold is
    fixed (by this call, an earlier one or the user's environment), False where it cannot be
    (not glibc) or the user asked to keep malloc as it is."""
    done = _state.get("fixed")
    if done is not None:
        return done
    with _lock:
        if "fixed" not in _state:
            _state["fixed"] = _fix_threshold()
    return _state["fixed"]


def _fix_threshold() -> bool:
    if os.environ.get("EXPLORER_KEEP_MALLOC", "") not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return True  # glibc read the user's value at start: already fixed
    return libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
