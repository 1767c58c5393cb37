#!/usr/bin/env python3
"""Builds the codec conformance corpus (issue 21) from public tools, into OUT/corpus/.

JPEG from libjpeg-turbo's `cjpeg` in every mode it has (plus CMYK from Pillow, EXIF
orientations, and hand-made edge cases: a 12-bit SOF, a lying SOF, bogus Huffman tables, a
Motion-JPEG frame without tables), PNG from our own writer below (every colour type and bit
depth, tRNS, Adam7, every filter type), WebP from libwebp's `cwebp` (lossy, lossless, alpha);
then cut copies and seeded byte flips of a seeded subset. Sources are synthesised pictures at a
few sizes, odd ones included, and the project's test photographs.

Writes OUT/corpus/manifest.tsv, one line a file: path (under corpus/), format, mode, variant
(valid, cut, cut+eoi, flip), the EXIF orientation the file carries (JPEG; 1 otherwise) and
whether it is lossy WebP. Deterministic: the same tools give the same corpus.
"""

import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

SEED = 21
SIZES = [(1, 1), (7, 9), (173, 97), (640, 480)]
ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT / "lib/tests/photos").glob("*.jpg"))


# --- source pictures ---------------------------------------------------------------------


def gradient(w, h):
    g = Image.linear_gradient("L").resize((w, h))
    return Image.merge("RGB", (g, g.rotate(90).resize((w, h)), g.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def noise(w, h):
    return Image.merge("RGB", [Image.effect_noise((w, h), s) for s in (40, 60, 80)])


def edges(w, h):
    im = Image.new("RGB", (w, h), (20, 40, 200))
    d = ImageDraw.Draw(im)
    step = max(w // 9, 1)
    for i, x in enumerate(range(0, w, step)):
        d.rectangle([x, (i * 7) % max(h, 1), x + step // 2, h], fill=(250, 240 - i * 20 % 240, 10))
    d.ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], outline=(0, 0, 0), width=max(w // 60, 1))
    return im


def strokes(w, h):
    im = Image.new("RGB", (w, h), (245, 242, 230))
    d = ImageDraw.Draw(im)
    rng = random.Random(w * 1000 + h)
    for _ in range(max(w * h // 2000, 3)):
        x, y = rng.randrange(w), rng.randrange(h)
        d.line([x, y, x + rng.randrange(-40, 40), y + rng.randrange(-10, 10)], fill=(10, 10, 30), width=2)
    d.text((2, h // 3), "JOIP conformance 0123", fill=(180, 0, 0))
    return im


PATTERNS = [("gradient", gradient), ("noise", noise), ("edges", edges), ("strokes", strokes)]


def sources():
    """(name, RGB image): each size with one pattern (rotating, so every pattern is used), then
    the photographs."""
    out = []
    for i, (w, h) in enumerate(SIZES):
        name, make = PATTERNS[i % len(PATTERNS)]
        out.append((f"{name}-{w}x{h}", make(w, h)))
    for p in PHOTOS:
        out.append((p.stem, Image.open(p).convert("RGB")))
    return out


# --- JPEG ----------------------------------------------------------------------------------

# Scan scripts (cjpeg -scans): components in scans of their own, sequential and progressive.
SCANS_SEQUENTIAL = "0;\n1;\n2;\n"
SCANS_PROGRESSIVE = "0: 0 0 0 1;\n1: 0 0 0 1;\n2: 0 0 0 1;\n0: 1 5 0 2;\n0: 6 63 0 2;\n2: 1 63 0 1;\n1: 1 63 0 1;\n0: 1 63 2 1;\n0: 1 63 1 0;\n0 1 2: 0 0 1 0;\n1: 1 63 1 0;\n2: 1 63 1 0;\n"

SAMPLES = {"444": "1x1,1x1,1x1", "422": "2x1,1x1,1x1", "420": "2x2,1x1,1x1", "440": "1x2,1x1,1x1", "411": "4x1,1x1,1x1"}

# mode -> cjpeg arguments ({scans} is a script file).
JPEG_MODES = {
    "baseline": ["-quality", "85"],
    "optimize": ["-optimize"],
    "progressive": ["-progressive"],
    "restart-rows": ["-restart", "1"],
    "restart-blocks": ["-restart", "5B"],
    "restart-progressive": ["-progressive", "-restart", "3B"],
    "arithmetic": ["-arithmetic"],
    "arithmetic-progressive": ["-arithmetic", "-progressive"],
    "grayscale": ["-grayscale"],
    "grayscale-progressive": ["-grayscale", "-progressive"],
    "rgb": ["-rgb"],
    "quality-100": ["-quality", "100"],
    "quality-10": ["-quality", "10"],
    "smooth-dct-float": ["-dct", "float", "-smooth", "20"],
}
for s, f in SAMPLES.items():
    JPEG_MODES[f"sample-{s}"] = ["-sample", f]
    JPEG_MODES[f"sample-{s}-progressive"] = ["-sample", f, "-progressive"]
for s in ("444", "422", "420", "440"):
    JPEG_MODES[f"scans-{s}"] = ["-sample", SAMPLES[s], "-scans", "{sequential}"]
    JPEG_MODES[f"scans-progressive-{s}"] = ["-sample", SAMPLES[s], "-scans", "{progressive}"]


def cjpeg(args, src_ppm, out, scripts):
    args = [a.format(**scripts) for a in args]
    subprocess.run(["cjpeg", *args, "-outfile", str(out), str(src_ppm)], check=True)


def exif_app1(orientation):
    """APP1 with a big-endian TIFF whose IFD0 holds only Orientation."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def segments(data):
    """(offset, marker, length incl. marker) of each header segment up to SOS."""
    i, out = 2, []
    while i + 4 <= len(data) and data[i] == 0xFF:
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((i, m, n + 2))
        if m == 0xDA:
            break
        i += n + 2
    return out


def with_exif(data, orientation):
    segs = segments(data)
    at = segs[0][0] + segs[0][2] if segs and segs[0][1] == 0xE0 else 2
    return data[:at] + exif_app1(orientation) + data[at:]


def patch_sof(data, fn):
    for off, m, n in segments(data):
        if m in (0xC0, 0xC1, 0xC2):
            b = bytearray(data)
            fn(b, off)
            return bytes(b)
    raise ValueError("no SOF")


def without_dht(data):
    out, last = bytearray(data[:2]), 2
    for off, m, n in segments(data):
        out += data[last:off] if last < off else b""
        if m != 0xC4:
            out += data[off : off + n]
        last = off + n
    return bytes(out + data[last:])


def bogus_dc_symbol(data, symbol):
    """The first DC table's last symbol replaced (cjpeg's standard tables: category 11, which an
    8-bit image never codes), so the table is bogus but the scan decodes as before."""
    for off, m, n in segments(data):
        if m == 0xC4:
            b = bytearray(data)
            p = off + 4
            while p < off + n:
                tc = b[p] >> 4
                count = sum(b[p + 1 : p + 17])
                if tc == 0:
                    b[p + 17 + count - 1] = symbol
                    return bytes(b)
                p += 17 + count
    raise ValueError("no DC table")


def make_jpegs(srcs, tmp, out, rows):
    scripts = {"sequential": tmp / "sequential.scans", "progressive": tmp / "progressive.scans"}
    scripts["sequential"].write_text(SCANS_SEQUENTIAL)
    scripts["progressive"].write_text(SCANS_PROGRESSIVE)
    ppms = {}
    for name, im in srcs:
        ppms[name] = tmp / f"{name}.ppm"
        im.save(ppms[name])

    def add(mode, name, data, orientation=1):
        d = out / "jpeg" / mode
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{name}.jpg"
        path.write_bytes(data)
        rows.append((path, "jpeg", f"jpeg/{mode}", "valid", orientation, 0))

    for mode, args in JPEG_MODES.items():
        for name, _ in srcs:
            cjpeg(args, ppms[name], tmp / "o.jpg", scripts)
            add(mode, name, (tmp / "o.jpg").read_bytes())
    # EXIF orientations on a non-square picture and a photograph, baseline and progressive.
    for name in (srcs[2][0], srcs[3][0], srcs[-1][0]):
        for args, kind in ((["-quality", "90"], "baseline"), (["-progressive"], "progressive")):
            cjpeg(args, ppms[name], tmp / "o.jpg", scripts)
            base = (tmp / "o.jpg").read_bytes()
            for o in range(1, 9):
                add(f"exif-{kind}", f"{name}-o{o}", with_exif(base, o), o)
    for name, im in srcs:
        # CMYK (Adobe, inverted), which cjpeg cannot write: Pillow (libjpeg-turbo underneath).
        im.convert("CMYK").save(tmp / "o.jpg", "JPEG", quality=90)
        add("cmyk", name, (tmp / "o.jpg").read_bytes())
        cjpeg(["-quality", "75"], ppms[name], tmp / "o.jpg", scripts)
        base = (tmp / "o.jpg").read_bytes()
        # 12-bit by its SOF (this libjpeg-turbo writes none): refused by an 8-bit djpeg.
        add("12bit-sof", name, patch_sof(base, lambda b, o: b.__setitem__(o + 4, 12)))
        # A Motion-JPEG frame: no DHT, the decoder uses the standard tables (cjpeg's default).
        add("mjpeg-no-dht", name, without_dht(base))
        # Bogus DC Huffman tables (issue 21 finding 3): symbols 12 and 16.
        add("dht-dc-symbol-12", name, bogus_dc_symbol(base, 12))
        add("dht-dc-symbol-16", name, bogus_dc_symbol(base, 16))
        # A lying SOF: 4x the height and width over the same data (finding 2).
        for kind, b in (("baseline", base), ("progressive", None)):
            if b is None:
                cjpeg(["-progressive"], ppms[name], tmp / "o.jpg", scripts)
                b = (tmp / "o.jpg").read_bytes()

            def grow(buf, o):
                h, w = struct.unpack(">HH", buf[o + 5 : o + 9])
                buf[o + 5 : o + 9] = struct.pack(">HH", min(h * 4 + 3, 65535), min(w * 4 + 3, 65535))

            add(f"lying-sof-{kind}", name, patch_sof(b, grow))


# --- PNG -------------------------------------------------------------------------------------


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_rows(rows, bpp):
    """Each row with a filter type of its own (0..4 in turn), so every filter is decoded."""
    out, prev = bytearray(), bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        t = y % 5
        f = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            f.append((x - (0, a, b, (a + b) // 2, paeth(a, b, c))[t]) & 0xFF)
        out += bytes([t]) + f
        prev = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(w, h, ctype, depth, pixels, plte=None, trns=None, interlace=False):
    """pixels: rows of per-pixel sample tuples."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    bpp = max(channels * depth // 8, 1)

    def encode(rows):
        return filter_rows([pack_row([s for px in r for s in px], depth) for r in rows], bpp)

    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            rows = [pixels[y][x0::dx] for y in range(y0, h, dy)]
            if rows and rows[0]:
                data += encode(rows)
    else:
        data = encode(pixels)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if plte:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    return out + png_chunk(b"IDAT", zlib.compress(data, 6)) + png_chunk(b"IEND", b"")


def png_variants(im):
    """(mode, png bytes) for every colour type and bit depth of one picture."""
    w, h = im.size
    rgb = list(im.getdata())
    grey = list(im.convert("L").getdata())
    alpha = [(x * 255 // max(w - 1, 1) + y * 31) % 256 for y in range(h) for x in range(w)]

    def rows(vals):
        return [vals[y * w : (y + 1) * w] for y in range(h)]

    def wide(v, i):  # 16 bits with content in the low byte too
        return (v << 8) | ((i * 37) & 0xFF)

    out = []
    for d in (1, 2, 4, 8):
        out.append((f"gray{d}", 0, d, rows([(g >> (8 - d),) for g in grey]), None, None))
    out.append(("gray16", 0, 16, rows([(wide(g, i),) for i, g in enumerate(grey)]), None, None))
    out.append(("gray8-trns", 0, 8, rows([(g,) for g in grey]), None, struct.pack(">H", grey[0])))
    out.append(("rgb8", 2, 8, rows(rgb), None, None))
    out.append(("rgb16", 2, 16, rows([tuple(wide(c, i + k) for k, c in enumerate(p)) for i, p in enumerate(rgb)]), None, None))
    out.append(("rgb8-trns", 2, 8, rows(rgb), None, struct.pack(">HHH", *rgb[0])))
    for d in (1, 2, 4, 8):
        q = im.quantize(colors=1 << d)
        idx = list(q.getdata())
        n = max(idx) + 1
        plte = bytes(q.getpalette()[: 3 * n])
        out.append((f"palette{d}", 3, d, rows([(i,) for i in idx]), plte, None))
        trns = bytes((k * 255 // max(n - 1, 1)) for k in range(n))[: max(n // 2, 1)]
        out.append((f"palette{d}-trns", 3, d, rows([(i,) for i in idx]), plte, trns))
    out.append(("gray-alpha8", 4, 8, rows(list(zip(grey, alpha))), None, None))
    out.append(("gray-alpha16", 4, 16, rows([(wide(g, i), wide(a, i + 1)) for i, (g, a) in enumerate(zip(grey, alpha))]), None, None))
    out.append(("rgba8", 6, 8, rows([p + (a,) for p, a in zip(rgb, alpha)]), None, None))
    out.append(("rgba16", 6, 16, rows([tuple(wide(c, i + k) for k, c in enumerate(p + (a,))) for i, (p, a) in enumerate(zip(rgb, alpha))]), None, None))
    return [(mode, lambda interlace, a=args: png_bytes(w, h, a[0], a[1], a[2], a[3], a[4], interlace)) for mode, *args in out]


def make_pngs(srcs, out, rows):
    for n, (name, im) in enumerate(srcs):
        for mode, make in png_variants(im):
            # Adam7 on every other picture: every colour type both ways, at half the cost.
            for interlace in (False, True) if n % 2 == 0 else (False,):
                m = mode + ("-adam7" if interlace else "")
                d = out / "png" / m
                d.mkdir(parents=True, exist_ok=True)
                path = d / f"{name}.png"
                path.write_bytes(make(interlace))
                rows.append((path, "png", f"png/{m}", "valid", 1, 0))


# --- WebP ------------------------------------------------------------------------------------

# mode -> (cwebp arguments, source has alpha, lossy)
WEBP_MODES = {
    "lossy-q20": (["-q", "20"], False, True),
    "lossy-q50": (["-q", "50"], False, True),
    "lossy-q80": (["-q", "80"], False, True),
    "lossy-q95": (["-q", "95"], False, True),
    "lossy-segments-1": (["-q", "75", "-segments", "1"], False, True),
    "lossy-segments-2": (["-q", "75", "-segments", "2"], False, True),
    "lossy-segments-3": (["-q", "75", "-segments", "3"], False, True),
    "lossy-segments-4": (["-q", "75", "-segments", "4"], False, True),
    "lossy-filter-0": (["-q", "75", "-f", "0"], False, True),
    "lossy-filter-100-sharpness-7": (["-q", "75", "-f", "100", "-sharpness", "7"], False, True),
    "lossy-strong-off": (["-q", "75", "-nostrong"], False, True),
    "lossy-sharp-yuv": (["-q", "75", "-sharp_yuv"], False, True),
    "lossy-alpha-q50": (["-q", "75", "-alpha_q", "50"], True, True),
    "lossy-alpha-q100": (["-q", "75", "-alpha_q", "100"], True, True),
    "lossy-alpha-exact": (["-q", "75", "-exact"], True, True),
    "lossless-z0": (["-lossless", "-z", "0"], False, False),
    "lossless-z6": (["-lossless", "-z", "6"], False, False),
    "lossless-z9": (["-lossless", "-z", "9"], False, False),
    "lossless-alpha": (["-lossless"], True, False),
    "lossless-alpha-exact": (["-lossless", "-exact"], True, False),
    "near-lossless-60": (["-near_lossless", "60"], False, False),
}


def make_webps(srcs, tmp, out, rows):
    for name, im in srcs:
        w, h = im.size
        a = Image.new("L", (w, h))
        a.putdata([(x * 255 // max(w - 1, 1) + y * 31) % 256 for y in range(h) for x in range(w)])
        rgba = im.copy()
        rgba.putalpha(a)
        im.save(tmp / f"{name}.png")
        rgba.save(tmp / f"{name}-alpha.png")
    for mode, (args, alpha, lossy) in WEBP_MODES.items():
        d = out / "webp" / mode
        d.mkdir(parents=True, exist_ok=True)
        for name, _ in srcs:
            src = tmp / (f"{name}-alpha.png" if alpha else f"{name}.png")
            path = d / f"{name}.webp"
            subprocess.run(["cwebp", "-quiet", *args, str(src), "-o", str(path)], check=True)
            # near-lossless is lossless VP8L with pre-quantised pixels: exact from its own decode.
            rows.append((path, "webp", f"webp/{mode}", "valid", 1, int(lossy)))


# --- damage ----------------------------------------------------------------------------------


def damage(valid_rows, out, rows, share):
    """Cut copies and byte flips of a seeded share of the valid files."""
    rng = random.Random(SEED)
    picked = [r for r in valid_rows if rng.random() < share and r[0].stat().st_size > 16]
    for path, fmt, mode, _, orientation, lossy in picked:
        data = path.read_bytes()
        rel = path.relative_to(out)
        stem = str(rel.with_suffix("")).replace("/", "_")
        d = out / "damaged" / fmt
        d.mkdir(parents=True, exist_ok=True)

        def add(variant, tag, buf):
            p = d / f"{stem}.{tag}{path.suffix}"
            p.write_bytes(buf)
            rows.append((p, fmt, f"{fmt}/{variant}", variant, orientation, lossy))

        for pct in (10, 50, 90):
            cut = data[: len(data) * pct // 100]
            add("cut", f"cut{pct}", cut)
            if fmt == "jpeg":
                add("cut+eoi", f"cut{pct}eoi", cut + b"\xff\xd9")
        for k in range(3):
            buf = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                # Past the signature: a flipped magic is only "not an image".
                at = rng.randrange(min(12, len(buf) - 1), len(buf))
                buf[at] ^= rng.randrange(1, 256)
            add("flip", f"flip{k}", bytes(buf))


def main():
    out = Path(sys.argv[1]).resolve()
    share = float(os.environ.get("JOIP_CONFORMANCE_DAMAGE_SHARE", "0.15"))
    if out.exists():
        shutil.rmtree(out)
    tmp = out / "tmp"
    tmp.mkdir(parents=True)
    srcs = sources()
    rows = []
    make_jpegs(srcs, tmp, out, rows)
    make_pngs(srcs, out, rows)
    make_webps(srcs, tmp, out, rows)
    valid = list(rows)
    damage(valid, out, rows, share)
    shutil.rmtree(tmp)
    with open(out / "manifest.tsv", "w") as f:
        f.write("path\tformat\tmode\tvariant\torientation\tlossy\n")
        for path, fmt, mode, variant, orientation, lossy in rows:
            f.write(f"{path.relative_to(out)}\t{fmt}\t{mode}\t{variant}\t{orientation}\t{lossy}\n")
    counts = {}
    for _, fmt, _, variant, _, _ in rows:
        counts[(fmt, variant)] = counts.get((fmt, variant), 0) + 1
    print(f"conformance corpus: {len(rows)} files ({len(valid)} valid) in {out}")
    for (fmt, variant), n in sorted(counts.items()):
        print(f"  {fmt:5} {variant:8} {n}")


if __name__ == "__main__":
    main()
