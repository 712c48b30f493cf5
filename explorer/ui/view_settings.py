"""Every widget a link carries besides the shared sidebar: declared once, here (no streamlit).

A ``Setting`` names one widget: its name in the link (``<page>.<name>``, or a bare name for a
sidebar widget shown on every page), its kind, default, allowed range or options, and the widget's
session key. Pages draw the widget from its declaration (``explorer.ui.sharing.widget``), the link
encodes only values that differ from the default, and ``Setting.parse`` checks a link's text
against the declaration. A new widget is one line in ``SETTINGS``; the tests are parametrised
over it.

Some defaults and keys depend on the model (ImageNet-size inputs start with larger patches, the
timing budget is 0 on models that take seconds per call): such a setting names a ``mode``, one of
``MODES``, and gives its default per mode value; its key may contain ``{mode}`` (a new key per
mode, so that changing the model restores that model's default).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from explorer.checks import DEFAULT_RTOL
from explorer.methods.path import RULES
from explorer.metrics import FILLS, SCORES
from explorer.precision import DEFAULT as DEFAULT_PRECISION, PRECISIONS
from explorer.quadrature_convergence import DEFAULT_STEPS

KINDS = ("bool", "int", "float", "choice", "choices", "text")
TEXT_LIMIT = 100  # a "text" setting names something of the moment (checked when drawn)
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}

# What a mode-dependent default or key depends on: (zoo spec of the model, shown variants) -> value
MODES: dict[str, Callable[[Any, tuple], Any]] = {
    "big": lambda spec, variants: spec.size > 64,  # ImageNet-size inputs
    "bundled": lambda spec, variants: spec.family == "bundled",  # trained, fast, offline
    "last_variant": lambda spec, variants: variants[-1],
}


def format_value(value: Any) -> str:
    """A value's text in a link (exact for floats: repr round-trips)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Setting:
    """One widget a link can carry."""

    name: str                     # in the link; "<page>." prefix for a page's own widget
    kind: str                     # one of KINDS ("choices": several of the options, in order;
                                  # "text": a name among options known only when drawn)
    default: Any                  # with a mode: {mode value: default}
    key: str                      # the widget's session key; "{mode}" becomes the mode value
    options: tuple = ()           # for "choice" and "choices"
    low: float | None = None      # for "int" and "float"
    high: float | None = None
    mode: str | None = None       # a name in MODES

    @property
    def page(self) -> str | None:
        """The page whose widget this is; None for a sidebar widget of every page."""
        head, dot, _ = self.name.partition(".")
        return head if dot else None

    def default_for(self, mode: Any = None) -> Any:
        return self.default[mode] if self.mode else self.default

    def key_for(self, mode: Any = None) -> str:
        return self.key.format(mode=mode) if self.mode else self.key

    def check(self, value: Any) -> Any:
        """``value`` as the widget holds it, or ValueError saying why it cannot be."""
        if self.kind == "choices":
            values = list(dict.fromkeys(value))
            wrong = [v for v in values if v not in self.options]
            if wrong:
                raise ValueError(f"not among {', '.join(map(format_value, self.options))}")
            return values
        if self.kind == "choice":
            if value not in self.options:
                raise ValueError(f"not one of {', '.join(map(format_value, self.options))}")
            return next(o for o in self.options if o == value)  # the option's own type
        if self.kind == "text":
            if not isinstance(value, str) or not value.strip() or len(value) > TEXT_LIMIT:
                raise ValueError(f"not a name of 1 to {TEXT_LIMIT} characters")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError("not true or false")
            return value
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        if self.kind == "int":
            if number != int(number):
                raise ValueError("not a whole number")
            number = int(number)
        if not self.low <= number <= self.high:
            raise ValueError(f"outside {self.low:g}..{self.high:g}")
        return number

    def parse(self, token: str) -> Any:
        """The value a link's text asks for, checked; ValueError with a short reason if bad."""
        if self.kind == "bool":
            if token.lower() not in TRUE | FALSE:
                raise ValueError("not true or false")
            return token.lower() in TRUE
        if self.kind == "text":
            return self.check(token)
        if self.kind in ("choice", "choices"):
            tokens = [t for t in token.split(",") if t] if self.kind == "choices" else [token]
            values = [self._option(t) for t in tokens]
            return self.check(values if self.kind == "choices" else values[0])
        try:
            return self.check(float(token))
        except (TypeError, OverflowError):
            raise ValueError("not a number") from None

    def _option(self, token: str) -> Any:
        for option in self.options:  # by its text, else by its number ("100" for 100.0)
            if format_value(option) == token:
                return option
        for option in self.options:
            if isinstance(option, (int, float)) and not isinstance(option, bool):
                try:
                    if float(token) == option:
                        return option
                except ValueError:
                    break
        raise ValueError(f"not one of {', '.join(map(format_value, self.options))}")

    def format(self, value: Any) -> str:
        if self.kind == "choices":
            return ",".join(format_value(v) for v in value)
        if self.kind == "float":
            return format_value(float(value))
        return format_value(value)

    def same(self, value: Any, mode: Any = None) -> bool:
        """Whether ``value`` is this setting's default (in ``mode``)."""
        default = self.default_for(mode)
        if self.kind == "choices":
            return list(value) == list(default)
        return value == default


