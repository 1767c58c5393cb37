//! End-to-end tests of `stamp` on JPEGs written by the `image` crate (4:4:4, grayscale) and by
//! our test encoder (4:2:0, 4:2:2, restart intervals, optimised tables), checked by decoding
//! with zune-jpeg through `image`.

use super::jpeg::{self, Tables};
use super::mark::Overlay;
use super::orientation::{self, Orientation};
use super::test_jpeg::{self, segment, Options};
use super::{stamp, Limits, WatermarkError};
use image::{DynamicImage, ImageDecoder};

/// A deterministic photo stand-in: smooth gradients, soft shapes and sensor-like grain, so the
/// codec sees real texture (not trivially compressible).
pub(super) fn photo(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as f32 / 1000.0 - 0.5
    };
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let wave = ((fx * 9.0 + fy * 4.0).sin() * (fy * 7.0).cos()) * 40.0;
            let blob = (-((fx - 0.4).powi(2) + (fy - 0.5).powi(2)) * 12.0).exp() * 90.0;
            let base = [
                60.0 + 120.0 * fx + wave + blob,
                80.0 + 100.0 * fy - wave * 0.5 + blob * 0.6,
                150.0 - 80.0 * fx + wave * 0.3,
            ];
            let grain = noise() * 24.0;
            for c in base {
                out.push((c + grain + noise() * 8.0).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// The `image` crate's baseline encoder: 4:4:4 colour or grayscale, standard tables.
fn image_jpeg(rgb: &[u8], w: usize, h: usize, gray: bool, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    if gray {
        let luma: Vec<u8> = rgb
            .chunks(3)
            .map(|p| ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8)
            .collect();
        enc.encode(&luma, w as u32, h as u32, image::ExtendedColorType::L8)
            .unwrap();
    } else {
        enc.encode(rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    out
}

fn ours(w: usize, h: usize, opts: Options) -> Vec<u8> {
    test_jpeg::encode(&photo(w, h, (w * 31 + h) as u64), w, h, &opts)
}

fn decode(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

/// Header segments (marker, payload) up to and including SOS.
pub(super) fn segments(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 2;
    loop {
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        out.push((marker, bytes[i + 4..i + 2 + len].to_vec()));
        i += 2 + len;
        if marker == 0xDA {
            return out;
        }
    }
}

fn scan_start(bytes: &[u8]) -> usize {
    let mut i = 2;
    loop {
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let marker = bytes[i + 1];
        i += 2 + len;
        if marker == 0xDA {
            return i;
        }
    }
}

/// Inserts whole segments right after SOI and the JFIF APP0.
pub(super) fn with_segments(jpeg: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let app0_end = if jpeg[3] == 0xE0 {
        4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]))
    } else {
        2
    };
    let mut out = jpeg[..app0_end].to_vec();
    for s in extra {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[app0_end..]);
    out
}

pub(super) fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    segment(&mut out, marker, payload);
    out
}

/// A camera-like EXIF block (little-endian): Make, Orientation, and a GPS IFD.
pub(super) fn camera_exif(orientation: u16) -> Vec<u8> {
    let mut t = b"II\x2a\0\x08\0\0\0".to_vec();
    // IFD0 at 8: 3 entries, then next-IFD 0; data after.
    let ifd0_len = 2 + 3 * 12 + 4;
    let make_at = 8 + ifd0_len;
    let gps_at = make_at + 8;
    t.extend_from_slice(&3u16.to_le_bytes());
    // Make, ASCII, 6 bytes at make_at.
    t.extend_from_slice(&[0x0F, 0x01, 2, 0, 6, 0, 0, 0]);
    t.extend_from_slice(&(make_at as u32).to_le_bytes());
    // Orientation, SHORT, 1.
    t.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&orientation.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    // GPS IFD pointer, LONG, 1.
    t.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&(gps_at as u32).to_le_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(b"Canon\0\0\0");
    // GPS IFD: GPSLatitudeRef 'N'.
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&t);
    seg(0xE1, &payload)
}

