//! Benchmark worker for the watermark function's image code (`joip::watermark`), driven by
//! `tools/bench/watermark/run.py`, which makes the inputs, runs sharp and jpegtran on the same
//! files and prints the ratios. Each case runs in its own process so its peak RSS is its own.
//!
//! - `watermark mark <width> <height> <out.png>`: writes the mark for an upright image of that
//!   size as an RGBA PNG (for sharp to composite) and prints `{"left":..,"top":..}`.
//! - `watermark run <file> <reps> <out>`: stamps `file` `reps` times (after one warm-up) and
//!   prints one JSON line: median and minimum milliseconds, output bytes, resident memory
//!   before and at peak over one stamp (kB, from /proc/self/status), whether the DCT path
//!   took it and, for the other paths, the median of the same decode + encode without the
//!   mark (the floor), timed alternately with the stamp.
//! - `watermark mix <list> <out>`: the publisher's work per image over a mix, in one process as
//!   one function instance would do it: for each file named in `list` (one path a line), read
//!   its bytes, stamp them, write the result to `out` (overwritten each time). Prints one JSON
//!   line: the milliseconds of each image, output bytes, resident memory before and at peak
//!   over the whole mix (kB). The first image is done once more before, untimed (a warm
//!   instance).
//! - `watermark mix-deployed <list> <out>`: the same plus what the watermark function also
//!   does to each image before stamping it (the content hash it looks up in the blocklist,
//!   `service::moderation::hash_bytes`), timed apart.

use std::time::Instant;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use joip::service::moderation;
use joip::watermark::{self, bench, Limits};

fn main() {
    // `cargo bench` passes `--bench`; the driver passes the mode and its arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["mark", w, h, out] => mark(w.parse().unwrap(), h.parse().unwrap(), out),
        ["run", file, reps, out] => run(file, reps.parse().unwrap(), out),
        ["mix", list, out] => mix(list, out, false),
        ["mix-deployed", list, out] => mix(list, out, true),
        _ => eprintln!(
            "usage: watermark mark <w> <h> <out.png> | run <file> <reps> <out> \
             | mix <list> <out> | mix-deployed <list> <out>\n\
             (driven by tools/bench/watermark/run.py; see tools/bench.sh)"
        ),
    }
}

fn mark(width: u32, height: u32, out: &str) {
    let m = bench::mark_rgba(width, height);
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&m.rgba, m.width, m.height, ExtendedColorType::Rgba8)
        .expect("encode the mark");
    std::fs::write(out, png).expect("write the mark");
    println!(r#"{{"left":{},"top":{}}}"#, m.left, m.top);
}

fn run(file: &str, reps: usize, out: &str) {
    let input = std::fs::read(file).expect("read the input");
    let limits = Limits::default();
    let rss_before = status_kb("VmRSS:");
    let mut output = watermark::stamp(&input, &limits).expect("stamp");
    let rss_peak = status_kb("VmHWM:");
    let dct = bench::takes_dct_path(&input);
    if !dct {
        bench::reencode(&input, &limits).expect("re-encode");
    }
    // Stamp and floor alternate, so both see the same machine.
    let (mut times, mut floor) = (Vec::new(), (!dct).then(Vec::new));
    for _ in 0..reps.max(1) {
        times.push(timed(|| {
            output = watermark::stamp(&input, &limits).expect("stamp")
        }));
        if let Some(floor) = &mut floor {
            floor.push(timed(|| {
                bench::reencode(&input, &limits).expect("re-encode");
            }));
        }
    }
    std::fs::write(out, &output.bytes).expect("write the output");
    println!(
        r#"{{"ms":{:.3},"min_ms":{:.3},"bytes":{},"rss_before_kb":{},"rss_peak_kb":{},"dct":{},"floor_ms":{}}}"#,
        median(&times),
        times.iter().copied().fold(f64::INFINITY, f64::min),
        output.bytes.len(),
        rss_before,
        rss_peak,
        dct,
        floor.map_or("null".to_string(), |f| format!("{:.3}", median(&f))),
    );
}

fn mix(list: &str, out: &str, deployed: bool) {
    let files: Vec<String> = std::fs::read_to_string(list)
        .expect("read the list")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let limits = Limits::default();
    let max_pixels = joip::config::DEFAULT_WATERMARK_MAX_PIXELS;
    // What the function does to one image between its S3 GET and PUT (network excluded).
    let publish = |file: &str| -> (f64, f64, usize) {
        let t = Instant::now();
        let input = std::fs::read(file).expect("read the input");
        let hash_ms = if deployed {
            let h = Instant::now();
            std::hint::black_box(moderation::hash_bytes(&input, max_pixels));
            h.elapsed().as_secs_f64() * 1e3
        } else {
            0.0
        };
        let output = watermark::stamp(&input, &limits).expect("stamp");
        std::fs::write(out, &output.bytes).expect("write the output");
        (t.elapsed().as_secs_f64() * 1e3, hash_ms, output.bytes.len())
    };
    let rss_before = status_kb("VmRSS:");
    if let Some(first) = files.first() {
        publish(first);
    }
    let (mut ms, mut hash_ms, mut bytes) = (Vec::new(), Vec::new(), 0);
    for file in &files {
        let (t, h, b) = publish(file);
        ms.push(format!("{t:.3}"));
        hash_ms.push(format!("{h:.3}"));
        bytes += b;
    }
    println!(
        r#"{{"ms":[{}],"hash_ms":[{}],"bytes":{},"rss_before_kb":{},"rss_peak_kb":{}}}"#,
        ms.join(","),
        hash_ms.join(","),
        bytes,
        rss_before,
        status_kb("VmHWM:"),
    );
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
