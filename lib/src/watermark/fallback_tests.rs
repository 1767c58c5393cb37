//! The decode/stamp/encode path end to end through `stamp`: PNG and lossless WebP exact
//! outside the mark, progressive JPEG marked, orientation applied, metadata gone, ICC kept,
//! bombs and animations refused. `testdata/progressive.jpg` is a 240x160 photo-like image
//! written by libjpeg's `cjpeg -quality 90 -progressive -sample 2x2` (10 scans).

use super::fallback;
use super::jpeg;
use super::mark::Overlay;
use super::orientation::Orientation;
use super::sniff::Format;
use super::tests::{camera_exif, photo, seg, segments, with_segments};
use super::webp::{self, WebPKind};
use super::{stamp, Limits, WatermarkError};
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder};

const PROGRESSIVE: &[u8] = include_bytes!("testdata/progressive.jpg");

/// RGB photo with a given channel layout: 1 (gray), 2 (gray + alpha), 3, 4; alpha runs from
/// fully transparent at the left to opaque at the right.
fn pixels(w: usize, h: usize, channels: usize) -> Vec<u8> {
    let rgb = photo(w, h, 5);
    let mut out = Vec::with_capacity(w * h * channels);
    for (i, p) in rgb.chunks(3).enumerate() {
        let alpha = ((i % w) * 255 / (w - 1)) as u8;
        let gray = ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8;
        match channels {
            1 => out.push(gray),
            2 => out.extend_from_slice(&[gray, alpha]),
            3 => out.extend_from_slice(p),
            _ => out.extend_from_slice(&[p[0], p[1], p[2], alpha]),
        }
    }
    out
}

fn colour_of(channels: usize) -> ExtendedColorType {
    match channels {
        1 => ExtendedColorType::L8,
        2 => ExtendedColorType::La8,
        3 => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgba8,
    }
}

fn png(data: &[u8], w: u32, h: u32, colour: ExtendedColorType, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = PngEncoder::new(&mut out);
    if let Some(tiff) = exif {
        enc.set_exif_metadata(tiff).unwrap();
    }
    enc.write_image(data, w, h, colour).unwrap();
    out
}

/// A PNG chunk with a CRC the decoder accepts (our header checks run before it does).
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc = 0xFFFF_FFFFu32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    c.extend_from_slice(&(!crc).to_be_bytes());
    c
}

/// Inserts chunks right after IHDR.
fn png_with_chunks(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = png[..33].to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&png[33..]);
    out
}

fn png_chunk_kinds(png: &[u8]) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + len;
    }
    kinds
}

/// A profile header that says RGB (or GRAY) data; the rest is filler, carried byte for byte.
fn icc(space: &[u8; 4]) -> Vec<u8> {
    let mut p: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
    p[..4].copy_from_slice(&600u32.to_be_bytes());
    p[16..20].copy_from_slice(space);
    p
}

/// Asserts every sample outside the mark's box of the upright `before` is unchanged and that
/// the box visibly changed.
fn assert_exact_outside_the_mark(before: &DynamicImage, after: &DynamicImage, what: &str) {
    assert_eq!(before.color(), after.color(), "{what}: colour type kept");
    assert_eq!(before.width(), after.width(), "{what}");
    assert_eq!(before.height(), after.height(), "{what}");
    let mark = Overlay::new(before.width(), before.height(), Orientation::UPRIGHT);
    let bpp = usize::from(before.color().bytes_per_pixel());
    let (a, b) = (before.as_bytes(), after.as_bytes());
    let mut changed = 0;
    for y in 0..before.height() {
        for x in 0..before.width() {
            let at = (y as usize * before.width() as usize + x as usize) * bpp;
            let same = a[at..at + bpp] == b[at..at + bpp];
            let inside = (mark.x0..mark.x1()).contains(&x) && (mark.y0..mark.y1()).contains(&y);
            if inside {
                changed += usize::from(!same);
            } else {
                assert!(same, "{what}: pixel ({x}, {y}) outside the mark changed");
            }
        }
    }
    assert!(changed > 200, "{what}: only {changed} pixels marked");
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).unwrap()
}

