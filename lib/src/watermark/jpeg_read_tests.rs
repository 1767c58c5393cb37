//! The planes path (issue 21) against libjpeg-turbo: files written by `cjpeg` in its
//! non-interleaved and progressive modes decode to exactly the coefficients `jpegtran` gives
//! for the same file (it is lossless in the coefficient domain); cut and lying files are
//! refused; a Motion-JPEG frame without tables is published. Needs the Debian package
//! `libjpeg-turbo-progs` (`cjpeg`, `jpegtran`, `djpeg`); skips loudly without it.

use std::io::Write;
use std::process::{Command, Stdio};

use super::coef::Planes;
use super::jpeg::{parse_header, stamp};
use super::jpeg_read;
use super::test_jpeg::{self, Options};
use super::tests::{camera_exif, photo, with_segments};
use super::{Limits, WatermarkError};

/// Runs a libjpeg-turbo tool on `input` (stdin); `None`, loudly, when it is not installed.
fn tool(name: &str, args: &[&str], input: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED: `{name}` not found: apt-get install -y libjpeg-turbo-progs");
        return None;
    };
    child.stdin.take()?.write_all(input).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

fn ppm(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
    out.extend_from_slice(&photo(w, h, seed));
    out
}

fn planes_of(jpeg: &[u8]) -> Result<(Planes, Vec<(usize, usize)>), WatermarkError> {
    let header = parse_header(jpeg, &Limits::default())?;
    let coefs = jpeg_read::decode(jpeg, &header, &[])?;
    let coded = (0..coefs.geom.components.len())
        .map(|c| coefs.geom.coded_blocks(c))
        .collect();
    Ok((coefs.planes, coded))
}

/// Every coded block of `a` equals `b`'s (padding blocks are the encoder's choice).
fn assert_same_coefficients(a: &[u8], b: &[u8], what: &str) {
    let (pa, coded) = planes_of(a).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (pb, _) = planes_of(b).unwrap_or_else(|e| panic!("{what} (jpegtran): {e}"));
    for (c, &(w, h)) in coded.iter().enumerate() {
        for by in 0..h {
            for bx in 0..w {
                assert_eq!(
                    pa[c].block(bx, by),
                    pb[c].block(bx, by),
                    "{what}: component {c} block ({bx}, {by})"
                );
            }
        }
    }
}

fn scans_file(text: &str) -> String {
    // Named by its text: tests running at once may each want a script of their own.
    let tag = text
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let path =
        std::env::temp_dir().join(format!("joip-scans-{}-{tag:08x}.txt", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn non_interleaved_progressive_and_arithmetic_files_decode_to_jpegtrans_coefficients() {
    let input = ppm(227, 149, 4);
    let scans = scans_file("0;\n1;\n2;\n");
    for sample in ["2x2", "1x2", "2x1", "1x1"] {
        for mode in [
            vec!["-scans", scans.as_str()],
            vec!["-progressive"],
            vec!["-progressive", "-restart", "3B"],
            vec!["-scans", scans.as_str(), "-restart", "2B"],
            vec!["-arithmetic"],
            vec!["-arithmetic", "-progressive", "-restart", "2B"],
            vec!["-arithmetic", "-scans", scans.as_str()],
        ] {
            let mut args = vec!["-quality", "88", "-sample", sample];
            args.extend_from_slice(&mode);
            let Some(jpeg) = tool("cjpeg", &args, &input) else {
                return;
            };
            let jpeg = jpeg.unwrap();
            let baseline = tool("jpegtran", &["-copy", "none"], &jpeg)
                .unwrap()
                .unwrap();
            let what = format!("{sample} {mode:?}");
            assert_same_coefficients(&jpeg, &baseline, &what);
            // Published, and libjpeg-turbo reads what we publish without a warning.
            let (out, _) =
                stamp(&jpeg, &Limits::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
            tool("djpeg", &["-strict"], &out)
                .unwrap()
                .unwrap_or_else(|e| panic!("{what}: djpeg: {e}"));
        }
    }
}

#[test]
fn a_progressive_file_cut_in_half_is_corrupt() {
    let Some(jpeg) = tool("cjpeg", &["-progressive"], &ppm(300, 200, 9)) else {
        return;
    };
    let jpeg = jpeg.unwrap();
    let mut cut = jpeg[..jpeg.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    assert!(tool("djpeg", &["-strict"], &cut).unwrap().is_err());
    let r = stamp(&cut, &Limits::default());
    assert!(matches!(r, Err(WatermarkError::Corrupt(_))), "{r:?}");
}

#[test]
fn a_sof_lying_about_the_size_is_corrupt() {
    for mode in ["-progressive", "-baseline"] {
        let Some(jpeg) = tool("cjpeg", &[mode], &ppm(227, 149, 2)) else {
            return;
        };
        let mut jpeg = jpeg.unwrap();
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC2] || w == [0xFF, 0xC0])
            .unwrap();
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x1B, 0x58, 0x1B, 0x58]);
        let r = stamp(&jpeg, &Limits::default());
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "{mode}: {r:?}"
        );
    }
}

