//! The codec conformance suite (issue 21): every file of a corpus made at test time by public
//! tools (tools/conformance/generate.py: cjpeg in every mode, every PNG colour type and depth,
//! cwebp lossy and lossless, cut copies and seeded byte flips) goes through
//! [`joip::watermark::stamp`], and the answer is judged against the reference decoders
//! (libjpeg-turbo's `djpeg -strict`, libwebp's `dwebp`, libpng through
//! tools/conformance/png_oracle.c):
//!
//! - published iff the oracle reads the input (refusing a file the oracle reads, or calling it
//!   unsupported, is a disagreement; `TooLarge` is neither: the suite's limit keeps flipped
//!   headers from turning into minutes of decoding);
//! - a published image is read by the oracle, has the input's displayed size, carries the
//!   sniffed MIME, equals the input outside the mark (JPEG: the same pixels outside the mark's
//!   box grown by 16 px, which identical coefficients give; PNG and lossless WebP: exact; lossy
//!   WebP: at least [`LOSSY_PSNR_DB`]) and differs from it inside the box.
//!
//! It prints a table per format and mode, and fails on any disagreement not listed in
//! tools/conformance/known-disagreements.tsv, and on any listed entry that no longer
//! disagrees: the list only shrinks, and never hides a fix.
//!
//! Needs the Debian packages libjpeg-turbo-progs, webp, libpng-dev, gcc and python3-venv
//! (tools/common.sh `bootstrap_codec_tools`); without them it skips loudly, or fails under
//! `CI=1` or `JOIP_REQUIRE_ORACLES=1`.

