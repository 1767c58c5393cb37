//! The coefficient-domain picture of a JPEG (issue 21): every component's quantised DCT
//! coefficients, whatever the file's coding (sequential or progressive, interleaved or not,
//! Huffman or arithmetic), and the scans that carry them.
//!
//! The decoders (`jpeg_read.rs` for Huffman, `arith.rs` for arithmetic coding) fill a
//! [`Planes`]; the stamp changes the blocks under the mark; the writer (`jpeg_write.rs`)
//! codes the planes again with a [`ScanSpec`] script. These types are the contract between
//! them.

use super::huffman::Block;

/// One component of the frame, as its SOF gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameComponent {
    /// Component identifier (Ci).
    pub id: u8,
    /// Horizontal sampling factor (1..=4).
    pub h: usize,
    /// Vertical sampling factor (1..=4).
    pub v: usize,
    /// Quantisation table selector (0..=3).
    pub tq: usize,
}

/// The frame's geometry, which fixes every plane's block grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameGeometry {
    /// Samples per line and lines, from the SOF (a DNL height already applied).
    pub width: usize,
    pub height: usize,
    pub components: Vec<FrameComponent>,
    pub hmax: usize,
    pub vmax: usize,
    /// MCUs of an interleaved scan: ceil(width / (8 hmax)) x ceil(height / (8 vmax)).
    pub mcus_x: usize,
    pub mcus_y: usize,
}

impl FrameGeometry {
    /// Geometry of a frame; `components` non-empty with factors in 1..=4 (checked by the parser).
    pub fn new(width: usize, height: usize, components: Vec<FrameComponent>) -> Self {
        let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
        Self {
            width,
            height,
            mcus_x: width.div_ceil(8 * hmax),
            mcus_y: height.div_ceil(8 * vmax),
            components,
            hmax,
            vmax,
        }
    }

    /// Blocks of component `c` that carry picture (what a non-interleaved scan codes):
    /// ceil(ceil(width h / hmax) / 8) x ceil(ceil(height v / vmax) / 8).
    pub fn coded_blocks(&self, c: usize) -> (usize, usize) {
        let fc = &self.components[c];
        let w = (self.width * fc.h).div_ceil(self.hmax);
        let h = (self.height * fc.v).div_ceil(self.vmax);
        (w.div_ceil(8), h.div_ceil(8))
    }

    /// The padded grid of component `c` that an interleaved scan codes:
    /// (mcus_x h) x (mcus_y v). A frame of one component has no padding: its grid is
    /// [`Self::coded_blocks`].
    pub fn padded_blocks(&self, c: usize) -> (usize, usize) {
        if self.components.len() == 1 {
            return self.coded_blocks(c);
        }
        let fc = &self.components[c];
        (self.mcus_x * fc.h, self.mcus_y * fc.v)
    }
}

/// Quantised coefficients of one component: one [`Block`] (zigzag order, as coded) per
/// block of its padded grid ([`FrameGeometry::padded_blocks`]), row-major. Blocks no scan
/// coded stay zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plane {
    pub width_blocks: usize,
    pub height_blocks: usize,
    pub blocks: Vec<Block>,
}

impl Plane {
    pub fn block(&self, bx: usize, by: usize) -> &Block {
        &self.blocks[by * self.width_blocks + bx]
    }

    pub fn block_mut(&mut self, bx: usize, by: usize) -> &mut Block {
        &mut self.blocks[by * self.width_blocks + bx]
    }
}

/// Every component's plane, in frame order.
pub(crate) type Planes = Vec<Plane>;

/// Zeroed planes for a frame (the only allocation proportional to the picture).
pub(crate) fn new_planes(geom: &FrameGeometry) -> Planes {
    (0..geom.components.len())
        .map(|c| {
            let (w, h) = geom.padded_blocks(c);
            Plane {
                width_blocks: w,
                height_blocks: h,
                blocks: vec![[0; 64]; w * h],
            }
        })
        .collect()
}

/// One scan of a script: which components (frame indices, in scan order), which
/// coefficients (spectral selection `ss..=se`, zigzag) and which bits (successive
/// approximation: `ah` the previous point transform, 0 on a first scan; `al` this one).
/// A sequential scan is `ss = 0, se = 63, ah = al = 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanSpec {
    pub components: Vec<usize>,
    pub ss: u8,
    pub se: u8,
    pub ah: u8,
    pub al: u8,
}

impl ScanSpec {
    /// Sequential scan of the given components.
    pub fn sequential(components: Vec<usize>) -> Self {
        Self {
            components,
            ss: 0,
            se: 63,
            ah: 0,
            al: 0,
        }
    }
}

/// Bit k set where zigzag coefficient k is non-zero after the point transform `al`
/// (`|v| >> al != 0`, i.e. `|v| >= 2^al`).
#[inline(always)]
pub(crate) fn nonzero_mask(b: &Block, al: u32) -> u64 {
    debug_assert!(al < 16);
    let t = 1i16 << al;
    let mut flags = [0u8; 64];
    for (f, &v) in flags.iter_mut().zip(b) {
        *f = u8::from((v >= t) | (v <= -t));
    }
    mask_of_flags(&flags)
}

/// Bit k set where `flags[k]` is 1 (each flag 0 or 1). Built a byte of flags at a time: a
/// comparison per coefficient vectorises into byte flags, where shifting each into a u64
/// does not (it was most of the progressive writer's time).
#[inline(always)]
pub(crate) fn mask_of_flags(flags: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (i, chunk) in flags.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Flag j (0 or 1, byte j) lands on bit 56 + j of the product, and no two partial
        // products share a bit, so nothing carries into the top byte.
        let gathered = u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= gathered << (8 * i);
    }
    mask
}

/// Bits `ss..=se` set.
#[inline(always)]
pub(crate) fn band_mask(ss: usize, se: usize) -> u64 {
    (u64::MAX >> (63 - se)) & (u64::MAX << ss)
}