#[test]
fn png_is_exact_outside_the_mark_in_every_colour_type() {
    let (w, h) = (360, 240);
    for channels in 1..=4 {
        let input = png(
            &pixels(w, h, channels),
            w as u32,
            h as u32,
            colour_of(channels),
            None,
        );
        let out = stamp(&input, &Limits::default()).unwrap();
        assert_eq!(out.mime, "image/png");
        let what = format!("{channels} channels");
        assert_exact_outside_the_mark(&decode(&input), &decode(&out.bytes), &what);
        println!(
            "{what}: {} -> {} bytes ({:.3}x)",
            input.len(),
            out.bytes.len(),
            out.bytes.len() as f64 / input.len() as f64
        );
    }
}

#[test]
fn sixteen_bit_png_stays_sixteen_bit() {
    let (w, h) = (200, 150);
    let rgb = photo(w, h, 3);
    let wide: Vec<u8> = rgb
        .iter()
        .flat_map(|&v| (u16::from(v) * 257).to_ne_bytes())
        .collect();
    let input = png(&wide, w as u32, h as u32, ExtendedColorType::Rgb16, None);
    let out = stamp(&input, &Limits::default()).unwrap();
    assert_exact_outside_the_mark(&decode(&input), &decode(&out.bytes), "RGB 16");
}

#[test]
fn the_mark_shows_on_transparent_pixels_and_alpha_is_kept_elsewhere() {
    let (w, h) = (300, 200);
    // Fully transparent everywhere: only the mark may become visible.
    let clear = vec![0u8; w * h * 4];
    let input = png(&clear, w as u32, h as u32, ExtendedColorType::Rgba8, None);
    let out = decode(&stamp(&input, &Limits::default()).unwrap().bytes).to_rgba8();
    let mark = Overlay::new(w as u32, h as u32, Orientation::UPRIGHT);
    let mut opaque = 0;
    for (x, y, p) in out.enumerate_pixels() {
        let (ink, shade) = mark.at(x, y);
        if ink == 0 && shade == 0 {
            assert_eq!(p.0, [0, 0, 0, 0], "({x}, {y})");
        } else {
            assert!(p.0[3] > 0, "({x}, {y}) under the mark stays invisible");
            opaque += 1;
        }
    }
    assert!(opaque > 200);
}

#[test]
fn lossless_webp_stays_lossless_and_exact_outside_the_mark() {
    let (w, h) = (320, 200);
    for channels in [3, 4] {
        let mut input = Vec::new();
        WebPEncoder::new_lossless(&mut input)
            .write_image(
                &pixels(w, h, channels),
                w as u32,
                h as u32,
                colour_of(channels),
            )
            .unwrap();
        let out = stamp(&input, &Limits::default()).unwrap();
        assert_eq!(out.mime, "image/webp");
        assert!(
            out.bytes.windows(4).any(|c| c == b"VP8L"),
            "lossless bitstream"
        );
        let what = format!("WebP, {channels} channels");
        assert_exact_outside_the_mark(&decode(&input), &decode(&out.bytes), &what);
    }
}

/// PSNR (dB) of `b` against `a` over the pixels outside `mark`, every channel.
fn psnr_outside(a: &image::RgbaImage, b: &image::RgbaImage, mark: &Overlay) -> f64 {
    let (mut sq, mut n) = (0f64, 0f64);
    for (x, y, p) in a.enumerate_pixels() {
        if (mark.x0..mark.x1()).contains(&x) && (mark.y0..mark.y1()).contains(&y) {
            continue;
        }
        for (u, v) in p.0.iter().zip(b.get_pixel(x, y).0) {
            sq += (f64::from(*u) - f64::from(v)).powi(2);
            n += 1.0;
        }
    }
    10.0 * (255.0f64.powi(2) / (sq / n).max(1e-9)).log10()
}

