"""Priors: training a model off a shortcut with an attribution prior, and what it costs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import explorer
from explorer import viz
from explorer.train.decoy import decoyed_samples, load_results, patch_attribution
from explorer.train.priors import Prior
from explorer.ui import downloads, sharing
from explorer.ui.compute import session_model_name
from explorer.ui.context import SESSION_MODELS

PLAIN, PRIOR = ("decoy-digits-cnn", False), ("decoy-digits-cnn-prior-x-gradient", True)
# id (as in a link: explorer.ui.view_settings) -> (label, (attribution, k) or None)
LIVE_PRIORS = {"none": ("none (plain training)", None),
               "x-gradient": ("X-Gradient (bias-free, 1 pass)", ("x-gradient", 1)),
               "gradient": ("input gradient (1 pass)", ("gradient", 1)),
               "eg": ("Expected Gradients, 1 reference", ("eg", 1))}
INTRO = """
A decoy digit carries a gray patch in a corner whose shade encodes the label during training
and is random at test time (Decoy MNIST, Ross et al.). A plain network learns the patch.
A *right-for-the-right-reasons* prior adds lambda x sum (mask x attribution)^2 over the patch to the
loss, with the attribution computed differentiably (double backward). With X-Gradient on a
bias-free network that attribution *is* Integrated Gradients and costs one pass; IG and expected
gradients with k steps or references cost k.
"""


def results_table(results: dict) -> pd.DataFrame:
    rows = []
    for r in results["rows"]:
        p = r["prior"]
        rows.append({
            "model": r["model"], "variant": r["variant"],
            "attribution in the prior": "—" if not p else f"{p['attribution']} (k={p['k']})",
            "train %": 100 * r["accuracy"]["train"],
            "clean test %": 100 * r["accuracy"]["test_clean"],
            "decoyed test %": 100 * r["accuracy"]["test_decoy"],
            "s / epoch (median)": r["epoch_seconds_median"],
            "s / epoch (min)": r.get("epoch_seconds_min", float("nan")),
            "s / epoch (max)": r.get("epoch_seconds_max", float("nan")),
            "x plain": r["epoch_time_vs_plain"],
            "input-gradient passes / sample": r["input_gradient_passes_per_sample"]})
    return pd.DataFrame(rows).set_index("model")


def clean_below_decoyed(results: dict) -> str:
    """Why a plain model can score lower on clean digits than on decoyed ones, when it does."""
    low = [r for r in results["rows"] if not r["prior"]
           and r["accuracy"]["test_clean"] < r["accuracy"]["test_decoy"]]
    if not low:
        return ""
    r = low[0]
    return (f" The plain {r['variant']} model scores lower on clean test digits "
            f"({100 * r['accuracy']['test_clean']:.1f}%) than on decoyed ones "
            f"({100 * r['accuracy']['test_decoy']:.1f}%): every training digit carried a patch, so "
            "a digit with none is something it never saw, while a decoyed test digit looks like "
            "its training data (only the patch's gray is random).")


@st.cache_resource(show_spinner=False)
def _models():
    return {key: explorer.load_model(key[0], bias_free=key[1], device="cpu")
            for key in (PLAIN, PRIOR)}


def side_by_side(samples: dict) -> None:
    st.subheader("Where the models look, on decoyed test digits")
    names = [f"digit {int(samples['labels'][i])} (test #{samples['test_index'][i]})"
             for i in range(len(samples["labels"]))]
    _, key, default = sharing.widget("priors.digit", options=range(len(names)))
    i = st.selectbox("Decoyed digit", range(len(names)), index=default, key=key,
                     format_func=names.__getitem__)
    x, mask, label = samples["x"][i:i + 1], samples["mask"][i:i + 1], int(samples["labels"][i])
    try:
        models = _models()
    except explorer.InputError as err:
        st.error(f"The shipped decoy models could not be loaded: {err}")
        return
    maps, titles, shares = {}, {}, []
    for key, entry in models.items():
        a, share = patch_attribution(entry.module, x, label, mask,
                                     "integrated_gradients", steps=32)
        with_patch = int(entry.module(x).argmax())
        row = entry.title
        maps[(row, "IG")] = viz.to_map(a[0].numpy())  # [1, 28, 28] -> [28, 28]: plotly draws no 3-D z
        titles[(row, "IG")] = f"{entry.title}: predicts {with_patch}"
        shares.append({"model": entry.title, "predicts": with_patch, "label": label,
                       "share of |IG| on the patch %": 100 * float(share[0])})
    rows = [m.title for m in models.values()]
    downloads.plotly_chart(viz.heatmap_grid(maps, rows, ["IG"], image=models[PLAIN].to_image(x[0]),
                                        titles=titles), key="priors.heatmaps")
    st.dataframe(pd.DataFrame(shares).set_index("model"), key="priors.shares", width="stretch")
    st.caption("Integrated Gradients (32 steps, zero baseline) of the true label's logit; "
               "the patch covers 64 of 784 pixels (8%).")


def live_training(samples: dict) -> None:
    st.subheader("Train one yourself")
    st.caption("A few hundred steps on 1,024 decoy training digits (batch 64), then accuracy on "
               "500 test digits. The model stays in this session.")
    s, key, default = sharing.widget("priors.prior")
    choice = st.selectbox("Attribution in the prior", s.options, index=s.options.index(default),
                          key=key, format_func=lambda c: LIVE_PRIORS[c][0])
    s, key, default = sharing.widget("priors.steps")
    steps = int(st.select_slider("Steps", s.options, value=default, key=key))
    s, key, default = sharing.widget("priors.weight")
    weight = float(st.select_slider("Prior weight lambda", s.options, value=default, key=key))
    if st.button("Train", key="priors.live.train"):
        spec = LIVE_PRIORS[choice][1]
        prior = None if spec is None else Prior("rrr", spec[0], weight, spec[1])
        bar = st.progress(0.0, text="training...")
        from explorer.train.live import train_live
        run = train_live(prior, bias_free=spec is None or spec[0] == "x-gradient", steps=steps,
                         on_step=lambda i, n, loss: bar.progress(
                             i / n, text=f"step {i}/{n}, loss {loss:.3f}"))
        st.session_state.setdefault("priors.live.runs", []).append(run)
    runs = st.session_state.get("priors.live.runs", [])
    if not runs:
        return
    run = runs[-1]
    label = "plain" if run.prior is None else f"{run.prior.label} prior"
    downloads.plotly_chart(viz.loss_figure(run.losses), key="priors.live.loss")
    st.write(f"**{label}** ({'bias-free' if run.bias_free else 'regular'}), {len(run.losses)} "
             f"steps in {run.seconds:.1f} s: clean test {100 * run.accuracy['test_clean']:.1f}%, "
             f"decoyed test {100 * run.accuracy['test_decoy']:.1f}%")
    x, mask = samples["x"], samples["mask"]
    _, share = patch_attribution(run.model, x, samples["labels"], mask, "integrated_gradients",
                                 steps=32)
    st.write(f"Share of |IG| on the patch over the 20 bundled decoyed digits: "
             f"{100 * float(share.mean()):.1f}%")
    if "path" not in st.session_state.get("priors.live.saved", {}) or \
            st.session_state["priors.live.saved"]["run"] is not run:
        path = str(run.save())
        st.session_state["priors.live.saved"] = {"run": run, "path": path}
        # Offered in the sidebar's model choice on every page for the rest of the session.
        st.session_state.setdefault(SESSION_MODELS, []).append(
            session_model_name("decoy-digits-cnn", run.bias_free, path))
        # The sidebar was drawn before this page: run again so that the model list has it
        # before the caption below says so.
        st.rerun()
    st.caption("Now in the sidebar's model choice (\"trained live in this session\") on every "
               "page. Its weights, loadable with `explorer.load_model('decoy-digits-cnn', "
               f"bias_free={run.bias_free}, checkpoint=...)`: "
               f"`{st.session_state['priors.live.saved']['path']}`")


def render() -> None:
    st.title("Attribution priors: training off a shortcut")
    st.markdown(INTRO)
    try:
        results = load_results()
    except explorer.InputError as err:
        st.error(str(err))
        return
    st.subheader("The decoy experiment")
    st.dataframe(results_table(results).style.format(precision=2), key="priors.table",
                 width="stretch")
    downloads.plotly_chart(viz.prior_cost_figure(results["rows"],
                                             results["reference_clean_model"]["test_clean"]),
                       key="priors.cost")
    st.caption(f"`{results['command']}` on {results['machine']}; {results['timing']}."
               + clean_below_decoyed(results))
    samples = decoyed_samples()
    side_by_side(samples)
    live_training(samples)