#[test]
fn a_baseline_file_cut_after_the_mark_is_corrupt() {
    // Orientation 6: the mark sits early in the stored scan; the cut tail used to be spliced.
    let plain = test_jpeg::encode(&photo(480, 320, 6), 480, 320, &Options::default());
    let input = with_segments(&plain, &[camera_exif(6)]);
    assert!(stamp(&input, &Limits::default()).is_ok());
    for cut in [input.len() * 7 / 10, input.len() - 40, input.len() - 3] {
        let mut bad = input[..cut].to_vec();
        bad.extend_from_slice(&[0xFF, 0xD9]);
        let r = stamp(&bad, &Limits::default());
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "cut {cut}: {r:?}"
        );
    }
    // Bytes left over after the last MCU: libjpeg warns, we refuse.
    let mut extra = plain[..plain.len() - 2].to_vec();
    extra.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
    let r = stamp(&extra, &Limits::default());
    assert!(matches!(r, Err(WatermarkError::Corrupt(_))), "{r:?}");
}

#[test]
fn a_motion_jpeg_frame_without_huffman_tables_is_published() {
    // Our test encoder writes the standard tables: without its DHT, the frame is what
    // Motion-JPEG cameras send, and libjpeg decodes it with the same tables.
    let with_dht = test_jpeg::encode(&photo(160, 120, 3), 160, 120, &Options::default());
    let at = with_dht.windows(2).position(|w| w == [0xFF, 0xC4]).unwrap();
    let len = usize::from(u16::from_be_bytes([with_dht[at + 2], with_dht[at + 3]]));
    let mjpeg = [&with_dht[..at], &with_dht[at + 2 + len..]].concat();
    let (out, _) = stamp(&mjpeg, &Limits::default()).unwrap();
    if let Some(r) = tool("djpeg", &["-strict"], &out) {
        r.unwrap();
    }
}

/// Every scan's entropy-coded data of a JPEG (from after its SOS to the next marker).
fn scans_data(jpeg: &[u8]) -> Vec<&[u8]> {
    let mut scans = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xD9 {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        i += 2 + len;
        if jpeg[i - len - 1] != 0xDA {
            continue;
        }
        let start = i;
        while !(jpeg[i] == 0xFF && jpeg[i + 1] != 0 && !(0xD0..=0xD7).contains(&jpeg[i + 1])) {
            i += 1;
        }
        scans.push(&jpeg[start..i]);
    }
    scans
}

