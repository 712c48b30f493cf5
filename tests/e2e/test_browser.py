"""What a person sees: the real app in Debian's chromium, driven by Playwright.

Skipped when playwright or /usr/bin/chromium is missing, unless EXPLORER_REQUIRE_BROWSER is set
(CI sets it, so there a missing browser is a failure, not a skip).
"""
import io
import os
import re
import time
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_browser import streamlit_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = bool(os.environ.get("EXPLORER_REQUIRE_BROWSER"))

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None or not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError("EXPLORER_REQUIRE_BROWSER is set but playwright or chromium is missing")
    pytest.skip("needs playwright and Debian's chromium (apt-get install -y chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    with streamlit_server(timeout_s=120) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    pg = browser.new_page(viewport={"width": 1400, "height": 1800})
    pg.goto(server)
    expect(pg.get_by_text("Timing", exact=True)).to_be_visible(timeout=120_000)
    yield pg
    pg.close()


def upload(page, name: str, data: bytes, mime: str = "image/png",
           label: str = "upload your own image"):
    """Into the file uploader whose label has ``label`` (the sidebar has several: the model's
    ONNX upload comes before the input image's)."""
    chooser = (page.locator("[data-testid='stFileUploader']").filter(has_text=label)
               .locator("[data-testid='stFileUploaderDropzoneInput']"))
    chooser.set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def png_of_digit_one() -> bytes:
    a = np.zeros((64, 64), dtype=np.uint8)
    a[10:54, 29:36] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_page_shows_heatmaps_timing_and_completeness(page):
    images = page.locator("[data-testid='stImage'] img")
    expect(images.first).to_be_visible(timeout=60_000)
    # the grid of maps, the colour bar, the timing chart: images, so no plotly script to load
    expect(images).to_have_count(3, timeout=60_000)
    grid = images.first.bounding_box()
    assert grid["width"] > 600 and grid["height"] > 4 * 224  # 3 columns, 4 rows of 224 px panels
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    table = page.locator("[data-testid='stMarkdownContainer'] table").first  # completeness
    expect(table).to_contain_text("X-Gradient")
    expect(table).to_contain_text("NOT complete")  # input x gradient on the regular model
    row = table.locator("tr", has_text="X-Gradient")
    expect(row).to_contain_text("complete")
    expect(page.get_by_text("Computing on cpu")).to_be_visible()


def test_upload_through_the_file_chooser(page):
    upload(page, "my_one.png", png_of_digit_one())
    expect(page.get_by_text("my_one.png")).to_be_visible(timeout=60_000)
    target = page.get_by_role("combobox", name="Explain the logit of class").last
    # the bundled model reads the drawing as a one
    expect(target).to_have_value(re.compile(r"^1 \(.*predicted"), timeout=60_000)
    expect(page.locator("[data-testid='stException']")).to_have_count(0)


def test_broken_upload_shows_error_and_page_stays_usable(page):
    upload(page, "broken.png", b"\x89PNG\r\n\x1a\nthis is not an image")
    # the message is in the main area (where the maps are), not only beside the uploader
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text("Could not use", exact=False)).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid='stImage'] img").first).to_be_visible(timeout=60_000)
    # still usable: change a setting and the page recomputes without an exception
    page.get_by_text("Bias-free only").click()
    expect(main.get_by_text("Could not use", exact=False)).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid='stMarkdownContainer'] table").first).not_to_contain_text("regular", timeout=60_000)
    expect(page.locator("[data-testid='stException']")).to_have_count(0)


def test_the_alpha_slider_moves_the_path_pages_maps(server, browser):
    """The Path page's alpha slider, walked by keyboard. (Every page's rendering is checked by
    the two-visitor test below, which visits each page four times.)"""
    pg = browser.new_page(viewport={"width": 1400, "height": 1800})
    try:
        pg.goto(f"{server}/path")
        maps = pg.locator(".js-plotly-plot").first
        expect(maps).to_contain_text("gradient at alpha = 0.5", timeout=180_000)
        thumb = pg.get_by_role("slider", name="alpha: position on the path", exact=False)
        thumb.focus()
        thumb.press("Home")  # alpha = 0: the baseline itself, nothing accumulated
        expect(maps).to_contain_text("gradient at alpha = 0 ", timeout=60_000)
        for _ in range(3):
            thumb.press("ArrowRight")  # one step (1/64) at a time
        expect(maps).to_contain_text("gradient at alpha = 0.0469", timeout=60_000)
        expect(pg.locator("[data-testid='stException']")).to_have_count(0)
    finally:
        pg.close()


