//! WebP out of the fallback: what kind of WebP the source is (lossy at what quality, or
//! lossless), libwebp to encode the stamped pixels the same way, and the ICC profile put back
//! into the container.
//!
//! libwebp (C, vendored by `libwebp-sys` and built by cc, the version sharp ships) because no
//! pure-Rust encoder writes lossy VP8: written losslessly, a lossy photo comes out several
//! times larger. Only its encoder is linked; decoding stays in pure Rust (`image-webp`).

use std::ffi::c_void;

use libwebp_sys as sys;

/// How the source was compressed, so its copy is compressed the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum WebPKind {
    /// VP8, at the quality its quantiser suggests (0..=100, libwebp's scale).
    Lossy { quality: f32 },
    /// VP8L.
    Lossless,
}

/// Quality when the source's quantiser cannot be read (a damaged header the decoder still
/// accepted): libwebp's and sharp's default.
const DEFAULT_QUALITY: f32 = 80.0;

/// libwebp's effort (0 fast ..= 6 small) for lossy output: 4, as sharp and cwebp default.
const LOSSY_METHOD: i32 = 4;

/// Lossless effort: libwebp's preset level (0..=9). Measured on a grainy 1080p photo against
/// sharp's default (1421 ms, 2.96 MB): level 0 3.33 MB in 200 ms, 1 2.99 MB in 405 ms, 2 the
/// same 2.96 MB in 630 ms. `image-webp`'s encoder: 3.36 MB in 72 ms.
const LOSSLESS_LEVEL: i32 = 2;

/// Reads the source's kind from its chunks: VP8L is lossless; VP8 lossy, at the quality its
/// first partition's quantiser indices map back to.
pub(crate) fn kind(webp: &[u8]) -> WebPKind {
    let mut lossy = None;
    for (fourcc, body) in chunks(webp) {
        match &fourcc {
            b"VP8L" => return WebPKind::Lossless,
            b"VP8 " => lossy = Some(vp8_quality(body).unwrap_or(DEFAULT_QUALITY)),
            _ => {}
        }
    }
    WebPKind::Lossy {
        quality: lossy.unwrap_or(DEFAULT_QUALITY),
    }
}

/// The RIFF chunks after the `WEBP` form type, as (fourcc, body); stops at the first
/// truncated one.
fn chunks(webp: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 12;
    std::iter::from_fn(move || {
        let head = webp.get(at..at + 8)?;
        let fourcc: [u8; 4] = head[..4].try_into().ok()?;
        let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
        let body = webp.get(at + 8..(at + 8).checked_add(len)?)?;
        at += 8 + len + (len & 1);
        Some((fourcc, body))
    })
}

/// The quality libwebp was most likely given for this VP8 key frame: the mean quantiser
/// index over its segments (or the frame's base index), through the inverse of libwebp's
/// quality-to-quantiser curve (`QualityToCompression` in `src/enc/quant_enc.c`).
fn vp8_quality(vp8: &[u8]) -> Option<f32> {
    // Frame tag (3 bytes, key frame when bit 0 is clear), start code, 2+2 bytes of size.
    if vp8.len() < 11 || vp8[0] & 1 != 0 || vp8[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let mut bits = BoolDecoder::new(&vp8[10..]);
    bits.literal(2); // colour space, clamping
    let mut segment_q = Vec::new();
    let mut absolute = false;
    if bits.flag() {
        let update_map = bits.flag();
        if bits.flag() {
            absolute = bits.flag();
            for _ in 0..4 {
                segment_q.push(bits.optional_signed(7).unwrap_or(0));
            }
            for _ in 0..4 {
                bits.optional_signed(6);
            }
        }
        if update_map {
            for _ in 0..3 {
                if bits.flag() {
                    bits.literal(8);
                }
            }
        }
    }
    bits.literal(1 + 6 + 3); // filter type, level, sharpness
    if bits.flag() && bits.flag() {
        for _ in 0..8 {
            bits.optional_signed(6);
        }
    }
    bits.literal(2); // partitions
    let base = bits.literal(7) as i32;
    if bits.overrun {
        return None;
    }
    let q = match (absolute, segment_q.is_empty()) {
        (true, false) => segment_q.iter().sum::<i32>() as f32 / segment_q.len() as f32,
        (false, false) => base as f32 + segment_q.iter().sum::<i32>() as f32 / 4.0,
        _ => base as f32,
    };
    let c = (1.0 - q.clamp(0.0, 127.0) / 127.0).powi(3);
    let quality = if c < 0.5 { c * 1.5 } else { (c + 1.0) / 2.0 };
    Some((quality * 100.0).clamp(1.0, 100.0))
}

/// VP8's boolean entropy decoder (RFC 6386, section 7), enough to read the frame header.
struct BoolDecoder<'a> {
    data: &'a [u8],
    at: usize,
    value: u32,
    range: u32,
    bit_count: u32,
    overrun: bool,
}

