//! The decode/stamp/encode path, for PNG and WebP (every JPEG is stamped in the DCT domain:
//! `jpeg.rs`).
//!
//! The image is decoded in its own colour type (no RGBA conversion), turned upright by its
//! EXIF orientation (the output carries no tag), the mark is blended in place over its box
//! only, and the result is encoded again in the source's format with nothing but the ICC
//! profile:
//! - PNG: lossless, alpha kept, adaptive filtering with fast deflate, decoded, stamped and
//!   encoded row by row (`png_rows.rs`).
//! - WebP: lossy stays lossy at the source's apparent quality (measured outside the mark
//!   after encoding, and encoded again when it lost too much), lossless stays lossless,
//!   alpha kept; libwebp decodes and encodes (`webp.rs`).
//!
//! Turning by a quarter (orientations 5..=8) needs a second buffer for the turned copy, as
//! any rotation of a non-square image does; every other step works in the decoded buffer.

use image::metadata::Orientation as ExifOrientation;
use image::DynamicImage;

use super::mark::{MarkBox, Overlay};
use super::orientation::Orientation;
use super::png_rows;
use super::sniff::Format;
use super::webp;
use super::{Limits, Stamped, WatermarkError};

/// Largest bytes per decoded pixel (RGBA, 16 bits a channel): bounds the decoders'
/// allocations from the pixel limit.
pub(crate) const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Decodes `input` (already sniffed as `format`), stamps the upright image and encodes it
/// again in the same format (WebP always lossless, even from a lossy source).
pub(crate) fn stamp(
    input: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Stamped, WatermarkError> {
    transcode(input, format, limits, true)
}

/// Decodes, turns upright, stamps when `mark` is set, and encodes again: without the mark
/// it is the floor the benchmark compares [`stamp`] against (same codecs, same settings).
pub(crate) fn transcode(
    input: &[u8],
    format: Format,
    limits: &Limits,
    mark: bool,
) -> Result<Stamped, WatermarkError> {
    match format {
        Format::Png => Ok(Stamped {
            bytes: png_rows::transcode(input, limits, mark)?,
            mime: "image/png",
        }),
        Format::WebP => transcode_webp(input, limits, mark),
        // Never asked: `jpeg.rs` takes every JPEG.
        Format::Jpeg => Err(WatermarkError::Unsupported(
            "JPEG is stamped in the DCT domain",
        )),
    }
}

/// WebP: libwebp decodes (`webp::decode`), the EXIF orientation an extended file carries is
/// applied, and the copy is written the way the source was (lossy at its quality, or
/// lossless) with its ICC profile.
fn transcode_webp(input: &[u8], limits: &Limits, mark: bool) -> Result<Stamped, WatermarkError> {
    let decoded = webp::decode(input, limits)?;
    let (w, h) = (decoded.width, decoded.height);
    let mut img = if decoded.channels == 4 {
        image::RgbaImage::from_raw(w, h, decoded.pixels).map(DynamicImage::ImageRgba8)
    } else {
        image::RgbImage::from_raw(w, h, decoded.pixels).map(DynamicImage::ImageRgb8)
    }
    .ok_or_else(|| WatermarkError::Corrupt("WebP: the decoded size does not match".to_owned()))?;
    // A malformed EXIF block is not worth refusing the photo for: shown as stored.
    let orientation = webp::chunk(input, b"EXIF")
        .and_then(ExifOrientation::from_exif_chunk)
        .unwrap_or(ExifOrientation::NoTransforms);
    img.apply_orientation(orientation);
    let mark_box = if mark {
        Some(draw_mark(&mut img)?)
    } else {
        None
    };
    let icc = webp::chunk(input, b"ICCP").map(<[u8]>::to_vec);
    let bytes = encode_webp(img, icc, webp::kind(input), mark_box)?;
    Ok(Stamped {
        bytes,
        mime: "image/webp",
    })
}

/// A channel value: 8 or 16 bits.
pub(crate) trait Sample: Copy {
    const MAX: f32;
    fn get(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Sample for u8 {
    const MAX: f32 = 255.0;
    fn get(self) -> f32 {
        f32::from(self)
    }
    fn from_f32(v: f32) -> Self {
        v.round().clamp(0.0, <Self as Sample>::MAX) as u8
    }
}

impl Sample for u16 {
    const MAX: f32 = 65535.0;
    fn get(self) -> f32 {
        f32::from(self)
    }
    fn from_f32(v: f32) -> Self {
        v.round().clamp(0.0, <Self as Sample>::MAX) as u16
    }
}

/// Blends the mark into the bottom-right corner of an upright image, in place, and says
/// where it went.
pub(crate) fn draw_mark(img: &mut DynamicImage) -> Result<MarkBox, WatermarkError> {
    let overlay = Overlay::new(img.width(), img.height(), Orientation::UPRIGHT);
    let width = img.width();
    match img {
        DynamicImage::ImageLuma8(b) => blend(b, width, 1, false, &overlay),
        DynamicImage::ImageLumaA8(b) => blend(b, width, 2, true, &overlay),
        DynamicImage::ImageRgb8(b) => blend(b, width, 3, false, &overlay),
        DynamicImage::ImageRgba8(b) => blend(b, width, 4, true, &overlay),
        DynamicImage::ImageLuma16(b) => blend(b, width, 1, false, &overlay),
        DynamicImage::ImageLumaA16(b) => blend(b, width, 2, true, &overlay),
        DynamicImage::ImageRgb16(b) => blend(b, width, 3, false, &overlay),
        DynamicImage::ImageRgba16(b) => blend(b, width, 4, true, &overlay),
        // JPEG, PNG and WebP decoders never produce float pixels.
        _ => return Err(WatermarkError::Unsupported("floating-point pixels")),
    }
    Ok(overlay.bounds())
}

/// Blends the mark into every row of its box, in place (`pixels` holds the whole image).
fn blend<T: Sample>(
    pixels: &mut [T],
    width: u32,
    channels: usize,
    has_alpha: bool,
    overlay: &Overlay,
) {
    let row_len = width as usize * channels;
    for y in overlay.y0..overlay.y1() {
        let at = y as usize * row_len;
        blend_row(
            &mut pixels[at..at + row_len],
            y,
            channels,
            has_alpha,
            overlay,
        );
    }
}

/// Composites the black shadow, then the white ink, over each pixel of the overlay's box in
/// row `y` of the upright image ("source over"): on opaque pixels the same blend as the DCT
/// path; on transparent ones the mark still shows, raising alpha only under it. A row outside
/// the box is left alone.
pub(crate) fn blend_row<T: Sample>(
    row: &mut [T],
    y: u32,
    channels: usize,
    has_alpha: bool,
    overlay: &Overlay,
) {
    if !(overlay.y0..overlay.y1()).contains(&y) {
        return;
    }
    let colours = channels - usize::from(has_alpha);
    for x in overlay.x0..overlay.x1() {
        let (ink, shade) = overlay.at(x, y);
        if ink == 0 && shade == 0 {
            continue;
        }
        let (ink, shade) = (f32::from(ink) / 255.0, f32::from(shade) / 255.0);
        let at = x as usize * channels;
        let Some(px) = row.get_mut(at..at + channels) else {
            return;
        };
        let alpha = if has_alpha {
            px[colours].get() / T::MAX
        } else {
            1.0
        };
        // Premultiplied: under the shadow then the ink, what remains of the pixel.
        let kept = alpha * (1.0 - shade) * (1.0 - ink);
        let alpha_out = ink + (shade + alpha * (1.0 - shade)) * (1.0 - ink);
        for c in &mut px[..colours] {
            let premultiplied = T::MAX * ink + c.get() * kept;
            *c = T::from_f32(premultiplied / alpha_out);
        }
        if has_alpha {
            px[colours] = T::from_f32(alpha_out * T::MAX);
        }
    }
}

/// Whether an ICC profile describes the encoded pixels (its header's colour space): a profile
/// for other pixels (CMYK, or grey on colour) would make every viewer wrong.
pub(crate) fn icc_fits(profile: &[u8], colour: bool) -> bool {
    let want: &[u8] = if colour { b"RGB " } else { b"GRAY" };
    profile.get(16..20) == Some(want)
}

fn refused(e: &dyn std::fmt::Display) -> WatermarkError {
    tracing::warn!(error = %e, "re-encoding the stamped image failed");
    WatermarkError::Unsupported("the encoder refused the image")
}

/// Takes the image so that a lossless encode can free its pixels once libwebp has copied them.
fn encode_webp(
    img: DynamicImage,
    icc: Option<Vec<u8>>,
    kind: webp::WebPKind,
    mark_box: Option<MarkBox>,
) -> Result<Vec<u8>, WatermarkError> {
    let icc = icc.filter(|p| icc_fits(p, img.color().has_color()));
    let (width, height) = (img.width(), img.height());
    // libwebp decodes to 8-bit RGB or RGBA only; anything else is converted.
    let (pixels, channels) = match img {
        DynamicImage::ImageRgb8(b) => (b.into_raw(), 3),
        DynamicImage::ImageRgba8(b) => (b.into_raw(), 4),
        other => (other.to_rgba8().into_raw(), 4),
    };
    webp::encode(
        pixels,
        width,
        height,
        channels,
        kind,
        icc.as_deref(),
        mark_box,
    )
    .map_err(|e| refused(&e))
}