#[test]
fn lossy_webp_stays_lossy_at_its_quality_and_matches_a_plain_re_encode_outside_the_mark() {
    let (w, h) = (320, 200);
    for channels in [3, 4] {
        let source = webp::encode(
            pixels(w, h, channels),
            w as u32,
            h as u32,
            channels,
            WebPKind::Lossy {
                quality: 85.0,
                source_bytes: 0,
                colour_bytes: 0,
            },
            None,
            None,
        )
        .unwrap();
        let out = stamp(&source, &Limits::default()).unwrap();
        assert_eq!(out.mime, "image/webp");
        let WebPKind::Lossy { quality, .. } = webp::kind(&out.bytes) else {
            panic!("{channels} channels: a lossy source came out lossless");
        };
        assert!((75.0..=87.0).contains(&quality), "written at {quality}");
        let plain = fallback::transcode(&source, Format::WebP, &Limits::default(), false).unwrap();
        let (stamped, plain) = (
            decode(&out.bytes).to_rgba8(),
            decode(&plain.bytes).to_rgba8(),
        );
        let mark = Overlay::new(w as u32, h as u32, Orientation::UPRIGHT);
        let psnr = psnr_outside(&plain, &stamped, &mark);
        assert!(
            psnr >= 40.0,
            "{channels} channels: {psnr:.1} dB outside the mark"
        );
        let inside = mean_diff(
            &DynamicImage::from(plain.clone()).to_luma8(),
            &DynamicImage::from(stamped.clone()).to_luma8(),
            &mark,
            true,
        );
        assert!(
            inside > 10.0,
            "{channels} channels: the mark changed {inside:.1} on average"
        );
        if channels == 4 {
            let alpha = stamped.pixels().map(|p| p.0[3]).collect::<Vec<_>>();
            assert!(
                alpha[0] < 10 && alpha[w - 1] > 245,
                "alpha kept: {} .. {}",
                alpha[0],
                alpha[w - 1]
            );
        }
    }
}

/// Mean absolute difference of luma over the pixels inside (or outside) `mark`.
fn mean_diff(a: &image::GrayImage, b: &image::GrayImage, mark: &Overlay, inside: bool) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for (x, y, p) in a.enumerate_pixels() {
        let is_in = (mark.x0..mark.x1()).contains(&x) && (mark.y0..mark.y1()).contains(&y);
        if is_in == inside {
            sum += u64::from(p.0[0].abs_diff(b.get_pixel(x, y).0[0]));
            n += 1;
        }
    }
    sum as f64 / n as f64
}

#[test]
fn a_progressive_jpeg_stays_progressive_and_is_marked() {
    let limits = Limits::default();
    // The planes path of issue 21 (jpeg.rs), not the fallback.
    assert!(jpeg::stamp(PROGRESSIVE, &limits).is_ok());
    let out = stamp(PROGRESSIVE, &limits).unwrap();
    assert_eq!(out.mime, "image/jpeg");
    let segs = segments(&out.bytes);
    assert!(
        segs.iter().any(|(m, _)| *m == 0xC2),
        "written progressive, with the input's script"
    );
    let (before, after) = (
        decode(PROGRESSIVE).to_luma8(),
        decode(&out.bytes).to_luma8(),
    );
    assert_eq!(before.dimensions(), after.dimensions());
    let mark = Overlay::new(before.width(), before.height(), Orientation::UPRIGHT);
    let (inside, outside) = (
        mean_diff(&before, &after, &mark, true),
        mean_diff(&before, &after, &mark, false),
    );
    println!("progressive: mean luma change {inside:.1} under the mark, {outside:.2} elsewhere");
    assert_marked_once_over(inside, outside);
}

/// A JPEG re-encode changes every pixel a little (one generation at quality 88, on grain);
/// the mark changes its box a lot, and a wrong turn would change everything a lot.
fn assert_marked_once_over(inside: f64, outside: f64) {
    assert!(
        inside > 10.0 && outside < 3.0 && inside > 5.0 * outside,
        "mean luma change {inside:.2} under the mark, {outside:.2} elsewhere"
    );
}

#[test]
fn exif_orientation_is_applied_and_the_mark_lands_bottom_right() {
    // Orientation 6: stored landscape, displayed portrait turned 90° clockwise.
    let (w, h) = (300u32, 200u32);
    let tiff = camera_exif(6)[10..].to_vec();
    let input = png(
        &pixels(300, 200, 3),
        w,
        h,
        ExtendedColorType::Rgb8,
        Some(tiff),
    );
    let out = stamp(&input, &Limits::default()).unwrap();
    let kinds = png_chunk_kinds(&out.bytes);
    assert!(!kinds.iter().any(|k| k == "eXIf"), "{kinds:?}");
    let mut upright = decode(&input);
    upright.apply_orientation(image::metadata::Orientation::Rotate90);
    // Pixel-exact outside the mark of the upright (200 x 300) image.
    assert_exact_outside_the_mark(&upright, &decode(&out.bytes), "PNG orientation 6");

    // JPEG now takes the DCT domain (issue 21): stored pixels kept, the tag kept alone.
    let jpeg_in = with_segments(PROGRESSIVE, &[camera_exif(6)]);
    let out = stamp(&jpeg_in, &Limits::default()).unwrap();
    assert!(
        !out.bytes.windows(5).any(|c| c == b"Canon"),
        "camera EXIF dropped"
    );
    let mut upright = decode(PROGRESSIVE);
    upright.apply_orientation(image::metadata::Orientation::Rotate90);
    let mut shown = decode(&out.bytes);
    shown.apply_orientation(image::metadata::Orientation::Rotate90);
    let (before, after) = (upright.to_luma8(), shown.to_luma8());
    assert_eq!(before.dimensions(), (160, 240));
    assert_eq!(after.dimensions(), (160, 240));
    let mark = Overlay::new(160, 240, Orientation::UPRIGHT);
    let (inside, outside) = (
        mean_diff(&before, &after, &mark, true),
        mean_diff(&before, &after, &mark, false),
    );
    assert_marked_once_over(inside, outside);
}

