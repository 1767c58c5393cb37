//! WebP in and out of the fallback: libwebp decodes (so we refuse exactly what `dwebp` refuses),
//! reads what kind of WebP the source is (lossy at what quality, or lossless), encodes the
//! stamped pixels the same way, and the ICC profile is put back into the container.
//!
//! libwebp (C, vendored by `libwebp-sys` and built by cc, the version sharp ships) because no
//! pure-Rust encoder writes lossy VP8 (written losslessly, a lossy photo comes out several
//! times larger), and because `image-webp` decoded 48 of 159 fuzzed files that libwebp
//! refuses, publishing them as flat grey squares (issue 21, finding 5).

use std::ffi::c_void;

use libwebp_sys as sys;

use super::mark::MarkBox;
use super::sniff;
use super::{Limits, WatermarkError};

/// How the source was compressed, so its copy is compressed the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum WebPKind {
    /// VP8, at the quality its quantisers suggest (0..=100, libwebp's scale), the size of its
    /// compressed data (VP8 and ALPH chunks; 0 when unknown), which the copy is held near, and
    /// of its colour data alone (the VP8 chunk), which bounds a retry's growth.
    Lossy {
        quality: f32,
        source_bytes: usize,
        colour_bytes: usize,
    },
    /// VP8L.
    Lossless,
}

/// Quality when the source's quantiser cannot be read (a damaged header the decoder still
/// accepted): libwebp's and sharp's default.
const DEFAULT_QUALITY: f32 = 80.0;

/// libwebp's effort (0 fast ..= 6 small) for lossy output: 4, as sharp and cwebp default.
const LOSSY_METHOD: i32 = 4;

/// Passes of libwebp's size search when a copy must be aimed at its source's size: cwebp's
/// own default for `-size`.
const SIZE_SEARCH_PASSES: i32 = 6;

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
        source_bytes: compressed_bytes(webp),
        colour_bytes: colour_bytes(webp),
    }
}

/// Bytes of compressed image data (VP8, VP8L and ALPH chunks): what a re-encode is compared by,
/// without the metadata around it.
fn compressed_bytes(webp: &[u8]) -> usize {
    chunks(webp)
        .filter(|(fourcc, _)| matches!(fourcc, b"VP8 " | b"VP8L" | b"ALPH"))
        .map(|(_, body)| body.len())
        .sum()
}

/// Bytes of the VP8 chunk: a lossy picture's colour, without its alpha.
fn colour_bytes(webp: &[u8]) -> usize {
    chunk(webp, b"VP8 ").map_or(0, <[u8]>::len)
}

/// The body of the first chunk `fourcc`, if any (ICCP, EXIF).
pub(crate) fn chunk<'a>(webp: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    chunks(webp)
        .find(|(f, _)| f == fourcc)
        .map(|(_, body)| body)
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

