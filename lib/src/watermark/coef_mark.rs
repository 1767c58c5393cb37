//! The mark drawn in the coefficient domain, one 8x8 block at a time: shared by the splice
//! path (`jpeg.rs`, which decodes only the MCUs around the mark) and the planes path (every
//! other JPEG, decoded whole to [`Planes`]).

use super::coef::Planes;
use super::dct;
use super::huffman::{Block, ZIGZAG};
use super::mark::Overlay;

/// How the mark is drawn into one component: its subsampling, its quantiser, and the sample
/// values of the mark's ink (white) and shadow (black) in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ComponentInk {
    /// Pixels per sample across and down (hmax / h, vmax / v).
    pub fx: usize,
    pub fy: usize,
    pub quant: [u16; 64],
    pub ink: f32,
    pub shade: f32,
    /// Per coefficient (zigzag order), the low bits the output's scans never send (the point
    /// transform of the last scan of it; 0 for a sequential output): the mark's coefficients
    /// are rounded to that precision, rather than cut toward zero by the writer.
    pub al: [u8; 64],
}

/// Decodes one block to samples, blends the mark over it, and re-quantises it with the
/// file's table; returns whether its coefficients changed. Blending happens on each
/// component's own samples: JFIF YCbCr (and RGB, and YCCK/CMYK) are affine in what is shown,
/// so blending towards white or black there is exactly blending the picture, with no colour
/// conversion. Subsampled components get the mark's mean opacity over the pixels each sample
/// covers. `(bx, by)` is the block's place in its component's grid.
pub(crate) fn mark_block(
    overlay: &Overlay,
    c: &ComponentInk,
    bx: usize,
    by: usize,
    block: &mut Block,
) -> bool {
    let (px0, py0) = (bx * 8 * c.fx, by * 8 * c.fy);
    let ov = overlay;
    if px0 >= ov.x1() as usize
        || py0 >= ov.y1() as usize
        || px0 + 8 * c.fx <= ov.x0 as usize
        || py0 + 8 * c.fy <= ov.y0 as usize
    {
        return false;
    }
    let area = (c.fx * c.fy) as f32 * 255.0;
    let mut ink = [0f32; 64];
    let mut shade = [0f32; 64];
    let mut any = false;
    for sy in 0..8 {
        for sx in 0..8 {
            let (mut a, mut s) = (0u32, 0u32);
            for dy in 0..c.fy {
                for dx in 0..c.fx {
                    let x = (px0 + sx * c.fx + dx) as u32;
                    let y = (py0 + sy * c.fy + dy) as u32;
                    let (fa, sa) = ov.at(x, y);
                    a += u32::from(fa);
                    s += u32::from(sa);
                }
            }
            ink[sy * 8 + sx] = a as f32 / area;
            shade[sy * 8 + sx] = s as f32 / area;
            any |= a > 0 || s > 0;
        }
    }
    if !any {
        return false;
    }
    let mut coef = [0f32; 64];
    for k in 0..64 {
        coef[ZIGZAG[k]] = f32::from(block[k]) * f32::from(c.quant[k]);
    }
    let mut samples = dct::inverse(&coef);
    for (i, sample) in samples.iter_mut().enumerate() {
        if ink[i] == 0.0 && shade[i] == 0.0 {
            // Left unclamped so an untouched sample re-quantises to what it was.
            continue;
        }
        let mut v = (*sample + 128.0).clamp(0.0, 255.0);
        v += (c.shade - v) * shade[i];
        v += (c.ink - v) * ink[i];
        *sample = v - 128.0;
    }
    let coef = dct::forward(&samples);
    let mut out = [0i16; 64];
    for k in 0..64 {
        let q = f32::from(c.quant[k]);
        // Limits of 8-bit coding: DC within ±1023, AC sizes up to 10 bits.
        let limit = 1023.0 / if k == 0 { q } else { 1.0 };
        let step = f32::from(1u16 << c.al[k].min(13));
        let max = (limit / step).floor();
        out[k] = ((coef[ZIGZAG[k]] / q / step).round().clamp(-max, max) * step) as i16;
    }
    let changed = out != *block;
    *block = out;
    changed
}

/// The top-left block the mark's box touches in a component sampled every `fx` x `fy`
/// pixels: no block before it in scan order (row by row, or MCU by MCU) is changed.
pub(crate) fn first_block(overlay: &Overlay, fx: usize, fy: usize) -> (usize, usize) {
    (
        overlay.x0 as usize / (8 * fx),
        overlay.y0 as usize / (8 * fy),
    )
}

/// Stamps every block of every plane that the mark's box touches; returns how many changed.
/// `inks` has one entry per component, in frame order.
pub(crate) fn stamp_planes(overlay: &Overlay, inks: &[ComponentInk], planes: &mut Planes) -> usize {
    let mut changed = 0;
    for (c, plane) in inks.iter().zip(planes.iter_mut()) {
        let (bw, bh) = (8 * c.fx, 8 * c.fy);
        let (bx0, by0) = first_block(overlay, c.fx, c.fy);
        let bx1 = ((overlay.x1() as usize).div_ceil(bw)).min(plane.width_blocks);
        let by1 = ((overlay.y1() as usize).div_ceil(bh)).min(plane.height_blocks);
        for by in by0..by1 {
            for bx in bx0..bx1 {
                if mark_block(overlay, c, bx, by, plane.block_mut(bx, by)) {
                    changed += 1;
                }
            }
        }
    }
    changed
}