#[test]
fn private_metadata_goes_and_the_icc_profile_stays() {
    let (w, h) = (200u32, 120u32);
    let rgb_icc = icc(b"RGB ");
    let mut enc_out = Vec::new();
    let mut enc = PngEncoder::new(&mut enc_out);
    enc.set_icc_profile(rgb_icc.clone()).unwrap();
    enc.set_exif_metadata(camera_exif(1)[10..].to_vec())
        .unwrap();
    enc.write_image(&pixels(200, 120, 3), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    let input = png_with_chunks(
        &enc_out,
        &[
            png_chunk(b"tEXt", b"Comment\0shot at home, 12 Main Street"),
            png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>"),
        ],
    );
    let out = stamp(&input, &Limits::default()).unwrap().bytes;
    assert_eq!(
        png_chunk_kinds(&out),
        ["IHDR", "iCCP", "IDAT", "IEND"].map(String::from)
    );
    let mut dec = image::codecs::png::PngDecoder::new(std::io::Cursor::new(&out)).unwrap();
    assert_eq!(dec.icc_profile().unwrap(), Some(rgb_icc.clone()));

    // A profile for another colour model than the pixels would be wrong: dropped.
    let mut enc_out = Vec::new();
    let mut enc = PngEncoder::new(&mut enc_out);
    enc.set_icc_profile(rgb_icc.clone()).unwrap();
    enc.write_image(&pixels(200, 120, 1), w, h, ExtendedColorType::L8)
        .unwrap();
    let out = stamp(&enc_out, &Limits::default()).unwrap().bytes;
    assert!(!png_chunk_kinds(&out).iter().any(|k| k == "iCCP"));

    // Progressive JPEG: ICC kept, EXIF, XMP and comments gone.
    let mut icc_seg = b"ICC_PROFILE\0\x01\x01".to_vec();
    icc_seg.extend_from_slice(&rgb_icc);
    let input = with_segments(
        PROGRESSIVE,
        &[
            camera_exif(1),
            seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"),
            seg(0xE2, &icc_seg),
            seg(0xFE, b"shot at home, 12 Main Street"),
        ],
    );
    let out = stamp(&input, &Limits::default()).unwrap().bytes;
    let segs = segments(&out);
    assert!(segs.iter().all(|(m, _)| !matches!(*m, 0xE1 | 0xFE)));
    for needle in [&b"Canon"[..], b"Main Street", b"xap"] {
        assert!(!out.windows(needle.len()).any(|w| w == needle));
    }
    let mut dec = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&out)).unwrap();
    assert_eq!(dec.icc_profile().unwrap(), Some(rgb_icc));
}

#[test]
fn a_png_bomb_is_refused_before_decoding() {
    // 4000 x 4000 black pixels compress to a few KB.
    let (w, h) = (4000u32, 4000u32);
    let input = png(
        &vec![0u8; (w * h) as usize],
        w,
        h,
        ExtendedColorType::L8,
        None,
    );
    assert!(input.len() < 100_000, "{} bytes", input.len());
    let limits = Limits {
        max_pixels: 1_000_000,
        ..Limits::default()
    };
    assert!(matches!(
        stamp(&input, &limits),
        Err(WatermarkError::TooLarge(_))
    ));
    // The fallback's own check, from the decoder's reading of the header.
    assert!(matches!(
        fallback::stamp(&input, Format::Png, &limits),
        Err(WatermarkError::TooLarge(_))
    ));
}

