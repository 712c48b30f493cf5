"""Shared links, figure downloads and presentation mode in Debian's chromium (Playwright).

Skipped like tests/e2e/test_browser.py when playwright or chromium is missing (CI requires them).
"""
import io
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_browser import CHROMIUM, browser, expect, server  # noqa: F401  (fixtures)

LAUNCHED = "?methods=saliency,integrated_gradients&integrated_gradients.steps=9&class=3"


def settle(pg):
    expect(pg.get_by_text("Computing on", exact=False)).to_be_visible(timeout=120_000)
    expect(pg.locator("[data-testid='stSidebar'] [data-testid='stCode']")).to_contain_text(
        "model=", timeout=120_000)  # the sidebar's last element: the run got past it
    expect(pg.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=180_000)
    expect(pg.locator("[data-testid='stException']")).to_have_count(0)


def shared_link(pg) -> str:
    return pg.locator("[data-testid='stSidebar'] [data-testid='stCode'] code").inner_text().strip()


def test_a_copied_link_opens_the_same_view_in_a_fresh_browser(server, browser):
    first = browser.new_context(viewport={"width": 1400, "height": 1600},
                                permissions=["clipboard-read", "clipboard-write"])
    pg = first.new_page()
    pg.goto(server + LAUNCHED)
    settle(pg)
    pg.get_by_text("Bias-free only").click()  # one change made by hand, after the link
    settle(pg)
    expect(pg.locator("[data-testid='stSidebar'] [data-testid='stCode']")).to_contain_text(
        "bias=bias-free", timeout=60_000)
    code = pg.locator("[data-testid='stSidebar'] [data-testid='stCode']")
    code.hover()
    code.locator("button").first.click()  # streamlit's copy button
    copied = pg.evaluate("navigator.clipboard.readText()").strip()
    assert copied == shared_link(pg) and copied.startswith(server)
    asked = dict(parse_qsl(urlsplit(copied).query))
    assert asked["bias"] == "bias-free" and asked["class"] == "3"
    assert asked["integrated_gradients.steps"] == "9"
    assert dict(parse_qsl(urlsplit(pg.url).query)) == asked  # the address bar follows too
    maps_before = pg.locator("[data-testid='stImage'] img").first.screenshot()
    first.close()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1600})  # no shared state
    pg2 = fresh.new_page()
    pg2.goto(copied)
    settle(pg2)
    expect(pg2.locator("[data-testid='stAlert']").filter(has_text="Link:")).to_have_count(0)
    sidebar = pg2.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_role("radio", name="Bias-free only")).to_be_checked(timeout=60_000)
    sidebar.get_by_text("Integrated Gradients settings").click()
    expect(sidebar.get_by_role("spinbutton", name="steps")).to_have_value("9", timeout=60_000)
    assert shared_link(pg2) == copied
    maps_after = pg2.locator("[data-testid='stImage'] img").first.screenshot()
    assert Image.open(io.BytesIO(maps_after)).size == Image.open(io.BytesIO(maps_before)).size
    fresh.close()