fn rgb_at(img: &image::RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

/// Checks the DCT path's promise on one input: pixels outside the marked MCUs (plus the reach
/// of the decoder's chroma upsampling) identical, coefficients outside identical, the box
/// visibly changed.
fn assert_stamped_only_under_the_mark(input: &[u8]) -> jpeg::Report {
    let (output, report) = jpeg::stamp(input, &Limits::default()).unwrap();
    let g = jpeg::geometry(input);
    let (before, after) = (decode(input), decode(&output));
    assert_eq!(before.dimensions(), after.dimensions());
    let (w, h) = before.dimensions();
    // Triangle-filter chroma upsampling reaches one chroma sample (up to 2 px) past a block.
    let reach = if g.mcu_w > 8 || g.mcu_h > 8 { 2 } else { 0 };
    let x0 = (g.marked_cols.0 * g.mcu_w).saturating_sub(reach);
    let x1 = (g.marked_cols.1 + 1) * g.mcu_w + reach;
    let y0 = (g.marked_rows.0 * g.mcu_h).saturating_sub(reach);
    let y1 = (g.marked_rows.1 + 1) * g.mcu_h + reach;
    let mut inside_changed = 0;
    for y in 0..h {
        for x in 0..w {
            let inside = (x0..x1).contains(&(x as usize)) && (y0..y1).contains(&(y as usize));
            let same = rgb_at(&before, x, y) == rgb_at(&after, x, y);
            if inside {
                inside_changed += usize::from(!same);
            } else {
                assert!(same, "pixel ({x}, {y}) outside the mark changed");
            }
        }
    }
    assert!(
        inside_changed > 50,
        "the mark is not visible: {inside_changed} pixels changed"
    );

    // Exact in the coefficient domain: only blocks of marked MCUs differ.
    let (a, b) = (
        jpeg::decode_coefficients(input).unwrap(),
        jpeg::decode_coefficients(&output).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (n, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let mcu = n / g.blocks_per_mcu;
        let (mx, my) = (mcu % g.mcus_x, mcu / g.mcus_x);
        let marked = (g.marked_cols.0..=g.marked_cols.1).contains(&mx)
            && (g.marked_rows.0..=g.marked_rows.1).contains(&my);
        if !marked {
            assert_eq!(x, y, "block {n} outside the mark changed");
        }
    }
    report
}

fn assert_same_bytes(a: &[u8], b: &[u8], what: &str) {
    if let Some(i) = a.iter().zip(b.iter()).position(|(x, y)| x != y) {
        panic!("{what}: first difference at byte {i} of {}", b.len());
    }
    assert_eq!(a.len(), b.len(), "{what}: lengths");
}

#[test]
fn reencoding_unchanged_reproduces_the_scan_bytes_exactly() {
    let sizes = [(333, 217), (97, 61), (8, 8), (1, 1), (17, 300), (640, 480)];
    for (w, h) in sizes {
        let rgb = photo(w, h, 3);
        for gray in [false, true] {
            let input = image_jpeg(&rgb, w, h, gray, 85);
            assert_same_bytes(
                &jpeg::reencode_unchanged(&input, None),
                &input,
                &format!("image {w}x{h} gray={gray}"),
            );
        }
        for sampling in [(2, 2), (2, 1), (1, 1), (4, 1)] {
            for optimise in [false, true] {
                let opts = Options {
                    sampling,
                    optimise,
                    ..Options::default()
                };
                let input = test_jpeg::encode(&rgb, w, h, &opts);
                assert_same_bytes(
                    &jpeg::reencode_unchanged(&input, None),
                    &input,
                    &format!("ours {w}x{h} {opts:?}"),
                );
            }
        }
        let opts = Options {
            restart_interval: 3,
            ..Options::default()
        };
        let input = test_jpeg::encode(&rgb, w, h, &opts);
        assert_same_bytes(
            &jpeg::reencode_unchanged(&input, Some(3)),
            &input,
            &format!("ours {w}x{h} DRI"),
        );
    }
}

#[test]
fn our_test_encoder_writes_what_zune_jpeg_reads() {
    // The codec under test wrote these: an independent decoder must agree with the source.
    let (w, h) = (203, 131);
    let rgb = photo(w, h, 5);
    for (sampling, gray, restart_interval, optimise) in [
        ((2, 2), false, 0, false),
        ((2, 1), false, 5, true),
        ((1, 1), true, 7, false),
    ] {
        let opts = Options {
            sampling,
            gray,
            quality: 95,
            restart_interval,
            optimise,
        };
        let img = decode(&test_jpeg::encode(&rgb, w, h, &opts));
        let mut err = 0u64;
        for (a, b) in img.as_raw().iter().zip(rgb.iter()) {
            err += u64::from(a.abs_diff(*b));
        }
        let mean = err as f64 / rgb.len() as f64;
        // Grayscale loses the colour; colour at q95 stays within a few levels.
        assert!(
            mean < if gray { 40.0 } else { 6.0 },
            "{opts:?}: mean error {mean}"
        );
    }
}

#[test]
fn stamping_changes_only_the_marked_mcus() {
    for (w, h) in [(333, 217), (640, 480), (321, 479), (1001, 67)] {
        let rgb = photo(w, h, 11);
        let report = assert_stamped_only_under_the_mark(&image_jpeg(&rgb, w, h, false, 90));
        assert_eq!(report.tables, Tables::File);
        assert_stamped_only_under_the_mark(&image_jpeg(&rgb, w, h, true, 90));
        for sampling in [(2, 2), (2, 1)] {
            let opts = Options {
                sampling,
                ..Options::default()
            };
            assert_stamped_only_under_the_mark(&test_jpeg::encode(&rgb, w, h, &opts));
        }
    }
}

#[test]
fn the_prefix_is_copied_and_only_the_window_reencoded() {
    let (w, h) = (1280, 960);
    let input = ours(w, h, Options::default());
    let (output, report) = jpeg::stamp(&input, &Limits::default()).unwrap();
    assert_eq!(report.tables, Tables::File);
    assert!(report.reencoded_mcus * 10 < report.total_mcus, "{report:?}");
    // Scan bytes are shared up to the cut: at least everything above the mark's MCU rows.
    let g = jpeg::geometry(&input);
    let (a, b) = (&input[scan_start(&input)..], &output[scan_start(&output)..]);
    let common = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    let above = g.marked_rows.0 as f64 * g.mcus_x as f64 / report.total_mcus as f64;
    assert!(
        common as f64 >= a.len() as f64 * above * 0.9,
        "common prefix {common} of {}",
        a.len()
    );
}

#[test]
fn a_single_component_scan_ignores_its_sampling_factors() {
    // Grayscale with 2x2 declared: still one block per MCU (A.2.2), as decoders read it.
    let (w, h) = (250, 170);
    let mut input = image_jpeg(&photo(w, h, 8), w, h, true, 90);
    let sof = input.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
    assert_eq!(input[sof + 11], 0x11);
    input[sof + 11] = 0x22;
    assert_stamped_only_under_the_mark(&input);
}

#[test]
fn corrupted_files_never_panic() {
    // In Lambda a panic aborts the process: every malformed input must come back as an error.
    let good = ours(
        120,
        90,
        Options {
            restart_interval: 4,
            ..Options::default()
        },
    );
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..600 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bad.len() as u64) as usize;
            bad[at] = next() as u8;
        }
        let cut = (next() % (bad.len() as u64 + 1)) as usize;
        if next() % 4 == 0 {
            bad.truncate(cut);
        }
        if let Ok(out) = stamp(&bad, &Limits::default()) {
            assert!(out.bytes.starts_with(&[0xFF, 0xD8]));
        }
    }
}

