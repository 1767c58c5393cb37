//! PDQ, the perceptual hash industry hash-sharing programmes exchange (Meta's ThreatExchange,
//! `pdq/cpp/hashing/pdqhashing.cpp`), for the blocklist: a picture re-encoded, resized or
//! converted between formats hashes within a few bits of the original, and distinct photographs
//! about half the bits (128) apart.
//!
//! The algorithm, as the reference computes it from an image's pixels:
//! 1. luminance, `0.299 R + 0.587 G + 0.114 B`, as f32;
//! 2. two passes of a box ("Jarosz") filter along rows then columns, each window
//!    `(old + 2 * 64 - 1) / (2 * 64)` wide, then decimation to 64 x 64 by sampling the centre of
//!    each cell (a 64 x 64 image is its own downsample);
//! 3. the 16 x 16 lowest non-DC frequencies of its DCT-II (`D A Dᵀ`, `D[i][j] = sqrt(2/64)
//!    cos(pi / 128 (i + 1) (2 j + 1))`);
//! 4. bit `16 i + j` set where coefficient `(i, j)` exceeds their median; written as 64 hex digits,
//!    the 16-bit word of bits 240..255 first (the reference's `Hash256::format`).
//!
//! Every step is the reference's f32 arithmetic in the reference's order, so the same pixels give
//! the reference's bits (ThreatExchange's own test of a port): checked bit-exact against its
//! C++ on scikit-image's eighteen photographs (`photographs`) and on all twelve of its own
//! `bridge-mods` images. The filter runs in place, eight rows or a whole row of columns per
//! vector step, so a 12 MP photograph needs its pixels and one f32 plane (88 MB peak, was 161):
//! 168 ms of CPU for [`hash_image`] (47 of them decoding), 350 ms with its two crops (was 1.5
//! s); 25 and 54 ms at 1080p.
//!
//! Two deliberate differences from the reference's photo hasher: every pixel is hashed (its
//! tools first shrink anything over 512 px, a speed-up that moves hashes 4 to 12 bits), and EXIF
//! orientation is applied (the reference ignores it): what a viewer sees is what is blocked, so
//! a phone photo whose turn was baked into the pixels on re-upload still matches.
//!
//! What PDQ does not survive: resizing a picture of fine repeating detail (a brick wall, a page
//! of small print) moves its hash 28 to 64 bits at any scale, the detail aliasing differently
//! onto the 64 x 64 grid; photographs of subjects stay within 26 bits at every scale from 95 %
//! down to 25 % (but the motion-blurred clock, PDQ quality 34, at half size: 32).
//! Resampling every image to 512 x 512 first (a Catmull-Rom or triangle filter) would catch
//! those too (90 % resizes within 6 bits), at 6 to 14 bits from the reference's published
//! hashes instead of 0: a choice between exchange fidelity and texture robustness, not made here.
//!
//! Why our own rather than a crate, measured on the same photographs and variants, 12 MP CPU
//! time including decoding, stripped release size over decoding alone:
//! - `pdqhash` 0.1: the same algorithm (bit-identical to ours) on `image` 0.23, so a second copy
//!   of every codec (+1.07 MB) and 618 ms (its 512 px shortcut: 180 ms, hashes 4 to 12 bits off).
//! - `yume-pdq` 1.1: 107 ms, and resizes are robust (it needs a 512 x 512 grey input), but its
//!   own SIMD kernels are not the reference (its authors: 4 to 11 bits off, "do not submit" to
//!   PDQ databases), it builds GMP and MPFR from C source at compile time (a `rug` build
//!   dependency: `m4` on every builder, 20 minutes here), and it does not compile against
//!   today's `generic-array` 1.4 without pinning 1.2.
//! - `image_hasher` 3 (pHash, dHash, blockhash 256-bit): not PDQ, so nothing exchangeable;
//!   +1.07 MB (`rustdct`, `rustfft`); blockhash put two distinct photographs 42 bits apart.
//!
//! Ours: ~300 lines on the decoder the publisher already links: +57 KB in the watermark
//! function's release binary (8.45 -> 8.51 MB; the first version of this module took +187 KB).

