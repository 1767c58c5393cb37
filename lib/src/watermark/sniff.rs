//! What an upload is, from its bytes alone (never its name or declared MIME type), and the
//! header checks that refuse animations and decompression bombs before anything is allocated.

use super::{Limits, WatermarkError};

/// An image format we stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    WebP,
}

/// The format the magic bytes announce, if it is one we stamp.
pub(crate) fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else {
        None
    }
}

/// Refuses a canvas over the pixel limit.
pub(crate) fn check_pixels(width: u64, height: u64, limits: &Limits) -> Result<(), WatermarkError> {
    let pixels = width * height;
    if pixels > limits.max_pixels {
        return Err(WatermarkError::TooLarge(format!(
            "{width}x{height} is {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    Ok(())
}

fn truncated() -> WatermarkError {
    WatermarkError::Corrupt("truncated header".to_owned())
}

/// PNG: dimensions from IHDR, and no `acTL` (APNG) before the first IDAT.
pub(crate) fn check_png(bytes: &[u8], limits: &Limits) -> Result<(), WatermarkError> {
    let mut at = 8;
    let mut first = true;
    loop {
        let head = bytes.get(at..at + 8).ok_or_else(truncated)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let data = bytes.get(at + 8..at + 8 + len).ok_or_else(truncated)?;
        if first {
            if kind != b"IHDR" || len != 13 {
                return Err(WatermarkError::Corrupt("PNG without IHDR".to_owned()));
            }
            let w = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let h = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            check_pixels(u64::from(w), u64::from(h), limits)?;
            first = false;
        }
        match kind {
            b"acTL" => return Err(WatermarkError::Unsupported("animated PNG")),
            b"IDAT" | b"IEND" => return Ok(()),
            _ => at += 12 + len,
        }
    }
}

/// WebP: canvas size from VP8X / VP8 / VP8L, and no animation.
pub(crate) fn check_webp(bytes: &[u8], limits: &Limits) -> Result<(), WatermarkError> {
    let head = bytes.get(12..20).ok_or_else(truncated)?;
    let kind = &head[..4];
    let data = &bytes[20..];
    let le24 = |b: &[u8]| u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16;
    let (w, h) = match kind {
        b"VP8X" => {
            let d = data.get(..10).ok_or_else(truncated)?;
            if d[0] & 0x02 != 0 {
                return Err(WatermarkError::Unsupported("animated WebP"));
            }
            (le24(&d[4..7]) + 1, le24(&d[7..10]) + 1)
        }
        b"VP8 " => {
            let d = data.get(..10).ok_or_else(truncated)?;
            if d[3..6] != [0x9d, 0x01, 0x2a] {
                return Err(WatermarkError::Corrupt("VP8 start code".to_owned()));
            }
            let w = u64::from(u16::from_le_bytes([d[6], d[7]]) & 0x3fff);
            let h = u64::from(u16::from_le_bytes([d[8], d[9]]) & 0x3fff);
            (w, h)
        }
        b"VP8L" => {
            let d = data.get(..5).ok_or_else(truncated)?;
            if d[0] != 0x2f {
                return Err(WatermarkError::Corrupt("VP8L signature".to_owned()));
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            (
                u64::from(bits & 0x3fff) + 1,
                u64::from(bits >> 14 & 0x3fff) + 1,
            )
        }
        _ => return Err(WatermarkError::Corrupt("unknown WebP chunk".to_owned())),
    };
    check_pixels(w, h, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(w: u32, h: u32, extra: &[u8]) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend_from_slice(&13u32.to_be_bytes());
        b.extend_from_slice(b"IHDR");
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(extra);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(b"IDAT");
        b
    }

    #[test]
    fn a_png_bomb_is_refused_from_its_header() {
        let bomb = png_header(50_000, 50_000, &[]);
        assert_eq!(sniff(&bomb), Some(Format::Png));
        assert!(matches!(
            check_png(&bomb, &Limits::default()),
            Err(WatermarkError::TooLarge(_))
        ));
        assert!(check_png(&png_header(640, 480, &[]), &Limits::default()).is_ok());
    }

    #[test]
    fn an_animated_png_is_unsupported() {
        let mut actl = 8u32.to_be_bytes().to_vec();
        actl.extend_from_slice(b"acTL");
        actl.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        let apng = png_header(64, 64, &actl);
        assert!(matches!(
            check_png(&apng, &Limits::default()),
            Err(WatermarkError::Unsupported(_))
        ));
    }

    #[test]
    fn webp_headers_give_size_and_animation() {
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x02, 0, 0, 0, 0x3f, 0, 0, 0x3f, 0, 0]);
        assert_eq!(sniff(&vp8x), Some(Format::WebP));
        assert!(matches!(
            check_webp(&vp8x, &Limits::default()),
            Err(WatermarkError::Unsupported(_))
        ));
        vp8x[20] = 0;
        vp8x[26] = 0xff;
        vp8x[29] = 0xff;
        // A canvas of about 16.7 million pixels on each side.
        assert!(matches!(
            check_webp(&vp8x, &Limits::default()),
            Err(WatermarkError::TooLarge(_))
        ));
    }
}
