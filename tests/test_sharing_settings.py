"""Links carry every declared widget (explorer/ui/view_settings.py): pure round trips over the
registry, bad values as notes, and each page opened from a link (AppTest) showing the widgets and
the numbers of the view the link encodes.

Everything is parametrised over ``SETTINGS``: a new declared widget is covered without a new test.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import explorer
from explorer.ui import view_settings, view_state
from explorer.ui.pages import PAGES
from explorer.ui.view_settings import SETTINGS, Setting
from explorer.ui.view_state import View
from test_sharing import open_link, shared_link

PAGE_NAMES = [p.name for p in PAGES]


def mode_values(s: Setting) -> list:
    return list(s.default) if s.mode else [None]


def text_examples() -> dict:
    """A real non-default value of each "text" setting (one the page can show here)."""
    from explorer.bench import shipped_results
    return {"speed.benchmark": shipped_results()[-1]["started"]}


def other_value(s: Setting, mode=None):
    """A valid value that is not the default (the cheaper side where there is a choice)."""
    default = s.default_for(mode)
    if s.kind == "text":
        return text_examples()[s.name]  # a new text setting adds its example there
    if s.kind == "bool":
        return not default
    if s.kind == "choice":
        return next(o for o in s.options if o != default)
    if s.kind == "choices":
        return list(default[:1]) if list(default[:1]) != list(default) else list(s.options[:1])
    if s.kind == "int":
        return default - 1 if default - 1 >= s.low else default + 1
    if default > s.low:
        return s.low + (default - s.low) / 2
    return default + (s.high - default) / 3


CASES = [(s, m) for s in SETTINGS for m in mode_values(s)]
IDS = [f"{s.name}-{m}" for s, m in CASES]


@pytest.mark.parametrize("s, mode", CASES, ids=IDS)
def test_every_declaration_is_consistent(s, mode):
    assert s.kind in view_settings.KINDS
    assert s.page is None or s.page in PAGE_NAMES, s.name
    assert s.same(s.check(s.default_for(mode)), mode)  # the default is allowed
    assert ("{mode}" in s.key) <= (s.mode is not None)
    if s.mode:
        assert s.mode in view_settings.MODES
    if s.kind in ("int", "float"):
        assert s.low < s.high and not s.options
    elif s.kind in ("bool", "text"):
        assert not s.options and s.low is None and s.high is None
    else:
        assert s.options and s.low is None and s.high is None


def test_names_and_keys_are_unique():
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)
    # a link's key is read as a setting first: none may shadow a sidebar parameter
    assert not {s.name for s in SETTINGS} & view_state.KNOWN
    assert not {s.page for s in SETTINGS} & set(explorer.METHODS)  # nor a method's settings


@pytest.mark.parametrize("s, mode", CASES, ids=IDS)
def test_a_non_default_value_travels_and_comes_back(s, mode):
    value = other_value(s, mode)
    modes = {s.mode: mode} if s.mode else {}
    assert view_settings.non_default({s.name: value}, modes) == {s.name: value}
    query = view_state.encode(View(settings={s.name: value}))
    assert list(query) == [s.name]  # nothing else is written
    back, notes = view_state.parse(query, explorer.METHODS, PAGE_NAMES)
    assert notes == []
    assert back.settings == {s.name: value}
    assert type(back.settings[s.name]) is type(value)  # an int stays an int for its widget


@pytest.mark.parametrize("s, mode", CASES, ids=IDS)
def test_a_default_value_is_not_written(s, mode):
    modes = {s.mode: mode} if s.mode else {}
    assert view_settings.non_default({s.name: s.default_for(mode)}, modes) == {}


def bad_tokens(s: Setting) -> list[str]:
    if s.kind == "bool":
        return ["maybe", "2"]
    if s.kind == "choice":
        return ["no-such-option", ""]
    if s.kind == "choices":
        return [f"{view_settings.format_value(s.options[0])},no-such-option"]
    if s.kind == "text":
        return ["", " ", "x" * (view_settings.TEXT_LIMIT + 1)]
    tokens = ["abc", "nan", "inf", repr(float(s.high) + 1), repr(float(s.low) - 1)]
    return tokens + (["1.5"] if s.kind == "int" else [])


BAD = [(s, token) for s in SETTINGS for token in bad_tokens(s)]


@pytest.mark.parametrize("s, token", BAD, ids=[f"{s.name}={t}" for s, t in BAD])
def test_a_bad_value_is_a_note_never_an_exception(s, token):
    view, notes = view_state.parse({s.name: token, "methods": "saliency"}, explorer.METHODS,
                                   PAGE_NAMES)
    assert view.settings == {} and view.methods == ["saliency"]  # the rest still applies
    assert len(notes) == 1 and f"Setting {s.name} '{token}'" in notes[0], notes
    assert "using the default" in notes[0]


def test_numbers_and_choices_read_as_people_type_them():
    assert view_settings.BY_NAME["priors.weight"].parse("10") == 10.0  # 10 for the option 10.0
    assert view_settings.BY_NAME["explore.rtol"].parse("0.00001") == 1e-5
    assert view_settings.BY_NAME["metrics.subsets"].parse("20.0") == 20
    assert view_settings.BY_NAME["explore.overlay"].parse("true") is True
    rules = view_settings.BY_NAME["convergence.rules"]
    assert rules.parse("middle,left,middle") == ["middle", "left"]  # order kept, once each


# --- the app opened from a link (AppTest) -----------------------------------------------------

WIDGETS = ("selectbox", "number_input", "slider", "select_slider", "toggle", "radio",
           "multiselect", "checkbox")


# Widgets a link carries outside the registry (view_state's sidebar fields) or never carries.
SIDEBAR = re.compile(r"^(model|variants|example-.*|target-.*|methods|param\..*|baseline|"
                     r"baseline-sigma-.*|present)$")
NOT_CARRIED = {"budget_s",  # the viewer's compute allowance on this server, not the view
               "upload", "onnx_upload", "baseline_upload"}  # files stay in their session


def widget_value(at: AppTest, key: str):
    found = [w for kind in WIDGETS for w in at.get(kind) if getattr(w, "key", None) == key]
    assert len(found) == 1, (key, len(found))
    return found[0].value


def texts(at: AppTest) -> str:
    return "\n".join(e.value for kind in ("caption", "markdown", "title") for e in at.get(kind))


def path_output(at, values):
    """The completeness caption against an independent path trace of the same view."""
    ctx = at.session_state["_explorer_context"]
    model = explorer.load_model("digits-cnn", bias_free=True, device="cpu").module
    steps = values["path.steps"]
    tr = explorer.path_trace(model, ctx.x, ctx.target, baseline=ctx.baseline, steps=steps)
    caption = next(c.value for c in at.caption if c.value.startswith("Completeness error"))
    assert f"({steps} steps, right Riemann sum): {float(tr.completeness_error[0]):.2e}" in caption
    assert f"F(x) - F(x') = {float(tr.delta[0]):.4g}" in caption
    assert "linear region" in caption  # path.regions on: the walk ran


def convergence_output(at, values):
    table = at.dataframe[0].value
    largest, rules = values["convergence.largest"], values["convergence.rules"]
    assert [c for c in table.columns if c.isdigit()][-1] == str(largest)
    assert set(table["rule"]) - {"X-Gradient (1 pass)"} == set(rules)


def metrics_output(at, values):
    side, subsets = values["metrics.block"], values["metrics.subsets"]
    said = texts(at)
    assert f"({side}x{side} patches, all channels), {subsets} random subsets per n" in said
    assert f"Fill: {values['metrics.fill']}; score: target {values['metrics.score']}" in said
    assert f"; {values['metrics.steps']} chunks." in said


def priors_output(at, values):
    from explorer.train.decoy import decoyed_samples
    shown = at.dataframe[1].value  # the side-by-side shares: label of the chosen digit
    assert set(shown["label"]) == {int(decoyed_samples()["labels"][values["priors.digit"]])}


OUTPUT = {
    "explore": lambda at, v: f"Pass: relative error <= {v['explore.rtol']:g}." in texts(at),
    "path": path_output,
    "convergence": convergence_output,
    "axioms": lambda at, v: True,  # the radio's value is the view; the table follows it
    "metrics": metrics_output,
    "priors": priors_output,
    "precision": lambda at, v: f"IG ({v['precision.steps']} steps)" in texts(at),
    "speed": lambda at, v: (f"{v['speed.rounds']} interleaved rounds" in texts(at)
                            and f"started {v['speed.benchmark']}" in texts(at)),
}
BIAS = {"axioms": "both"}  # the Axioms variant's other value needs both variants shown


@pytest.mark.parametrize("page", sorted({s.page for s in SETTINGS if s.page}))
def test_a_link_opens_the_page_with_its_widgets_and_their_output(page):
    """Every setting of the page (and the every-page ones) at a non-default value in one link."""
    variants = ("regular", "bias-free") if BIAS.get(page) == "both" else ("bias-free",)
    modes = view_settings.modes(explorer.MODELS["digits-cnn"], variants)
    values = {s.name: other_value(s, modes.get(s.mode)) for s in view_settings.of_page(page)}
    query = {"page": page, "methods": "saliency", "bias": BIAS.get(page, "bias-free"),
             **view_state.encode(View(settings=values))}
    at = open_link(query)
    assert not [w.value for w in at.warning if w.value.startswith("Link:")]
    for name, value in values.items():
        s = view_settings.BY_NAME[name]
        assert widget_value(at, s.key_for(modes.get(s.mode))) == value, name
    asked = {k: v for k, v in shared_link(at).items() if k in values}
    assert asked == {k: query[k] for k in values}  # the box offers the same view back
    assert {k: (v[-1] if isinstance(v, list) else v)
            for k, v in at.query_params.items() if k in values} == asked  # the address bar too
    assert f"in **{values['precision']}**" in texts(at)  # the every-page precision
    assert OUTPUT[page](at, values) is not False
    drawn = {w.key for kind in WIDGETS + ("text_input", "file_uploader") for w in at.get(kind)}
    declared = {view_settings.BY_NAME[n].key_for(modes.get(view_settings.BY_NAME[n].mode))
                for n in values}
    assert {k for k in drawn - declared - NOT_CARRIED if not SIDEBAR.match(k or "")} == set()
    if page == "metrics":  # a rerun keeps the view (the link is read once, the widgets rule)
        at.run()
        assert {k: v for k, v in shared_link(at).items() if k in values} == asked


def test_a_value_not_available_here_falls_back_with_a_note():
    at = open_link({"page": "axioms", "methods": "saliency", "bias": "bias-free",
                    "axioms.variant": "regular", "metrics.block": "999"})
    said = [w.value for w in at.warning if w.value.startswith("Link:")]
    assert any("axioms.variant 'regular' is not available here" in w for w in said), said
    assert any("metrics.block '999'" in w and "outside 1..64" in w for w in said), said
    assert widget_value(at, "axioms-variant") == "bias-free"
    assert "axioms.variant" not in shared_link(at)  # the link shows what is on screen


def test_a_stale_benchmark_falls_back_to_the_latest():
    at = open_link({"page": "speed", "methods": "saliency", "speed.benchmark": "1999-01-01"})
    said = [w.value for w in at.warning if w.value.startswith("Link:")]
    assert any("speed.benchmark '1999-01-01' is not available here" in w for w in said), said
    assert widget_value(at, "speed-shipped-pick") == "latest"
    assert "speed.benchmark" not in shared_link(at)


def test_a_changed_widget_joins_the_link_and_presentation_mode_stays():
    at = open_link({"page": "precision", "methods": "saliency", "present": "1"})
    assert "precision.steps" not in shared_link(at)
    at.select_slider(key="precision-steps").set_value(16).run()
    assert not at.exception
    query = shared_link(at)
    assert query["precision.steps"] == "16" and query["present"] == "1"
    assert any("font-size: 24px" in h.proto.body for h in at.get("html"))


def test_the_docs_list_every_setting_a_link_carries():
    page = (Path(__file__).resolve().parent.parent / "docs" / "sharing.md").read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in page]
    assert missing == [], f"docs/sharing.md does not list {missing}"
