"""The app's pages: one module each, with a ``render()`` function; listed here in menu order.

Adding a page is one module and one line in ``PAGES``. A page reads the shared selections from
``explorer.ui.context.current()`` and keeps its own widgets (keys prefixed by its name).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    name: str    # module explorer.ui.pages.<name>, and the URL path
    title: str
    icon: str
    # True: the page runs inside a precision scope of the sidebar's choice. False: the page
    # chooses precisions itself (the Precision lesson runs each format in turn).
    scoped: bool = True


PAGES = [
    PageSpec("explore", "Explore", ":material/compare:"),
    PageSpec("path", "Path", ":material/timeline:"),
    PageSpec("convergence", "Convergence", ":material/show_chart:"),
    PageSpec("axioms", "Axioms", ":material/rule:"),
    PageSpec("metrics", "Metrics", ":material/analytics:"),
    PageSpec("priors", "Priors", ":material/school:"),
    PageSpec("precision", "Precision", ":material/calculate:", scoped=False),
    PageSpec("speed", "Speed", ":material/speed:"),
]


def render_function(page: PageSpec):
    return importlib.import_module(f"explorer.ui.pages.{page.name}").render