use joip::watermark::bench::mark_rgba;
use joip::watermark::{stamp, Limits, Stamped, WatermarkError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Lossy WebP is encoded again: its pixels outside the mark stay within this of the input's.
const LOSSY_PSNR_DB: f64 = 35.0;
/// A JPEG or lossless file that differs outside the mark but stays above this was encoded
/// again (not bit-exact); below it, it was damaged.
const REENCODED_PSNR_DB: f64 = 30.0;
/// JPEG blocks the mark touches are re-quantised: their pixels, and the chroma upsampling's
/// reach beyond them, may change; 16 px covers a 2x2-subsampled MCU, and a wider MCU (4:1:1)
/// widens it to the MCU ([`jpeg_margin`]).
const JPEG_MARGIN: u32 = 16;
/// Below this shorter side the mark is a few pixels of a logo a pixel high: a 1x1 or 7x9
/// picture is published without a visible mark (there is nothing to carry one), so the suite
/// does not ask for it there.
const MIN_MARKED_SIDE: u32 = 16;
/// No corpus file is above 640x480 (0.3 MP): a flipped header claiming more than this is
/// refused from the header rather than decoded for seconds in a debug build.
const SUITE_LIMITS: Limits = Limits {
    max_pixels: 4_000_000,
    max_bytes: 64 << 20,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Published,
    Refused,
    TooLarge,
}

struct Entry {
    path: String,
    format: String,
    mode: String,
    orientation: u16,
    lossy: bool,
}

struct Verdict {
    outcome: Outcome,
    /// The disagreement kind, `None` when we agree with the oracle.
    disagreement: Option<String>,
    /// We refused a JPEG that djpeg reads as the file lies, but refuses when the same data
    /// sits elsewhere in its 4 KB input buffer ([`Oracle::jpeg_verdict_moves`]).
    oracle_inconsistent: bool,
}

#[test]
fn every_codec_answer_agrees_with_the_reference_decoders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/conformance");
    let require = ["CI", "JOIP_REQUIRE_ORACLES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"));
    let started = Instant::now();
    let generated = Command::new("bash")
        .arg(root.join("tools/conformance/generate.sh"))
        .arg(&out)
        .status()
        .expect("bash runs tools/conformance/generate.sh");
    if generated.code() == Some(3) {
        assert!(
            !require,
            "conformance: the reference decoders are missing (see above); CI installs them with tools/common.sh bootstrap_codec_tools"
        );
        eprintln!(
            "\n!!!!! conformance suite SKIPPED: reference decoders missing (see above) !!!!!\n"
        );
        return;
    }
    assert!(generated.success(), "tools/conformance/generate.sh failed");
    let generate_secs = started.elapsed().as_secs_f64();

    let corpus = out.join("corpus");
    let entries = read_manifest(&corpus.join("manifest.tsv"));
    let known = read_known(&root.join("tools/conformance/known-disagreements.tsv"));
    let results_dir = out.join("published");
    let _ = std::fs::remove_dir_all(&results_dir);
    let oracle = Oracle {
        png: out.join("bin/png-oracle"),
        scratch: results_dir,
    };

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let verdicts: Mutex<Vec<Option<Verdict>>> =
        Mutex::new((0..entries.len()).map(|_| None).collect());
    let threads = std::env::var("JOIP_CONFORMANCE_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(entry) = entries.get(i) else { break };
                let verdict = judge(entry, &corpus, &oracle);
                verdicts.lock().unwrap()[i] = Some(verdict);
            });
        }
    });
    let verdicts: Vec<Verdict> = verdicts
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|v| v.expect("every entry judged"))
        .collect();
    let judge_secs = started.elapsed().as_secs_f64();

    // The table, and the disagreements sorted into known and new.
    #[derive(Default)]
    struct Row {
        files: usize,
        published: usize,
        refused: usize,
        too_large: usize,
        known: usize,
        new: usize,
    }
    let mut table: BTreeMap<&str, Row> = BTreeMap::new();
    let mut used = vec![0usize; known.len()];
    let mut new = Vec::new();
    let mut known_total = 0;
    let inconsistent: Vec<&str> = entries
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.oracle_inconsistent)
        .map(|(e, _)| e.path.as_str())
        .collect();
    for (entry, verdict) in entries.iter().zip(&verdicts) {
        let row = table.entry(&entry.mode).or_default();
        row.files += 1;
        match verdict.outcome {
            Outcome::Published => row.published += 1,
            Outcome::Refused => row.refused += 1,
            Outcome::TooLarge => row.too_large += 1,
        }
        let Some(kind) = &verdict.disagreement else {
            continue;
        };
        match known
            .iter()
            .position(|k| k.kind == *kind && glob(&k.pattern, &entry.path))
        {
            Some(k) => {
                used[k] += 1;
                row.known += 1;
                known_total += 1;
            }
            None => {
                row.new += 1;
                new.push(format!("{}\t{kind}", entry.path));
            }
        }
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "\n{:<38} {:>6} {:>9} {:>7} {:>9} {:>6} {:>5}",
        "format/mode", "files", "published", "refused", "too large", "known", "NEW"
    );
    let mut total = Row::default();
    for (mode, r) in &table {
        let _ = writeln!(
            report,
            "{mode:<38} {:>6} {:>9} {:>7} {:>9} {:>6} {:>5}",
            r.files, r.published, r.refused, r.too_large, r.known, r.new
        );
        total.files += r.files;
        total.published += r.published;
        total.refused += r.refused;
        total.too_large += r.too_large;
        total.known += r.known;
        total.new += r.new;
    }
    let _ = writeln!(
        report,
        "{:<38} {:>6} {:>9} {:>7} {:>9} {:>6} {:>5}",
        "total",
        total.files,
        total.published,
        total.refused,
        total.too_large,
        total.known,
        total.new
    );
    let stale: Vec<String> = known
        .iter()
        .zip(&used)
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| format!("{}\t{}\t{}", k.pattern, k.kind, k.finding))
        .collect();
    let _ = writeln!(
        report,
        "conformance: {} files, {} disagreements with the oracles: {} known (matching {} of {} entries of tools/conformance/known-disagreements.tsv), {} new; {} stale entries. Corpus {:.1} s, judging {:.1} s on {threads} threads.",
        entries.len(),
        known_total + new.len(),
        known_total,
        known.len() - stale.len(),
        known.len(),
        new.len(),
        stale.len(),
        generate_secs,
        judge_secs,
    );
    if !inconsistent.is_empty() {
        let _ = writeln!(
            report,
            "refused where djpeg's verdict depends on the file's place in its input buffer \
             (it refuses the same data moved by a comment segment): {}",
            inconsistent.join(", ")
        );
    }
    eprintln!("{report}");
    let _ = std::fs::write(out.join("report.txt"), &report);
    let mut failures = String::new();
    if !new.is_empty() {
        let _ = writeln!(
            failures,
            "{} new disagreements with the reference decoders (path, kind):\n  {}",
            new.len(),
            new.join("\n  ")
        );
    }
    if !stale.is_empty() {
        let _ = writeln!(
            failures,
            "{} entries of tools/conformance/known-disagreements.tsv no longer disagree: remove them\n  {}",
            stale.len(),
            stale.join("\n  ")
        );
    }
    assert!(failures.is_empty(), "{failures}");
}

