"""What is drawn, read from the pixels in chromium: every page's heatmaps show more than one
colour in their map area (a blank map is one colour), and no table cell on any page reads
"None" or "nan". Skipped like tests/e2e/test_browser.py when chromium or playwright is missing.

Heatmaps are either an image (the Explore page's grid, drawn as a PNG) or plotly heatmap traces,
which plotly paints as an <image> inside ``g.hm``. Tables: markdown and st.table cells are in
the DOM; st.dataframe draws its cells on a canvas, which AppTest checks instead."""
import io

import numpy as np
from PIL import Image

from test_browser import browser, server  # noqa: F401  (its fixtures and its skip logic)

from playwright.sync_api import expect

# Each page, and where its maps are: a CSS selector and how many at least.
MAPS = {"explore": ("[data-testid='stImage'] img", 1),
        "path": (".js-plotly-plot g.hm image", 2),
        "priors": (".js-plotly-plot g.hm image", 2)}
# Where the word may be the value that is explained, it is not a fault (none on these pages).
ALLOWED = ()


def colours(png: bytes) -> int:
    """Distinct RGB colours in a screenshot."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(rgb, axis=0))


def settle(pg, name: str, server_url: str) -> None:
    pg.goto(f"{server_url}/{name}")
    expect(pg.get_by_text("Computing on", exact=False)).to_be_visible(timeout=120_000)
    expect(pg.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=240_000)
    expect(pg.locator("[data-testid='stException']")).to_have_count(0)


def test_every_page_draws_its_heatmaps_and_no_cell_reads_none(server, browser):  # noqa: F811
    from explorer.ui.pages import PAGES

    pg = browser.new_page(viewport={"width": 1400, "height": 1800})
    try:
        for spec in PAGES:
            settle(pg, spec.name, server)
            if spec.name in MAPS:
                selector, least = MAPS[spec.name]
                maps = pg.locator(selector)
                expect(maps.first).to_be_visible(timeout=120_000)
                assert maps.count() >= least, (spec.name, maps.count())
                for k in range(maps.count()):
                    m = maps.nth(k)
                    m.scroll_into_view_if_needed()
                    n = colours(m.screenshot())
                    assert n > 1, f"{spec.name}: map {k} is one colour (drawn blank)"
            cells = pg.locator("[data-testid='stMain'] td, [data-testid='stMain'] th")
            texts = [t.strip() for t in cells.all_inner_texts()]
            bad = [t for t in texts if t in ("None", "nan", "NaN") and t not in ALLOWED]
            assert not bad, f"{spec.name}: table cells read {bad}"
    finally:
        pg.close()