#[test]
fn restart_intervals_are_kept_and_untouched_intervals_copied() {
    let (w, h) = (500, 371);
    for ri in [1u16, 4, 13, 40] {
        let opts = Options {
            restart_interval: ri,
            ..Options::default()
        };
        let input = ours(w, h, opts);
        let report = assert_stamped_only_under_the_mark(&input);
        assert_eq!(report.tables, Tables::File);
        let (output, _) = jpeg::stamp(&input, &Limits::default()).unwrap();
        let rst = |b: &[u8]| {
            b.windows(2)
                .filter(|p| p[0] == 0xFF && (0xD0..=0xD7).contains(&p[1]))
                .map(|p| p[1])
                .collect::<Vec<_>>()
        };
        assert_eq!(rst(&output), rst(&input), "restart markers kept, in order");
    }
    // The image crate's 4:4:4 output with restart markers spliced in by our encoder.
    let rgb = photo(w, h, 2);
    let input = jpeg::reencode_unchanged(&image_jpeg(&rgb, w, h, false, 88), Some(6));
    assert_eq!(decode(&input), decode(&image_jpeg(&rgb, w, h, false, 88)));
    assert_stamped_only_under_the_mark(&input);
}

#[test]
fn a_new_symbol_without_a_code_gets_optimised_tables() {
    // A smooth image with tables built for it: the mark's sharp edges need AC symbols the
    // tables do not have.
    let (w, h) = (400, 300);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
        })
        .collect();
    for (sampling, restart_interval) in [((2, 2), 0), ((1, 1), 9)] {
        let opts = Options {
            sampling,
            restart_interval,
            optimise: true,
            ..Options::default()
        };
        let input = test_jpeg::encode(&rgb, w, h, &opts);
        let report = assert_stamped_only_under_the_mark(&input);
        assert_eq!(report.tables, Tables::Optimised);
    }
}