/// A 256-bit perceptual hash (PDQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqHash(pub [u8; 32]);

/// Chunks of 16 bits a hash is filed under in the blocklist's multi-index.
pub const CHUNKS: usize = 16;
/// Two hashes at most this far apart are the same picture: the reference's recommended match
/// threshold, and the most the blocklist's 16 chunks find with one bit of slack each. On
/// scikit-image's photographs, JPEG at quality 70 and PNG/JPEG conversions move at most 4 bits,
/// 90 % resizes 18 (but see the module docs), and distinct photographs are 100 bits or more
/// apart (mean 123).
pub const MATCH_DISTANCE: u32 = 31;
/// Images smaller than this on a side are not hashed (the reference's minimum).
const MIN_SIDE: u32 = 5;
/// The downsampled side, and the number of DCT rows/columns kept.
const SIDE: usize = 64;
const KEPT: usize = 16;

impl PdqHash {
    /// Hamming distance.
    pub fn distance(&self, other: &PdqHash) -> u32 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// 64 lowercase hex digits, in the reference's order.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<PdqHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(PdqHash(out))
    }

    /// The `i`-th 16-bit chunk (`i` in `0..CHUNKS`).
    pub fn chunk(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.0[2 * i], self.0[2 * i + 1]])
    }

    /// Sets bit `k` as the reference numbers them (`16 i + j` for coefficient `(i, j)`).
    fn set_bit(&mut self, k: usize) {
        let word = 15 - k / 16; // the word of bits 240..255 is written first
        let byte = 2 * word + usize::from(k % 16 < 8);
        self.0[byte] |= 1 << (k % 8);
    }
}

/// Why an image was not hashed (the caller hashes its bytes instead).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Not an image we hash, or corrupt.
    #[error("not a hashable image: {0}")]
    Unreadable(String),
    /// More pixels than the limit, refused from its header.
    #[error("{0} pixels, over the limit")]
    TooLarge(u64),
    /// Too small to carry a picture.
    #[error("{0} x {1} is too small to hash")]
    TooSmall(u32, u32),
}

/// Margins cut off each side for the crop variants a blocklisted picture is also filed under:
/// PDQ moves 28 to 96 bits when 2 % is cropped off each side of a photograph (more than
/// [`MATCH_DISTANCE`]), so a takedown blocks the picture's centre crops too, and a cropped
/// re-upload lands near one of them (within 8 bits on our photographs, 30 for a page of print).
pub const CROP_MARGINS: [f64; 2] = [0.02, 0.04];

/// The PDQ hash of an image file's bytes: JPEG, PNG, WebP, and a GIF by its first frame (the
/// format sniffed from the bytes), as displayed (EXIF orientation applied). Its size is checked
/// from the header before anything is decoded.
pub fn hash_image(bytes: &[u8], max_pixels: u64) -> Result<PdqHash, HashError> {
    let rgb = decode(bytes, max_pixels)?;
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok(hash_region(
        rgb.as_raw(),
        w,
        Region::whole(w, h),
        &mut Vec::new(),
    ))
}

/// [`hash_image`], and the hashes of its centre crops by [`CROP_MARGINS`] (one decode).
pub fn hash_image_and_crops(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(PdqHash, Vec<PdqHash>), HashError> {
    let rgb = decode(bytes, max_pixels)?;
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut luma = Vec::new();
    let whole = hash_region(rgb.as_raw(), w, Region::whole(w, h), &mut luma);
    let crops = CROP_MARGINS
        .iter()
        .filter_map(|&margin| Region::centre(w, h, margin))
        .map(|crop| hash_region(rgb.as_raw(), w, crop, &mut luma))
        .collect();
    Ok((whole, crops))
}

/// The PDQ hash of decoded 8-bit RGB pixels (row-major, `width * height * 3` bytes).
pub fn hash_rgb(rgb: &[u8], width: usize, height: usize) -> PdqHash {
    hash_region(rgb, width, Region::whole(width, height), &mut Vec::new())
}

/// The image's pixels as displayed, once its size is checked from the header.
fn decode(bytes: &[u8], max_pixels: u64) -> Result<image::RgbImage, HashError> {
    use image::ImageDecoder;
    let unreadable = |e: image::ImageError| HashError::Unreadable(e.to_string());
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| HashError::Unreadable(e.to_string()))?
        .into_decoder()
        .map_err(unreadable)?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(HashError::TooLarge(pixels));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(HashError::TooSmall(w, h));
    }
    // An unreadable tag leaves the pixels as stored, as a viewer shows them.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // A GIF decodes to its first frame.
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// A rectangle of an image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

