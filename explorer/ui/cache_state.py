"""Whether a cached page function already holds the value for some arguments.

The compute budget asks before long work ("Run anyway"); work whose results are already in
the server's cache costs nothing, so a second visitor (or the same one coming back) sees them
at once. The lookup uses the key streamlit itself would compute for the call, so it follows the
cache exactly: an entry evicted (``max_entries``), cleared (Re-time) or never computed reads as
missing. Streamlit has no public "is this cached" call; its key and read functions are used
here, and anything unexpected reads as "not cached", which only brings the prompt back.
"""
from __future__ import annotations

from typing import Any, Callable


def is_cached(func: Callable, *args: Any, **kwargs: Any) -> bool:
    """Whether ``func`` (an ``st.cache_data`` / ``st.cache_resource`` function) holds a value
    for ``func(*args, **kwargs)``. Pass the arguments exactly as the call does (positional or
    keyword): streamlit's key depends on it. Computes nothing."""
    try:
        from streamlit.runtime.caching.cache_errors import CacheKeyNotFoundError
        from streamlit.runtime.caching.cache_utils import _make_value_key

        info = func._info
        cache = info.get_function_cache(func._function_key)
        key = _make_value_key(cache_type=info.cache_type, func=info.func, func_args=args,
                              func_kwargs=kwargs, hash_funcs=info.hash_funcs)
    except Exception:  # not a cached function, or streamlit's internals moved
        return False
    try:
        cache.read_result(key)
    except CacheKeyNotFoundError:
        return False
    except Exception:  # an unreadable entry is recomputed by the call: not cached
        return False
    return True


def all_cached(calls: list[tuple]) -> bool:
    """Whether every ``(func, args, kwargs)`` in ``calls`` is cached (False for no calls)."""
    return bool(calls) and all(is_cached(f, *a, **k) for f, a, k in calls)