/// Our answer for one file against the oracle's.
fn judge(entry: &Entry, corpus: &Path, oracle: &Oracle) -> Verdict {
    let path = corpus.join(&entry.path);
    let input = std::fs::read(&path).expect("corpus file");
    let theirs = oracle.decode(&entry.format, &path);
    let ours = stamp(&input, &SUITE_LIMITS);
    let disagree = |outcome, kind: &str| Verdict {
        outcome,
        disagreement: Some(kind.to_owned()),
        oracle_inconsistent: false,
    };
    let agree = |outcome| Verdict {
        outcome,
        disagreement: None,
        oracle_inconsistent: false,
    };
    match (ours, theirs) {
        (Err(WatermarkError::TooLarge(_)), _) => agree(Outcome::TooLarge),
        (Err(WatermarkError::Unsupported(_)), Some(_)) => {
            disagree(Outcome::Refused, "unsupported-but-oracle-reads")
        }
        // libjpeg-turbo's fast Huffman path takes an invalid code for symbol 0 where its slow
        // path warns, and it takes the fast path only while 512 bytes a block remain in its
        // 4 KB input buffer: for damaged data its verdict can depend on where the data falls
        // in that buffer. Where moving the data (a comment segment after SOI) makes it
        // refuse, it holds the data corrupt, as we do.
        (Err(_), Some(_)) if entry.format == "jpeg" && oracle.jpeg_verdict_moves(&input) => {
            Verdict {
                oracle_inconsistent: true,
                ..agree(Outcome::Refused)
            }
        }
        (Err(_), Some(_)) => disagree(Outcome::Refused, "refused-but-oracle-reads"),
        // 12-bit JPEG is valid, just not ours: refused as unsupported, not as corrupt.
        (Err(e), None) if entry.mode == "jpeg/12bit-sof" => match e {
            WatermarkError::Unsupported(_) => agree(Outcome::Refused),
            _ => disagree(Outcome::Refused, "12-bit-refused-as-corrupt"),
        },
        (Err(_), None) => agree(Outcome::Refused),
        (Ok(_), None) => disagree(Outcome::Published, "published-but-oracle-refuses"),
        (Ok(stamped), Some(before)) => {
            match check_published(entry, &input, &stamped, &before, oracle) {
                Ok(()) => agree(Outcome::Published),
                Err(kind) => disagree(Outcome::Published, kind),
            }
        }
    }
}

/// The checks on a published image, given the oracle's decode of its input; the first that
/// fails names the disagreement.
fn check_published(
    entry: &Entry,
    input: &[u8],
    stamped: &Stamped,
    before: &Pixels,
    oracle: &Oracle,
) -> Result<(), &'static str> {
    let (mime, ext) = match entry.format.as_str() {
        "jpeg" => ("image/jpeg", "jpg"),
        "png" => ("image/png", "png"),
        _ => ("image/webp", "webp"),
    };
    if stamped.mime != mime {
        return Err("wrong-mime");
    }
    let file = oracle.scratch.join(&entry.path).with_extension(ext);
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("scratch dir");
    std::fs::write(&file, &stamped.bytes).expect("write the published image");
    let Some(after) = oracle.decode(&entry.format, &file) else {
        return Err("published-image-unreadable");
    };
    let out_orientation = if entry.format == "jpeg" {
        exif_orientation(&stamped.bytes)
    } else {
        1
    };
    let before = before.displayed(entry.orientation);
    let after = after.displayed(out_orientation);
    if (before.w, before.h) != (after.w, after.h) {
        return Err("wrong-displayed-size");
    }
    let mark = mark_rgba(before.w, before.h);
    let margin = if entry.format == "jpeg" {
        jpeg_margin(input)
    } else {
        0
    };
    let inside = |x: u32, y: u32, grow: u32| {
        x + grow >= mark.left
            && x < mark.left + mark.width + grow
            && y + grow >= mark.top
            && y < mark.top + mark.height + grow
    };
    let (mut sq, mut n, mut differs_outside, mut marked) = (0f64, 0u64, false, false);
    for y in 0..before.h {
        for x in 0..before.w {
            let (a, b) = (before.at(x, y), after.at(x, y));
            let same = a == b || (a[3] == 0.0 && b[3] == 0.0);
            if inside(x, y, 0) {
                marked |= !same;
            }
            if inside(x, y, margin) {
                continue;
            }
            differs_outside |= !same;
            if !same {
                sq += a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>();
            }
            n += 4;
        }
    }
    let psnr = if sq == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / (sq / n as f64)).log10()
    };
    if entry.lossy {
        if psnr < LOSSY_PSNR_DB {
            return Err("lossy-below-psnr-bound-outside-mark");
        }
    } else if differs_outside {
        return Err(if psnr >= REENCODED_PSNR_DB {
            "reencoded-outside-mark"
        } else {
            "damaged-outside-mark"
        });
    }
    if !marked && before.w.min(before.h) >= MIN_MARKED_SIDE {
        return Err("no-mark");
    }
    Ok(())
}

