"""The explorer page: model facts, prediction, heatmaps, completeness and timing."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

import explorer
from explorer import report, viz
from explorer.data import sample_digits, sample_photos
from explorer.baselines import make_baseline
from explorer.ui.compute import VARIANTS, background_for, digest, get_model, model_facts, run_method
from explorer.ui.sidebar import UPLOAD_TYPES, Settings, sidebar

COMPLETENESS_WHY = """
**Why X-Gradient passes exactly on the bias-free model.** Without biases (and with batch norm
reduced to a per-channel scale) a ReLU network is positively homogeneous: F(a x) = a F(x) for
a >= 0, and F(0) = 0. Euler's theorem then gives sum_i x_i dF/dx_i = F(x) = F(x) - F(0), so
Input x Gradient *is* Integrated Gradients from the zero baseline, from one pass: completeness
holds to float precision. On the regular model the biases break homogeneity, F(0) != 0 and the
gradient changes along the path, so Input x Gradient misses part of F(x) - F(0) and fails.
IG meets completeness up to its quadrature error (more steps, smaller error); expected gradients
meets it in expectation over its references; gradient, saliency, SmoothGrad and occlusion promise
no completeness at all.
"""


def _png(array_u8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array_u8).save(buf, format="PNG")
    return buf.getvalue()


@st.cache_data(show_spinner=False)
def examples(channels: int) -> dict[str, bytes]:
    """Ready inputs: test digits (clean, then with a random decoy patch), or sample photos."""
    if channels == 1:
        d = sample_digits()
        out = {f"digit {d['labels'][i]} (test #{d['test_index'][i]})": _png(d["clean"][i, 0])
               for i in range(len(d["labels"]))}
        out.update({f"digit {d['labels'][i]} with decoy patch (test #{d['test_index'][i]})":
                    _png(d["decoy"][i, 0]) for i in range(len(d["labels"]))})
        return out
    return {name: path.read_bytes() for name, path in sample_photos().items()}


def choose_input(entry: explorer.ZooEntry) -> tuple[bytes, str, torch.Tensor]:
    """The example picked, or the user's upload when there is a readable one, as bytes, a
    name and the preprocessed batch [1, ...]."""
    pool = examples(entry.spec.channels)
    names = list(pool)
    if entry.name == "decoy-digits-cnn":  # show the shortcut first
        names = [n for n in names if "decoy" in n] + [n for n in names if "decoy" not in n]
    cols = st.columns([2, 3])
    choice = cols[0].selectbox("Example input", names, key=f"example-{entry.spec.channels}-{entry.name}")
    upload = cols[1].file_uploader("...or upload your own image (PNG, JPEG, WebP, BMP)",
                                   type=UPLOAD_TYPES, key="upload")
    if upload is not None:
        data = upload.getvalue()
        try:
            return data, upload.name, entry.preprocess(data)[None]
        except explorer.InputError as err:
            st.error(f"Could not use **{upload.name}**: {err}. Showing the example instead.")
    return pool[choice], choice, entry.preprocess(pool[choice])[None]


def show_model_facts(s: Settings, loaded: dict, facts: dict) -> None:
    cols = st.columns(len(s.variants))
    for col, v in zip(cols, s.variants):
        entry, f = loaded[v].entry, facts[v]
        with col:
            st.markdown(f"**{entry.title}**")
            if loaded[v].warning:
                st.warning(f"Pretrained weights unavailable, showing **random weights** "
                           f"(untrained): {loaded[v].warning}")
            if entry.note:
                st.info(entry.note)
            err = f["homogeneity_error"]
            st.metric("homogeneity error  max |F(ax) - aF(x)| / |aF(x)|", f"{err:.2e}",
                      help="Measured at a = 0.5, 2, 3 on this input. ~1e-7 means homogeneous.")
            if f["obstacles"]:
                lines = "\n".join(f"- `{layer}` {typ}: {why}" for layer, typ, why in f["obstacles"][:8])
                more = len(f["obstacles"]) - 8
                st.markdown("Not homogeneous because of:\n" + lines + (f"\n- ... and {more} more" if more > 0 else ""))
            else:
                st.markdown("No layer breaks homogeneity: an **X-DNN**.")
            labels, probs = zip(*[(f"{lab} ({i})" if lab != str(i) else lab, p) for i, lab, p in f["top"]])
            st.plotly_chart(viz.prediction_figure(labels, probs, "prediction (top 5)"),
                            key=f"pred-{v}")


def main() -> None:
    device = explorer.default_device()
    s = sidebar(device)
    st.title("Axiomatic attribution explorer")
    st.caption("Integrated Gradients needs tens to hundreds of passes; on a bias-free ReLU "
               "network (an X-DNN) Input x Gradient equals it from one. See it, check it, time it.")

    try:
        loaded = {v: get_model(s.model, VARIANTS[v]) for v in s.variants}
    except explorer.InputError as err:
        st.error(f"Could not load {s.model}: {err}")
        return
    first = loaded[s.variants[0]].entry

    image_bytes, input_name, x = choose_input(first)
    image_key = f"{s.model}:{digest(image_bytes)}"
    try:
        facts = {v: model_facts(s.model, VARIANTS[v], image_key, x) for v in s.variants}
    except Exception as err:  # e.g. a custom checkpoint that does not run on this input
        st.error(f"{first.title} could not run on this input: {type(err).__name__}: {err}")
        return
    show_model_facts(s, loaded, facts)

    predicted = int(np.argmax(facts[s.variants[0]]["probs"]))
    probs = facts[s.variants[0]]["probs"]
    target = st.selectbox(
        "Explain the logit of class", list(range(len(first.labels))), index=predicted,
        key=f"target-{image_key}",
        format_func=lambda k: f"{first.labels[k]} ({probs[k]:.1%})" + ("  <- predicted" if k == predicted else ""))

    if not s.methods:
        st.info("Choose at least one attribution method in the sidebar.")
        return

    baseline_name, baseline_image, baseline_key = s.baseline, None, s.baseline
    if s.baseline == "image":
        baseline_name = baseline_key = "zero"  # until a readable image is there
        if s.baseline_upload is None:
            st.info("Upload a baseline image in the sidebar; using the zero baseline until then.")
        else:
            data = s.baseline_upload.getvalue()
            try:
                baseline_image = first.preprocess(data)
                baseline_name, baseline_key = "image", f"image:{digest(data)}"
                st.caption(f"Baseline image resized to the model's input ({first.spec.size} x {first.spec.size}).")
            except explorer.InputError as err:
                st.error(f"Could not use the baseline image: {err}. Using the zero baseline.")
    baseline = make_baseline(baseline_name, x, input_space=first.input_space, image=baseline_image)
    background = background_for(s.model) if "expected_gradients" in s.methods else None

    results, total = {}, len(s.methods) * len(s.variants)
    progress = st.progress(0.0, text="Computing attributions...")
    for k, (m, v) in enumerate((m, v) for m in s.methods for v in s.variants):
        label = explorer.method_label(m, VARIANTS[v])
        progress.progress(k / total, text=f"{label} on the {v} model...")
        params = tuple(sorted(s.params.get(m, {}).items()))
        spec = explorer.METHODS[m]
        b, bkey = (background, "background") if m == "expected_gradients" else (
            (baseline, baseline_key) if spec.uses_baseline else (None, "-"))
        try:
            results[(m, v)] = run_method(s.model, VARIANTS[v], m, params, image_key, bkey, target,
                                         s.repeats, x, b)
        except explorer.InputError as err:
            st.error(f"{label} ({v}): {err}")
        except Exception as err:  # an unusual model must not take the page down
            st.error(f"{label} ({v}) failed: {type(err).__name__}: {err}")
    progress.empty()
    if not results:
        return

    show_heatmaps(s, first, x, results)
    show_completeness(s, results)
    show_timing(s, results)
    show_downloads(s, results, input_name)


def show_heatmaps(s: Settings, entry, x: torch.Tensor, results: dict) -> None:
    st.subheader("Attributions")
    rows = [m for m in s.methods if any((m, v) in results for v in s.variants)]
    maps = {(m, v): viz.to_map(r["attributions"]) for (m, v), r in results.items()}
    titles = {(m, v): f"{explorer.method_label(m, VARIANTS[v])} | {v}" for (m, v) in results}
    fig = viz.heatmap_grid(maps, rows, list(s.variants), image=entry.to_image(x[0]),
                           shared_scale=s.shared_scale, clip_percentile=s.clip_percentile,
                           overlay=s.overlay, titles=titles)
    st.plotly_chart(fig, key="heatmaps")
    st.caption("Red raises the explained logit, blue lowers it; channels summed. "
               + ("One colour scale for all panels." if s.shared_scale else "Each panel scaled to itself."))


def completeness_table(s: Settings, results: dict) -> pd.DataFrame:
    return pd.DataFrame([report.completeness_row(m, VARIANTS[v], r["completeness"], s.rtol)
                         for (m, v), r in results.items()])


def _formatted(table: pd.DataFrame, fmt: str, *scientific: str) -> pd.DataFrame:
    """Numbers as short strings for display (blank where not applicable); index hidden."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            f = "{:.2e}" if col in scientific else fmt
            out[col] = [("" if pd.isna(v) else f.format(v)) for v in out[col]]
    return out.set_index(out.columns[0])


