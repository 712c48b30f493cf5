"""A view of the app as URL query parameters and back: pure functions, no streamlit.

The link carries what a person chose in the sidebar and where they were::

    ?page=metrics&model=digits-cnn&bias=both&input=digit+7+(test+%230)&class=7
     &methods=saliency,integrated_gradients&integrated_gradients.steps=128
     &baseline=blur&sigma=4&metrics.subsets=20&precision=float64&present=1

Only the settings that differ from a method's default travel, and of the widgets declared in
``explorer.ui.view_settings`` (the pages' own, the display options, the precision) only those
that differ from their default. ``parse`` never raises: whatever
it cannot read becomes a note for the person and is left to the app's default. What depends on
the model (its inputs, classes, baseline width bounds) is checked later by ``pick`` and
``pick_number``, once the app knows the options.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from explorer.ui import view_settings
from explorer.ui.view_settings import format_value  # one text per value, for both kinds

# The sidebar's bias-removal choice, as a short token in the link.
BIAS_TOKENS = {("regular", "bias-free"): "both", ("regular",): "regular",
               ("bias-free",): "bias-free"}
KNOWN = {"page", "model", "bias", "input", "class", "methods", "baseline", "sigma", "present"}
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass
class View:
    """What a link asks for; None means "the app's default"."""

    page: str | None = None
    model: str | None = None
    variants: tuple[str, ...] | None = None
    input: str | None = None
    target: int | None = None
    methods: list[str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-default settings only
    baseline: str | None = None
    sigma: float | None = None
    present: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # view_settings name -> value


def _one(value: Any) -> str:
    """A query value as one string (streamlit gives the last of repeated keys; lists are
    accepted too)."""
    if isinstance(value, (list, tuple)):
        return str(value[-1]) if value else ""
    return str(value)


def parse_param(param: Any, token: str) -> Any:
    """A method setting from its text in the link, validated by the registry's ``Param``;
    raises ValueError with a short reason when it is not a valid value."""
    if param.choices is not None:
        for choice in param.choices:
            if str(choice) == token:
                return choice
        raise ValueError(f"not one of {', '.join(map(str, param.choices))}")
    if param.kind is bool:
        if token.lower() in TRUE | FALSE:
            return token.lower() in TRUE
        raise ValueError("not true or false")
    if param.kind is str:
        return token
    value = float(token)  # ValueError on text
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    if param.kind is int:
        if value != int(value):
            raise ValueError("not a whole number")
        value = int(value)
    if (param.min is not None and value < param.min) or (param.max is not None and value > param.max):
        raise ValueError(f"outside {param.min:g}..{param.max:g}")
    return value


def parse(query: Mapping[str, Any], methods: Mapping[str, Any],
          pages: Sequence[str]) -> tuple[View, list[str]]:
    """The view a link's query asks for, and a note for each part that could not be used.

    ``methods`` is the registry (name -> spec with ``params``), ``pages`` the page names.
    """
    q = {str(k): _one(v) for k, v in query.items()}
    view, notes = View(), []

    def note(what: str, token: str, why: str) -> None:
        notes.append(f"{what} '{token}' in the link {why}; using the default.")

    if "page" in q:
        if q["page"] in pages:
            view.page = q["page"]
        else:
            note("Page", q["page"], "is not a page of this app")
    if q.get("model"):
        view.model = q["model"]  # checked against the zoo by the app (pick)
    if "bias" in q:
        by_token = {t: v for v, t in BIAS_TOKENS.items()}
        if q["bias"] in by_token:
            view.variants = by_token[q["bias"]]
        else:
            note("Bias removal", q["bias"], f"is not one of {', '.join(by_token)}")
    if q.get("input"):
        view.input = q["input"]
    if "class" in q:
        try:
            view.target = int(q["class"])
        except ValueError:
            note("Class", q["class"], "is not a class number")
    if "methods" in q:
        asked = [m for m in q["methods"].split(",") if m]
        unknown = [m for m in asked if m not in methods]
        if unknown:
            notes.append(f"Unknown method(s) {', '.join(unknown)} in the link were left out.")
        view.methods = list(dict.fromkeys(m for m in asked if m in methods))
    for key, token in q.items():
        if key in KNOWN:
            continue
        setting = view_settings.BY_NAME.get(key)
        if setting is not None:
            try:
                view.settings[key] = setting.parse(token)
            except ValueError as err:
                note(f"Setting {key}", token, f"is {err}")
            continue
        method, _, name = key.partition(".")
        spec = methods.get(method)
        param = next((p for p in getattr(spec, "params", ()) if p.name == name), None)
        if param is None:
            notes.append(f"'{key}' in the link is not a setting of this app; ignored.")
            continue
        try:
            view.params.setdefault(method, {})[name] = parse_param(param, token)
        except ValueError as err:
            note(f"Setting {key}", token, f"is {err}")
    if q.get("baseline"):
        view.baseline = q["baseline"]
    if "sigma" in q:
        try:
            view.sigma = float(q["sigma"])
            if not math.isfinite(view.sigma):
                raise ValueError
        except ValueError:
            view.sigma = None
            note("Baseline width", q["sigma"], "is not a number")
    if "present" in q:
        view.present = q["present"].lower() in TRUE
    return view, notes


def pick(value: Any, options: Sequence[Any], what: str) -> tuple[Any, str | None]:
    """``value`` if it is one of ``options``, else None and a note saying so."""
    if value is None or value in options:
        return value, None
    return None, f"{what} '{value}' in the link is not available here; using the default."


def pick_number(value: float | None, low: float, high: float, what: str) -> tuple[float | None, str | None]:
    """``value`` if it lies in [low, high], else None and a note saying so."""
    if value is None or low <= value <= high:
        return value, None
    return None, f"{what} {value:g} in the link is outside {low:g}..{high:g}; using the default."


def non_default(params: Mapping[str, Mapping[str, Any]],
                methods: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings that differ from each method's default (what a link needs to carry)."""
    out = {}
    for m, values in params.items():
        defaults = {p.name: p.default for p in getattr(methods.get(m), "params", ())}
        changed = {k: v for k, v in values.items() if k in defaults and v != defaults[k]}
        if changed:
            out[m] = changed
    return out


