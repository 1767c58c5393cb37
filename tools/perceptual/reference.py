#!/usr/bin/env python3
"""Meta's reference PDQ hashes of the test photographs, for lib/tests/data/pdq/skimage-reference.tsv.

    .venv/bin/python tools/perceptual/variants.py /tmp/perceptual
    .venv/bin/python tools/perceptual/reference.py THREATEXCHANGE_CHECKOUT /tmp/perceptual \
        > lib/tests/data/pdq/skimage-reference.tsv

Compiles pdq_reference.cpp (beside this script) with the reference's own sources
(THREATEXCHANGE_CHECKOUT/pdq/cpp: hashing, downscaling, common; needs g++), decodes each
photograph's original with Pillow into a binary PPM, and hashes those pixels with it. Nothing in
CI runs this: the tests compare our hashes with the table it wrote.
"""

import hashlib
import os
import subprocess
import sys
import tempfile

from PIL import Image

REFERENCE_SOURCES = [
    "pdq/cpp/hashing/pdqhashing.cpp",
    "pdq/cpp/hashing/torben.cpp",
    "pdq/cpp/downscaling/downscaling.cpp",
    "pdq/cpp/common/pdqhashtypes.cpp",
]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} THREATEXCHANGE_CHECKOUT DATA_DIR")
    checkout, data = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "pdq_reference")
        subprocess.run(
            ["g++", "-O2", "-std=c++17", "-I", checkout, os.path.join(here, "pdq_reference.cpp")]
            + [os.path.join(checkout, s) for s in REFERENCE_SOURCES]
            + ["-o", binary],
            check=True,
        )
        rows = []
        for photo in sorted(os.listdir(data)):
            folder = os.path.join(data, photo)
            if not os.path.isdir(folder):
                continue
            [original] = [f for f in os.listdir(folder) if f.startswith("original.")]
            path = os.path.join(folder, original)
            with open(path, "rb") as f:
                sha256 = hashlib.sha256(f.read()).hexdigest()
            ppm = os.path.join(tmp, photo + ".ppm")
            with Image.open(path) as img:
                img.convert("RGB").save(ppm)
            out = subprocess.run([binary, ppm], check=True, capture_output=True, text=True)
            pdq, quality, _ = out.stdout.split()
            rows.append((photo, sha256, pdq, quality))
    print("# Meta's reference PDQ (ThreatExchange pdq/cpp) of Pillow's pixels of each photograph's")
    print("# original (tools/perceptual/reference.py): photograph, SHA-256 of the file, hash, quality.")
    for row in rows:
        print("\t".join(row))


if __name__ == "__main__":
    main()
