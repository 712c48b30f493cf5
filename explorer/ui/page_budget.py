"""The compute budget on the analysis pages (Path, Convergence, Axioms, Metrics).

A page lists its work as ``explorer.budget.Work`` pieces priced with the model's measured
pass time (the same machinery as Explore's methods) and calls ``allowed``: work under the
sidebar's budget runs at once; above it the page says what it would cost and waits for "Run
anyway". An approval holds for that exact work (same pieces, same passes) for the session.
Work whose results the server already holds (``cached``: the page's cached calls, looked up
with ``explorer.ui.cache_state``) costs nothing and is shown at once, to any visitor.
"""
from __future__ import annotations

import contextvars
from typing import Callable, Sequence

import streamlit as st

import explorer
from explorer.budget import Work, describe_work, total_seconds
from explorer.ui import context


def per_pass(ctx: context.Context, variant: str | None = None) -> "explorer.PassTime | None":
    """The measured seconds per pass of a variant's model (cached per model)."""
    entry = ctx.loaded[variant or ctx.variants[0]].entry
    try:
        return explorer.pass_time(entry.module, ctx.x.shape[1:], device=entry.device)
    except Exception:  # no estimate: the page runs as before rather than not at all
        return None


def allowed(ctx: context.Context, page: str, work: Sequence[Work],
            cached: Callable[[], bool] | None = None) -> bool:
    """Whether ``page`` may start ``work`` now; when not, a warning and "Run anyway" are shown.
    ``cached()`` says whether the results of all of ``work`` are in the server's cache already
    (asked only above the budget): then nothing runs and nothing is asked."""
    seconds = total_seconds(work)
    if seconds <= ctx.budget_s or (cached is not None and cached()):
        return True
    key = (ctx.model, ctx.image_key, tuple((w.label, w.forward, w.backward) for w in work))
    approved = st.session_state.setdefault(f"{page}-approved", set())
    if key in approved:
        return True
    if st.session_state.get(f"{page}-run-anyway"):
        approved.add(key)
        return True
    st.warning(f"This page's work would take about **{seconds:.3g} s** here, above the compute "
               f"budget of {ctx.budget_s:g} s (sidebar): {describe_work(work)}. Lower the "
               "settings, raise the budget, or run it anyway (Stop, top right, cancels it).")
    st.button("Run anyway", key=f"{page}-run-anyway", type="primary")
    return False


def stepper(total: int, text: str) -> Callable[[str], None]:
    """A progress bar advanced once per piece of work: ``step(label)`` before each. Every update
    is a point where Streamlit's Stop button ends the run."""
    bar = st.progress(0.0, text=text)
    done = [0]
    outer = contextvars.copy_context()

    def step(label: str | None = None) -> None:
        if label is None:  # finished
            bar.empty()
            return
        outer.run(bar.progress, min(done[0] / max(total, 1), 1.0), text=f"{text} {label}...")
        done[0] += 1

    return step