def test_interactive_charts_draw_maps_and_timing_with_plotly(page):
    expect(page.locator("[data-testid='stImage'] img").first).to_be_visible(timeout=60_000)
    page.get_by_text("Interactive charts (values on hover)").click()
    # the heatmap grid and the timing chart; the timing is not re-run for a display change
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)
    expect(page.locator("[data-testid='stImage'] img")).to_have_count(0)
    expect(page.locator("[data-testid='stException']")).to_have_count(0)


def test_two_visitors_see_every_page_twice_without_an_exception(server, browser):
    """Two browser contexts (two people) on one server, each visiting every page twice: no
    visit raises (a cached function that drew on the page broke the second visitor's replay),
    and every visit of a page shows the same numbers (the computations are shared)."""
    from explorer.ui.pages import PAGES

    def numbers_on(pg, name: str) -> tuple[list[str], str]:
        pg.goto(f"{server}/{name}")
        expect(pg.get_by_text("Computing on", exact=False)).to_be_visible(timeout=180_000)
        expect(pg.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=300_000)
        expect(pg.locator("[data-testid='stException']")).to_have_count(0)
        expect(pg.locator("[data-testid='stMain']")).not_to_be_empty()
        errors = pg.locator("[data-testid='stAlertContentError']")
        assert errors.count() == 0, errors.all_inner_texts()
        # The script run has ended (the status widget may never show on a warm server): streamlit
        # marks its root with the run's state.
        expect(pg.locator("[data-testid='stApp'][data-test-script-state='notRunning']")
               ).to_have_count(1, timeout=300_000)
        # What the page computed: its text, tables and captions (widgets' own values are the
        # visitor's settings, and may still be arriving after the run has ended).
        # Metrics (Explore's homogeneity errors) are left out: the visit that computes them
        # shows their values as text, a visit served from the cache does not.
        read = """() => Array.from(document.querySelectorAll(
            "[data-testid='stMain'] [data-testid='stMarkdownContainer']"))
            .filter(e => !e.closest("[data-testid='stWidgetLabel'], [data-testid='stSlider'], "
                + "[data-testid='stSelectbox'], [data-testid='stRadio'], [data-testid='stCheckbox'], "
                + "[data-testid='stNumberInput'], [data-testid='stMultiSelect'], "
                + "[data-testid='stMetric']"))
            .map(e => e.innerText).join("\\n")"""
        # The run has ended, but the browser may still be drawing its last elements: read until
        # two reads a second apart agree (a missing table stays missing and still fails below).
        text, deadline = pg.evaluate(read), time.monotonic() + 60
        while time.monotonic() < deadline:
            pg.wait_for_timeout(1000)
            again = pg.evaluate(read)
            if again == text:
                break
            text = again
        assert pg.locator("[data-testid='stException']").count() == 0
        assert errors.count() == 0, errors.all_inner_texts()
        # Timings are measurements, shared while cached but re-taken when a visitor asks or the
        # cached one has aged: compare what the page computes, up to the timing section.
        text = text.split("Timing\n")[0]
        return re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text), text

    contexts = [browser.new_context(viewport={"width": 1400, "height": 1800}) for _ in range(2)]
    tabs = [c.new_page() for c in contexts]
    try:
        for spec in PAGES:
            visits = [numbers_on(tab, spec.name) for _ in range(2) for tab in tabs]
            seen = [numbers for numbers, _ in visits]
            if spec.name in ("explore", "path"):  # their numbers are text (others: charts, canvas)
                assert seen[1], spec.name
            for s, text in visits[2:]:  # the visits served from the cache: identical
                assert s == seen[1], (spec.name, text)
            # The visit that computed may show more, but every number the others show, in the
            # same order. (Since the reads wait for the text to settle, the first visits of
            # Axioms and Metrics, which used to show a few numbers more, read the same as the
            # others in the runs seen; Explore's extra two were the metrics left out above.)
            rest = iter(seen[0])
            assert all(n in rest for n in seen[1]), (spec.name, visits[0][1], visits[1][1])
    finally:
        for c in contexts:
            c.close()