PATH_STEPS = (16, 32, 64, 128, 256)
OTHER_PATHS = ("guided_ig", "blur_ig", "idgi")
RTOLS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
DECOYED_DIGITS = 20  # explorer.train.decoy.decoyed_samples(): the bundled decoyed test digits
LIVE_PRIOR_IDS = ("none", "x-gradient", "gradient", "eg")

SETTINGS: tuple[Setting, ...] = (
    # The sidebar on every page (read before the pages' widgets: every result is keyed on it).
    Setting("precision", "choice", DEFAULT_PRECISION, "precision", tuple(PRECISIONS)),
    # Explore: the sidebar's display, check and timing settings.
    Setting("explore.scale", "bool", True, "shared_scale"),
    Setting("explore.clip", "float", 99.5, "clip", low=90.0, high=100.0),
    Setting("explore.overlay", "bool", False, "overlay"),
    Setting("explore.interactive", "bool", False, "explore-interactive"),
    Setting("explore.rtol", "choice", DEFAULT_RTOL, "rtol", RTOLS),
    Setting("explore.timing", "float", {True: 2.0, False: 0.0}, "explore-timing-budget-{mode}",
            low=0.0, high=120.0, mode="bundled"),
    Setting("explore.rounds", "int", {True: 10, False: 3}, "explore-timing-rounds-{mode}",
            low=1, high=100, mode="bundled"),
    Setting("explore.clock", "choice", "wall", "explore-timing-clock", ("wall", "process")),
    Setting("explore.bcos", "bool", False, "explore-two-routes"),
    # Path
    Setting("path.steps", "choice", 64, "path-steps", PATH_STEPS),
    Setting("path.alpha", "float", 0.5, "path-alpha", low=0.0, high=1.0),
    Setting("path.regions", "bool", False, "path-regions"),
    Setting("path.method", "choice", OTHER_PATHS[0], "path-method", OTHER_PATHS),
    # Convergence
    Setting("convergence.largest", "choice", {True: 512, False: 64}, "convergence-largest-{mode}",
            DEFAULT_STEPS[2:], mode="bundled"),
    Setting("convergence.rules", "choices", RULES, "convergence-rules", RULES),
    # Axioms: the variant the methods are checked on (default: the last one shown)
    Setting("axioms.variant", "choice", {"regular": "regular", "bias-free": "bias-free"},
            "axioms-variant", ("regular", "bias-free"), mode="last_variant"),
    # Metrics
    Setting("metrics.block", "int", {True: 16, False: 1}, "metrics-block-{mode}", low=1, high=64,
            mode="big"),
    Setting("metrics.subsets", "int", 50, "metrics-subsets", low=2, high=2000),
    Setting("metrics.seed", "int", 0, "metrics-seed", low=0, high=2**31 - 1),
    Setting("metrics.steps", "int", 25, "metrics-steps", low=1, high=500),
    Setting("metrics.fill", "choice", FILLS[0], "metrics-fill", FILLS),
    Setting("metrics.score", "choice", SCORES[0], "metrics-score", SCORES),
    # Priors (the trained model itself lives in one session only)
    Setting("priors.digit", "int", 1, "priors.digit", low=0, high=DECOYED_DIGITS - 1),
    Setting("priors.prior", "choice", "x-gradient", "priors.live.prior", LIVE_PRIOR_IDS),
    Setting("priors.steps", "choice", 192, "priors.live.steps", (16, 48, 96, 192, 320)),
    Setting("priors.weight", "choice", 100.0, "priors.live.weight", (1.0, 10.0, 100.0, 1000.0)),
    # Precision
    Setting("precision.steps", "choice", 32, "precision-steps", (8, 16, 32, 64)),
    # Speed: the shipped benchmark by its start time ("latest": the newest there is)
    Setting("speed.benchmark", "text", "latest", "speed-shipped-pick"),
    Setting("speed.rounds", "int", 5, "speed-rounds", low=3, high=50),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def of_page(page: str) -> list[Setting]:
    """The settings a view of ``page`` carries: the page's own and the every-page ones."""
    return [s for s in SETTINGS if s.page in (None, page)]


def modes(spec: Any, variants: tuple) -> dict[str, Any]:
    """Every mode's value for a model's zoo spec and the variants shown."""
    return {name: f(spec, tuple(variants)) for name, f in MODES.items()}


def non_default(values: Mapping[str, Any], mode_values: Mapping[str, Any]) -> dict[str, Any]:
    """The values (by setting name) that differ from their default: what a link carries."""
    out = {}
    for name, value in values.items():
        s = BY_NAME.get(name)
        if s is not None and not s.same(value, mode_values.get(s.mode)):
            out[name] = value
    return out
