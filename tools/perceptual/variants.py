#!/usr/bin/env python3
"""Writes the perceptual-hash test set: real photographs and what people do to re-upload them.

    .venv/bin/python tools/perceptual/variants.py OUT_DIR

The photographs are scikit-image's bundled sample data (the files inside the scikit-image wheel,
no download; pinned in tools/requirements.txt, licences in lib/tests/data/pdq/README.md). For each
one, OUT_DIR/<photo>/ gets:

- original.png|jpg   the bundled file, byte for byte;
- q70.jpg            re-encoded as JPEG at quality 70;
- resized90.<ext>    resized to 90 % of each side (bicubic), saved as the original's format;
- cropped2.<ext>     2 % cropped off each side, saved as the original's format;
- converted.<ext>    PNG -> JPEG (Pillow's default quality, 75) or JPEG -> PNG.

Re-saved JPEGs use quality 90 unless named otherwise. Pillow's encoders are deterministic for a
given Pillow version, so the set is the same on every machine with the pinned packages. The files
are read with Pillow from scikit-image's data directory without importing scikit-image (which
would load numpy and scipy for nothing). `perceptual::photographs` (the joip unit tests) reads
the directory: JOIP_PERCEPTUAL_DATA names it, or the test runs this script itself.
"""

import importlib.metadata
import importlib.util
import os
import shutil
import sys

from PIL import Image

# Every real photograph scikit-image bundles (not the drawings, logos, synthetic phantoms or
# tiny crops). motorcycle_right is left out: it is the same scene as motorcycle_left from a
# camera 19 cm to its side, a near-duplicate rather than a distinct photograph.
PHOTOGRAPHS = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
]

SAME_FORMAT_JPEG_QUALITY = 90


def data_dir() -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-image is not installed (tools/requirements.txt; run tools/bootstrap.sh)")
    return os.path.join(spec.submodule_search_locations[0], "data")


def save(img: Image.Image, path: str, quality: int = SAME_FORMAT_JPEG_QUALITY) -> None:
    if path.endswith(".jpg"):
        img.save(path, "JPEG", quality=quality)
    else:
        img.save(path, "PNG")


def write_variants(source: str, out: str) -> None:
    stem, ext = os.path.splitext(os.path.basename(source))
    ext = ext.lower()
    folder = os.path.join(out, stem)
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(source, os.path.join(folder, "original" + ext))
    with Image.open(source) as img:
        img.load()
        w, h = img.size
        save(img, os.path.join(folder, "q70.jpg"), quality=70)
        resized = img.resize((round(w * 0.9), round(h * 0.9)), Image.Resampling.BICUBIC)
        save(resized, os.path.join(folder, "resized90" + ext))
        dx, dy = round(w * 0.02), round(h * 0.02)
        save(img.crop((dx, dy, w - dx, h - dy)), os.path.join(folder, "cropped2" + ext))
        if ext == ".png":
            # Pillow's default JPEG quality: what a plain `img.save("x.jpg")` writes.
            img.save(os.path.join(folder, "converted.jpg"), "JPEG")
        else:
            img.save(os.path.join(folder, "converted.png"), "PNG")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    out = sys.argv[1]
    source_dir = data_dir()
    for name in PHOTOGRAPHS:
        write_variants(os.path.join(source_dir, name), out)
    versions = {p: importlib.metadata.version(p) for p in ("scikit-image", "pillow")}
    with open(os.path.join(out, "VERSIONS"), "w") as f:
        for package, version in versions.items():
            f.write(f"{package}=={version}\n")
    print(f"{len(PHOTOGRAPHS)} photographs and their variants in {out}")


if __name__ == "__main__":
    main()