def test_a_stale_link_says_so_and_shows_the_defaults(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
    pg = ctx.new_page()
    pg.goto(server + "/?model=gone-model&class=zz&methods=saliency")
    settle(pg)
    alerts = pg.locator("[data-testid='stAlert']")
    expect(alerts.filter(has_text="gone-model")).to_have_count(1)
    expect(alerts.filter(has_text="'zz'")).to_have_count(1)
    expect(pg.get_by_text("Attributions", exact=True)).to_be_visible(timeout=60_000)
    ctx.close()


def test_figures_and_the_pages_numbers_download(server, browser, tmp_path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    pg = ctx.new_page()
    pg.goto(server + LAUNCHED)
    settle(pg)
    buttons = pg.locator(".st-key-download-explore-heatmaps")
    with pg.expect_download(timeout=180_000) as png:
        buttons.get_by_role("button", name="PNG").click()
    name = png.value.suggested_filename
    assert name == "explore-heatmaps_model-digits-cnn_bias-both_class-3_baseline-zero.png"
    image = Image.open(png.value.path())
    assert image.format == "PNG" and image.size[0] == 3000 and image.size[1] > 1200
    with pg.expect_download(timeout=180_000) as svg:
        buttons.get_by_role("button", name="SVG").click()
    assert svg.value.suggested_filename.endswith("class-3_baseline-zero.svg")
    assert open(svg.value.path(), "rb").read(200).lstrip().startswith(b"<svg")

    def download(name: str) -> bytes:
        with pg.expect_download(timeout=180_000) as got:
            pg.get_by_role("button", name=name).click()
        return open(got.value.path(), "rb").read()

    # The page's numbers, made on the click: the maps, and the completeness and timing tables.
    maps = np.load(io.BytesIO(download("Attributions (.npz)")))
    assert sorted(maps.files) == sorted(f"{v}__{m}" for v in ("regular", "bias-free")
                                        for m in ("saliency", "integrated_gradients"))
    assert all(maps[k].shape == (1, 28, 28) for k in maps.files)  # channels, height, width
    table = pd.read_csv(io.BytesIO(download("Completeness (.csv)")))
    assert len(table) == 4
    # the two files agree: each IG map adds up to its row's attribution sum (saliency promises
    # no sum, its row is blank)
    ig_sums = sorted(float(maps[k].astype(np.float64).sum()) for k in maps.files
                     if k.endswith("__integrated_gradients"))
    assert sorted(table["attribution sum"].dropna()) == pytest.approx(ig_sums, rel=1e-5, abs=1e-6)
    timing = pd.read_csv(io.BytesIO(download("Timing (.csv)")))
    assert {"median_ms", "q1_ms", "q3_ms", "timed_at"} <= set(timing.columns)
    assert len(timing) == 6 and (timing["median_ms"] > 0).all()  # 4 calls + a limit per variant
    ctx.close()


def test_presentation_mode_from_the_link(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.goto(server + "/?present=1&methods=saliency")
    settle(pg)
    expect(pg.locator("[data-testid='stSidebar']")).to_have_attribute("data-collapsed", "true")
    assert pg.evaluate("getComputedStyle(document.documentElement).fontSize") == "24px"
    grid = pg.locator("[data-testid='stImage'] img").first
    expect(grid).to_be_visible(timeout=60_000)
    assert grid.bounding_box()["height"] <= 0.93 * 900  # the figure fits one screen
    block = pg.locator("[data-testid='stElementContainer']:has([data-testid='stImage'])").first
    assert block.bounding_box()["height"] >= 0.9 * 900  # and has the screen to itself
    ctx.close()


def test_a_link_carries_the_pages_own_widgets(server, browser):
    """The Metrics page's own settings and the precision, from a link, in two fresh browsers."""
    link = "/metrics?methods=saliency&bias=bias-free&metrics.subsets=7&metrics.fill=black" \
           "&precision=float64"
    captions = []
    for url in (server + link, None):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
        pg = ctx.new_page()
        pg.goto(url or copied)
        settle(pg)
        expect(pg.get_by_text("7 random subsets per n", exact=False).first).to_be_visible(
            timeout=180_000)
        expect(pg.get_by_text("Fill: black", exact=False).first).to_be_visible()
        expect(pg.get_by_text("in float64", exact=False).first).to_be_visible()
        expect(pg.locator("[data-testid='stAlert']").filter(has_text="Link:")).to_have_count(0)
        copied = shared_link(pg)
        asked = dict(parse_qsl(urlsplit(copied).query))
        assert (asked["metrics.subsets"], asked["metrics.fill"], asked["precision"]) == (
            "7", "black", "float64")
        captions.append(pg.get_by_text("random subsets per n", exact=False).first.inner_text())
        ctx.close()
    assert captions[0] == captions[1]  # the Share box's link opens the same view again