#[test]
fn lossless_webp_is_held_to_two_fifths_of_the_pixel_limit() {
    let (w, h) = (100u32, 100u32);
    let lossless =
        webp::encode(pixels(100, 100, 3), w, h, 3, WebPKind::Lossless, None, None).unwrap();
    let lossy = webp::encode(
        pixels(100, 100, 3),
        w,
        h,
        3,
        WebPKind::Lossy {
            quality: 80.0,
            source_bytes: 0,
            colour_bytes: 0,
        },
        None,
        None,
    )
    .unwrap();
    // 10,000 pixels: over 2/5 of 20,000, within 20,000.
    let limits = Limits {
        max_pixels: 20_000,
        ..Limits::default()
    };
    assert!(matches!(
        stamp(&lossless, &limits),
        Err(WatermarkError::TooLarge(_))
    ));
    assert!(stamp(&lossy, &limits).is_ok());
    let roomier = Limits {
        max_pixels: 25_000,
        ..Limits::default()
    };
    assert!(stamp(&lossless, &roomier).is_ok());
}

#[test]
fn animations_and_broken_files_are_never_published() {
    let limits = Limits::default();
    let input = png(&pixels(64, 48, 3), 64, 48, ExtendedColorType::Rgb8, None);
    let apng = png_with_chunks(&input, &[png_chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0])]);
    assert_eq!(
        stamp(&apng, &limits),
        Err(WatermarkError::Unsupported("animated PNG"))
    );
    for cut in [input.len() / 2, input.len() - 20] {
        let r = stamp(&input[..cut], &limits);
        assert!(
            matches!(r, Err(WatermarkError::Corrupt(_))),
            "PNG cut at {cut}: {r:?}"
        );
    }
    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp)
        .write_image(&pixels(64, 48, 3), 64, 48, ExtendedColorType::Rgb8)
        .unwrap();
    let r = stamp(&webp[..webp.len() / 2], &limits);
    assert!(matches!(r, Err(WatermarkError::Corrupt(_))), "WebP: {r:?}");
    let mut garbage = PROGRESSIVE[..PROGRESSIVE.len() / 3].to_vec();
    garbage.extend(std::iter::repeat_n(0xA5, 200));
    let r = stamp(&garbage, &limits);
    println!(
        "progressive with garbage scans: {:?}",
        r.as_ref().map(|s| s.bytes.len())
    );
}

/// A Debian tool the oracle tests need, or `None` with a loud message when it is absent.
fn tool(name: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("SKIPPED: `{name}` not found: install the Debian package `{package}`");
    }
    found
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("joip-fallback-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cwebp` with `args` over `input` (a PNG).
fn cwebp(cwebp: &std::path::Path, input: &[u8], args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let (src, dst) = (dir.join("in.png"), dir.join("out.webp"));
    std::fs::write(&src, input).unwrap();
    let status = std::process::Command::new(cwebp)
        .args(args)
        .arg("-quiet")
        .arg(&src)
        .arg("-o")
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success(), "cwebp {args:?}");
    std::fs::read(&dst).unwrap()
}

#[test]
fn segment_coded_lossy_webp_keeps_its_size_and_quality() {
    let Some(cwebp_bin) = tool("cwebp", "webp") else {
        return;
    };
    let dir = scratch("segments");
    let (w, h) = (480u32, 320u32);
    let source = png(
        &pixels(w as usize, h as usize, 3),
        w,
        h,
        ExtendedColorType::Rgb8,
        None,
    );
    let mark = Overlay::new(w, h, Orientation::UPRIGHT);
    for args in [
        &["-q", "75", "-segments", "4", "-sns", "50"][..],
        &["-q", "75", "-segments", "4", "-sns", "100"],
        &["-q", "50", "-segments", "4", "-sns", "100", "-f", "60"],
        &[
            "-q",
            "90",
            "-segments",
            "4",
            "-sns",
            "80",
            "-sharpness",
            "5",
        ],
        &["-q", "30", "-segments", "2", "-sns", "100"],
    ] {
        let input = cwebp(&cwebp_bin, &source, args, &dir);
        let out = stamp(&input, &Limits::default()).unwrap().bytes;
        let ratio = out.len() as f64 / input.len() as f64;
        let psnr = psnr_outside(&decode(&input).to_rgba8(), &decode(&out).to_rgba8(), &mark);
        println!(
            "{args:?}: {} -> {} bytes ({ratio:.2}x), {psnr:.1} dB outside the mark",
            input.len(),
            out.len()
        );
        assert!(
            (0.75..=1.25).contains(&ratio),
            "{args:?}: {ratio:.2}x the input"
        );
        assert!(psnr >= 35.0, "{args:?}: {psnr:.1} dB");
    }
}