impl Region {
    fn whole(width: usize, height: usize) -> Self {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// The image less `margin` of its width and height off each side; `None` where that cuts
    /// nothing or leaves too little to hash.
    fn centre(width: usize, height: usize, margin: f64) -> Option<Self> {
        let dx = (width as f64 * margin) as usize;
        let dy = (height as f64 * margin) as usize;
        let crop = Region {
            x: dx,
            y: dy,
            width: width.checked_sub(2 * dx)?,
            height: height.checked_sub(2 * dy)?,
        };
        let big_enough = crop.width >= MIN_SIDE as usize && crop.height >= MIN_SIDE as usize;
        ((dx, dy) != (0, 0) && big_enough).then_some(crop)
    }
}

/// The reference's luma weights.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];
/// Box passes along rows then columns; two make a tent filter (Jarosz).
const JAROSZ_PASSES: usize = 2;

/// The PDQ hash of `region` of RGB pixels `stride` pixels a row, with `luma` as the working
/// plane (reused across calls).
fn hash_region(rgb: &[u8], stride: usize, region: Region, luma: &mut Vec<f32>) -> PdqHash {
    let Region {
        x,
        y,
        width,
        height,
    } = region;
    luma.clear();
    luma.resize(width * height, 0.0);
    for (r, out) in luma.chunks_exact_mut(width).enumerate() {
        let row = &rgb[((y + r) * stride + x) * 3..((y + r) * stride + x + width) * 3];
        for (i, luma) in out.iter_mut().enumerate() {
            *luma = LUMA[0] * f32::from(row[3 * i])
                + LUMA[1] * f32::from(row[3 * i + 1])
                + LUMA[2] * f32::from(row[3 * i + 2]);
        }
    }
    if (width, height) != (SIDE, SIDE) {
        let (along_rows, along_cols) = (window(width), window(height));
        for _ in 0..JAROSZ_PASSES {
            box_along_rows(luma, width, along_rows);
            box_along_cols(luma, width, along_cols);
        }
    }
    let mut small = [[0f32; SIDE]; SIDE];
    for (i, row) in small.iter_mut().enumerate() {
        let y = (((i as f64 + 0.5) * height as f64) / SIDE as f64) as usize;
        for (j, cell) in row.iter_mut().enumerate() {
            let x = (((j as f64 + 0.5) * width as f64) / SIDE as f64) as usize;
            *cell = luma[y * width + x];
        }
    }
    bits(&dct_16x16(&small))
}

/// The box filter's window for a dimension of `old` pixels (the reference's
/// `computeJaroszFilterWindowSize`): half of a 64th, two passes making a whole one.
fn window(old: usize) -> usize {
    old.div_ceil(2 * SIDE)
}

/// The reference's `box1DFloat` phases for `len` samples: how many samples are added before
/// the first write, written while the window grows, written with the full window, and written
/// while it shrinks at the end. They write `len` samples in all (the window never exceeds
/// `len`), and the sample written at `o` no longer needs the input at `o - lag` once the
/// window has moved past it.
struct Phases {
    lead: usize,
    growing: usize,
    full: usize,
    shrinking: usize,
}

impl Phases {
    fn new(len: usize, window: usize) -> Self {
        let half = (window + 2) / 2;
        Phases {
            lead: half - 1,
            growing: window - half + 1,
            full: len - window,
            shrinking: half - 1,
        }
    }