#[test]
fn a_photo_grows_by_at_most_two_percent() {
    let (w, h) = (1200, 900);
    let rgb = photo(w, h, 42);
    let cases = [
        (
            "4:2:0 q90",
            test_jpeg::encode(&rgb, w, h, &Options::default()),
        ),
        (
            "4:2:0 q92 optimised",
            test_jpeg::encode(
                &rgb,
                w,
                h,
                &Options {
                    quality: 92,
                    optimise: true,
                    ..Options::default()
                },
            ),
        ),
        ("image 4:4:4 q90", image_jpeg(&rgb, w, h, false, 90)),
    ];
    for (name, input) in cases {
        let out = stamp(&input, &Limits::default()).unwrap();
        let ratio = out.bytes.len() as f64 / input.len() as f64;
        println!(
            "{name}: {} -> {} bytes, ratio {ratio:.4}",
            input.len(),
            out.bytes.len()
        );
        assert!(ratio <= 1.02, "{name}: ratio {ratio}");
    }
}

/// Pearson correlation of two equally long series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b.iter()) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn every_orientation_shows_the_mark_upright_in_the_displayed_bottom_right() {
    let (w, h) = (480, 320);
    let plain = ours(w, h, Options::default());
    for tag in 1..=8u16 {
        let input = with_segments(&plain, &[camera_exif(tag)]);
        let out = stamp(&input, &Limits::default()).unwrap().bytes;
        // Wherever the mark lands in the stored image (top rows for 3, 4, 5, 6...), only its
        // MCUs change: the spliced-back rest of the scan is exact.
        assert_stamped_only_under_the_mark(&input);

        // What a viewer shows: decode, then apply the output's own orientation tag.
        let mut decoder =
            image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&out)).unwrap();
        let shown_orientation = decoder.orientation().unwrap();
        let mut after = DynamicImage::from_decoder(decoder).unwrap();
        after.apply_orientation(shown_orientation);
        let mut before = image::load_from_memory(&plain).unwrap();
        before.apply_orientation(image::metadata::Orientation::from_exif(tag as u8).unwrap());
        let (after, before) = (after.to_luma8(), before.to_luma8());
        let (dw, dh) = after.dimensions();
        assert_eq!(before.dimensions(), (dw, dh), "orientation {tag}");

        // Where the displayed pixels changed.
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in 0..dh {
            for x in 0..dw {
                if before.get_pixel(x, y).0[0].abs_diff(after.get_pixel(x, y).0[0]) > 8 {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        assert!(
            x0 > dw / 2 && y0 > dh / 2,
            "orientation {tag}: changes start at ({x0}, {y0})"
        );
        assert!(
            x1 < dw - 4 && y1 < dh - 4,
            "orientation {tag}: no margin ({x1}, {y1})"
        );
        assert!(
            x1 > dw * 9 / 10 && y1 > dh * 9 / 10,
            "orientation {tag}: not in the corner"
        );

        // Upright: the change pattern matches the upright logo far better than any mirror.
        let mark = Overlay::new(dw, dh, Orientation::UPRIGHT);
        let mut diff = Vec::new();
        let mut variants: [Vec<f64>; 4] = Default::default();
        for y in 0..mark.h {
            for x in 0..mark.w {
                let (px, py) = (mark.x0 + x, mark.y0 + y);
                diff.push(f64::from(
                    before.get_pixel(px, py).0[0].abs_diff(after.get_pixel(px, py).0[0]),
                ));
                let alpha = |xx: u32, yy: u32| {
                    let (f, s) = mark.at(mark.x0 + xx, mark.y0 + yy);
                    f64::from(f) + f64::from(s)
                };
                let (fx, fy) = (mark.w - 1 - x, mark.h - 1 - y);
                variants[0].push(alpha(x, y));
                variants[1].push(alpha(fx, y));
                variants[2].push(alpha(x, fy));
                variants[3].push(alpha(fx, fy));
            }
        }
        let upright = correlation(&diff, &variants[0]);
        for (n, v) in variants.iter().enumerate().skip(1) {
            let other = correlation(&diff, v);
            assert!(
                upright > other + 0.2,
                "orientation {tag}: upright {upright:.2} vs variant {n} {other:.2}"
            );
        }
        println!("orientation {tag}: correlation with the upright logo {upright:.2}");
        assert!(upright > 0.5, "orientation {tag}: correlation {upright:.2}");
    }
}

#[test]
fn private_metadata_is_dropped_and_the_icc_profile_kept() {
    let plain = ours(300, 200, Options::default());
    let icc: Vec<u8> = (0..900u32).map(|i| (i * 7 % 251) as u8).collect();
    let icc_chunk = |n: u8, part: &[u8]| {
        let mut p = b"ICC_PROFILE\0".to_vec();
        p.extend_from_slice(&[n, 2]);
        p.extend_from_slice(part);
        seg(0xE2, &p)
    };
    let xmp = seg(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description exif:GPSLatitude='48,51N'/></x:xmpmeta>",
    );
    let photoshop = seg(0xED, b"Photoshop 3.0\08BIM\x04\x04secret caption");
    let comment = seg(0xFE, b"shot at home, 12 Main Street");
    let jfxx = seg(0xE0, b"JFXX\0\x13thumbnail-bytes");
    let mpf = seg(0xE2, b"MPF\0second-image-index");
    let input = with_segments(
        &plain,
        &[
            camera_exif(6),
            xmp,
            icc_chunk(1, &icc[..500]),
            icc_chunk(2, &icc[500..]),
            photoshop,
            comment,
            jfxx,
            mpf,
        ],
    );
    // Trailing data after EOI (e.g. a second MPF image) must not survive either.
    let mut input = input;
    input.extend_from_slice(b"\xFF\xD8appended-original");

    let out = stamp(&input, &Limits::default()).unwrap().bytes;
    let segs = segments(&out);
    let app1: Vec<_> = segs.iter().filter(|(m, _)| *m == 0xE1).collect();
    assert_eq!(app1.len(), 1, "only the orientation EXIF");
    assert_eq!(
        seg(0xE1, &app1[0].1),
        orientation::exif_segment(Orientation::from_tag(6).unwrap())
    );
    let icc_out: Vec<u8> = segs
        .iter()
        .filter(|(m, p)| *m == 0xE2 && p.starts_with(b"ICC_PROFILE\0"))
        .flat_map(|(_, p)| p[14..].to_vec())
        .collect();
    assert_eq!(icc_out, icc, "ICC profile kept byte for byte, in order");
    assert!(segs.iter().all(|(m, _)| !matches!(*m, 0xED | 0xFE)));
    assert_eq!(
        segs.iter().filter(|(m, _)| *m == 0xE2).count(),
        2,
        "MPF dropped"
    );
    let app0: Vec<_> = segs.iter().filter(|(m, _)| *m == 0xE0).collect();
    assert_eq!(app0.len(), 1, "JFXX dropped");
    assert!(app0[0].1.starts_with(b"JFIF\0"));
    for needle in [
        &b"Canon"[..],
        b"GPS",
        b"Main Street",
        b"secret",
        b"appended",
        b"xap",
    ] {
        assert!(
            !out.windows(needle.len()).any(|w| w == needle),
            "{:?} leaked",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(out.ends_with(&[0xFF, 0xD9]));
    // And the image is still right side up for a viewer: orientation read back.
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&out)).unwrap();
    assert_eq!(
        decoder.orientation().unwrap(),
        image::metadata::Orientation::Rotate90
    );
}

#[test]
fn a_jfif_thumbnail_is_dropped() {
    let plain = ours(64, 48, Options::default());
    // Replace the JFIF APP0 with one carrying a 2x1 RGB thumbnail.
    let app0_len = usize::from(u16::from_be_bytes([plain[4], plain[5]]));
    let mut jfif = b"JFIF\0\x01\x01\0\0\x01\0\x01\x02\x01".to_vec();
    jfif.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let mut input = plain[..2].to_vec();
    input.extend_from_slice(&seg(0xE0, &jfif));
    input.extend_from_slice(&plain[4 + app0_len..]);
    let out = stamp(&input, &Limits::default()).unwrap().bytes;
    let segs = segments(&out);
    assert_eq!(segs[0].0, 0xE0);
    assert_eq!(segs[0].1, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
}

#[test]
fn bad_input_gets_the_right_error() {
    let limits = Limits::default();
    let good = ours(200, 150, Options::default());
    assert!(matches!(
        stamp(&[], &limits),
        Err(WatermarkError::Unsupported(_))
    ));
    let zip = b"PK\x03\x04\x14\0\0\0\x08\0photo.jpg....";
    assert!(matches!(
        stamp(zip, &limits),
        Err(WatermarkError::Unsupported(_))
    ));
    let text = b"<html>this is not an image/jpeg</html>";
    assert!(matches!(
        stamp(text, &limits),
        Err(WatermarkError::Unsupported(_))
    ));
    assert!(matches!(
        stamp(b"GIF89a....", &limits),
        Err(WatermarkError::Unsupported(_))
    ));

    // Truncated anywhere: in the header, in the scan, or just before EOI.
    let scan = scan_start(&good);
    for cut in [
        3,
        20,
        scan - 3,
        scan + 10,
        (scan + good.len()) / 2,
        good.len() - 1,
    ] {
        let r = stamp(&good[..cut], &limits);
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "cut at {cut}: {r:?}"
        );
    }

    // A 60000 x 60000 SOF and nothing else: refused from the header, for any coding.
    for sof in [0xC0, 0xC1, 0xC2, 0xC9] {
        let mut bomb = vec![0xFF, 0xD8];
        segment(
            &mut bomb,
            sof,
            &[
                8, 0xEA, 0x60, 0xEA, 0x60, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
            ],
        );
        assert!(matches!(
            stamp(&bomb, &limits),
            Err(WatermarkError::TooLarge(_))
        ));
    }
    let small = Limits {
        max_bytes: 1000,
        ..limits
    };
    assert!(matches!(
        stamp(&good, &small),
        Err(WatermarkError::TooLarge(_))
    ));

    // A valid JPEG the DCT path does not stamp is handed to the fallback (this patched file
    // is not a real progressive one: `fallback_tests` has a real one); lossless, hierarchical
    // and 12-bit ones are refused: `lossless_and_hierarchical_arithmetic_jpeg_is_unsupported_not_corrupt`.
    // A baseline scan under a progressive SOF is a bogus progression (Ss = 0, Se = 63).
    let progressive = with_sof(&good, 0xC2, 8);
    assert!(matches!(
        jpeg::stamp(&progressive, &limits),
        Err(WatermarkError::Corrupt(_))
    ));
    assert!(matches!(
        stamp(&with_sof(&good, 0xC3, 8), &limits),
        Err(WatermarkError::Unsupported(_))
    ));
}

/// The markers libjpeg-turbo warns about or stops at (`jdmarker.c` `read_markers`,
/// `examine_app0`; `jdapimin.c` `default_decompress_parms`), each checked against
/// `djpeg -strict` when this was written: refused exactly where it refuses (fuzz findings
/// `disagree-1fbd5e4a1969f00e`, `disagree-2a2802aac81329a8`, `disagree-e391e0deda3578e5`).
#[test]
fn markers_libjpeg_refuses_are_refused_and_those_it_skips_are_skipped() {
    let limits = Limits::default();
    let good = ours(200, 150, Options::default());
    assert_eq!(&good[2..4], &[0xFF, 0xE0], "ours writes JFIF first");
    let corrupt = |bytes: &[u8], what: &str| {
        let r = stamp(bytes, &limits);
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "{what}: {r:?}"
        );
    };
    let published = |bytes: &[u8], what: &str| {
        let r = stamp(bytes, &limits);
        assert!(r.is_ok(), "{what}: {r:?}");
    };
    // "Warning: unknown JFIF revision number": a JFIF major version other than 1, before the
    // scan or after it; a newer minor version and a JFIF APP0 too short to be read are fine.
    for (major, minor) in [(0, 1), (2, 1), (77, 77)] {
        let mut b = good.clone();
        b[11] = major;
        b[12] = minor;
        corrupt(&b, &format!("JFIF {major}.{minor:02}"));
    }
    let mut newer = good.clone();
    newer[12] = 9;
    published(&newer, "JFIF 1.09");
    published(
        &with_segments(&good, &[seg(0xE0, b"JFIF\0\x02\x01")]),
        "a 7-byte JFIF APP0",
    );
    let jfif = |major: u8| {
        seg(
            0xE0,
            &[b"JFIF\0".as_slice(), &[major, 1, 0, 0, 1, 0, 1, 0, 0]].concat(),
        )
    };
    let before_eoi =
        |segment: &[u8]| [&good[..good.len() - 2], segment, &good[good.len() - 2..]].concat();
    corrupt(&before_eoi(&jfif(0)), "JFIF 0.01 after the scan");
    published(&before_eoi(&jfif(1)), "JFIF 1.01 after the scan");
    // "Unsupported marker type": reserved markers; 0xC8 (JPG) is an unsupported process.
    for marker in [0x02, 0x3F, 0xBF, 0xF0, 0xFD] {
        corrupt(
            &with_segments(&good, &[seg(marker, b"abcd")]),
            &format!("marker {marker:#x}"),
        );
    }
    assert!(matches!(
        stamp(&with_segments(&good, &[seg(0xC8, b"abcd")]), &limits),
        Err(WatermarkError::Unsupported(_))
    ));
    // A stray RSTn or TEM before the first scan: skipped.
    for marker in [0xD0, 0xD7, 0x01] {
        published(
            &with_segments(&good, &[vec![0xFF, marker]]),
            &format!("{marker:#x} before the scan"),
        );
    }
    // "Unknown Adobe color transform code": judged only where no JFIF marker decides.
    let app0_end = 4 + usize::from(u16::from_be_bytes([good[4], good[5]]));
    let bare = [&good[..2], &good[app0_end..]].concat();
    let adobe = |t: u8| seg(0xEE, &[b"Adobe\0\x64\0\0\0\0".as_slice(), &[t]].concat());
    for t in [0, 1] {
        published(&with_segments(&bare, &[adobe(t)]), &format!("Adobe {t}"));
    }
    for t in [2, 5] {
        corrupt(
            &with_segments(&bare, &[adobe(t)]),
            &format!("Adobe {t}, no JFIF"),
        );
    }
    published(&with_segments(&good, &[adobe(5)]), "Adobe 5 under JFIF");
}

