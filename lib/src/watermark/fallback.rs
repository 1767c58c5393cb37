//! The decode/stamp/encode path, for what the DCT path does not take: progressive or
//! multi-scan JPEG (CMYK too), PNG and WebP. Arithmetic-coded and 12-bit JPEG never get
//! here: the DCT path refuses them as unsupported.
//!
//! The image is decoded in its own colour type (no RGBA conversion), turned upright by its
//! EXIF orientation (the output carries no tag), the mark is blended in place over its box
//! only, and the result is encoded again in the source's format with nothing but the ICC
//! profile:
//! - PNG: lossless, alpha kept, adaptive filtering with fast deflate (see
//!   [`PNG_COMPRESSION`]).
//! - WebP: lossy stays lossy at the source's apparent quality, lossless stays lossless,
//!   alpha kept; libwebp encodes (`webp.rs`).
//! - JPEG: baseline 4:2:0 at [`JPEG_QUALITY`] with optimised Huffman tables, like sharp's
//!   default, by the `jpeg-encoder` crate (the `image` crate's encoder writes only 4:4:4).
//!
//! Turning by a quarter (orientations 5..=8) needs a second buffer for the turned copy, as
//! any rotation of a non-square image does; every other step works in the decoded buffer.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat,
    ImageReader,
};

use super::mark::Overlay;
use super::orientation::Orientation;
use super::sniff::{self, Format};
use super::webp::{self, WebPKind};
use super::{Limits, Stamped, WatermarkError};

/// Quality of a re-encoded JPEG: one generation at 88 is hard to see, where sharp's default
/// 80 shows on skin and skies.
pub(crate) const JPEG_QUALITY: u8 = 88;

/// Huffman tables built for each image (a second pass over the coefficients), as sharp's
/// default `optimiseCoding` does: about 5% smaller for about 10% more time.
const JPEG_OPTIMISE_CODING: bool = false;

/// Deflate for PNG: fdeflate's fast mode with adaptive (per-row) filtering. Measured on a
/// grainy 1080p photo: 3.79 MB in 19 ms, against 3.42 MB in 392 ms for `Default` (zlib
/// level 6, adaptive) and 4.92 MB in 217 ms for the same crate set up like sharp's default
/// (level 6, no filtering). On photos the filter, not the deflate effort, makes files small.
const PNG_COMPRESSION: CompressionType = CompressionType::Fast;

/// Largest bytes per decoded pixel (RGBA, 16 bits a channel): bounds the decoders'
/// allocations from the pixel limit.
const MAX_BYTES_PER_PIXEL: u64 = 8;

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
    let (image_format, mime) = match format {
        Format::Jpeg => (ImageFormat::Jpeg, "image/jpeg"),
        Format::Png => (ImageFormat::Png, "image/png"),
        Format::WebP => (ImageFormat::WebP, "image/webp"),
    };
    if format == Format::Jpeg {
        check_jpeg_complete(input)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(input), image_format);
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // The caller checked the header already; this is the same rule on the decoder's reading
    // of it, before the pixel buffer is allocated.
    let (w, h) = decoder.dimensions();
    sniff::check_pixels(u64::from(w), u64::from(h), limits)?;
    // A malformed EXIF block is not worth refusing the photo for: shown as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let icc = decoder.icc_profile().map_err(decode_error)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    if mark {
        draw_mark(&mut img)?;
    }
    let webp_kind = match format {
        Format::WebP => webp::kind(input),
        _ => WebPKind::Lossless,
    };
    let bytes = encode(&img, format, icc, webp_kind)?;
    Ok(Stamped { bytes, mime })
}

/// zune-jpeg (through `image`, not strict) decodes a truncated progressive file without
/// complaint, greying what is missing: walk the markers to EOI first so a cut upload is
/// refused rather than published half grey.
fn check_jpeg_complete(input: &[u8]) -> Result<(), WatermarkError> {
    let truncated = || WatermarkError::Corrupt("truncated JPEG: no EOI after the scans".to_owned());
    let mut i = 2;
    loop {
        while input.get(i) == Some(&0xFF) && input.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if input.get(i) != Some(&0xFF) {
            return Err(WatermarkError::Corrupt(
                "JPEG: expected a marker".to_owned(),
            ));
        }
        let marker = *input.get(i + 1).ok_or_else(truncated)?;
        i += 2;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = input.get(i..i + 2).ok_or_else(truncated)?;
        i += usize::from(u16::from_be_bytes([len[0], len[1]]));
        if i > input.len() {
            return Err(truncated());
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the first marker that is not a stuffed 0xFF00 or RSTn.
            loop {
                let ff = input
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
                    .ok_or_else(truncated)?;
                i += ff;
                match *input.get(i + 1).ok_or_else(truncated)? {
                    0x00 | 0xD0..=0xD7 => i += 2,
                    0xFF => i += 1,
                    _ => break,
                }
            }
        }
    }
}