    /// How far behind the write the window's left edge is: the input rows kept aside.
    fn lag(&self) -> usize {
        self.growing
    }
}

/// Rows filtered at once: their samples interleaved, so that each step of the filter is one
/// vector operation over them rather than a chain of dependent additions along one row.
const LANES: usize = 8;

/// The reference's `box1DFloat` along every row, in place, [`LANES`] rows at a time.
fn box_along_rows(luma: &mut [f32], width: usize, window: usize) {
    let mut lanes = vec![0f32; LANES * width];
    let mut scratch = BoxScratch::default();
    for block in luma.chunks_mut(LANES * width) {
        let rows = block.len() / width;
        for r in 0..rows {
            for x in 0..width {
                lanes[x * LANES + r] = block[r * width + x];
            }
        }
        box_interleaved(&mut lanes, LANES, window, &mut scratch);
        for r in 0..rows {
            for x in 0..width {
                block[r * width + x] = lanes[x * LANES + r];
            }
        }
    }
}

/// The reference's `box1DFloat` down every column, in place: the rows are already the steps
/// of `width` interleaved columns.
fn box_along_cols(luma: &mut [f32], width: usize, window: usize) {
    box_interleaved(luma, width, window, &mut BoxScratch::default());
}

/// Running sums, and inputs kept until the window leaves them.
#[derive(Default)]
struct BoxScratch {
    sums: Vec<f32>,
    ring: Vec<f32>,
}

/// The reference's `box1DFloat` on `n` sequences at once, in place: `data` holds their samples
/// step by step (`n` samples a step). Each sequence gets the reference's additions in the
/// reference's order, so its floats are the reference's bit for bit; the steps are read and
/// written in memory order, `n` lanes a vector operation. A step's output overwrites its
/// input before the window has left it, so inputs wait in a ring of `lag` steps until their
/// subtraction.
#[allow(clippy::needless_range_loop)] // plain indexing: test builds run this unoptimised
fn box_interleaved(data: &mut [f32], n: usize, window: usize, scratch: &mut BoxScratch) {
    let p = Phases::new(data.len() / n, window);
    let lag = p.lag();
    let BoxScratch { sums, ring } = scratch;
    sums.clear();
    sums.resize(n, 0.0);
    ring.resize(lag * n, 0.0);
    let mut count = 0f32;
    let add = |sums: &mut [f32], data: &[f32], step: usize| {
        let input = &data[step * n..(step + 1) * n];
        for k in 0..n {
            sums[k] += input[k];
        }
    };
    let sub = |sums: &mut [f32], ring: &[f32], step: usize| {
        let input = &ring[(step % lag) * n..(step % lag + 1) * n];
        for k in 0..n {
            sums[k] -= input[k];
        }
    };
    let write = |sums: &[f32], data: &mut [f32], ring: &mut [f32], step: usize, count: f32| {
        let out = &mut data[step * n..(step + 1) * n];
        let kept = &mut ring[(step % lag) * n..(step % lag + 1) * n];
        for k in 0..n {
            kept[k] = out[k];
            out[k] = sums[k] / count;
        }
    };
    let (mut li, mut ri, mut oi) = (0, 0, 0);
    for _ in 0..p.lead {
        add(sums, data, ri);
        count += 1.0;
        ri += 1;
    }
    for _ in 0..p.growing {
        add(sums, data, ri);
        count += 1.0;
        write(sums, data, ring, oi, count);
        ri += 1;
        oi += 1;
    }
    for _ in 0..p.full {
        add(sums, data, ri);
        sub(sums, ring, li);
        write(sums, data, ring, oi, count);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p.shrinking {
        sub(sums, ring, li);
        count -= 1.0;
        write(sums, data, ring, oi, count);
        li += 1;
        oi += 1;
    }
}

/// `D[i][j] = sqrt(2/64) cos(pi / 128 (i + 1) (2 j + 1))`, i < 16, j < 64: the scale rounded to
/// f32 and the product to f32, as the reference's `dct_matrix_64` is computed.
fn dct_matrix() -> [[f32; SIDE]; KEPT] {
    let mut d = [[0f32; SIDE]; KEPT];
    let scale = (2.0 / SIDE as f64).sqrt() as f32;
    for (i, row) in d.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let angle = std::f64::consts::PI / 2.0 / SIDE as f64
                * (i as f64 + 1.0)
                * (2.0 * j as f64 + 1.0);
            *cell = (f64::from(scale) * angle.cos()) as f32;
        }
    }
    d
}

