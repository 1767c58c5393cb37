//! PDQ, the perceptual hash industry hash-sharing programmes exchange (Meta's ThreatExchange,
//! `pdq/cpp/hashing/pdqhashing.cpp`), for the blocklist: a picture re-encoded, resized, lightly
//! cropped or converted between formats hashes within a few tens of bits of the original, and
//! distinct photographs about half the bits (128) apart.
//!
//! The algorithm, as the reference computes it from an image's pixels:
//! 1. luminance, `0.299 R + 0.587 G + 0.114 B`, as floats;
//! 2. two passes of a box ("Jarosz") filter along rows then columns, each window
//!    `(old + 2 * 64 - 1) / (2 * 64)` wide, then decimation to 64 x 64 by sampling the centre of
//!    each cell;
//! 3. the 16 x 16 lowest non-DC frequencies of its DCT-II (`D A Dᵀ`, `D[i][j] = sqrt(2/64)
//!    cos(pi / 128 (i + 1) (2 j + 1))`);
//! 4. bit `16 i + j` set where coefficient `(i, j)` exceeds their median; written as 64 hex digits,
//!    the 16-bit word of bits 240..255 first (the reference's `Hash256::format`).
//!
//! Why our own ~150 lines rather than a crate: the crates found either pin an old `image` (a
//! second copy of every codec in the publisher: `pdqhash` 0.1 on image 0.23) or bring their own
//! SIMD and threading stack (`yume-pdq`); this is the reference's arithmetic on the decoder the
//! publisher already links, in one pass of O(pixels) work plus a fixed 64 x 64 DCT.

/// A 256-bit perceptual hash (PDQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqHash(pub [u8; 32]);

/// Chunks of 16 bits a hash is filed under in the blocklist's multi-index.
pub const CHUNKS: usize = 16;
/// Two hashes at most this far apart are the same picture. The reference's suggested match
/// threshold is 31 (ThreatExchange's PDQ documentation); re-encodes, 90 % resizes, 2 % crops and
/// PNG/JPEG conversions of real photographs land far below it, distinct photographs far above.
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
/// PDQ moves about 34 bits when 2 % is cropped off each side of a photograph (more than
/// [`MATCH_DISTANCE`]), so a takedown blocks the picture's centre crops too, and a cropped
/// re-upload lands within a few bits of one of them.
pub const CROP_MARGINS: [f64; 2] = [0.02, 0.04];

/// The PDQ hash of an image file's bytes: JPEG, PNG, WebP, and a GIF by its first frame (the
/// format sniffed from the bytes). Its size is checked from the header before anything is
/// decoded. EXIF orientation is not applied: the hash is of the pixels as stored, as the
/// reference hashes them.
pub fn hash_image(bytes: &[u8], max_pixels: u64) -> Result<PdqHash, HashError> {
    Ok(hash_image_and_crops(bytes, max_pixels)?.0)
}

/// [`hash_image`], and the hashes of its centre crops by [`CROP_MARGINS`] (one decode).
pub fn hash_image_and_crops(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(PdqHash, Vec<PdqHash>), HashError> {
    let unreadable = |e: image::ImageError| HashError::Unreadable(e.to_string());
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| HashError::Unreadable(e.to_string()))?;
    let (w, h) = reader.into_dimensions().map_err(unreadable)?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(HashError::TooLarge(pixels));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(HashError::TooSmall(w, h));
    }
    // A GIF decodes to its first frame.
    let rgb = image::load_from_memory(bytes)
        .map_err(unreadable)?
        .to_rgb8();
    let (w, h) = rgb.dimensions();
    let whole = hash_rgb(rgb.as_raw(), w as usize, h as usize);
    let crops = CROP_MARGINS
        .iter()
        .filter_map(|margin| {
            let (dx, dy) = (
                (f64::from(w) * margin) as u32,
                (f64::from(h) * margin) as u32,
            );
            let (cw, ch) = (w - 2 * dx, h - 2 * dy);
            if (dx == 0 && dy == 0) || cw < MIN_SIDE || ch < MIN_SIDE {
                return None;
            }
            let crop = image::imageops::crop_imm(&rgb, dx, dy, cw, ch).to_image();
            Some(hash_rgb(crop.as_raw(), cw as usize, ch as usize))
        })
        .collect();
    Ok((whole, crops))
}

