//! What the watermark benchmark (`tools/bench/watermark/`) needs to compare us with other
//! tools on equal terms: the mark itself as an RGBA image, so sharp composites the very same
//! pixels, and the decode/encode floor of the fallback path. Not part of the function's API.

use super::mark::Overlay;
use super::orientation::Orientation;
use super::sniff::{self, Format};
use super::{fallback, Limits, Stamped, WatermarkError};

/// The mark for an upright `width` x `height` image, as straight (not premultiplied) RGBA
/// over its box, and where the box goes.
pub struct MarkImage {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// The black shadow under the white ink, flattened into one layer: composited "over" an
/// opaque pixel it gives what [`super::stamp`] draws there.
pub fn mark_rgba(width: u32, height: u32) -> MarkImage {
    let overlay = Overlay::new(width, height, Orientation::UPRIGHT);
    let mut rgba = Vec::with_capacity((overlay.w * overlay.h * 4) as usize);
    for y in overlay.y0..overlay.y1() {
        for x in overlay.x0..overlay.x1() {
            let (ink, shade) = overlay.at(x, y);
            let (ink, shade) = (f32::from(ink) / 255.0, f32::from(shade) / 255.0);
            let alpha = ink + shade * (1.0 - ink);
            let grey = if alpha > 0.0 { ink / alpha } else { 0.0 };
            let grey = (grey * 255.0).round() as u8;
            rgba.extend_from_slice(&[grey, grey, grey, (alpha * 255.0).round() as u8]);
        }
    }
    MarkImage {
        left: overlay.x0,
        top: overlay.y0,
        width: overlay.w,
        height: overlay.h,
        rgba,
    }
}

/// Decodes and encodes `input` again exactly as the fallback path does, without the mark:
/// the floor for PNG and WebP.
pub fn reencode(input: &[u8], limits: &Limits) -> Result<Stamped, WatermarkError> {
    let format = sniff::sniff(input).ok_or(WatermarkError::Unsupported("not an image"))?;
    fallback::transcode(input, format, limits, false)
}

/// Whether `input` is a JPEG the DCT path stamps (every JPEG it does not refuse: sequential,
/// progressive, arithmetic-coded).
pub fn takes_dct_path(input: &[u8]) -> bool {
    sniff::sniff(input) == Some(Format::Jpeg)
        && super::jpeg::stamp(input, &Limits::default()).is_ok()
}

/// For the fuzzer and the regression replay: whether a JPEG the planes path publishes decodes
/// to exactly the coefficients it stamped (`None` when that path does not publish it).
pub fn planes_output_is_exact(input: &[u8], limits: &Limits) -> Option<bool> {
    super::jpeg::planes_output_is_exact(input, limits)
}
