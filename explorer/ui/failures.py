"""One wording for a failure shown on its panel: the page always keeps working."""
from __future__ import annotations

import explorer


def failure_text(what: str, err: Exception) -> str:
    """An InputError already says what to fix; anything else names its type, so a bug in an
    unusual model or method is recognisable rather than hidden."""
    if isinstance(err, explorer.InputError):
        return f"{what}: {err}"
    return f"{what} failed: {type(err).__name__}: {err}"