def show_completeness(s: Settings, results: dict) -> None:
    st.subheader("Completeness: does the map add up to F(x) - F(baseline)?")
    st.table(_formatted(completeness_table(s, results), "{:.4g}", "rel error", "abs error"))
    st.caption(f"Pass: relative error <= {s.rtol:g}. For expected gradients F(ref) is the mean "
               "over the references drawn; for input x gradient the reference is the zero input.")
    with st.expander("Why does X-Gradient pass on the bias-free model and fail on the regular one?",
                     expanded=False):
        st.markdown(COMPLETENESS_WHY)


def timing_records(results: dict) -> list[dict]:
    records = []
    for (m, v), r in results.items():
        ig = results.get(("integrated_gradients", v))
        records.append(report.timing_row(
            m, VARIANTS[v], median_ms=r["median_ms"], forward_passes=r["forward_passes"],
            backward_passes=r["backward_passes"], device=r["device"],
            ig_median_ms=ig["median_ms"] if ig else None))
    return records


def show_timing(s: Settings, results: dict) -> None:
    st.subheader("Timing")
    records = timing_records(results)
    table = pd.DataFrame(records).rename(columns={
        "median_ms": "median (ms)", "forward_passes": "forward passes", "backward_passes":
        "backward passes", "speedup_vs_ig": "x faster than IG"})
    st.table(_formatted(table, "{:.3g}"))
    st.plotly_chart(viz.timing_figure(records), key="timing-chart")
    st.caption(f"Median of {s.repeats} timed calls after one warm-up call (whose passes are "
               "counted), synchronised on GPU; passes are per explained input.")


def show_downloads(s: Settings, results: dict, input_name: str) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{v}__{m}": r["attributions"] for (m, v), r in results.items()})
    cols = st.columns(3)
    cols[0].download_button("Attributions (.npz)", buf.getvalue(), file_name="attributions.npz",
                            mime="application/octet-stream")
    cols[1].download_button("Completeness (.csv)", completeness_table(s, results).to_csv(index=False),
                            file_name="completeness.csv", mime="text/csv")
    cols[2].download_button("Timing (.csv)", pd.DataFrame(timing_records(results)).to_csv(index=False),
                            file_name="timing.csv", mime="text/csv")