def encode(view: View) -> dict[str, str]:
    """The query parameters of a view, in a stable order (None fields are left out)."""
    q: dict[str, str] = {}
    if view.page:
        q["page"] = view.page
    if view.model:
        q["model"] = view.model
    if view.variants:
        q["bias"] = BIAS_TOKENS[tuple(view.variants)]
    if view.input:
        q["input"] = view.input
    if view.target is not None:
        q["class"] = str(view.target)
    if view.methods is not None:
        q["methods"] = ",".join(view.methods)
    for m in (view.methods or []):
        for name, value in sorted(view.params.get(m, {}).items()):
            q[f"{m}.{name}"] = format_value(value)
    if view.baseline:
        q["baseline"] = view.baseline
    if view.sigma is not None:
        q["sigma"] = format_value(float(view.sigma))
    for s in view_settings.SETTINGS:  # the registry's order: the same view, the same link
        if s.name in view.settings:
            q[s.name] = s.format(view.settings[s.name])
    if view.present:
        q["present"] = "1"
    return q


def link(app_url: str | None, query: Mapping[str, str], page: str | None = None,
         pages: Sequence[str] = ()) -> str:
    """The full link to a view: the app's base URL (the browser's address with any page path
    removed) plus ``/page`` and the query. Without a known address: the query alone, to be put
    after the server's address."""
    tail = "?" + urlencode(dict(query))
    if not app_url:
        return tail
    parts = urlsplit(app_url)
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if last in pages:  # the browser was on a page's own path: keep the server's base path
        path = head
    base = f"{parts.scheme}://{parts.netloc}{path}"
    return f"{base}/{page if page and page != (pages[0] if pages else None) else ''}{tail}"
