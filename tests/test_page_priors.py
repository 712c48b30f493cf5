"""The Priors page through AppTest: the shipped experiment's table, the plain and prior-trained
models on a decoyed digit, and a short live training run."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from explorer.train.decoy import RESULTS


def script():
    from explorer.ui.pages.priors import render
    render()


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_function(script, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_default_shows_the_shipped_experiment_and_the_patch_shares(page):
    table = page.dataframe[0].value
    rows = json.loads(RESULTS.read_text())["rows"]
    assert len(table) == len(rows)
    for (_, shown), row in zip(table.iterrows(), rows):
        assert shown["decoyed test %"] == pytest.approx(100 * row["accuracy"]["test_decoy"])
        assert shown["x plain"] == pytest.approx(row["epoch_time_vs_plain"])
    shares = page.dataframe[1].value["share of |IG| on the patch %"]
    plain, prior = shares.iloc[0], shares.iloc[1]
    assert plain > 2 * prior  # the plain model reads the patch, the prior-trained one the digit


def test_live_training_reports_its_run(page):
    page.select_slider(key="priors.live.steps").set_value(16)
    page.button(key="priors.live.train").click()
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    text = " ".join(m.value for m in page.markdown)
    assert "16 steps" in text and "decoyed test" in text
    assert len(page.get("plotly_chart")) == 3  # cost plot, heatmaps, loss curve


def test_prior_model_in_the_shared_choice_shows_its_one_variant():
    from pathlib import Path
    app = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
    at = AppTest.from_file(app, default_timeout=300)
    at.run()
    at.selectbox(key="model").set_value("decoy-digits-cnn-prior-x-gradient")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("bias-free only" in c.value for c in at.caption)