impl<'a> BoolDecoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut d = Self {
            data,
            at: 0,
            value: 0,
            range: 255,
            bit_count: 0,
            overrun: false,
        };
        d.value = (d.next_byte() << 8) | d.next_byte();
        d
    }

    fn next_byte(&mut self) -> u32 {
        match self.data.get(self.at) {
            Some(&b) => {
                self.at += 1;
                u32::from(b)
            }
            None => {
                self.overrun = true;
                0
            }
        }
    }

    fn bool(&mut self, prob: u32) -> bool {
        let split = 1 + (((self.range - 1) * prob) >> 8);
        let big_split = split << 8;
        let bit = if self.value >= big_split {
            self.range -= split;
            self.value -= big_split;
            true
        } else {
            self.range = split;
            false
        };
        while self.range < 128 {
            self.value <<= 1;
            self.range <<= 1;
            self.bit_count += 1;
            if self.bit_count == 8 {
                self.bit_count = 0;
                self.value |= self.next_byte();
            }
        }
        bit
    }

    fn flag(&mut self) -> bool {
        self.bool(128)
    }

    fn literal(&mut self, n: u32) -> u32 {
        (0..n).fold(0, |v, _| (v << 1) | u32::from(self.flag()))
    }

    /// A flag, then if set an `n`-bit magnitude and a sign.
    fn optional_signed(&mut self, n: u32) -> Option<i32> {
        if !self.flag() {
            return None;
        }
        let v = self.literal(n) as i32;
        Some(if self.flag() { -v } else { v })
    }
}

/// Why libwebp refused.
#[derive(Debug, thiserror::Error)]
#[error("libwebp could not encode the image ({0})")]
pub(crate) struct EncodeError(String);

/// Encodes 8-bit RGB or RGBA pixels (`channels` 3 or 4) as `kind`, with `icc` in a VP8X
/// container when given.
pub(crate) fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    kind: WebPKind,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let stride = width as usize * channels;
    if !matches!(channels, 3 | 4) || pixels.len() != stride * height as usize {
        return Err(EncodeError(format!(
            "{channels} channels, {} bytes",
            pixels.len()
        )));
    }
    let bitstream = encode_bitstream(pixels, width, height, channels, kind)?;
    Ok(match icc {
        Some(profile) if !profile.is_empty() => {
            with_icc(&bitstream, profile, width, height, channels == 4)
        }
        _ => bitstream,
    })
}

fn encode_bitstream(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    kind: WebPKind,
) -> Result<Vec<u8>, EncodeError> {
    let abi = sys::WEBP_ENCODER_ABI_VERSION as i32;
    let dims = |v: u32| i32::try_from(v).map_err(|_| EncodeError(format!("dimension {v}")));
    let (w, h) = (dims(width)?, dims(height)?);
    let stride = dims(width * channels as u32)?;
    // SAFETY: every libwebp struct is initialised by its own init function before use; the
    // picture only borrows `pixels` (imported, i.e. copied, into its own planes), the memory
    // writer's buffer is copied out before it is cleared, and both are freed on every path.
    unsafe {
        let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::uninit();
        let (preset_quality, lossless) = match kind {
            WebPKind::Lossy { quality } => (quality, false),
            WebPKind::Lossless => (75.0, true),
        };
        if sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            preset_quality,
            abi,
        ) == 0
        {
            return Err(EncodeError("config version".into()));
        }
        let mut config = config.assume_init();
        if lossless {
            if sys::WebPConfigLosslessPreset(&mut config, LOSSLESS_LEVEL) == 0 {
                return Err(EncodeError("lossless preset".into()));
            }
            // Keep the RGB under fully transparent pixels: lossless means lossless.
            config.exact = 1;
        } else {
            config.method = LOSSY_METHOD;
        }
        if sys::WebPValidateConfig(&config) == 0 {
            return Err(EncodeError("invalid config".into()));
        }

        let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::uninit();
        if sys::WebPPictureInitInternal(picture.as_mut_ptr(), abi) == 0 {
            return Err(EncodeError("picture version".into()));
        }
        let mut picture = picture.assume_init();
        picture.use_argb = i32::from(lossless);
        picture.width = w;
        picture.height = h;
        let imported = if channels == 4 {
            sys::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride)
        } else {
            sys::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride)
        };
        if imported == 0 {
            sys::WebPPictureFree(&mut picture);
            return Err(EncodeError("out of memory importing the pixels".into()));
        }
        let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::uninit();
        sys::WebPMemoryWriterInit(writer.as_mut_ptr());
        let mut writer = writer.assume_init();
        picture.writer = Some(sys::WebPMemoryWrite);
        picture.custom_ptr = (&mut writer as *mut sys::WebPMemoryWriter).cast::<c_void>();
        let ok = sys::WebPEncode(&config, &mut picture) != 0;
        let error = picture.error_code;
        sys::WebPPictureFree(&mut picture);
        let out = if ok && !writer.mem.is_null() {
            Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
        } else {
            Err(EncodeError(format!("{error:?}")))
        };
        sys::WebPMemoryWriterClear(&mut writer);
        out
    }
}

