"""Speed: the latest benchmark shipped with the repo as plots, and a short live one on this machine."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer.bench import BenchConfig, run_bench, shipped_results
from explorer.bench.output import figures
from explorer.ui import downloads
from explorer.ui import context, sharing

LIVE_SECTIONS = ("methods",)
ROW_COLUMNS = {"method": "method", "variant": "variant", "median_ms": "median (ms)",
               "q1_ms": "q1 (ms)", "q3_ms": "q3 (ms)", "rounds": "rounds",
               "forward_passes": "forward passes", "x_limit": "x the one-pass limit",
               "speedup_vs_ig": "x faster than IG"}


def where(result: dict) -> str:
    m, c = result["machine"], result["config"]
    return (f"{c['model']} on {m['device']} ({m.get('gpu') or m['processor']}, {m['cpu_count']} CPUs, "
            f"{m['threads']} torch threads), torch {m['torch']}, {c.get('clock', 'wall')} clock, "
            f"precision {c.get('precision', 'float32')}, "
            f"started {result['started']}")


def show(result: dict, key: str) -> None:
    st.caption(where(result))
    for name, section in result["sections"].items():
        if section.get("rows"):
            table = pd.DataFrame(section["rows"])[list(ROW_COLUMNS)].rename(columns=ROW_COLUMNS)
            st.markdown(f"**{name}** · {section.get('model', '')} · input {section.get('input', '')}")
            st.dataframe(table.round(3), hide_index=True, key=f"{key}-{name}-table")
    for name, fig in figures(result).items():
        downloads.plotly_chart(fig, key=f"{key}-{name}")


def render() -> None:
    st.title("Speed")
    st.caption("Every row of a table was timed in the same interleaved run: round-robin over "
               "the rows, each call repeated inside a measurement until it lasts long enough, "
               "median and quartiles per row. The shipped figures come from "
               "`python -m explorer bench` (command and machine below).")
    shipped = shipped_results()
    st.subheader("Latest benchmark in the repository")
    if not shipped:
        st.info("No benchmark JSON under benchmarks/results/ yet: run `python -m explorer bench "
                "--out benchmarks/results`.")
    else:
        names = [f"{r['config']['model']}"
                 + (f", {r['config']['size']} px" if r['config'].get('size') else "")
                 + f" ({r['started']})" for r in shipped]
        # By start time, so that a link keeps naming the same run when new ones are shipped.
        ids = ["latest"] + [r["started"] for r in shipped[1:]]
        _, key, _ = sharing.widget("speed.benchmark", options=ids)
        pick = ids.index(st.selectbox("Benchmark", ids, key=key, help="Newest first.",
                                      format_func=lambda i: names[ids.index(i)]))
        show(shipped[pick], "speed-shipped")

    st.subheader("A short live benchmark on this machine")
    ctx = context.current()
    s, key, default = sharing.widget("speed.rounds", ctx)
    rounds = int(st.number_input("Rounds", int(s.low), int(s.high), default, key=key))
    st.caption(f"Times the limit, every registered method and IG/EG at several step counts on "
               f"**{ctx.model}** ({ctx.device}), both variants, {rounds} interleaved rounds.")
    if st.button("Run the live benchmark", key="speed-run"):
        bar = st.progress(0.0, text="Starting...")

        def progress(section: str, done: int, fraction: float) -> None:
            bar.progress(fraction, text=f"{section}: round {done}")

        cfg = BenchConfig(model=ctx.model, device=str(ctx.device), rounds=rounds,
                          sections=LIVE_SECTIONS, progress=progress, precision=ctx.precision)
        try:
            st.session_state["speed-live"] = run_bench(cfg, say=lambda _: None)
        except Exception as err:  # a live run must not take the page down
            st.error(f"The live benchmark failed: {type(err).__name__}: {err}")
        bar.empty()
    if "speed-live" in st.session_state:
        show(st.session_state["speed-live"], "speed-live")