/// `jpeg` (baseline, SOF0) with its SOF marker and sample precision patched.
fn with_sof(jpeg: &[u8], marker: u8, precision: u8) -> Vec<u8> {
    let sof_at = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let mut b = jpeg.to_vec();
    b[sof_at + 1] = marker;
    b[sof_at + 4] = precision;
    b
}

#[test]
fn twelve_bit_jpeg_is_unsupported_not_corrupt() {
    let good = ours(200, 150, Options::default());
    for marker in [0xC0, 0xC1, 0xC2] {
        assert_eq!(
            stamp(&with_sof(&good, marker, 12), &Limits::default()),
            Err(WatermarkError::Unsupported("12-bit JPEG")),
            "SOF {marker:#x}"
        );
    }
    // A precision no DCT process has is corrupt.
    assert!(matches!(
        stamp(&with_sof(&good, 0xC0, 9), &Limits::default()),
        Err(WatermarkError::Corrupt(_))
    ));
}

#[test]
fn lossless_and_hierarchical_arithmetic_jpeg_is_unsupported_not_corrupt() {
    let good = ours(200, 150, Options::default());
    // Lossless and hierarchical arithmetic coding (SOF11, SOF13..15), which djpeg refuses;
    // sequential and progressive arithmetic coding (SOF9, SOF10) are published
    // (`jpeg_read_tests`, with files cjpeg -arithmetic wrote).
    for marker in [0xCB, 0xCD, 0xCE, 0xCF] {
        let r = stamp(&with_sof(&good, marker, 8), &Limits::default());
        assert!(
            matches!(r, Err(WatermarkError::Unsupported(_))),
            "SOF {marker:#x}: {r:?}"
        );
    }
    // Arithmetic-coding conditioning (DAC) in a Huffman-coded file: libjpeg reads and
    // ignores it, so do we.
    let dac = seg(0xCC, &[0x00, 0x10, 0x10, 0x05]);
    assert!(stamp(&with_segments(&good, &[dac]), &Limits::default()).is_ok());
}

