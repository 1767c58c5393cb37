#!/usr/bin/env python3
"""The watermark benchmark: our image code against sharp and against its floors, same run.

Makes the inputs (photographs from scikit-image's wheel, upscaled to 1080p and 12 MP with
sensor-like grain, saved as baseline JPEG q92, progressive JPEG, PNG, lossy and lossless
WebP), then for every input, each in its own process so peak memory is its own:
- ours: `joip::watermark::stamp` (lib/benches/watermark.rs), and for the decode/encode paths
  the same decode + encode without the mark (the floor);
- sharp (npm, pinned in package.json), one thread, the same mark at the same place, the same
  output format and quality;
- for the DCT path, the floor `jpegtran -copy none` (a full lossless entropy transcode), its
  process start measured on a 16x16 JPEG and taken off.

Prints one table of ratios and writes it as JSON. Every figure is a ratio of two measurements
of the same run: this machine is shared and noisy.

usage: run.py --bench-bin PATH --out DIR [--quick]
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SKIMAGE_WHEEL = "scikit-image==0.26.0"
PHOTOS = ["coffee", "astronaut"]
SIZES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}
# name: (file suffix, how PIL writes it, sharp's output format and options)
KINDS = {
    "jpeg": (".jpg", dict(format="JPEG", quality=92), "jpeg", {"quality": 88}),
    "jpeg-progressive": (
        ".prog.jpg",
        dict(format="JPEG", quality=92, progressive=True),
        "jpeg",
        {"quality": 88},
    ),
    "png": (".png", dict(format="PNG"), "png", {}),
    "webp-lossy": (".webp", dict(format="WEBP", quality=90, method=4), "webp", {"quality": 90}),
    "webp-lossless": (
        ".ll.webp",
        dict(format="WEBP", lossless=True, quality=25, method=0),
        "webp",
        {"lossless": True},
    ),
}
# The goals: ours/sharp time, ours/floor time, RSS ratio, bytes ratio.
TIME_GOAL = {"jpeg": 0.3, "jpeg-progressive": 0.7, "png": 0.6, "webp-lossy": 1.0, "webp-lossless": 1.0}
FLOOR_GOAL = {"jpeg": 0.6}
RSS_GOAL = 0.3
BYTES_GOAL = {"jpeg": 1.02}


def photos(scratch):
    """The scikit-image photographs, read straight from its wheel (no install needed)."""
    wheels = os.path.join(scratch, "wheels")
    os.makedirs(wheels, exist_ok=True)
    if not any(f.startswith("scikit_image") for f in os.listdir(wheels)):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "-d", wheels, SKIMAGE_WHEEL],
            check=True,
        )
    wheel = next(os.path.join(wheels, f) for f in os.listdir(wheels) if f.startswith("scikit_image"))
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for name in PHOTOS:
            out[name] = Image.open(io.BytesIO(z.read(f"skimage/data/{name}.png"))).convert("RGB")
    return out


def upscale(photo, size, seed):
    """Cover-crop to the aspect, Lanczos up, then grain: per-pixel noise, stronger in the
    shadows like a sensor's, so the codecs see real texture, not smooth interpolation."""
    w, h = size
    pw, ph = photo.size
    scale = max(w / pw, h / ph)
    big = photo.resize((round(pw * scale), round(ph * scale)), Image.LANCZOS)
    left, top = (big.width - w) // 2, (big.height - h) // 2
    arr = np.asarray(big.crop((left, top, left + w, top + h)), dtype=np.float32)
    rng = np.random.default_rng(seed)
    luma_noise = rng.normal(0.0, 1.0, (h, w, 1)).astype(np.float32)
    chroma_noise = rng.normal(0.0, 1.0, (h, w, 3)).astype(np.float32)
    sigma = 2.0 + 3.0 * (1.0 - arr / 255.0)
    arr = arr + sigma * (0.8 * luma_noise + 0.4 * chroma_noise)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_inputs(scratch, quick):
    inputs = os.path.join(scratch, "inputs")
    os.makedirs(inputs, exist_ok=True)
    names = PHOTOS[:1] if quick else PHOTOS
    sizes = {"1080p": SIZES["1080p"]} if quick else SIZES
    cases = []
    srcs = None
    for p_i, name in enumerate(names):
        for size_name, size in sizes.items():
            base = os.path.join(inputs, f"{name}-{size_name}")
            img = None
            for kind, (suffix, save, _, _) in KINDS.items():
                path = base + suffix
                if not os.path.exists(path):
                    if img is None:
                        srcs = srcs or photos(scratch)
                        img = upscale(srcs[name], size, seed=p_i * 10 + len(size_name))
                    img.save(path + ".tmp", **save)
                    os.replace(path + ".tmp", path)
                cases.append(dict(photo=name, size=size_name, kind=kind, path=path, dims=size))
    return cases


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def jpegtran_ms(path, reps, tiny):
    def once(p):
        t = time.perf_counter()
        subprocess.run(["jpegtran", "-copy", "none", "-outfile", os.devnull, p], check=True)
        return (time.perf_counter() - t) * 1e3

    once(path)
    full = statistics.median(once(path) for _ in range(reps))
    start = statistics.median(once(tiny) for _ in range(reps))
    return max(full - start, 0.001)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="one photo at 1080p, 2 repetitions")
    args = ap.parse_args()
    scratch = args.out
    os.makedirs(scratch, exist_ok=True)
    reps = 2 if args.quick else 9

    sharp_dir = os.path.join(scratch, "sharp")
    if not os.path.exists(os.path.join(sharp_dir, "node_modules", "sharp")):
        os.makedirs(sharp_dir, exist_ok=True)
        for f in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(HERE, f), sharp_dir)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=sharp_dir, check=True)
    shutil.copy(os.path.join(HERE, "sharp_bench.js"), sharp_dir)
    sharp_js = os.path.join(sharp_dir, "sharp_bench.js")
    have_jpegtran = shutil.which("jpegtran") is not None

    tiny = os.path.join(scratch, "tiny.jpg")
    Image.new("RGB", (16, 16), (128, 128, 128)).save(tiny, quality=92)
    outs = os.path.join(scratch, "outputs")
    os.makedirs(outs, exist_ok=True)

    rows = []
    for case in make_inputs(scratch, args.quick):
        kind, path = case["kind"], case["path"]
        w, h = case["dims"]
        stem = os.path.join(outs, os.path.basename(path))
        mark_png = os.path.join(outs, f"mark-{w}x{h}.png")
        at = run_json([args.bench_bin, "mark", str(w), str(h), mark_png])
        ours = run_json([args.bench_bin, "run", path, str(reps), stem + ".ours"])
        _, _, fmt, opts = KINDS[kind]
        sharp = run_json(["node", sharp_js, path, mark_png, str(at["left"]), str(at["top"]),
                          fmt, json.dumps(opts), str(reps), stem + ".sharp"])
        if ours["dct"]:
            floor = jpegtran_ms(path, reps, tiny) if have_jpegtran else None
            floor_name = "jpegtran"
        else:
            floor, floor_name = ours["floor_ms"], "decode+encode"
        in_bytes = os.path.getsize(path)
        ours_mem = ours["rss_peak_kb"] - ours["rss_before_kb"]
        sharp_mem = sharp["rss_peak_kb"] - sharp["rss_before_kb"]
        rows.append(dict(
            case=f"{case['photo']} {case['size']} {kind}",
            kind=kind,
            path="dct" if ours["dct"] else "fallback",
            in_bytes=in_bytes,
            ours_ms=ours["ms"],
            sharp_ms=sharp["ms"],
            time_vs_sharp=ours["ms"] / sharp["ms"],
            time_goal=TIME_GOAL[kind] if not (kind == "jpeg" and not ours["dct"]) else 0.7,
            floor=floor_name,
            floor_ms=floor,
            time_vs_floor=(ours["ms"] / floor) if floor else None,
            floor_goal=FLOOR_GOAL.get(kind, 1.1) if ours["dct"] else 1.1,
            ours_rss_mb=ours["rss_peak_kb"] / 1024,
            sharp_rss_mb=sharp["rss_peak_kb"] / 1024,
            ours_work_mb=ours_mem / 1024,
            sharp_work_mb=sharp_mem / 1024,
            rss_vs_sharp=ours["rss_peak_kb"] / sharp["rss_peak_kb"],
            work_vs_sharp=ours_mem / max(sharp_mem, 1),
            rss_goal=RSS_GOAL,
            ours_bytes=ours["bytes"],
            sharp_bytes=sharp["bytes"],
            bytes_ratio=ours["bytes"] / (in_bytes if ours["dct"] else sharp["bytes"]),
            bytes_vs="input" if ours["dct"] else "sharp",
            bytes_goal=BYTES_GOAL.get(kind, 1.0) if ours["dct"] else 1.0,
        ))

    def ok(value, goal):
        return "-" if value is None else ("ok" if value <= goal else "MISS")

    head = (f"{'case':34} {'path':8} {'ours ms':>8} {'sharp':>7} {'/sharp':>7} {'':4} "
            f"{'floor':>7} {'/floor':>7} {'':4} {'RSS MB':>13} {'/sharp':>6} {'':4} {'work MB':>13} "
            f"{'/sharp':>6} {'bytes':>9} {'ratio':>6} {'':4}")
    print(head)
    print("-" * len(head))
    for r in rows:
        fl = r["time_vs_floor"]
        print(
            f"{r['case']:34} {r['path']:8} {r['ours_ms']:8.1f} {r['sharp_ms']:7.1f} "
            f"{r['time_vs_sharp']:7.2f} {ok(r['time_vs_sharp'], r['time_goal']):4} "
            f"{(r['floor_ms'] or 0):7.1f} {(fl or 0):7.2f} {ok(fl, r['floor_goal']):4} "
            f"{r['ours_rss_mb']:6.1f}/{r['sharp_rss_mb']:6.1f} {r['rss_vs_sharp']:6.2f} "
            f"{ok(r['rss_vs_sharp'], r['rss_goal']):4} "
            f"{r['ours_work_mb']:6.1f}/{r['sharp_work_mb']:6.1f} {r['work_vs_sharp']:6.2f} "
            f"{r['ours_bytes']:9d} {r['bytes_ratio']:6.3f} {ok(r['bytes_ratio'], r['bytes_goal']):4}"
        )
    print("time: median of", reps, "runs after one warm-up (ours and its floor alternating); floor: jpegtran -copy none for the DCT "
          "path (process start taken off), our decode+encode without the mark otherwise; RSS: "
          "peak of the whole process over one image (what Lambda's MemorySize must hold), the "
          "goal's measure; work: that peak minus what was resident before it; bytes "
          "ratio: against the input for the DCT path, against sharp's output otherwise.")
    with open(os.path.join(scratch, "watermark.json"), "w") as f:
        json.dump(dict(reps=reps, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