/// [`JPEG_MARGIN`], or the MCU's width or height in pixels where that is larger (the largest
/// sampling factor of the first SOF, times 8).
fn jpeg_margin(jpeg: &[u8]) -> u32 {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        let sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if sof && i + 2 + len <= jpeg.len() && len >= 8 {
            let seg = &jpeg[i + 4..i + 2 + len];
            let n = usize::from(seg[5]);
            let largest = (0..n)
                .filter_map(|c| seg.get(7 + 3 * c))
                .map(|&hv| u32::from((hv >> 4).max(hv & 15)))
                .max()
                .unwrap_or(1);
            return JPEG_MARGIN.max(8 * largest);
        }
        i += 2 + len;
    }
    JPEG_MARGIN
}

/// The reference decoders, each run as its own process on a file.
struct Oracle {
    png: PathBuf,
    /// Where published images are written for the oracle to read (kept for inspection).
    scratch: PathBuf,
}

impl Oracle {
    /// Whether `djpeg -strict` refuses `jpeg` once its bytes are moved by a comment segment
    /// after SOI, for some shift of 97 to 3,977 bytes (every residue class of its 4 KB buffer
    /// within 97 bytes).
    fn jpeg_verdict_moves(&self, jpeg: &[u8]) -> bool {
        let dir = self.scratch.join("moved");
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file =
            dir.join(format!("{:?}.jpg", std::thread::current().id()).replace(['(', ')'], ""));
        (1..=41).any(|i| {
            let pad = vec![b' '; 97 * i];
            let mut moved = jpeg[..2].to_vec();
            moved.extend_from_slice(&[0xFF, 0xFE]);
            moved.extend_from_slice(&((pad.len() + 2) as u16).to_be_bytes());
            moved.extend_from_slice(&pad);
            moved.extend_from_slice(&jpeg[2..]);
            std::fs::write(&file, &moved).expect("write the moved file");
            self.decode("jpeg", &file).is_none()
        })
    }

    /// The pixels if the format's reference decoder reads `path` without error or warning.
    fn decode(&self, format: &str, path: &Path) -> Option<Pixels> {
        let mut cmd = match format {
            "jpeg" => {
                let mut c = Command::new("djpeg");
                c.args(["-strict", "-pnm"]).arg(path);
                c
            }
            "png" => {
                let mut c = Command::new(&self.png);
                c.arg(path);
                c
            }
            _ => {
                let mut c = Command::new("dwebp");
                c.args(["-quiet", "-pam"]).arg(path).args(["-o", "-"]);
                c
            }
        };
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("the oracle runs");
        if !out.status.success() {
            return None;
        }
        Some(Pixels::from_netpbm(&out.stdout).expect("the oracle writes netpbm"))
    }
}

/// Decoded pixels as RGBA on a 0..=255 scale (16-bit samples keep their fraction).
struct Pixels {
    w: u32,
    h: u32,
    rgba: Vec<[f64; 4]>,
}