/// `jpeg` with `segment` inserted just before its SOS: read last, a DHT there redefines the
/// file's own tables.
fn before_scan(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    let sos_len = segments(jpeg).last().unwrap().1.len() + 4;
    let at = scan_start(jpeg) - sos_len;
    [&jpeg[..at], segment, &jpeg[at..]].concat()
}

/// A DHT for DC table 0: the standard luminance codes (T.81 table K.3), plus one 10-bit code
/// for `extra`, a symbol our scans never code.
fn dc_table_with(extra: u8) -> Vec<u8> {
    let mut p = vec![0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    p.extend(0..12u8);
    p.push(extra);
    seg(0xC4, &p)
}

#[test]
fn a_dc_table_with_a_symbol_above_15_is_refused() {
    let good = ours(200, 150, Options::default());
    // libjpeg-turbo reads DC symbols up to 15 (jdhuff.c), unused ones included.
    let fifteen = before_scan(&good, &dc_table_with(15));
    let out = stamp(&fifteen, &Limits::default()).unwrap().bytes;
    assert!(segments(&out)
        .iter()
        .any(|(m, p)| *m == 0xC4 && p.windows(2).any(|w| w == [11, 15])));
    // "Bogus Huffman table definition" above 15: never published.
    for extra in [16, 0x20, 0xFF] {
        let r = stamp(
            &before_scan(&good, &dc_table_with(extra)),
            &Limits::default(),
        );
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "DC symbol {extra}: {r:?}"
        );
    }
}

