"""Peak memory and time of the image loader on the worst uploads it accepts or refuses.

    python -m benchmarks.bench_hostile_images --runs 3

Each case runs in a fresh process: the peak resident set is reset after the imports
(/proc/self/clear_refs, Linux) and read back (VmHWM) after ``preprocess``; the time is the
wall time of that one call. Prints the median and the range over ``--runs`` processes.
"""
from __future__ import annotations

import argparse
import io
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import re, sys, time
import explorer
from explorer.models.zoo import digits_preprocess, imagenet_preprocess
def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
data = open(sys.argv[1], "rb").read()
fn = {"imagenet": imagenet_preprocess, "digits": digits_preprocess}[sys.argv[2]]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before, start = status("VmRSS"), time.perf_counter()
try:
    fn(data)
    outcome = "tensor"
except explorer.InputError as err:
    outcome = "InputError"
print(time.perf_counter() - start, (status("VmHWM") - before) / 1024, outcome)
"""


def cases() -> dict[str, bytes]:
    def png(img):
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    tiff = io.BytesIO()
    Image.fromarray(np.full((5000, 5000), 0.5, np.float32)).save(tiff, format="TIFF")
    return {
        "1 x 100000 PNG (274 bytes)": png(Image.new("L", (1, 100_000))),
        "20000 x 2 PNG": png(Image.new("L", (20_000, 2))),
        "12000 x 12000 bilevel PNG (bomb)": png(Image.new("1", (12_000, 12_000))),
        "5000 x 5000 RGBA PNG (largest allowed)": png(Image.new("RGBA", (5000, 5000), (9, 99, 199, 128))),
        "5000 x 5000 16-bit PNG": png(Image.fromarray(np.full((5000, 5000), 30000, np.uint16))),
        "5000 x 5000 float TIFF": tiff.getvalue(),
        "22000 x 1100 RGB PNG (20:1 panorama)": png(Image.new("RGB", (22_000, 1100), (1, 2, 3))),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    print(f"# {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print("| upload | model input | outcome | peak extra memory (MB) | time (s) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in cases().items():
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            for target in ("imagenet", "digits"):
                runs = [subprocess.run([sys.executable, "-c", CHILD, str(path), target], cwd=ROOT,
                                       capture_output=True, text=True, check=True).stdout.split()
                        for _ in range(args.runs)]
                secs = [float(r[0]) for r in runs]
                mbs = [float(r[1]) for r in runs]
                print(f"| {name} | {target} | {runs[0][2]} | {statistics.median(mbs):.0f} "
                      f"({min(mbs):.0f}-{max(mbs):.0f}) | {statistics.median(secs):.2f} "
                      f"({min(secs):.2f}-{max(secs):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
