#!/usr/bin/env python3
"""The watermark benchmark: our image code against sharp and against its floors, same run.

Makes the inputs (photographs from scikit-image's wheel, upscaled to 1080p and 12 MP with
sensor-like grain, saved as baseline JPEG q92, progressive JPEG, PNG, lossy and lossless
WebP), then for every input, each in its own process so peak memory is its own:
- ours: `joip::watermark::stamp` (lib/benches/watermark.rs), and for the decode/encode paths
  the same decode + encode without the mark (the floor);
- sharp (npm, pinned in package.json), one thread, the same mark at the same place, the same
  output format and quality;
- for the DCT path (every JPEG), the floor `jpegtran -copy none` (a full lossless entropy
  transcode), its process start measured on a 16x16 JPEG and taken off.

Then the publisher's mix (issue 20): 70 % progressive JPEG, 20 % baseline JPEG, 10 % PNG and
lossy WebP, 1 to 12 MP, from the same photographs; ours and sharp each publish the whole mix in
one process (one function instance), rounds alternating; images per second, per GB-second at
the watermark function's MemorySize (template.yaml) and cost per million images at Lambda's
price for its architecture (`mix_figures`).

Prints the tables and writes them as JSON (watermark.json): `rows`, the mix's detail, and
`figures`, every headline number under a stable dotted key. Every figure is a ratio of two
measurements of the same run, or derived from one: this machine is shared and noisy.

usage: run.py --bench-bin PATH --out DIR [--quick]
"""

import argparse
import io
import json
import math
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
# The issues' goals: ours/sharp time, ours/floor time, RSS ratio, bytes ratio (progressive
# JPEG: issue 21's).
TIME_GOAL = {"jpeg": 0.3, "jpeg-progressive": 0.35, "png": 0.6, "webp-lossy": 1.0, "webp-lossless": 1.0}
FLOOR_GOAL = {"jpeg": 0.6}
RSS_GOAL = {"jpeg-progressive": 0.15}
# Issue 20: peak memory <= 0.4x sharp's for every format at 12 MP.
RSS_GOAL_OTHER = 0.4
BYTES_GOAL = {"jpeg": 1.02, "jpeg-progressive": 1.02}
# The figures' keys name the kinds as the issues do.
KIND_KEY = {"jpeg": "baseline", "jpeg-progressive": "progressive", "png": "png",
            "webp-lossy": "webp_lossy", "webp-lossless": "webp_lossless"}

# The publisher's mix (issue 20): kinds by count, and sizes from 1 to 12 MP (4:3 and 16:9).
MIX_KINDS = [("jpeg-progressive", 0.70), ("jpeg", 0.20), ("png", 0.05), ("webp-lossy", 0.05)]
MIX_SIZES = [(1152, 864), (1600, 1200), (1920, 1080), (2048, 1536), (2592, 1944),
             (3264, 2448), (3840, 2160), (4000, 3000)]
MIX_IMAGES, MIX_ROUNDS = 40, 5
MIX_QUICK_SIZES, MIX_QUICK_IMAGES = [(640, 480), (800, 600)], 10
# AWS Lambda, us-east-1 on-demand list prices, first tier (the first 6 billion GB-s a month;
# no free tier): per GB-second by architecture, and per request.
LAMBDA_USD_PER_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
LAMBDA_USD_PER_REQUEST = 0.20 / 1e6
TEMPLATE = os.path.join(HERE, "..", "..", "..", "template.yaml")


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


def watermark_deployment(template=TEMPLATE):
    """The watermark function's MemorySize and architecture, read from template.yaml (its own
    properties, else the Globals'). A line scan: CloudFormation's tags (!Ref, !Sub) are not YAML
    a plain loader reads, and only two scalars are wanted."""
    with open(template) as f:
        lines = f.read().splitlines()

    def block(name, indent):
        start = next(i for i, l in enumerate(lines) if l == " " * indent + name + ":")
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].strip() and not lines[i].lstrip().startswith("#")
                    and len(lines[i]) - len(lines[i].lstrip()) <= indent), len(lines))
        return lines[start + 1:end]

    def scalars(body):
        found = {}
        for i, l in enumerate(body):
            t = l.strip()
            if t.startswith("MemorySize:"):
                found.setdefault("memory_mb", int(t.split(":", 1)[1]))
            elif t == "Architectures:":
                item = next(x.strip() for x in body[i + 1:] if x.strip().startswith("- "))
                found.setdefault("architecture", item[2:].strip())
        return found

    own = scalars(block("WatermarkFunction", 2))
    glob = scalars(block("Globals", 0))
    return (own.get("memory_mb", glob.get("memory_mb")),
            own.get("architecture", glob.get("architecture", "x86_64")))