impl Pixels {
    /// P5 (grey), P6 (RGB) or P7 (RGB_ALPHA), 8 or 16 bits a sample.
    fn from_netpbm(data: &[u8]) -> Option<Self> {
        let magic = data.get(..2)?;
        let (mut fields, mut at) = (BTreeMap::new(), 2usize);
        let text = |from: usize| -> Option<(String, usize)> {
            let mut i = from;
            while data.get(i)?.is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while !data.get(i)?.is_ascii_whitespace() {
                i += 1;
            }
            Some((String::from_utf8_lossy(&data[start..i]).into_owned(), i))
        };
        let channels = match magic {
            b"P7" => {
                loop {
                    let (key, i) = text(at)?;
                    if key == "ENDHDR" {
                        at = i + 1;
                        break;
                    }
                    let (value, i) = text(i)?;
                    fields.insert(key, value);
                    at = i;
                }
                fields.get("DEPTH")?.parse::<usize>().ok()?
            }
            b"P5" | b"P6" => {
                for key in ["WIDTH", "HEIGHT", "MAXVAL"] {
                    let (value, i) = text(at)?;
                    fields.insert(key.to_owned(), value);
                    at = i;
                }
                at += 1;
                if magic == b"P5" {
                    1
                } else {
                    3
                }
            }
            _ => return None,
        };
        let w: u32 = fields.get("WIDTH")?.parse().ok()?;
        let h: u32 = fields.get("HEIGHT")?.parse().ok()?;
        let max: u32 = fields.get("MAXVAL")?.parse().ok()?;
        let bytes = if max > 255 { 2 } else { 1 };
        let body = data.get(at..)?;
        let sample = |i: usize| -> f64 {
            let v = if bytes == 2 {
                u32::from(u16::from_be_bytes([body[2 * i], body[2 * i + 1]]))
            } else {
                u32::from(body[i])
            };
            f64::from(v) * 255.0 / f64::from(max)
        };
        let n = (w * h) as usize;
        if body.len() < n * channels * bytes {
            return None;
        }
        let rgba = (0..n)
            .map(|p| {
                let s = |c| sample(p * channels + c);
                match channels {
                    1 => [s(0), s(0), s(0), 255.0],
                    3 => [s(0), s(1), s(2), 255.0],
                    _ => [s(0), s(1), s(2), s(3)],
                }
            })
            .collect();
        Some(Self { w, h, rgba })
    }

    fn at(&self, x: u32, y: u32) -> [f64; 4] {
        self.rgba[(y * self.w + x) as usize]
    }

    /// The image as displayed under EXIF `orientation` (1..=8; anything else as stored).
    fn displayed(&self, orientation: u16) -> Self {
        let (w, h) = (self.w, self.h);
        let (dw, dh) = if (5..=8).contains(&orientation) {
            (h, w)
        } else {
            (w, h)
        };
        let mut rgba = Vec::with_capacity(self.rgba.len());
        for v in 0..dh {
            for u in 0..dw {
                // The stored pixel shown at (u, v), by the EXIF definitions.
                let (x, y) = match orientation {
                    2 => (w - 1 - u, v),
                    3 => (w - 1 - u, h - 1 - v),
                    4 => (u, h - 1 - v),
                    5 => (v, u),
                    6 => (v, h - 1 - u),
                    7 => (w - 1 - v, h - 1 - u),
                    8 => (w - 1 - v, u),
                    _ => (u, v),
                };
                rgba.push(self.at(x, y));
            }
        }
        Self { w: dw, h: dh, rgba }
    }
}

/// The EXIF orientation of a JPEG (its first APP1 `Exif` segment), 1 when it has none.
fn exif_orientation(jpeg: &[u8]) -> u16 {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDA {
            break;
        }
        let payload = jpeg.get(i + 4..i + 2 + len).unwrap_or(&[]);
        if marker == 0xE1 {
            if let Some(tiff) = payload.strip_prefix(b"Exif\0\0") {
                return tiff_orientation(tiff).unwrap_or(1);
            }
        }
        i += 2 + len;
    }
    1
}

fn tiff_orientation(tiff: &[u8]) -> Option<u16> {
    let big = tiff.get(..2)? == b"MM";
    let u16_at = |at: usize| {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let ifd = if big {
        u32::from_be_bytes(tiff.get(4..8)?.try_into().ok()?)
    } else {
        u32::from_le_bytes(tiff.get(4..8)?.try_into().ok()?)
    } as usize;
    (0..usize::from(u16_at(ifd)?)).find_map(|k| {
        let e = ifd + 2 + 12 * k;
        (u16_at(e)? == 0x0112).then(|| u16_at(e + 8)).flatten()
    })
}

fn read_manifest(path: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(path).expect("the corpus manifest");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Entry {
                path: f[0].to_owned(),
                format: f[1].to_owned(),
                mode: f[2].to_owned(),
                orientation: f[4].parse().expect("orientation"),
                lossy: f[5] == "1",
            }
        })
        .collect()
}

/// One line of known-disagreements.tsv: a path pattern (`*` matches anything), a kind, and
/// the issue finding it belongs to.
struct Known {
    pattern: String,
    kind: String,
    finding: String,
}

fn read_known(path: &Path) -> Vec<Known> {
    let text = std::fs::read_to_string(path).expect("tools/conformance/known-disagreements.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.splitn(3, '\t').collect();
            assert!(
                f.len() == 3,
                "known-disagreements.tsv: three fields a line: {line}"
            );
            Known {
                pattern: f[0].to_owned(),
                kind: f[1].to_owned(),
                finding: f[2].to_owned(),
            }
        })
        .collect()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}