#[test]
fn a_huffman_table_with_an_all_ones_code_is_refused() {
    let good = ours(200, 150, Options::default());
    let table = |tc_th: u8, counts: &[(usize, u8)], symbols: &[u8]| {
        let mut p = vec![tc_th];
        let mut bits = [0u8; 16];
        for &(len, n) in counts {
            bits[len - 1] = n;
        }
        p.extend_from_slice(&bits);
        p.extend_from_slice(symbols);
        before_scan(&good, &seg(0xC4, &p))
    };
    // Tables 2 and 3, which the scan does not use: the DHT is copied all the same.
    let fits = [
        table(0x02, &[(1, 1)], &[0]),
        table(0x13, &[(2, 3)], &[0x00, 0x01, 0xF0]),
        table(0x12, &[(1, 1), (16, 255)], &[0; 256]),
    ];
    for (n, input) in fits.iter().enumerate() {
        assert!(stamp(input, &Limits::default()).is_ok(), "table {n}");
    }
    // Each holds the all-ones code of its longest length: libjpeg-turbo's "huffcode" check.
    let overflows = [
        table(0x02, &[(1, 2)], &[0, 1]),
        table(0x13, &[(2, 4)], &[0x00, 0x01, 0x02, 0xF0]),
        table(0x02, &[(1, 1), (2, 1), (3, 2)], &[0, 1, 2, 3]),
        table(0x12, &[(8, 255), (9, 2)], &[0; 257]),
    ];
    for (n, input) in overflows.iter().enumerate() {
        let r = stamp(input, &Limits::default());
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "table {n}: {r:?}"
        );
    }
}