/// The quality libwebp was most likely given for this VP8 key frame.
///
/// libwebp gives each of up to four segments its own quantiser around the asked quality
/// (`VP8SetSegmentParams` in `src/enc/quant_enc.c`): segment `i` gets compression
/// `c_base ^ (1 - amp * alpha_i)`, where the `alpha_i` average to zero over the macroblocks
/// (`SetSegmentAlphas` centres them on the macroblock-weighted mean). So the macroblock-weighted
/// mean of `ln c_i` is `ln c_base`, and the segment tree's probabilities in the header are the
/// macroblock counts (`SetSegmentProbas`): the weights are in the header too. A plain mean of
/// the quantisers (what libwebp's own `VP8EstimateQuality` approximates with segment 0 alone)
/// reads a photo written at 70 as 64, and a file with one segment at 0 and the others at 127
/// (libwebp's `segment03.webp`) as far too low; [`encode`] corrects what the estimate still
/// misses by the source's size.
fn vp8_quality(vp8: &[u8]) -> Option<f32> {
    // Frame tag (3 bytes, key frame when bit 0 is clear), start code, 2+2 bytes of size.
    if vp8.len() < 11 || vp8[0] & 1 != 0 || vp8[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let mut bits = BoolDecoder::new(&vp8[10..]);
    bits.literal(2); // colour space, clamping
                     // The decoder's defaults (`ResetSegmentHeader`): absolute values of 0, one segment.
    let (mut use_segments, mut update_map, mut absolute) = (false, false, true);
    let mut segment_q = [0i32; 4];
    let mut probas = [255u32; 3];
    if bits.flag() {
        use_segments = true;
        update_map = bits.flag();
        if bits.flag() {
            absolute = bits.flag();
            for q in &mut segment_q {
                *q = bits.optional_signed(7).unwrap_or(0);
            }
            for _ in 0..4 {
                bits.optional_signed(6);
            }
        }
        if update_map {
            for p in &mut probas {
                if bits.flag() {
                    *p = bits.literal(8);
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
    // Without a map every macroblock is in segment 0 (`VP8ParseIntraMode`).
    let (p0, p1, p2) = (
        probas[0] as f32 / 255.0,
        probas[1] as f32 / 255.0,
        probas[2] as f32 / 255.0,
    );
    let weights = if use_segments && update_map {
        [
            p0 * p1,
            p0 * (1.0 - p1),
            (1.0 - p0) * p2,
            (1.0 - p0) * (1.0 - p2),
        ]
    } else {
        [1.0, 0.0, 0.0, 0.0]
    };
    let mut log_c = 0.0;
    for (w, q) in weights.iter().zip(segment_q) {
        let q = if !use_segments {
            base
        } else if absolute {
            q
        } else {
            base + q
        };
        // libwebp truncates `127 * (1 - c)`: the middle of the interval a quantiser stands for,
        // kept above zero so that the coarsest quantiser has a logarithm.
        let c = 1.0 - (q.clamp(0, 127) as f32 + 0.5) / 127.0;
        log_c += w * c.max(0.5 / 127.0).ln();
    }
    // The inverse of `QualityToCompression`: c = linear^(1/3), linear = 2q/3 below 3/4.
    let linear = (log_c * 3.0).exp();
    let quality = if linear < 0.5 {
        linear * 1.5
    } else {
        (linear + 1.0) / 2.0
    };
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

/// A WebP decoded by libwebp: 8-bit RGB, or RGBA when the bitstream has alpha.
pub(crate) struct Decoded {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// 3 or 4.
    pub channels: usize,
}

/// Decodes a still WebP (lossy, lossless, with or without alpha) with libwebp's `WebPDecode`,
/// the call `dwebp` makes: whatever it refuses (a damaged or cut bitstream, a lying header)
/// is refused here, never published as the grey a lenient decoder fills in. The canvas is
/// checked against `limits` from the header before the pixels are allocated.
pub(crate) fn decode(webp: &[u8], limits: &Limits) -> Result<Decoded, WatermarkError> {
    // SAFETY: the config is initialised by libwebp's own init function; the output buffer is
    // ours (`is_external_memory`), exactly `size` bytes at `stride` a row, alive until
    // `WebPDecode` returns, and `WebPFreeDecBuffer` frees only what libwebp allocated itself.
    unsafe {
        let mut config = std::mem::MaybeUninit::<sys::WebPDecoderConfig>::uninit();
        if sys::WebPInitDecoderConfigInternal(
            config.as_mut_ptr(),
            sys::WEBP_DECODER_ABI_VERSION as i32,
        ) == 0
        {
            return Err(WatermarkError::Unsupported("libwebp's decoder version"));
        }
        let mut config = config.assume_init();
        status(sys::WebPGetFeaturesInternal(
            webp.as_ptr(),
            webp.len(),
            &mut config.input,
            sys::WEBP_DECODER_ABI_VERSION as i32,
        ))?;
        let features = config.input;
        if features.has_animation != 0 {
            return Err(WatermarkError::Unsupported("animated WebP"));
        }
        let (Ok(width), Ok(height)) = (
            u32::try_from(features.width),
            u32::try_from(features.height),
        ) else {
            return Err(WatermarkError::Corrupt(
                "WebP with a negative size".to_owned(),
            ));
        };
        sniff::check_pixels(u64::from(width), u64::from(height), limits)?;
        let (channels, mode) = if features.has_alpha != 0 {
            (4, sys::WEBP_CSP_MODE::MODE_RGBA)
        } else {
            (3, sys::WEBP_CSP_MODE::MODE_RGB)
        };
        let stride = width as usize * channels;
        let mut pixels = vec![0u8; stride * height as usize];
        config.output.colorspace = mode;
        config.output.is_external_memory = 1;
        config.output.u.RGBA = sys::WebPRGBABuffer {
            rgba: pixels.as_mut_ptr(),
            stride: i32::try_from(stride)
                .map_err(|_| WatermarkError::TooLarge(format!("{width} pixels wide")))?,
            size: pixels.len(),
        };
        let decoded = sys::WebPDecode(webp.as_ptr(), webp.len(), &mut config);
        sys::WebPFreeDecBuffer(&mut config.output);
        status(decoded)?;
        Ok(Decoded {
            pixels,
            width,
            height,
            channels,
        })
    }
}

/// libwebp's verdict as ours: incomplete data is a cut file, so corrupt like a bad bitstream.
fn status(code: sys::VP8StatusCode) -> Result<(), WatermarkError> {
    use sys::VP8StatusCode as S;
    match code {
        S::VP8_STATUS_OK => Ok(()),
        S::VP8_STATUS_NOT_ENOUGH_DATA | S::VP8_STATUS_SUSPENDED => {
            Err(WatermarkError::Corrupt("truncated WebP".to_owned()))
        }
        S::VP8_STATUS_UNSUPPORTED_FEATURE => Err(WatermarkError::Unsupported(
            "a WebP feature libwebp does not read",
        )),
        S::VP8_STATUS_OUT_OF_MEMORY => Err(WatermarkError::TooLarge(
            "libwebp ran out of memory decoding".to_owned(),
        )),
        other => Err(WatermarkError::Corrupt(format!(
            "WebP: libwebp says {other:?}"
        ))),
    }
}

/// Why libwebp refused.
#[derive(Debug, thiserror::Error)]
#[error("libwebp could not encode the image ({0})")]
pub(crate) struct EncodeError(String);

/// Encodes 8-bit RGB or RGBA pixels (`channels` 3 or 4) as `kind`, with `icc` in a VP8X
/// container when given. A lossy copy is measured against `pixels` outside `mark_box` and
/// encoded again when it falls short of [`TARGET_PSNR_DB`] ([`Encoding`]).
pub(crate) fn encode<'a>(
    pixels: impl Into<std::borrow::Cow<'a, [u8]>>,
    width: u32,
    height: u32,
    channels: usize,
    kind: WebPKind,
    icc: Option<&[u8]>,
    mark_box: Option<MarkBox>,
) -> Result<Vec<u8>, EncodeError> {
    let pixels = pixels.into();
    let stride = width as usize * channels;
    if !matches!(channels, 3 | 4) || pixels.len() != stride * height as usize {
        return Err(EncodeError(format!(
            "{channels} channels, {} bytes",
            pixels.len()
        )));
    }
    let picture = Picture {
        pixels: &pixels,
        width,
        height,
        channels,
    };
    let bitstream = match kind {
        WebPKind::Lossless => {
            let mut imported = Imported::new(&picture, Encoding::Lossless)?;
            // The picture holds its own ARGB copy now: the caller's pixels (3-4 bytes a pixel,
            // 36-48 MB at 12 MP) go before the encoder's buffers are allocated, when given.
            drop(pixels);
            imported.encode()?
        }
        WebPKind::Lossy {
            quality,
            source_bytes,
            colour_bytes,
        } => encode_lossy(&picture, quality, (source_bytes, colour_bytes), mark_box)?,
    };
    Ok(match icc {
        Some(profile) if !profile.is_empty() => {
            with_icc(&bitstream, profile, width, height, channels == 4)
        }
        _ => bitstream,
    })
}

/// The pixels an encode is asked for.
struct Picture<'a> {
    pixels: &'a [u8],
    width: u32,
    height: u32,
    channels: usize,
}

/// PSNR (dB, over RGBA) a lossy copy keeps against the stamped pixels outside the mark.
/// One generation of VP8 at the source's quality keeps 37-53 dB on photographs, but 28-31 dB
/// on hard synthetic edges and tiny noise (issue 21, finding 6): most of that is the colour
/// conversion (RGB averaged into 4:2:0 and upsampled again blurs the chroma of every edge a
/// second time), which no quantiser brings back.
const TARGET_PSNR_DB: f64 = 36.0;

/// Bytes a retry may spend: 8/5 of the source's colour data, or this much for a tiny
/// picture, whose few hundred bytes nobody waits for.
const RETRY_BYTES_FLOOR: usize = 1024;

/// Pictures up to this many pixels are written losslessly when lossy misses the target: a
/// handful of macroblocks, where a lossless copy is a few hundred bytes.
const TINY_PIXELS: u64 = 32 * 32;

/// Largest picture a retry is made for: the sharp conversion holds about 11 bytes a pixel
/// more while it runs (22 MB here, a third of what a 12 MP photo's one encode holds), and a
/// 12 MP synthetic picture took 1.0 s and 79 MB once, 3.6 s and 189 MB with retries. Above it
/// the first copy stands, as it did before retries.
const RETRY_MAX_PIXELS: u64 = 2_000_000;

/// How one encode is asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    /// At `quality`; aimed at `target_bytes` by libwebp's size search when given; with
    /// libwebp's iterative ("sharp") RGB to YUV conversion, which keeps chroma edges (and
    /// needs the picture as ARGB plus its own buffers: about 11 bytes a pixel more while it
    /// runs, so only a retry asks for it).
    Lossy {
        quality: f32,
        target_bytes: Option<usize>,
        sharp_yuv: bool,
    },
    Lossless,
}

/// The lossy copy: at the estimated quality (size-searched when that misses the source's size
/// by far), then, only when it keeps less than [`TARGET_PSNR_DB`], again with the sharp colour
/// conversion, and once more finer (or losslessly for a tiny picture), keeping the best that
/// fits in the retry budget. Photographs pass at the first encode; pictures above
/// [`RETRY_MAX_PIXELS`] keep it whatever it measures.
fn encode_lossy(
    picture: &Picture,
    quality: f32,
    (source_bytes, source_colour_bytes): (usize, usize),
    mark_box: Option<MarkBox>,
) -> Result<Vec<u8>, EncodeError> {
    let plain = Encoding::Lossy {
        quality,
        target_bytes: None,
        sharp_yuv: false,
    };
    let mut first = encode_bitstream(picture, plain)?;
    let written = compressed_bytes(&first);
    // The estimate misses on files whose segments libwebp would not have chosen (one segment
    // near lossless, the rest at the coarsest quantiser): then libwebp's own size search aims
    // at the source's size, the one measure of its quality left.
    let far = written * 4 < source_bytes * 3 || written * 4 > source_bytes * 5;
    if source_bytes > 0 && far {
        tracing::debug!(
            source_bytes,
            written,
            "the estimated quality missed the source's size: searching for it"
        );
        first = encode_bitstream(
            picture,
            Encoding::Lossy {
                quality,
                target_bytes: Some(source_bytes),
                sharp_yuv: false,
            },
        )?;
    }
    let Some(first_psnr) = psnr_outside(&first, picture, mark_box) else {
        return Ok(first);
    };
    let pixels = u64::from(picture.width) * u64::from(picture.height);
    if first_psnr >= TARGET_PSNR_DB || pixels > RETRY_MAX_PIXELS {
        return Ok(first);
    }
    // Alpha is coded the same way every time (losslessly), so the budget is the colour's: up to
    // 8/5 of the source's, or of the first copy's when that is larger (colour under
    // semi-transparent pixels the source's encoder flattened comes back sharper).
    let budget = source_colour_bytes
        .max(colour_bytes(&first))
        .saturating_mul(8)
        / 5;
    let budget = budget.max(RETRY_BYTES_FLOOR);
    let tiny = pixels <= TINY_PIXELS;
    let finer = quality + (100.0 - quality) / 2.0;
    let retries = [
        Encoding::Lossy {
            quality,
            target_bytes: None,
            sharp_yuv: true,
        },
        if tiny {
            Encoding::Lossless
        } else {
            Encoding::Lossy {
                quality: finer,
                target_bytes: None,
                sharp_yuv: true,
            }
        },
    ];
    let (mut best, mut best_psnr) = (first, first_psnr);
    for how in retries {
        let candidate = encode_bitstream(picture, how)?;
        // A lossless copy has no VP8 chunk: all of it counts.
        let bytes = match how {
            Encoding::Lossless => compressed_bytes(&candidate),
            Encoding::Lossy { .. } => colour_bytes(&candidate),
        };
        let psnr = if how == Encoding::Lossless {
            f64::INFINITY
        } else {
            psnr_outside(&candidate, picture, mark_box).unwrap_or(0.0)
        };
        tracing::debug!(
            ?how,
            bytes,
            budget,
            psnr,
            best_psnr,
            "the lossy copy missed its quality: encoded again"
        );
        if bytes <= budget && psnr > best_psnr {
            (best, best_psnr) = (candidate, psnr);
            if psnr >= TARGET_PSNR_DB {
                break;
            }
        }
    }
    Ok(best)
}

/// PSNR (dB, over RGBA with opaque alpha for RGB, as the conformance suite counts) of a lossy
/// bitstream's pixels against `picture` outside `mark_box`, as a viewer decodes them
/// (libwebp's "fancy" chroma upsampling), or `None` when libwebp cannot read it back. The bitstream is decoded to YUV 4:2:0 (1.5 bytes a pixel, less than the encoder
/// held) and turned into RGB a row at a time, so measuring adds no full-size buffer. Alpha
/// is coded losslessly (libwebp's default `alpha_quality` 100) and counts as exact; pixels
/// transparent in `picture` count as exact too (their colour is not shown, and libwebp
/// flattens it).
fn psnr_outside(webp: &[u8], picture: &Picture, mark_box: Option<MarkBox>) -> Option<f64> {
    let (mut w, mut h, mut stride, mut uv_stride) = (0, 0, 0, 0);
    let (mut u, mut v) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: libwebp allocates Y, U and V in one block starting at the returned pointer
    // (`h` rows of `stride`, then `(h + 1) / 2` rows of `uv_stride` for each of U and V),
    // read here only within those bounds and freed with `WebPFree` before returning.
    unsafe {
        let y = sys::WebPDecodeYUV(
            webp.as_ptr(),
            webp.len(),
            &mut w,
            &mut h,
            &mut u,
            &mut v,
            &mut stride,
            &mut uv_stride,
        );
        if y.is_null() {
            return None;
        }
        let (Ok(wu), Ok(hu), Ok(s), Ok(uvs)) = (
            usize::try_from(w),
            usize::try_from(h),
            usize::try_from(stride),
            usize::try_from(uv_stride),
        ) else {
            sys::WebPFree(y.cast());
            return None;
        };
        let measured = if (wu, hu) == (picture.width as usize, picture.height as usize) {
            let uv_rows = hu.div_ceil(2);
            let planes = Yuv420 {
                y: std::slice::from_raw_parts(y, s * (hu - 1) + wu),
                u: std::slice::from_raw_parts(u, uvs * (uv_rows - 1) + wu.div_ceil(2)),
                v: std::slice::from_raw_parts(v, uvs * (uv_rows - 1) + wu.div_ceil(2)),
                stride: s,
                uv_stride: uvs,
            };
            Some(planes.psnr_against(picture, mark_box))
        } else {
            None
        };
        sys::WebPFree(y.cast());
        measured
    }
}

/// A decoded VP8 frame's planes.
struct Yuv420<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    stride: usize,
    uv_stride: usize,
}

impl Yuv420<'_> {
    fn psnr_against(&self, picture: &Picture, mark_box: Option<MarkBox>) -> f64 {
        let (w, h, channels) = (
            picture.width as usize,
            picture.height as usize,
            picture.channels,
        );
        let (uv_w, uv_h) = (w.div_ceil(2), h.div_ceil(2));
        // One row of chroma mixed vertically (weights out of 4), reused: memory by the width.
        let (mut mixed_u, mut mixed_v) = (vec![0u16; uv_w], vec![0u16; uv_w]);
        let (mut sq, n) = (0u64, 4 * (w * h) as u64);
        for y in 0..h {
            let (r0, r1, wy0, wy1) = upsampling_taps(y, uv_h);
            for (plane, mixed) in [(self.u, &mut mixed_u), (self.v, &mut mixed_v)] {
                let (top, bottom) = (
                    &plane[r0 * self.uv_stride..][..uv_w],
                    &plane[r1 * self.uv_stride..][..uv_w],
                );
                for ((m, t), b) in mixed.iter_mut().zip(top).zip(bottom) {
                    *m = (wy0 * u32::from(*t) + wy1 * u32::from(*b)) as u16;
                }
            }
            let luma = &self.y[y * self.stride..][..w];
            let row = &picture.pixels[y * w * channels..][..w * channels];
            let in_mark_rows = mark_box.filter(|b| (b.y0..b.y1).contains(&(y as u32)));
            for (x, (px, &luma)) in row.chunks_exact(channels).zip(luma).enumerate() {
                if in_mark_rows.is_some_and(|b| (b.x0..b.x1).contains(&(x as u32)))
                    || (channels == 4 && px[3] == 0)
                {
                    continue;
                }
                let (c0, c1, wx0, wx1) = upsampling_taps(x, uv_w);
                let chroma = |mixed: &[u16]| {
                    ((wx0 * u32::from(mixed[c0]) + wx1 * u32::from(mixed[c1]) + 8) >> 4) as i32
                };
                let rgb = yuv_to_rgb(i32::from(luma), chroma(&mixed_u), chroma(&mixed_v));
                for (a, b) in px.iter().zip(rgb) {
                    let d = u64::from(a.abs_diff(b));
                    sq += d * d;
                }
            }
        }
        if sq == 0 {
            return f64::INFINITY;
        }
        10.0 * (255.0f64 * 255.0 * n as f64 / sq as f64).log10()
    }
}

/// The two chroma samples (and their weights, out of 4) that libwebp's fancy upsampler mixes
/// for luma position `i`: chroma sample `j` sits at luma `2j + 1/2`, clamped at the edges.
fn upsampling_taps(i: usize, len: usize) -> (usize, usize, u32, u32) {
    if i == 0 {
        return (0, 0, 4, 0);
    }
    let j = (i - 1) / 2;
    let next = (j + 1).min(len - 1);
    if i % 2 == 1 {
        (j, next, 3, 1)
    } else {
        (j, next, 1, 3)
    }
}

/// libwebp's YUV to RGB (`VP8YuvToRgb` in `src/dsp/yuv.h`: BT.601, 14-bit fixed point).
fn yuv_to_rgb(y: i32, u: i32, v: i32) -> [u8; 3] {
    let mult_hi = |v: i32, coeff: i32| (v * coeff) >> 8;
    let clip = |v: i32| (v >> 6).clamp(0, 255) as u8;
    let luma = mult_hi(y, 19077);
    [
        clip(luma + mult_hi(v, 26149) - 14234),
        clip(luma - mult_hi(u, 6419) - mult_hi(v, 13320) + 8708),
        clip(luma + mult_hi(u, 33050) - 17685),
    ]
}

fn encode_bitstream(picture: &Picture, how: Encoding) -> Result<Vec<u8>, EncodeError> {
    Imported::new(picture, how)?.encode()
}

/// A libwebp picture holding its own copy of the pixels (ARGB for lossless output and the
/// sharp conversion, else YUV 4:2:0), freed when dropped. Once it exists the caller's pixels
/// are no longer needed by the encoder: a lossless copy frees them before `WebPEncode`, whose
/// buffers (about 25 bytes a pixel) are most of the peak.
struct Imported {
    picture: sys::WebPPicture,
    /// How it is to be encoded: what it was imported as (ARGB or YUV) depends on it.
    how: Encoding,
}

impl Imported {
    fn new(picture: &Picture, how: Encoding) -> Result<Self, EncodeError> {
        let Picture {
            pixels,
            width,
            height,
            channels,
        } = *picture;
        let dims = |v: u32| i32::try_from(v).map_err(|_| EncodeError(format!("dimension {v}")));
        let (w, h) = (dims(width)?, dims(height)?);
        let stride = dims(width * channels as u32)?;
        let argb = match how {
            Encoding::Lossless => true,
            Encoding::Lossy { sharp_yuv, .. } => sharp_yuv,
        };
        // SAFETY: the picture is initialised by libwebp's own init function before use and
        // only borrows `pixels` while they are imported (copied into its own planes); the
        // guard frees it on every path from here on.
        unsafe {
            let mut picture = std::mem::MaybeUninit::<sys::WebPPicture>::uninit();
            if sys::WebPPictureInitInternal(
                picture.as_mut_ptr(),
                sys::WEBP_ENCODER_ABI_VERSION as i32,
            ) == 0
            {
                return Err(EncodeError("picture version".into()));
            }
            let mut imported = Imported {
                picture: picture.assume_init(),
                how,
            };
            let picture = &mut imported.picture;
            // libwebp converts to YUV while importing unless the picture is kept as ARGB; the
            // sharp conversion runs only from ARGB, inside `WebPEncode`.
            picture.use_argb = i32::from(argb);
            picture.width = w;
            picture.height = h;
            let done = if channels == 4 {
                sys::WebPPictureImportRGBA(picture, pixels.as_ptr(), stride)
            } else {
                sys::WebPPictureImportRGB(picture, pixels.as_ptr(), stride)
            };
            if done == 0 {
                return Err(EncodeError("out of memory importing the pixels".into()));
            }
            Ok(imported)
        }
    }

    /// Encodes the picture as it was imported to be.
    fn encode(&mut self) -> Result<Vec<u8>, EncodeError> {
        let config = config(self.how)?;
        // SAFETY: the memory writer is initialised by libwebp, its buffer copied out before
        // it is cleared; the picture is ours and valid until the guard drops.
        unsafe {
            let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::uninit();
            sys::WebPMemoryWriterInit(writer.as_mut_ptr());
            let mut writer = writer.assume_init();
            let picture = &mut self.picture;
            picture.writer = Some(sys::WebPMemoryWrite);
            picture.custom_ptr = (&mut writer as *mut sys::WebPMemoryWriter).cast::<c_void>();
            let ok = sys::WebPEncode(&config, picture) != 0;
            let error = picture.error_code;
            picture.writer = None;
            picture.custom_ptr = std::ptr::null_mut();
            let out = if ok && !writer.mem.is_null() {
                Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
            } else {
                Err(EncodeError(format!("{error:?}")))
            };
            sys::WebPMemoryWriterClear(&mut writer);
            out
        }
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        // SAFETY: initialised by `WebPPictureInitInternal`; freeing an empty picture is a no-op.
        unsafe { sys::WebPPictureFree(&mut self.picture) }
    }
}

/// libwebp's settings for `how`.
fn config(how: Encoding) -> Result<sys::WebPConfig, EncodeError> {
    let (preset_quality, lossless, sharp_yuv) = match how {
        Encoding::Lossy {
            quality, sharp_yuv, ..
        } => (quality, false, sharp_yuv),
        Encoding::Lossless => (75.0, true, false),
    };
    // SAFETY: the config is initialised by libwebp's own init function before it is read.
    unsafe {
        let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::uninit();
        if sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            preset_quality,
            sys::WEBP_ENCODER_ABI_VERSION as i32,
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
        } else if let Encoding::Lossy { target_bytes, .. } = how {
            config.method = LOSSY_METHOD;
            config.use_sharp_yuv = i32::from(sharp_yuv);
            if let Some(target) = target_bytes {
                config.target_size = i32::try_from(target).unwrap_or(i32::MAX);
                config.pass = SIZE_SEARCH_PASSES;
            }
        }
        if sys::WebPValidateConfig(&config) == 0 {
            return Err(EncodeError("invalid config".into()));
        }
        Ok(config)
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
            let out = encode(
                &px,
                96,
                64,
                3,
                WebPKind::Lossy {
                    quality: q,
                    source_bytes: 0,
                    colour_bytes: 0,
                },
                None,
                None,
            )
            .unwrap();
            let WebPKind::Lossy { quality, .. } = kind(&out) else {
                panic!("lossy read as lossless");
            };
            // libwebp modulates each segment's quantiser by its texture; weighted by the
            // segments' macroblock counts the modulation cancels out, up to the quantisers'
            // rounding and clipping.
            println!("wrote {q}, read {quality:.1}");
            assert!(
                quality <= q + 3.0 && quality >= q - 3.0,
                "wrote {q}, read {quality}"
            );
        }
        let out = encode(&px, 96, 64, 3, WebPKind::Lossless, None, None).unwrap();
        assert_eq!(kind(&out), WebPKind::Lossless);
    }

    #[test]
    fn lossless_is_exact_and_lossy_is_close_with_alpha_and_icc_kept() {
        use image::ImageDecoder;
        let px = gradient(40, 30, 4);
        let icc = b"fake profile, odd length".to_vec();
        for kind in [
            WebPKind::Lossless,
            WebPKind::Lossy {
                quality: 90.0,
                source_bytes: 0,
                colour_bytes: 0,
            },
        ] {
            let out = encode(&px, 40, 30, 4, kind, Some(&icc), None).unwrap();
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
        let mut out = encode(
            &px,
            32,
            32,
            3,
            WebPKind::Lossy {
                quality: 60.0,
                source_bytes: 0,
                colour_bytes: 0,
            },
            None,
            None,
        )
        .unwrap();
        out.truncate(30);
        assert!(matches!(
            kind(&out),
            WebPKind::Lossy { quality, .. } if quality == DEFAULT_QUALITY
        ));
        assert!(matches!(
            kind(b"RIFF"),
            WebPKind::Lossy { quality, .. } if quality == DEFAULT_QUALITY
        ));
    }

    #[test]
    fn the_quality_measured_from_yuv_is_what_libwebp_decodes() {
        let (w, h) = (45u32, 31u32);
        for channels in [3, 4] {
            let mut px = gradient(w, h, channels);
            if channels == 4 {
                px[3] = 0;
            }
            let picture = Picture {
                pixels: &px,
                width: w,
                height: h,
                channels,
            };
            let lossy = Encoding::Lossy {
                quality: 40.0,
                target_bytes: None,
                sharp_yuv: false,
            };
            let out = encode_bitstream(&picture, lossy).unwrap();
            let mark_box = MarkBox {
                x0: 30,
                y0: 20,
                x1: 45,
                y1: 31,
            };
            let measured = psnr_outside(&out, &picture, Some(mark_box)).unwrap();
            let decoded = decode(&out, &Limits::default()).unwrap();
            assert_eq!(decoded.channels, channels);
            let (mut sq, mut n) = (0u64, 0u64);
            for (i, (a, b)) in px
                .chunks(channels)
                .zip(decoded.pixels.chunks(channels))
                .enumerate()
            {
                n += 4;
                let (x, y) = ((i as u32) % w, (i as u32) / w);
                let in_mark = (30..45).contains(&x) && (20..31).contains(&y);
                if in_mark || (channels == 4 && a[3] == 0) {
                    continue;
                }
                for (p, q) in a.iter().zip(b) {
                    sq += u64::from(p.abs_diff(*q)).pow(2);
                }
            }
            let expected = 10.0 * (255.0f64 * 255.0 * n as f64 / sq as f64).log10();
            println!("{channels} channels: measured {measured:.3} dB, libwebp {expected:.3} dB");
            assert!(
                (measured - expected).abs() < 0.05,
                "measured {measured}, libwebp's decode {expected}"
            );
        }
    }
}
