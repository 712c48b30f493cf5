"""A page's work against the compute budget: run it, or name what waits for "Run anyway".

For pages whose work is not a list of methods (the Explore page has its own, per method): the
page says how many forward+backward passes each part takes, this module prices them with the
model's measured time per pass and asks before starting more than the budget.
"""
from __future__ import annotations

import streamlit as st

import explorer
from explorer.ui import context


def seconds_per_pass(ctx: context.Context) -> float | None:
    """Measured seconds of one forward and one backward pass of this model, None if unknown."""
    try:
        t = explorer.pass_time(ctx.entry.module, ctx.x.shape[1:], device=ctx.entry.device)
    except Exception:  # the estimate is a help, never a reason to fail the page
        return None
    return t.forward_s + t.backward_s + t.call_s


def method_passes(ctx: context.Context, method: str) -> float:
    """Forward+backward passes of one call of ``method`` with its sidebar settings."""
    spec = explorer.METHODS[method]
    try:
        cost = spec.cost(spec.resolve(dict(ctx.hparams(method))), tuple(ctx.x.shape))
    except explorer.InputError:  # bad settings: the page says so when it runs the method
        return 0.0
    return max(cost.forward, cost.backward)


def run_or_wait(ctx: context.Context, page: str, work: dict[str, float]) -> bool:
    """True when ``work`` (label -> forward+backward passes) fits the budget or was approved;
    else a warning naming each part and its estimate, a "Run anyway" button, and False."""
    per_pass = seconds_per_pass(ctx)
    if per_pass is None:
        return True
    seconds = {label: passes * per_pass for label, passes in work.items()}
    total = sum(seconds.values())
    approved = st.session_state.setdefault(f"{page}-approved", set())
    key = (ctx.model, ctx.image_key, ctx.variants, tuple(sorted(work.items())))
    if total <= ctx.budget_s or key in approved:
        return True
    if st.session_state.get(f"{page}-run-anyway"):
        approved.add(key)
        return True
    st.warning(f"This page's work would take about **{total:.3g} s** here, above the compute "
               f"budget of {ctx.budget_s:g} s (sidebar). Waiting: "
               + "; ".join(f"{label} ~{s:.3g} s" for label, s in seconds.items())
               + ". Lower the steps, raise the budget, or run it anyway.")
    st.button("Run anyway", key=f"{page}-run-anyway", type="primary")
    return False