#[test]
fn a_progressive_file_is_spliced_and_decodes_to_the_stamped_coefficients() {
    // Photographs keep the file's tables in most scans (spliced: the data before the mark is
    // the input's own bytes); a flat picture's tables lack what the mark needs, so those
    // scans are written with new tables. Either way the output decodes, in our decoder and
    // in libjpeg-turbo's, to exactly the input's coefficients with the mark stamped in.
    let grey = {
        let mut p = b"P6\n320 240\n255\n".to_vec();
        p.resize(p.len() + 320 * 240 * 3, 90);
        p
    };
    // (name, picture, cjpeg's arguments, EXIF orientation)
    type Case<'a> = (&'a str, Vec<u8>, Vec<&'a str>, Option<u16>);
    let cases: Vec<Case> = vec![
        ("photo 2x2", ppm(640, 480, 21), vec!["-sample", "2x2"], None),
        ("photo 1x1", ppm(500, 330, 22), vec!["-sample", "1x1"], None),
        (
            "photo 2x1 turned",
            ppm(480, 640, 23),
            vec!["-sample", "2x1"],
            Some(6),
        ),
        ("photo grey", ppm(400, 300, 24), vec!["-grayscale"], Some(3)),
        ("flat", grey, vec!["-sample", "2x2"], None),
    ];
    let (mut extended, mut recoded) = (0, 0);
    for (what, picture, args, orientation) in cases {
        let mut args = args;
        args.extend_from_slice(&["-progressive", "-quality", "90"]);
        let Some(jpeg) = tool("cjpeg", &args, &picture) else {
            return;
        };
        let mut input = jpeg.unwrap();
        if let Some(o) = orientation {
            input = with_segments(&input, &[camera_exif(o)]);
        }
        let (out, report) = stamp(&input, &Limits::default()).unwrap();
        extended += report.extended_scans;
        recoded += report.recoded_scans;
        tool("djpeg", &["-strict"], &out)
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: djpeg: {e}"));
        let expected = super::jpeg::stamped_planes(&input).unwrap();
        let (got, coded) = planes_of(&out).unwrap();
        let mut changed = 0;
        for (c, &(w, h)) in coded.iter().enumerate() {
            let (original, _) = planes_of(&input).unwrap();
            for by in 0..h {
                for bx in 0..w {
                    let e = expected[c].block(bx, by);
                    assert_eq!(
                        got[c].block(bx, by),
                        e,
                        "{what}: component {c} ({bx}, {by})"
                    );
                    changed += usize::from(original[c].block(bx, by) != e);
                }
            }
        }
        assert!(changed > 0, "{what}: the mark is missing");
        if what == "flat" {
            assert!(
                report.spliced_scans < report.scans,
                "{what}: the mark needs codes a flat picture's tables lack: {report:?}"
            );
        } else {
            assert!(
                report.spliced_scans > 0,
                "{what}: nothing spliced: {report:?}"
            );
            assert!(
                out.len() as f64 <= input.len() as f64 * 1.02,
                "{what}: {} bytes from {}",
                out.len(),
                input.len()
            );
        }
        // The mark is at the bottom: a spliced scan starts with most of the input's bytes.
        let (ours, theirs) = (scans_data(&out), scans_data(&input));
        assert_eq!(ours.len(), theirs.len(), "{what}: scans");
        let kept = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| {
                let same = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
                same > b.len() / 2
            })
            .count();
        if orientation.is_none() && what != "flat" {
            // (A scan written anew may also happen to start with the same bytes. A flat
            // picture's scans are mostly one EOB run from their first block: nothing to keep.)
            assert!(
                kept >= report.spliced_scans,
                "{what}: {kept} kept, {report:?}"
            );
        }
    }
    // Every way a scan is written was taken: tables extended in place, and coded whole in
    // one pass (the flat picture's tables have no room for what the mark needs).
    assert!(
        extended > 0 && recoded > 0,
        "{extended} extended, {recoded} recoded"
    );
}

/// `cargo test --release -p joip --lib jpeg_read_tests -- --ignored --nocapture`: a 12 MP
/// progressive JPEG through the planes path against the old fallback, same run.
#[test]
#[ignore]
fn timing_of_a_12_mp_progressive_jpeg() {
    use std::time::Instant;
    let Some(jpeg) = tool(
        "cjpeg",
        &["-progressive", "-quality", "90"],
        &ppm(4000, 3000, 12),
    ) else {
        return;
    };
    let jpeg = jpeg.unwrap();
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .fold(f64::MAX, f64::min)
    };
    let planes = best(&|| {
        std::hint::black_box(stamp(&jpeg, &Limits::default()).unwrap());
    });
    println!(
        "12 MP progressive, {} bytes: planes path {planes:.1} ms",
        jpeg.len()
    );
}