fn decode_error(e: ImageError) -> WatermarkError {
    match e {
        ImageError::Limits(e) => WatermarkError::TooLarge(e.to_string()),
        ImageError::Unsupported(e) => {
            tracing::info!(error = %e, "the decoder does not read this variant");
            WatermarkError::Unsupported("a variant the decoder does not read")
        }
        e => WatermarkError::Corrupt(e.to_string()),
    }
}

/// A channel value: 8 or 16 bits.
trait Sample: Copy {
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

/// Blends the mark into the bottom-right corner of an upright image, in place.
fn draw_mark(img: &mut DynamicImage) -> Result<(), WatermarkError> {
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
    Ok(())
}

/// Composites the black shadow, then the white ink, over each pixel of the overlay's box
/// ("source over"): on opaque pixels the same blend as the DCT path; on transparent ones the
/// mark still shows, raising alpha only under it.
fn blend<T: Sample>(
    pixels: &mut [T],
    width: u32,
    channels: usize,
    has_alpha: bool,
    overlay: &Overlay,
) {
    let colours = channels - usize::from(has_alpha);
    for y in overlay.y0..overlay.y1() {
        let row = y as usize * width as usize;
        for x in overlay.x0..overlay.x1() {
            let (ink, shade) = overlay.at(x, y);
            if ink == 0 && shade == 0 {
                continue;
            }
            let (ink, shade) = (f32::from(ink) / 255.0, f32::from(shade) / 255.0);
            let at = (row + x as usize) * channels;
            let px = &mut pixels[at..at + channels];
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
}

/// Whether an ICC profile describes the encoded pixels (its header's colour space): a CMYK
/// JPEG is decoded to RGB, and its CMYK profile would then make every viewer wrong.
fn icc_fits(profile: &[u8], colour: bool) -> bool {
    let want: &[u8] = if colour { b"RGB " } else { b"GRAY" };
    profile.get(16..20) == Some(want)
}

fn encode(
    img: &DynamicImage,
    format: Format,
    icc: Option<Vec<u8>>,
    webp_kind: WebPKind,
) -> Result<Vec<u8>, WatermarkError> {
    let icc = icc.filter(|p| icc_fits(p, img.color().has_color()));
    let refused = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "re-encoding the stamped image failed");
        WatermarkError::Unsupported("the encoder refused the image")
    };
    let mut out = Vec::new();
    match format {
        Format::Png => {
            let encoder =
                PngEncoder::new_with_quality(&mut out, PNG_COMPRESSION, FilterType::Adaptive);
            write(encoder, img, icc).map_err(|e| refused(&e))?;
        }
        Format::WebP => {
            // image-webp decodes to 8-bit RGB or RGBA only; anything else is converted.
            let (pixels, channels) = match img {
                DynamicImage::ImageRgb8(b) => (std::borrow::Cow::Borrowed(b.as_raw()), 3),
                DynamicImage::ImageRgba8(b) => (std::borrow::Cow::Borrowed(b.as_raw()), 4),
                other => (std::borrow::Cow::Owned(other.to_rgba8().into_raw()), 4),
            };
            out = webp::encode(
                &pixels,
                img.width(),
                img.height(),
                channels,
                webp_kind,
                icc.as_deref(),
            )
            .map_err(|e| refused(&e))?;
        }
        Format::Jpeg => {
            let (Ok(w), Ok(h)) = (u16::try_from(img.width()), u16::try_from(img.height())) else {
                return Err(WatermarkError::Unsupported(
                    "wider or taller than JPEG allows",
                ));
            };
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
            encoder.set_optimized_huffman_tables(JPEG_OPTIMISE_CODING);
            if let Some(profile) = &icc {
                if let Err(e) = encoder.add_icc_profile(profile) {
                    tracing::warn!(error = %e, "the ICC profile does not fit the JPEG");
                }
            }
            // zune-jpeg gives L8 or Rgb8 for everything JPEG carries; anything else (never
            // seen) is flattened, which allocates only in that case.
            let written = match img {
                DynamicImage::ImageLuma8(b) => {
                    encoder.encode(b, w, h, jpeg_encoder::ColorType::Luma)
                }
                DynamicImage::ImageRgb8(b) => encoder.encode(b, w, h, jpeg_encoder::ColorType::Rgb),
                other => encoder.encode(&other.to_rgb8(), w, h, jpeg_encoder::ColorType::Rgb),
            };
            written.map_err(|e| refused(&e))?;
        }
    }
    Ok(out)
}

fn write(
    mut encoder: impl ImageEncoder,
    img: &DynamicImage,
    icc: Option<Vec<u8>>,
) -> Result<(), ImageError> {
    if let Some(profile) = icc {
        if let Err(e) = encoder.set_icc_profile(profile) {
            // Colours shift slightly without it; not a reason to fail the share.
            tracing::warn!(error = %e, "the encoder does not carry ICC profiles");
        }
    }
    let colour: ExtendedColorType = img.color().into();
    encoder.write_image(img.as_bytes(), img.width(), img.height(), colour)
}