#[test]
fn a_huffman_table_with_more_than_256_symbols_is_refused() {
    let good = ours(200, 150, Options::default());
    // 257 codes of 16 bits fit the code space: only the count refuses them.
    let mut p = vec![0x13];
    p.extend_from_slice(&[0; 14]);
    p.extend_from_slice(&[2, 255]);
    p.extend_from_slice(&[0x01; 257]);
    let r = stamp(&before_scan(&good, &seg(0xC4, &p)), &Limits::default());
    assert!(matches!(r, Err(WatermarkError::Corrupt(_))), "{r:?}");
}

/// `cargo test --release -p joip --lib watermark -- --ignored --nocapture`: prints how long
/// `stamp` takes on a 12 MP photo next to a full decode + encode through `image`, same run.
#[test]
#[ignore]
fn timing_of_stamp_against_a_full_transcode_at_12_mp() {
    use std::time::Instant;
    let (w, h) = (4000, 3000);
    let rgb = photo(w, h, 12);
    let runs = 5;
    let ours_with = |optimise: bool, restart_interval: u16| {
        test_jpeg::encode(
            &rgb,
            w,
            h,
            &Options {
                quality: 92,
                optimise,
                restart_interval,
                ..Options::default()
            },
        )
    };
    for (name, input) in [
        ("4:2:0 q92 standard tables", ours_with(false, 0)),
        ("4:2:0 q92 standard tables, DRI 250", ours_with(false, 250)),
        ("4:2:0 q92 optimised tables", ours_with(true, 0)),
        ("4:4:4 q92 image crate", image_jpeg(&rgb, w, h, false, 92)),
    ] {
        let best = |f: &mut dyn FnMut()| {
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .fold(f64::MAX, f64::min)
        };
        let mut out_len = 0;
        let ours = best(&mut || out_len = stamp(&input, &Limits::default()).unwrap().bytes.len());
        let (_, report) = jpeg::stamp(&input, &Limits::default()).unwrap();
        let decode_only = best(&mut || {
            std::hint::black_box(image::load_from_memory(&input).unwrap());
        });
        let full = best(&mut || {
            let img = image::load_from_memory(&input).unwrap().to_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88)
                .encode_image(&img)
                .unwrap();
            std::hint::black_box(out);
        });
        println!(
            "{name}: {} bytes; stamp {ours:.1} ms (out {out_len} bytes, {:.4}x; {:?}, {} of {} MCUs re-encoded) | image decode {decode_only:.1} ms | image decode+encode q88 {full:.1} ms | stamp / full = {:.3}",
            input.len(),
            out_len as f64 / input.len() as f64,
            report.tables,
            report.reencoded_mcus,
            report.total_mcus,
            ours / full,
        );
    }
}