#[test]
fn both_copies_of_the_hot_loops_write_the_same_bytes() {
    use super::isa::{self, Isa};
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt")
        && std::is_x86_feature_detected!("lzcnt")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
    {
        assert_eq!(Isa::current(), Isa::Bmi);
    } else {
        eprintln!("this CPU runs the portable copy only: compared with itself");
    }
    assert_eq!(isa::portable_only(Isa::current), Isa::Portable);
    let scans = scans_file("0;\n1;\n2;\n");
    let flat = {
        let mut p = b"P6\n320 240\n255\n".to_vec();
        p.resize(p.len() + 320 * 240 * 3, 90);
        p
    };
    // Every pass of the decoder and the writer: sequential (interleaved, not, restarts,
    // optimised), progressive spliced, with extended tables and coded whole.
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (ppm(640, 480, 31), vec!["-sample", "2x2"]),
        (ppm(640, 480, 32), vec!["-sample", "2x2", "-progressive"]),
        (ppm(500, 330, 33), vec!["-sample", "1x1", "-progressive"]),
        (ppm(500, 330, 34), vec!["-progressive", "-restart", "3B"]),
        (ppm(400, 300, 35), vec!["-grayscale", "-progressive"]),
        (ppm(400, 300, 36), vec!["-scans", scans.as_str()]),
        (ppm(400, 300, 37), vec!["-optimize", "-restart", "2"]),
        (flat, vec!["-sample", "2x2", "-progressive"]),
    ];
    for (picture, args) in cases {
        let Some(jpeg) = tool("cjpeg", &args, &picture) else {
            return;
        };
        let jpeg = jpeg.unwrap();
        let fast = stamp(&jpeg, &Limits::default()).unwrap();
        let portable = isa::portable_only(|| stamp(&jpeg, &Limits::default())).unwrap();
        assert!(fast.0 == portable.0, "{args:?}: the two copies differ");
        assert_eq!(fast.1, portable.1, "{args:?}");
        // Refused alike too: the file cut in the middle of its scans.
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert_eq!(
            stamp(cut, &Limits::default()).map(|_| ()),
            isa::portable_only(|| stamp(cut, &Limits::default())).map(|_| ()),
            "{args:?} cut"
        );
    }
}

#[test]
fn the_mark_is_rounded_to_the_precision_the_script_sends() {
    // A progressive script that never sends the last two bits of any coefficient: the
    // mark's coefficients must be the nearest multiples of 4 of what it would be at full
    // precision, not those values with their low bits dropped (toward zero, or down for DC).
    let scans = scans_file("0,1,2: 0 0 0 2;\n0: 1 63 0 2;\n1: 1 63 0 2;\n2: 1 63 0 2;\n");
    let args = ["-quality", "85", "-sample", "2x2", "-scans", scans.as_str()];
    let Some(input) = tool("cjpeg", &args, &ppm(320, 240, 41)) else {
        return;
    };
    let input = input.unwrap();
    // The same coefficients in a baseline file (jpegtran is lossless): the mark stamped
    // there is the mark at full precision.
    let baseline = tool("jpegtran", &["-copy", "none"], &input)
        .unwrap()
        .unwrap();
    let ideal = super::jpeg::stamped_planes(&baseline).unwrap();
    let (out, _) = stamp(&input, &Limits::default()).unwrap();
    tool("djpeg", &["-strict"], &out).unwrap().unwrap();
    let (published, coded) = planes_of(&out).unwrap();
    let (mut n, mut worst) = (0, 0);
    for (c, &(w, h)) in coded.iter().enumerate() {
        for by in 0..h {
            for bx in 0..w {
                let (p, i) = (published[c].block(bx, by), ideal[c].block(bx, by));
                for (&p, &i) in p.iter().zip(i) {
                    let err = i32::from(p) - i32::from(i);
                    if err != 0 {
                        worst = worst.max(err.abs());
                        n += 1;
                    }
                }
            }
        }
    }
    assert!(n > 100, "the mark changed only {n} coefficients");
    // Dropping the bits puts a coefficient up to 3 off (7 -> 4); rounding, at most 2.
    assert!(
        worst <= 2,
        "a coefficient {worst} off its nearest multiple of 4"
    );
}
