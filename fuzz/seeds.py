#!/usr/bin/env python3
"""Writes the fuzzer's seed JPEGs into OUT (tools/fuzz.sh runs it before every run): small
synthetic pictures through libjpeg-turbo's cjpeg in each mode the codec has a path for, so the
fuzzer starts inside every decoder rather than finding them byte by byte.

Standard library only; needs cjpeg (libjpeg-turbo-progs). Deterministic.
"""

import random
import subprocess
import sys
import tempfile
from pathlib import Path

# Small: the fuzzer's speed goes with the input's size. Odd sizes leave partial MCUs.
SIZES = [(1, 1), (7, 9), (16, 16), (33, 17), (64, 48), (97, 61)]

# cjpeg arguments per mode; "{scans}" is a script of one sequential scan per component.
MODES = {
    "baseline": [],
    "q95-444": ["-quality", "95", "-sample", "1x1"],
    "q10-baseline": ["-quality", "10", "-baseline"],
    "extended-16bit-tables": ["-quality", "5"],
    "optimize": ["-optimize"],
    "sample-2x1": ["-sample", "2x1"],
    "sample-4x1": ["-sample", "4x1"],
    "sample-1x2": ["-sample", "1x2,1x1,1x1"],
    "progressive": ["-progressive"],
    "arithmetic": ["-arithmetic"],
    "arithmetic-progressive": ["-arithmetic", "-progressive"],
    "restart-1-row": ["-restart", "1"],
    "restart-3-blocks": ["-restart", "3B"],
    "non-interleaved": ["-scans", "{scans}"],
    "grayscale": ["-grayscale"],
    "grayscale-progressive": ["-grayscale", "-progressive"],
}

NON_INTERLEAVED = "0;\n1;\n2;\n"

# An APP1 Exif segment holding only an orientation tag (6: turned a quarter), inserted after
# SOI: the mark is then drawn turned.
EXIF_ORIENTATION_6 = (
    b"\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"
    b"\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
)


def picture(w, h, rng):
    """Binary PPM: a gradient with noise and a hard edge, so every block has AC energy."""
    rows = bytearray()
    for y in range(h):
        for x in range(w):
            edge = 200 if (x * 3 + y) % 23 < 11 else 0
            rows += bytes(
                (
                    (x * 255 // max(w - 1, 1) + rng.randrange(32)) & 255,
                    (y * 255 // max(h - 1, 1) + edge) & 255,
                    ((x ^ y) * 16 + rng.randrange(16)) & 255,
                )
            )
    return b"P6\n%d %d\n255\n" % (w, h) + bytes(rows)


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(21)
    with tempfile.TemporaryDirectory() as tmp:
        scans = Path(tmp, "non-interleaved.txt")
        scans.write_text(NON_INTERLEAVED)
        for w, h in SIZES:
            ppm = Path(tmp, f"{w}x{h}.ppm")
            ppm.write_bytes(picture(w, h, rng))
            for mode, args in MODES.items():
                args = [str(scans) if a == "{scans}" else a for a in args]
                jpeg = subprocess.run(
                    ["cjpeg", *args, str(ppm)], check=True, capture_output=True
                ).stdout
                (out / f"{mode}-{w}x{h}.jpg").write_bytes(jpeg)
                if mode in ("baseline", "progressive") and w > 16:
                    turned = jpeg[:2] + EXIF_ORIENTATION_6 + jpeg[2:]
                    (out / f"{mode}-exif6-{w}x{h}.jpg").write_bytes(turned)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