def mix_plan(quick):
    """The mix, by count: each kind's images spread over the sizes (a kind with fewer images
    than sizes takes the smallest, the largest and evenly between), the photographs alternating,
    then shuffled with a fixed seed so kinds and sizes interleave."""
    import random

    n = MIX_QUICK_IMAGES if quick else MIX_IMAGES
    sizes = MIX_QUICK_SIZES if quick else MIX_SIZES
    counts = [int(n * share) for _, share in MIX_KINDS]
    by_remainder = sorted(range(len(MIX_KINDS)), key=lambda i: -(n * MIX_KINDS[i][1] - counts[i]))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    plan = []
    for (kind, _), count in zip(MIX_KINDS, counts):
        for j in range(count):
            if count < len(sizes):
                size_i = round(j * (len(sizes) - 1) / max(count - 1, 1))
            else:
                size_i = j % len(sizes)
            photo = PHOTOS[(j // len(sizes) + j) % len(PHOTOS)]
            plan.append(dict(kind=kind, photo=photo, dims=sizes[size_i]))
    random.Random(20).shuffle(plan)
    return plan


def make_mix(scratch, quick, bench_bin, outs):
    """Writes the mix's inputs (once per photograph and size, in each kind it needs) and the
    marks sharp composites; returns the plan with paths and mark positions."""
    inputs = os.path.join(scratch, "inputs")
    os.makedirs(inputs, exist_ok=True)
    plan = mix_plan(quick)
    srcs, marks = None, {}
    for key in sorted({(c["photo"], c["dims"]) for c in plan}):
        photo, (w, h) = key
        img = None
        for kind in sorted({c["kind"] for c in plan if (c["photo"], c["dims"]) == key}):
            suffix, save, _, _ = KINDS[kind]
            path = os.path.join(inputs, f"mix-{photo}-{w}x{h}{suffix}")
            if not os.path.exists(path):
                if img is None:
                    srcs = srcs or photos(scratch)
                    img = upscale(srcs[photo], (w, h), seed=100 + PHOTOS.index(photo) * 10 + w % 7)
                img.save(path + ".tmp", **save)
                os.replace(path + ".tmp", path)
    for c in plan:
        w, h = c["dims"]
        c["path"] = os.path.join(inputs, f"mix-{c['photo']}-{w}x{h}{KINDS[c['kind']][0]}")
        if (w, h) not in marks:
            mark_png = os.path.join(outs, f"mark-{w}x{h}.png")
            marks[(w, h)] = (mark_png, run_json([bench_bin, "mark", str(w), str(h), mark_png]))
        c["mark"], at = marks[(w, h)]
        c["left"], c["top"] = at["left"], at["top"]
    return plan


def run_mix(scratch, quick, bench_bin, sharp_dir, outs):
    """Ours (the stamp; then the stamp and the content hash, as the function does) and sharp
    publish the whole mix, one process each per round, rounds alternating who goes first."""
    plan = make_mix(scratch, quick, bench_bin, outs)
    mix_dir = os.path.join(scratch, "mix")
    os.makedirs(mix_dir, exist_ok=True)
    ours_list = os.path.join(mix_dir, "list.txt")
    with open(ours_list, "w") as f:
        f.write("".join(c["path"] + "\n" for c in plan))
    sharp_list = os.path.join(mix_dir, "list.json")
    with open(sharp_list, "w") as f:
        json.dump([dict(input=c["path"], mark=c["mark"], left=c["left"], top=c["top"],
                        format=KINDS[c["kind"]][2], options=KINDS[c["kind"]][3]) for c in plan], f)
    shutil.copy(os.path.join(HERE, "sharp_mix.js"), sharp_dir)
    runs = {"ours": [], "sharp": [], "deployed": []}
    cmds = {
        "ours": [bench_bin, "mix", ours_list, os.path.join(mix_dir, "out.ours")],
        "sharp": ["node", os.path.join(sharp_dir, "sharp_mix.js"), sharp_list,
                  os.path.join(mix_dir, "out.sharp")],
        "deployed": [bench_bin, "mix-deployed", ours_list, os.path.join(mix_dir, "out.deployed")],
    }
    for r in range(1 if quick else MIX_ROUNDS):
        for who in (["ours", "sharp"] if r % 2 == 0 else ["sharp", "ours"]) + ["deployed"]:
            runs[who].append(run_json(cmds[who]))
    return plan, runs


def mix_figures(plan, runs):
    """The mix's figures under stable keys (`mix.*`) and its per-kind detail."""
    memory_mb, arch = watermark_deployment()
    usd_gb_s = LAMBDA_USD_PER_GB_S[arch]
    n = len(plan)
    in_bytes = sum(os.path.getsize(c["path"]) for c in plan)
    mp = [c["dims"][0] * c["dims"][1] / 1e6 for c in plan]
    fig = {
        "mix.images": n,
        "mix.rounds": len(runs["ours"]),
        "mix.share.progressive": sum(c["kind"] == "jpeg-progressive" for c in plan) / n,
        "mix.share.baseline": sum(c["kind"] == "jpeg" for c in plan) / n,
        "mix.share.png_webp": sum(c["kind"] in ("png", "webp-lossy") for c in plan) / n,
        "mix.megapixels.mean": statistics.mean(mp),
        "mix.megapixels.min": min(mp),
        "mix.megapixels.max": max(mp),
        "mix.input_bytes": in_bytes,
        "mix.lambda.architecture": arch,
        "mix.lambda.memory_mb": memory_mb,
        "mix.lambda.usd_per_gb_s": usd_gb_s,
        "mix.lambda.usd_per_request": LAMBDA_USD_PER_REQUEST,
        "mix.lambda.images_per_request": 1,
    }
    totals = {who: [sum(r["ms"]) / 1e3 for r in rs] for who, rs in runs.items()}
    for who in ("ours", "sharp", "deployed"):
        rs = runs[who]
        seconds = statistics.median(totals[who])
        rss_mb = max(r["rss_peak_kb"] for r in rs) / 1024
        needed = max(128, math.ceil(rss_mb))
        billed = max(memory_mb, needed)
        gb_s = billed / 1024 * seconds / n
        k = f"mix.{who}"
        fig[f"{k}.seconds"] = seconds
        fig[f"{k}.images_per_s"] = n / seconds
        fig[f"{k}.ms_per_image"] = seconds * 1e3 / n
        fig[f"{k}.rss_peak_mb"] = rss_mb
        fig[f"{k}.memory_needed_mb"] = needed
        fig[f"{k}.fits_memory_size"] = needed <= memory_mb
        fig[f"{k}.billed_memory_mb"] = billed
        fig[f"{k}.images_per_gb_s"] = 1 / gb_s
        fig[f"{k}.usd_per_million"] = 1e6 * (gb_s * usd_gb_s + LAMBDA_USD_PER_REQUEST)
        fig[f"{k}.bytes_vs_input"] = rs[-1]["bytes"] / in_bytes
        for kind, _ in MIX_KINDS:
            idx = [i for i, c in enumerate(plan) if c["kind"] == kind]
            if idx:
                fig[f"{k}.ms_per_image.{KIND_KEY[kind]}"] = statistics.median(
                    statistics.mean(r["ms"][i] for i in idx) for r in rs)
    dep = runs["deployed"]
    hash_s = statistics.median(sum(r["hash_ms"]) / 1e3 for r in dep)
    fig["mix.deployed.hash_ms_per_image"] = hash_s * 1e3 / n
    fig["mix.deployed.hash_share"] = hash_s / fig["mix.deployed.seconds"]
    fig["mix.ratio_time"] = statistics.median(o / s for o, s in zip(totals["ours"], totals["sharp"]))
    fig["mix.ratio_rss"] = fig["mix.ours.rss_peak_mb"] / fig["mix.sharp.rss_peak_mb"]
    fig["mix.ratio_usd"] = fig["mix.ours.usd_per_million"] / fig["mix.sharp.usd_per_million"]
    fig["mix.ratio_images_per_gb_s"] = (fig["mix.ours.images_per_gb_s"]
                                        / fig["mix.sharp.images_per_gb_s"])
    return fig


def case_figures(rows):
    """Every case's ratios under `<kind>.<photo>.<size>.<measure>`, and each kind's worst case
    under `<kind>.worst.<measure>` with whether it meets its goal (`<kind>.goals_met`)."""
    fig = {}
    worst = {}
    for r in rows:
        kind = KIND_KEY[r["kind"]]
        measures = {
            "time_vs_sharp": r["time_vs_sharp"],
            "rss_vs_sharp": r["rss_vs_sharp"],
            "work_vs_sharp": r["work_vs_sharp"],
            f"bytes_vs_{r['bytes_vs']}": r["bytes_ratio"],
            "time_vs_floor": r["time_vs_floor"],
            "ours_ms": r["ours_ms"],
            "sharp_ms": r["sharp_ms"],
        }
        for m, v in measures.items():
            fig[f"{kind}.{r['photo']}.{r['size']}.{m}"] = v
            if v is not None and m not in ("ours_ms", "sharp_ms"):
                worst.setdefault(kind, {})
                worst[kind][m] = max(worst[kind].get(m, v), v)
        ok = (r["time_vs_sharp"] <= r["time_goal"] and r["rss_vs_sharp"] <= r["rss_goal"]
              and r["bytes_ratio"] <= r["bytes_goal"])
        fig[f"{kind}.goals_met"] = fig.get(f"{kind}.goals_met", True) and ok
    for kind, ms in worst.items():
        for m, v in ms.items():
            fig[f"{kind}.worst.{m}"] = v
    return fig


def print_mix(f):
    print()
    print(f"publisher mix: {f['mix.images']} images ({f['mix.share.progressive']:.0%} progressive "
          f"JPEG, {f['mix.share.baseline']:.0%} baseline, {f['mix.share.png_webp']:.0%} PNG/WebP; "
          f"{f['mix.megapixels.min']:.1f}-{f['mix.megapixels.max']:.1f} MP, mean "
          f"{f['mix.megapixels.mean']:.1f}), {f['mix.rounds']} round(s); Lambda "
          f"{f['mix.lambda.architecture']} at {f['mix.lambda.memory_mb']} MB, "
          f"${f['mix.lambda.usd_per_gb_s']:.10f}/GB-s + ${f['mix.lambda.usd_per_request'] * 1e6:.2f}"
          f"/M requests, one image a request")
    head = (f"{'':22} {'img/s':>7} {'ms/img':>7} {'peak MB':>8} {'needs MB':>8} {'img/GB-s':>9} "
            f"{'$/M img':>8} {'bytes/in':>8}")
    print(head)
    print("-" * len(head))
    for who, label in (("ours", "ours (stamp)"), ("sharp", "sharp (stamp)"),
                       ("deployed", "ours (hash + stamp)")):
        k = f"mix.{who}"
        print(f"{label:22} {f[k + '.images_per_s']:7.2f} {f[k + '.ms_per_image']:7.1f} "
              f"{f[k + '.rss_peak_mb']:8.1f} {f[k + '.memory_needed_mb']:8d} "
              f"{f[k + '.images_per_gb_s']:9.2f} {f[k + '.usd_per_million']:8.2f} "
              f"{f[k + '.bytes_vs_input']:8.3f}")
    kinds = [KIND_KEY[k] for k, _ in MIX_KINDS if f"mix.ours.ms_per_image.{KIND_KEY[k]}" in f]
    print("ms per image by kind, ours/sharp: " + ", ".join(
        f"{k} {f['mix.ours.ms_per_image.' + k]:.1f}/{f['mix.sharp.ms_per_image.' + k]:.1f}"
        for k in kinds))
    print(f"ours/sharp: time {f['mix.ratio_time']:.2f}, peak memory {f['mix.ratio_rss']:.2f}, "
          f"cost {f['mix.ratio_usd']:.2f}; the content hash is "
          f"{f['mix.deployed.hash_share']:.0%} of the deployed work "
          f"({f['mix.deployed.hash_ms_per_image']:.1f} ms an image). Time: reading the file, the "
          "work, writing the result, per image in one process (S3 and DynamoDB round trips "
          "excluded); cost: that time billed at the MemorySize (or what the peak needs, if more).")


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
    ap.add_argument("--quick", action="store_true",
                    help="one photo at 1080p, 2 repetitions; a mix of 10 small images, 1 round")
    ap.add_argument("--only", choices=["cases", "mix"], help="run one part (the JSON holds it alone)")
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
    for case in make_inputs(scratch, args.quick) if args.only != "mix" else []:
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
            photo=case["photo"],
            size=case["size"],
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
            rss_goal=RSS_GOAL.get(kind, RSS_GOAL_OTHER),
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
    figures = case_figures(rows)
    mix = None
    if args.only != "cases":
        plan, runs = run_mix(scratch, args.quick, args.bench_bin, sharp_dir, outs)
        mix_fig = mix_figures(plan, runs)
        figures.update(mix_fig)
        print_mix(mix_fig)
        mix = dict(plan=[dict(kind=c["kind"], photo=c["photo"], dims=c["dims"],
                              bytes=os.path.getsize(c["path"])) for c in plan], runs=runs)
    with open(os.path.join(scratch, "watermark.json"), "w") as f:
        json.dump(dict(reps=reps, rows=rows, mix=mix, figures=figures), f, indent=1)


if __name__ == "__main__":
    main()
