//! The public copy of a shared upload: the JOIP mark stamped in, private metadata out
//! (DESIGN.md invariant 4). Pure: bytes in, bytes out, no AWS, no files.
//!
//! Every JPEG is stamped in the DCT domain, so everything outside the mark's blocks keeps its
//! exact coefficients: a single sequential scan is mostly copied rather than re-encoded, any
//! other JPEG (progressive, several scans, CMYK, any sampling) is decoded whole to
//! coefficients (`jpeg_read.rs`) and written again; every scan is decoded and checked either
//! way, so a cut or damaged JPEG is refused as corrupt. `jpeg.rs` says how. The mark is
//! described in `mark.rs`, drawn into coefficients by `coef_mark.rs`; orientation (stored
//! pixels kept, the tag kept alone, the mark drawn turned) in `orientation.rs`.
//! Arithmetic-coded scans are decoded by `arith.rs` and written Huffman-coded (`jpeg_write.rs`);
//! a progressive file keeps its scan script, and each of its scans is copied up to the mark
//! and coded again only from there. PNG and WebP are decoded, turned upright, stamped
//! in place and encoded again: `fallback.rs` (PNG row by row: `png_rows.rs`). 12-bit, lossless
//! and hierarchical JPEG are refused as [`WatermarkError::Unsupported`] (libjpeg-turbo's
//! `djpeg` refuses them too). What the reference decoders refuse (a JPEG whose Huffman tables
//! libjpeg-turbo would refuse, a PNG libpng refuses, a WebP libwebp refuses) is refused as
//! corrupt, so it is never published: lib/tests/conformance.rs holds us to them.

mod arith;
#[doc(hidden)]
pub mod bench;
mod coef;
mod coef_mark;
mod dct;
mod fallback;
mod huffman;
mod isa;
mod jpeg;
mod jpeg_read;
mod jpeg_write;
mod mark;
mod orientation;
mod png_rows;
mod sniff;
mod webp;

#[cfg(test)]
mod fallback_tests;
#[cfg(test)]
mod jpeg_read_tests;
#[cfg(test)]
mod test_jpeg;
#[cfg(test)]
mod tests;

use sniff::Format;

/// Bounds on what is decoded, checked from headers before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted width x height.
    pub max_pixels: u64,
    /// Largest accepted file.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// 50 megapixels (beyond any phone camera) and 64 MiB.
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_bytes: 64 << 20,
        }
    }
}

/// A stamped image, in the same format as its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its MIME type, from the sniffed format.
    pub mime: &'static str,
}

/// Why an upload was not stamped. Every variant means "never publish it" except
/// `NeedsFallback`, which asks for the decode/stamp/encode path instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WatermarkError {
    /// Not JPEG, PNG or WebP by its magic bytes, an animation, or a valid variant we do not
    /// stamp (arithmetic-coded or 12-bit JPEG, lossless or hierarchical JPEG).
    #[error("unsupported image: {0}")]
    Unsupported(&'static str),
    /// Over [`Limits`], refused from the header.
    #[error("image too large: {0}")]
    TooLarge(String),
    /// Malformed or truncated.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// Internal to the JPEG module: the splice path cannot take this file, the planes path
    /// decodes it whole. Never returned by [`stamp`].
    #[error("needs the decode/stamp/encode path: {0}")]
    NeedsFallback(&'static str),
}

/// Stamps the mark into `input`, sniffing the format from its bytes.
///
/// Headers are checked (size, animation) before anything is decoded. JPEG is stamped in the
/// DCT domain; PNG and WebP are decoded, stamped and re-encoded in the same format. Never
/// returns `NeedsFallback`.
pub fn stamp(input: &[u8], limits: &Limits) -> Result<Stamped, WatermarkError> {
    if input.len() > limits.max_bytes {
        return Err(WatermarkError::TooLarge(format!(
            "{} bytes, the limit is {}",
            input.len(),
            limits.max_bytes
        )));
    }
    match sniff::sniff(input) {
        Some(Format::Jpeg) => match jpeg::stamp(input, limits) {
            Ok((bytes, report)) => {
                tracing::debug!(
                    ?report.tables,
                    report.reencoded_mcus,
                    report.total_mcus,
                    report.changed_blocks,
                    report.scans,
                    report.spliced_scans,
                    report.extended_scans,
                    report.recoded_scans,
                    "stamped JPEG in the DCT domain"
                );
                Ok(Stamped {
                    bytes,
                    mime: "image/jpeg",
                })
            }
            // jpeg::stamp takes every JPEG itself; this never happens.
            Err(WatermarkError::NeedsFallback(why)) => Err(WatermarkError::Unsupported(why)),
            Err(e) => Err(e),
        },
        Some(Format::Png) => {
            sniff::check_png(input, limits)?;
            fallback::stamp(input, Format::Png, limits)
        }
        Some(Format::WebP) => {
            // libwebp's lossless encoder holds 28-37 bytes a pixel (a grainy 12 MP photo:
            // 367-465 MB at peak with the input, measured by the benchmark): lossless WebP is
            // held to 2/5 of the pixel limit, 20 MP by default, so it stays well inside the
            // function's memory instead of dying there on every redelivery.
            let header_limits = match webp::kind(input) {
                webp::WebPKind::Lossless => Limits {
                    max_pixels: limits.max_pixels * 2 / 5,
                    ..*limits
                },
                webp::WebPKind::Lossy { .. } => *limits,
            };
            sniff::check_webp(input, &header_limits)?;
            fallback::stamp(input, Format::WebP, limits)
        }
        None => Err(WatermarkError::Unsupported("not JPEG, PNG or WebP")),
    }
}