/// The PDQ hash of 8-bit RGB pixels (row-major, `width * height * 3` bytes).
pub fn hash_rgb(rgb: &[u8], width: usize, height: usize) -> PdqHash {
    let mut luma: Vec<f32> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let mut scratch = vec![0f32; luma.len()];
    let along_rows = window(width);
    let along_cols = window(height);
    for _ in 0..2 {
        for row in 0..height {
            let at = row * width;
            box_1d(&luma, &mut scratch, at, width, 1, along_rows);
        }
        for col in 0..width {
            box_1d(&scratch, &mut luma, col, height, width, along_cols);
        }
    }
    let mut small = [[0f32; SIDE]; SIDE];
    for (i, row) in small.iter_mut().enumerate() {
        let y = (((i as f64 + 0.5) * height as f64) / SIDE as f64) as usize;
        for (j, cell) in row.iter_mut().enumerate() {
            let x = (((j as f64 + 0.5) * width as f64) / SIDE as f64) as usize;
            *cell = luma[y.min(height - 1) * width + x.min(width - 1)];
        }
    }
    let dct = dct_matrix();
    // T = D A (16 x 64), then B = T Dᵀ (16 x 16).
    let mut t = [[0f32; SIDE]; KEPT];
    for i in 0..KEPT {
        for j in 0..SIDE {
            t[i][j] = (0..SIDE).map(|k| dct[i][k] * small[k][j]).sum();
        }
    }
    let mut coefficients = [0f32; KEPT * KEPT];
    for i in 0..KEPT {
        for j in 0..KEPT {
            coefficients[i * KEPT + j] = (0..SIDE).map(|k| t[i][k] * dct[j][k]).sum();
        }
    }
    let median = median(&coefficients);
    let mut hash = PdqHash([0; 32]);
    for (k, c) in coefficients.iter().enumerate() {
        if *c > median {
            hash.set_bit(k);
        }
    }
    hash
}

/// The box filter's window for a dimension of `old` pixels (the reference's
/// `computeJaroszFilterWindowSize`).
fn window(old: usize) -> usize {
    old.div_ceil(2 * SIDE)
}

/// One pass of the reference's `box1DFloat`: a moving average of `window` samples centred on
/// each, narrower at the ends, over `len` samples of `input` from `start` every `stride`.
fn box_1d(
    input: &[f32],
    output: &mut [f32],
    start: usize,
    len: usize,
    stride: usize,
    window: usize,
) {
    let half = (window + 2) / 2;
    let phase1 = half - 1;
    let phase2 = window - half + 1;
    let phase3 = len.saturating_sub(window);
    let phase4 = half - 1;
    let (mut li, mut ri, mut oi) = (start, start, start);
    let mut sum = 0f32;
    let mut count = 0f32;
    let end = start + len * stride;
    for _ in 0..phase1.min(len) {
        sum += input[ri];
        count += 1.0;
        ri += stride;
    }
    for _ in 0..phase2 {
        if ri < end {
            sum += input[ri];
            count += 1.0;
            ri += stride;
        }
        if oi < end {
            output[oi] = sum / count;
            oi += stride;
        }
    }
    for _ in 0..phase3 {
        if ri >= end || oi >= end {
            break;
        }
        sum += input[ri] - input[li];
        output[oi] = sum / count;
        li += stride;
        ri += stride;
        oi += stride;
    }
    for _ in 0..phase4 {
        if oi >= end || count <= 1.0 {
            break;
        }
        sum -= input[li];
        count -= 1.0;
        output[oi] = sum / count;
        li += stride;
        oi += stride;
    }
    // A dimension shorter than the window leaves nothing unwritten: the last average stands.
    while oi < end {
        output[oi] = sum / count.max(1.0);
        oi += stride;
    }
}

/// `D[i][j] = sqrt(2/64) cos(pi / 128 (i + 1) (2 j + 1))`, i < 16, j < 64.
fn dct_matrix() -> [[f32; SIDE]; KEPT] {
    let mut d = [[0f32; SIDE]; KEPT];
    let scale = (2.0 / SIDE as f64).sqrt();
    for (i, row) in d.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let angle = std::f64::consts::PI / 2.0 / SIDE as f64
                * (i as f64 + 1.0)
                * (2.0 * j as f64 + 1.0);
            *cell = (scale * angle.cos()) as f32;
        }
    }
    d
}

/// The median of the coefficients (the reference's Torben median: the lower middle value).
fn median(values: &[f32]) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_chunks_read_in_order() {
        let hex = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
        let hash = PdqHash::from_hex(hex).unwrap();
        assert_eq!(hash.to_hex(), hex);
        assert_eq!(hash.chunk(0), 0xf8f8);
        assert_eq!(hash.chunk(15), 0x9b22);
        assert_eq!(hash.distance(&hash), 0);
        assert_eq!(PdqHash([0; 32]).distance(&PdqHash([0xff; 32])), 256);
        for bad in ["", "xyz", &hex[1..], &format!("{hex}0"), &"g".repeat(64)] {
            assert!(PdqHash::from_hex(bad).is_none(), "{bad}");
        }
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
    }
}