/// `B = (D A) Dᵀ`, 16 x 16, each sum accumulated in the reference's order.
fn dct_16x16(a: &[[f32; SIDE]; SIDE]) -> [f32; KEPT * KEPT] {
    let d = dct_matrix();
    let mut t = [[0f32; SIDE]; KEPT];
    for i in 0..KEPT {
        for j in 0..SIDE {
            let mut sum = 0f32;
            for k in 0..SIDE {
                sum += d[i][k] * a[k][j];
            }
            t[i][j] = sum;
        }
    }
    let mut b = [0f32; KEPT * KEPT];
    for i in 0..KEPT {
        for j in 0..KEPT {
            let mut sum = 0f32;
            for k in 0..SIDE {
                sum += t[i][k] * d[j][k];
            }
            b[i * KEPT + j] = sum;
        }
    }
    b
}

/// Bit `k` set where coefficient `k` exceeds the median (the reference's Torben median: the
/// lower middle value).
fn bits(coefficients: &[f32; KEPT * KEPT]) -> PdqHash {
    let mut sorted = *coefficients;
    sorted.sort_by(f32::total_cmp);
    let median = sorted[(sorted.len() - 1) / 2];
    let mut hash = PdqHash([0; 32]);
    for (k, c) in coefficients.iter().enumerate() {
        if *c > median {
            hash.set_bit(k);
        }
    }
    hash
}