/// Puts `icc` into an encoded WebP: an extended (VP8X) container with the ICC flag set and
/// the ICCP chunk right after VP8X, as the container spec orders them.
fn with_icc(webp: &[u8], icc: &[u8], width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let mut vp8x = None;
    let mut rest = Vec::with_capacity(webp.len());
    for (fourcc, body) in chunks(webp) {
        match &fourcc {
            b"VP8X" if body.len() >= 10 => vp8x = Some(body.to_vec()),
            b"ICCP" => {}
            _ => push_chunk(&mut rest, &fourcc, body),
        }
    }
    let mut header = vp8x.unwrap_or_else(|| {
        let mut h = vec![0u8; 10];
        h[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
        h[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
        h
    });
    header[0] |= 0x20 | if alpha { 0x10 } else { 0 };
    let mut body = Vec::with_capacity(rest.len() + icc.len() + 40);
    body.extend_from_slice(b"WEBP");
    push_chunk(&mut body, b"VP8X", &header);
    push_chunk(&mut body, b"ICCP", icc);
    body.extend_from_slice(&rest);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn push_chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gradient with grain, so libwebp's segments see texture as in a photo.
    fn gradient(w: u32, h: u32, channels: usize) -> Vec<u8> {
        let mut px = Vec::with_capacity((w * h) as usize * channels);
        for y in 0..h {
            for x in 0..w {
                let grain = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 24;
                let v = [
                    (x * 200 / w + grain) as u8,
                    (y * 200 / h + grain) as u8,
                    ((x + y) % 200 + grain) as u8,
                    200,
                ];
                px.extend_from_slice(&v[..channels]);
            }
        }
        px
    }

    #[test]
    fn the_quality_read_back_is_the_quality_written() {
        let px = gradient(96, 64, 3);
        for q in [98.0, 90.0, 80.0, 70.0, 50.0] {
            let out = encode(&px, 96, 64, 3, WebPKind::Lossy { quality: q }, None).unwrap();
            let WebPKind::Lossy { quality } = kind(&out) else {
                panic!("lossy read as lossless");
            };
            // libwebp modulates each segment's quantiser by its texture; the mean of them
            // reads back a little low (measured on a grainy photo: 95 as 94.9, 90 as 89.3,
            // 80 as 78.5, 70 as 64.3, 50 as 44.6).
            assert!(
                quality <= q + 2.0 && quality >= q - 12.0,
                "wrote {q}, read {quality}"
            );
        }
        let out = encode(&px, 96, 64, 3, WebPKind::Lossless, None).unwrap();
        assert_eq!(kind(&out), WebPKind::Lossless);
    }

    #[test]
    fn lossless_is_exact_and_lossy_is_close_with_alpha_and_icc_kept() {
        use image::ImageDecoder;
        let px = gradient(40, 30, 4);
        let icc = b"fake profile, odd length".to_vec();
        for kind in [WebPKind::Lossless, WebPKind::Lossy { quality: 90.0 }] {
            let out = encode(&px, 40, 30, 4, kind, Some(&icc)).unwrap();
            let mut dec =
                image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&out)).unwrap();
            assert_eq!(dec.icc_profile().unwrap().as_deref(), Some(&icc[..]));
            let img = image::DynamicImage::from_decoder(dec).unwrap().to_rgba8();
            let worst = img
                .as_raw()
                .iter()
                .zip(&px)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            match kind {
                WebPKind::Lossless => assert_eq!(worst, 0),
                WebPKind::Lossy { .. } => assert!(worst < 40, "worst difference {worst}"),
            }
        }
    }

    #[test]
    fn a_damaged_header_reads_as_the_default_quality() {
        let px = gradient(32, 32, 3);
        let mut out = encode(&px, 32, 32, 3, WebPKind::Lossy { quality: 60.0 }, None).unwrap();
        out.truncate(30);
        assert_eq!(
            kind(&out),
            WebPKind::Lossy {
                quality: DEFAULT_QUALITY
            }
        );
        assert_eq!(
            kind(b"RIFF"),
            WebPKind::Lossy {
                quality: DEFAULT_QUALITY
            }
        );
    }
}