#[test]
fn webp_is_refused_exactly_when_dwebp_refuses_it() {
    let (Some(cwebp_bin), Some(dwebp)) = (tool("cwebp", "webp"), tool("dwebp", "webp")) else {
        return;
    };
    let dir = scratch("dwebp");
    let source = png(
        &pixels(200, 136, 4),
        200,
        136,
        ExtendedColorType::Rgba8,
        None,
    );
    let mut published = 0;
    for args in [&["-q", "80", "-segments", "4"][..], &["-lossless"]] {
        let whole = cwebp(&cwebp_bin, &source, args, &dir);
        let mut cases = Vec::new();
        for cut in [
            whole.len() / 4,
            whole.len() / 2,
            whole.len() - 40,
            whole.len() - 1,
        ] {
            cases.push(whole[..cut].to_vec());
        }
        // Seeded byte flips past the headers.
        let mut seed = 0x9E37_79B9u32;
        for _ in 0..24 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let mut flipped = whole.clone();
            let at = 40 + seed as usize % (whole.len() - 40);
            flipped[at] ^= 1 << (seed >> 29);
            cases.push(flipped);
        }
        cases.push(whole);
        for (i, case) in cases.iter().enumerate() {
            let file = dir.join("case.webp");
            std::fs::write(&file, case).unwrap();
            let oracle = std::process::Command::new(&dwebp)
                .arg(&file)
                .arg("-o")
                .arg(dir.join("case.png"))
                .output()
                .unwrap()
                .status
                .success();
            let ours = stamp(case, &Limits::default());
            assert_eq!(
                ours.is_ok(),
                oracle,
                "{args:?} case {i}: dwebp {oracle}, ours {:?}",
                ours.as_ref().map(|s| s.bytes.len())
            );
            published += usize::from(oracle);
        }
    }
    assert!(published >= 2, "the intact files are published");
}

/// A C program that reads a PNG with libpng to the end (`png_read_png` reads through IEND) and exits
/// non-zero on any error: the oracle for what we must refuse.
const LIBPNG_ORACLE: &str = r#"
#include <png.h>
#include <stdio.h>
#include <setjmp.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    png_infop end = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) { fclose(f); return 1; }
    png_init_io(p, f);
    png_read_png(p, info, PNG_TRANSFORM_EXPAND, NULL);
    png_destroy_read_struct(&p, &info, &end);
    fclose(f);
    return 0;
}
"#;

/// Rewrites the CRC of the chunk starting at `at` after its data was changed.
fn fix_crc(png: &mut [u8], at: usize) {
    let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
    let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
    let fixed = png_chunk(&kind, &png[at + 8..at + 8 + len]);
    png[at..at + 12 + len].copy_from_slice(&fixed);
}

/// Offset of the first chunk of `kind`.
fn chunk_at(png: &[u8], kind: &[u8; 4]) -> usize {
    let mut at = 8;
    loop {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if &png[at + 4..at + 8] == kind {
            return at;
        }
        at += 12 + len;
    }
}

#[test]
fn png_is_refused_exactly_when_libpng_refuses_it() {
    let Some(cc) = tool("cc", "gcc") else {
        return;
    };
    let dir = scratch("libpng");
    let src = dir.join("oracle.c");
    let oracle = dir.join("oracle");
    std::fs::write(&src, LIBPNG_ORACLE).unwrap();
    let built = std::process::Command::new(cc)
        .arg(&src)
        .arg("-o")
        .arg(&oracle)
        .arg("-lpng")
        .status()
        .unwrap();
    if !built.success() {
        eprintln!(
            "SKIPPED: the libpng oracle does not build: install the Debian package `libpng-dev`"
        );
        return;
    }
    let whole = png_with_chunks(
        &png(&pixels(120, 90, 4), 120, 90, ExtendedColorType::Rgba8, None),
        &[png_chunk(b"tEXt", b"Comment\0hello")],
    );
    let idat = chunk_at(&whole, b"IDAT");
    let idat_len = u32::from_be_bytes(whole[idat..idat + 4].try_into().unwrap()) as usize;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![("intact", whole.clone())];
    let mut bad_crc = whole.clone();
    bad_crc[idat + 8 + idat_len / 2] ^= 0x10;
    cases.push(("IDAT data changed, CRC not", bad_crc));
    let mut adler = whole.clone();
    adler[idat + 8 + idat_len - 1] ^= 0x01;
    fix_crc(&mut adler, idat);
    cases.push(("Adler-32 wrong", adler));
    let mut ancillary = whole.clone();
    let text = chunk_at(&ancillary, b"tEXt");
    ancillary[text + 9] ^= 0x01;
    cases.push(("tEXt CRC wrong", ancillary));
    cases.push(("cut inside IDAT", whole[..idat + 8 + idat_len / 2].to_vec()));
    cases.push(("cut before IEND", whole[..whole.len() - 12].to_vec()));
    let mut trailing = whole.clone();
    trailing.extend_from_slice(b"garbage after IEND");
    cases.push(("bytes after IEND", trailing));
    for (what, case) in &cases {
        let file = dir.join("case.png");
        std::fs::write(&file, case).unwrap();
        let libpng = std::process::Command::new(&oracle)
            .arg(&file)
            .status()
            .unwrap()
            .success();
        let ours = stamp(case, &Limits::default());
        println!(
            "{what}: libpng {libpng}, ours {:?}",
            ours.as_ref().map(|s| s.bytes.len())
        );
        assert_eq!(ours.is_ok(), libpng, "{what}: ours {ours:?}");
    }
}

