"""The screenshots of the README and the docs, taken from the real app in Debian's chromium.

    python -m benchmarks.screenshots [--out docs/images]

Serves the app on loopback (benchmarks.bench_browser.streamlit_server), opens each view by its
link, waits until the page's run has ended, and saves a palette PNG (a few hundred KB in all).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
from pathlib import Path

from PIL import Image

from benchmarks.bench_browser import streamlit_server

ROOT = Path(__file__).resolve().parents[1]
# name -> (link query, viewport, what to wait for)
SHOTS = {
    "explore": ("", (1280, 1200), "[data-testid='stImage'] img"),
    "present": ("?present=1", (1280, 800), "[data-testid='stImage'] img"),
    "share": ("?class=3&methods=input_x_gradient,integrated_gradients"
              "&integrated_gradients.steps=128&baseline=blur&sigma=3", (1280, 1000),
              "[data-testid='stSidebar'] [data-testid='stCode']"),
}


def small_png(data: bytes) -> bytes:
    """A 256-colour PNG: screenshots of flat UI lose nothing visible and shrink ~3x."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def take(out: Path, names: list[str]) -> dict[str, int]:
    from playwright.sync_api import expect, sync_playwright
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    out.mkdir(parents=True, exist_ok=True)
    # The views as a quiet machine shows them: no compute-budget question in the picture.
    os.environ.setdefault("EXPLORER_BUDGET_S", "3600")
    sizes = {}
    with streamlit_server(timeout_s=120) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        for name in names:
            query, (w, h), ready = SHOTS[name]
            ctx = browser.new_context(viewport={"width": w, "height": h})
            page = ctx.new_page()
            page.goto(url + "/" + query)
            expect(page.locator(ready).first).to_be_visible(timeout=180_000)
            expect(page.locator("[data-testid='stSidebar'] [data-testid='stCode']")).to_contain_text(
                "model=", timeout=180_000)
            expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=180_000)
            if name == "share":
                page.locator("[data-testid='stSidebar'] [data-testid='stCode']").scroll_into_view_if_needed()
            if name in ("explore", "present"):  # the maps: the first thing a visitor looks for
                page.get_by_text("Attributions", exact=True).scroll_into_view_if_needed()
                page.mouse.wheel(0, 0)
            if name == "present":  # the grid's block, which has the screen to itself
                page.locator("[data-testid='stElementContainer']:has([data-testid='stImage'])") \
                    .first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)  # images finish decoding
            data = small_png(page.screenshot())
            (out / f"{name}.png").write_bytes(data)
            sizes[name] = len(data)
            ctx.close()
        browser.close()
    return sizes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--only", nargs="*", choices=list(SHOTS), default=list(SHOTS))
    args = parser.parse_args(argv)
    for name, size in take(args.out, args.only).items():
        print(f"{args.out / name}.png  {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
