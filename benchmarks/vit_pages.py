"""Every app page on a random-weight timm/vit_tiny_patch16_224 through AppTest, at the default
compute budget: seconds to render, and what ran or waits (not a timed test; a record).

    EXPLORER_OFFLINE=1 python -m benchmarks.vit_pages [page ...]
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("EXPLORER_OFFLINE", "1")
os.environ.setdefault("EXPLORER_BUDGET_S", "15")
os.environ["EXPLORER_MODELS"] = json.dumps([{"spec": "timm/vit_tiny_patch16_224",
                                            "checkpoint": None}])

SCRIPT = """
from explorer.ui import context
from explorer.ui.pages import {page}
context.build()
{page}.render()
"""


def main(pages: list[str]) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer.ui.pages import PAGES
    for page in pages or [p.name for p in PAGES]:
        start = time.perf_counter()
        at = AppTest.from_string(SCRIPT.format(page=page), default_timeout=1800)
        at.run()
        print(json.dumps({
            "page": page, "seconds": round(time.perf_counter() - start, 1),
            "exceptions": [e.value for e in at.exception], "errors": [e.value for e in at.error],
            "waits": [w.value for w in at.warning if "budget" in w.value],
            "buttons": [b.label for b in at.button]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