#[cfg(test)]
mod photographs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_chunks_read_in_order() {
        let hex = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
        let hash = PdqHash::from_hex(hex).unwrap();
        assert_eq!(hash.to_hex(), hex);
        assert_eq!(PdqHash::from_hex(&hex.to_uppercase()), Some(hash));
        assert_eq!(hash.chunk(0), 0xf8f8);
        assert_eq!(hash.chunk(1), 0xf0ce);
        assert_eq!(hash.chunk(15), 0x9b22);
        let rebuilt: String = (0..CHUNKS)
            .map(|i| format!("{:04x}", hash.chunk(i)))
            .collect();
        assert_eq!(rebuilt, hex);
        for bad in ["", "xyz", &hex[1..], &format!("{hex}0"), &"g".repeat(64)] {
            assert!(PdqHash::from_hex(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn distance_counts_differing_bits() {
        let zero = PdqHash([0; 32]);
        assert_eq!(zero.distance(&zero), 0);
        assert_eq!(zero.distance(&PdqHash([0xff; 32])), 256);
        let mut one_per_chunk = zero;
        for i in 0..CHUNKS {
            one_per_chunk.0[2 * i] = 0x80;
        }
        assert_eq!(zero.distance(&one_per_chunk), 16);
        assert_eq!(one_per_chunk.distance(&zero), 16);
    }

    #[test]
    fn bits_are_numbered_as_the_reference_writes_them() {
        let mut hash = PdqHash([0; 32]);
        hash.set_bit(0);
        assert_eq!(&hash.to_hex()[60..], "0001");
        hash.set_bit(255);
        assert_eq!(&hash.to_hex()[..4], "8000");
        hash.set_bit(8);
        assert_eq!(&hash.to_hex()[60..], "0101");
    }

    #[test]
    fn half_the_bits_are_set_and_a_picture_hashes_the_same_every_time() {
        let (w, h) = (200, 120);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x ^ y) & 0xff) as u8,
                ]
            })
            .collect();
        let a = hash_rgb(&rgb, w, h);
        assert_eq!(a, hash_rgb(&rgb, w, h));
        let ones: u32 = a.0.iter().map(|b| b.count_ones()).sum();
        assert!((120..=136).contains(&ones), "{ones} bits set");
    }

    /// A featureless image has no picture to hash: every coefficient is (nearly) zero and the
    /// bits are whatever rounding makes of them. They must still be the same every time, and
    /// the same for every size the filter windows divide alike.
    #[test]
    fn a_flat_image_hashes_the_same_every_time() {
        for (w, h) in [(5, 5), (64, 64), (640, 480)] {
            let grey = vec![128u8; w * h * 3];
            let first = hash_rgb(&grey, w, h);
            assert_eq!(first, hash_rgb(&grey, w, h), "{w} x {h}");
        }
        let black = hash_rgb(&[0; 640 * 480 * 3], 640, 480);
        assert_eq!(
            black,
            PdqHash([0; 32]),
            "all coefficients zero: no bit above the median"
        );
    }

    /// The in-place, row-at-a-time filter against the reference's `box1DFloat` written as it
    /// is (one column at a time, out of place): the same floats, bit for bit.
    #[test]
    fn the_in_place_filter_is_the_reference_filter() {
        fn reference_box_1d(
            input: &[f32],
            out: &mut [f32],
            start: usize,
            len: usize,
            stride: usize,
            window: usize,
        ) {
            let p = Phases::new(len, window);
            let (mut li, mut ri, mut oi) = (start, start, start);
            let (mut sum, mut count) = (0f32, 0f32);
            for _ in 0..p.lead {
                sum += input[ri];
                count += 1.0;
                ri += stride;
            }
            for _ in 0..p.growing {
                sum += input[ri];
                count += 1.0;
                out[oi] = sum / count;
                ri += stride;
                oi += stride;
            }
            for _ in 0..p.full {
                sum += input[ri];
                sum -= input[li];
                out[oi] = sum / count;
                li += stride;
                ri += stride;
                oi += stride;
            }
            for _ in 0..p.shrinking {
                sum -= input[li];
                count -= 1.0;
                out[oi] = sum / count;
                li += stride;
                oi += stride;
            }
        }
        for (w, h) in [(5, 7), (130, 257), (300, 200), (1000, 9)] {
            let original: Vec<f32> = (0..w * h)
                .map(|i| ((i * 7919) % 256) as f32 * 0.731)
                .collect();
            let (wr, wc) = (window(w), window(h));
            let mut ours = original.clone();
            box_along_rows(&mut ours, w, wr);
            box_along_cols(&mut ours, w, wc);
            let mut theirs = original.clone();
            let mut scratch = vec![0f32; w * h];
            for r in 0..h {
                reference_box_1d(&theirs, &mut scratch, r * w, w, 1, wr);
            }
            for c in 0..w {
                reference_box_1d(&scratch, &mut theirs, c, h, w, wc);
            }
            assert!(
                ours.iter()
                    .zip(&theirs)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w} x {h}"
            );
        }
    }

    /// Meta's reference hashes (ThreatExchange, `pdq/python/README.md`, computed by its PDQ photo
    /// hasher) of two of its own sample images, committed under lib/tests/photos/pdq with the
    /// repository's BSD licence. Ours is bit-exact today; a bit or two is allowed, as JPEG
    /// decoders may round differently (the reference decodes with its own).
    #[test]
    fn reference_images_hash_as_the_reference_does() {
        for (file, bytes, reference) in [
            (
                "shrink-a-lot.jpg",
                &include_bytes!("../tests/photos/pdq/shrink-a-lot.jpg")[..],
                "d0f8f1ccc0f4a84d0a370a3a228f67f0b36e2ed5b6623e1d33e6339c4e9c9b22",
            ),
            (
                "square-128x128.jpg",
                &include_bytes!("../tests/photos/pdq/square-128x128.jpg")[..],
                "d8f8f1eec0f4a84f0e37022a078f63f0b36e2ed596621e1d33e6239c4e9c9b22",
            ),
        ] {
            let ours = hash_image(bytes, 50_000_000).unwrap();
            let theirs = PdqHash::from_hex(reference).unwrap();
            let d = ours.distance(&theirs);
            println!(
                "{file}: ours {} reference {reference}: {d} bits",
                ours.to_hex()
            );
            assert!(d <= 2, "{file}: {d} bits from the reference");
        }
    }

    #[test]
    fn tiny_huge_and_unreadable_images_are_refused() {
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(matches!(
            hash_image(&png, 1000),
            Err(HashError::TooSmall(4, 4))
        ));
        let mut big = Vec::new();
        image::RgbImage::new(64, 64)
            .write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Png)
            .unwrap();
        assert!(matches!(
            hash_image(&big, 100),
            Err(HashError::TooLarge(4096))
        ));
        assert!(hash_image(&big, 10_000).is_ok());
        assert!(matches!(
            hash_image(b"not an image", 100),
            Err(HashError::Unreadable(_))
        ));
        assert!(matches!(
            hash_image(&big[..big.len() / 2], 10_000),
            Err(HashError::Unreadable(_))
        ));
    }

    fn jpeg(img: &image::RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(img)
            .unwrap();
        out
    }

    /// `jpeg` with an EXIF APP1 segment holding only `Orientation` = `tag`, after SOI.
    fn with_orientation(jpeg: &[u8], tag: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec(); // little-endian, IFD at 8, one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
        tiff.extend_from_slice(&u32::from(tag).to_le_bytes()); // the value, padded
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// A phone stores its sensor's rows and says how to turn them; a re-upload often has the
    /// turn baked into the pixels. Both are the picture a viewer sees, and hash alike.
    #[test]
    fn a_picture_hashes_as_displayed_whatever_its_exif_orientation() {
        let upright = image::load_from_memory(include_bytes!("../tests/photos/astronaut.jpg"))
            .unwrap()
            .into_rgb8();
        let shown = hash_image(&jpeg(&upright), u64::MAX).unwrap();
        // Tag 6 turns the stored pixels a quarter clockwise, 8 counter-clockwise, 3 half a turn.
        for (tag, stored) in [
            (6, image::imageops::rotate270(&upright)),
            (8, image::imageops::rotate90(&upright)),
            (3, image::imageops::rotate180(&upright)),
        ] {
            let tagged = hash_image(&with_orientation(&jpeg(&stored), tag), u64::MAX).unwrap();
            let as_stored = hash_image(&jpeg(&stored), u64::MAX).unwrap();
            println!(
                "orientation {tag}: {} bits from the upright picture ({} ignoring the tag)",
                tagged.distance(&shown),
                as_stored.distance(&shown)
            );
            assert!(tagged.distance(&shown) <= 4, "orientation {tag}");
            assert!(
                as_stored.distance(&shown) > MATCH_DISTANCE,
                "orientation {tag}"
            );
        }
    }

    #[test]
    fn a_gif_hashes_as_its_first_frame() {
        let first = image::RgbaImage::from_fn(80, 60, |x, y| {
            image::Rgba([(x * 3) as u8, (y * 4) as u8, ((x * y) % 256) as u8, 255])
        });
        let second = image::RgbaImage::from_fn(80, 60, |x, y| {
            image::Rgba([(y * 4) as u8, 255 - (x * 3) as u8, 0, 255])
        });
        let mut gif = Vec::new();
        image::codecs::gif::GifEncoder::new(&mut gif)
            .encode_frames([first.clone(), second].map(image::Frame::new))
            .unwrap();
        let decoded_first = image::load_from_memory_with_format(&gif, image::ImageFormat::Gif)
            .unwrap()
            .into_rgb8();
        assert_eq!(
            hash_image(&gif, u64::MAX).unwrap(),
            hash_rgb(decoded_first.as_raw(), 80, 60)
        );
    }

    #[test]
    fn crops_are_centred_and_skipped_where_they_cut_nothing() {
        assert_eq!(
            Region::centre(1000, 500, 0.02),
            Some(Region {
                x: 20,
                y: 10,
                width: 960,
                height: 480
            })
        );
        assert_eq!(Region::centre(40, 40, 0.02), None);
        assert_eq!(Region::centre(6, 6, 0.04), None);
    }
}