/// Blue ground, yellow bars and a black ring: the hard synthetic edges of the conformance
/// corpus (`tools/conformance/generate.py`), where one lossy generation blurs the chroma.
fn hard_edges(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    let step = (w / 9).max(1);
    for y in 0..h {
        for x in 0..w {
            let bar = x / step;
            let in_bar = x % step <= step / 2 && y >= (bar * 7) % h;
            let (dx, dy) = (
                (x as f32 - w as f32 / 2.0) / (w as f32 / 4.0),
                (y as f32 - h as f32 / 2.0) / (h as f32 / 4.0),
            );
            let r = (dx * dx + dy * dy).sqrt();
            let rgb = if (0.95..=1.05).contains(&r) {
                [0, 0, 0]
            } else if in_bar {
                [250, (240 - bar * 20 % 240) as u8, 10]
            } else {
                [20, 40, 200]
            };
            px.extend_from_slice(&rgb);
        }
    }
    px
}

#[test]
fn lossy_webp_of_hard_edges_keeps_its_quality_and_photographs_do_not_grow() {
    let Some(cwebp_bin) = tool("cwebp", "webp") else {
        return;
    };
    let dir = scratch("edges");
    let (w, h) = (173u32, 97u32);
    let edges = png(&hard_edges(w, h), w, h, ExtendedColorType::Rgb8, None);
    let (pw, ph) = (480u32, 320u32);
    let photo = png(
        &pixels(pw as usize, ph as usize, 3),
        pw,
        ph,
        ExtendedColorType::Rgb8,
        None,
    );
    for args in [
        &["-q", "20"][..],
        &["-q", "75"],
        &["-q", "95"],
        &["-q", "75", "-segments", "1"],
        &["-q", "75", "-sharp_yuv"],
    ] {
        let input = cwebp(&cwebp_bin, &edges, args, &dir);
        let out = stamp(&input, &Limits::default()).unwrap().bytes;
        let mark = Overlay::new(w, h, Orientation::UPRIGHT);
        let psnr = psnr_outside(&decode(&input).to_rgba8(), &decode(&out).to_rgba8(), &mark);
        let ratio = out.len() as f64 / input.len() as f64;
        println!(
            "edges {args:?}: {} -> {} bytes ({ratio:.2}x), {psnr:.1} dB",
            input.len(),
            out.len()
        );
        assert!(
            psnr >= 35.0,
            "edges {args:?}: {psnr:.1} dB outside the mark"
        );
        assert!(ratio <= 1.6, "edges {args:?}: {ratio:.2}x the input");
        assert!(
            matches!(webp::kind(&out), WebPKind::Lossy { .. }),
            "edges {args:?}: stays lossy"
        );

        let input = cwebp(&cwebp_bin, &photo, args, &dir);
        let out = stamp(&input, &Limits::default()).unwrap().bytes;
        let ratio = out.len() as f64 / input.len() as f64;
        println!(
            "photo {args:?}: {} -> {} bytes ({ratio:.2}x)",
            input.len(),
            out.len()
        );
        assert!(ratio <= 1.05, "photo {args:?}: {ratio:.2}x the input");
    }
}
