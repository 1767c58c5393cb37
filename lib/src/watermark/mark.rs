//! The mark: a semi-transparent "JOIP" wordmark with a soft dark offset shadow, placed in the
//! displayed bottom-right corner and sized with the image.
//!
//! The glyphs are a 5x7 pixel font kept as a constant (no font files), rendered at any scale
//! with exact box-filter coverage, so edges are anti-aliased at every size. White ink alone
//! disappears on bright skies and dark shadow alone on night shots; together one of them
//! always reads.

use super::orientation::Orientation;

/// "JOIP", one string per row of 1-cell pixels (`#` = ink); glyphs are 5 cells wide
/// (I is 3) with 1-cell gaps.
const LOGO: [&[u8; 21]; 7] = [
    b"#####..###..###.####.",
    b"...#..#...#..#..#...#",
    b"...#..#...#..#..#...#",
    b"...#..#...#..#..####.",
    b"#..#..#...#..#..#....",
    b"#..#..#...#..#..#....",
    b".##....###..###.#....",
];
const LOGO_COLS: f32 = 21.0;
const LOGO_ROWS: f32 = 7.0;

/// Mark width as a share of the displayed image's shorter side.
const WIDTH_SHARE: f32 = 0.18;
/// Narrowest mark (pixels): about 3 px per glyph cell, still legible on a 320 px thumbnail.
const MIN_WIDTH: f32 = 64.0;
/// Widest mark (pixels): on a 12 MP photo 18% would be 540 px; this keeps it discreet.
const MAX_WIDTH: f32 = 480.0;
/// Gap to the displayed right and bottom edges, as a share of the shorter side.
const MARGIN_SHARE: f32 = 0.03;
/// Shadow offset down and right, in glyph cells.
const SHADOW_OFFSET: f32 = 0.3;
/// Opacity of the white ink.
const FILL_OPACITY: f32 = 0.55;
/// Opacity of the black shadow.
const SHADOW_OPACITY: f32 = 0.35;

/// The box the mark covers, in stored pixels (right and bottom edges exclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MarkBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// Where and how the mark is drawn, in stored pixel coordinates: the box it covers and,
/// for each pixel of it, the ink and shadow opacity (0..=255) already turned to match the
/// orientation.
pub(crate) struct Overlay {
    /// Left edge of the box (stored pixels).
    pub x0: u32,
    /// Top edge of the box.
    pub y0: u32,
    /// Box width.
    pub w: u32,
    /// Box height.
    pub h: u32,
    fill: Vec<u8>,
    shadow: Vec<u8>,
}

impl Overlay {
    /// The mark for a `width` x `height` stored image shown with `orientation`.
    pub fn new(width: u32, height: u32, orientation: Orientation) -> Self {
        let (dw, dh) = orientation.display_size(width, height);
        let shorter = dw.min(dh) as f32;
        let mark_w = (shorter * WIDTH_SHARE)
            .round()
            .clamp(MIN_WIDTH, MAX_WIDTH)
            .min((dw as f32 * 0.5).max(1.0));
        let cell = mark_w / (LOGO_COLS + SHADOW_OFFSET);
        let offset = (cell * SHADOW_OFFSET).max(1.0);
        let bw = ((cell * LOGO_COLS + offset).ceil() as u32).clamp(1, dw);
        let bh = ((cell * LOGO_ROWS + offset).ceil() as u32).clamp(1, dh);
        let margin = (shorter * MARGIN_SHARE).round() as u32;
        let bx = dw.saturating_sub(bw + margin);
        let by = dh.saturating_sub(bh + margin);

        // Render upright in display space...
        let mut fill_d = vec![0u8; (bw * bh) as usize];
        let mut shadow_d = vec![0u8; (bw * bh) as usize];
        for v in 0..bh {
            for u in 0..bw {
                let i = (v * bw + u) as usize;
                let ink = coverage(u as f32, v as f32, cell);
                let shade = coverage(u as f32 - offset, v as f32 - offset, cell);
                fill_d[i] = (ink * FILL_OPACITY * 255.0).round() as u8;
                shadow_d[i] = (shade * SHADOW_OPACITY * 255.0).round() as u8;
            }
        }

        // ...then carry it to the stored pixels that display there.
        let (ax, ay) = orientation.to_stored(bx, by, width, height);
        let (bx2, by2) = orientation.to_stored(bx + bw - 1, by + bh - 1, width, height);
        let (x0, y0) = (ax.min(bx2), ay.min(by2));
        let (w, h) = (ax.max(bx2) - x0 + 1, ay.max(by2) - y0 + 1);
        let mut fill = vec![0u8; (w * h) as usize];
        let mut shadow = vec![0u8; (w * h) as usize];
        for y in 0..h {
            for x in 0..w {
                let (u, v) = orientation.to_display(x0 + x, y0 + y, width, height);
                let from = ((v - by) * bw + (u - bx)) as usize;
                let to = (y * w + x) as usize;
                fill[to] = fill_d[from];
                shadow[to] = shadow_d[from];
            }
        }
        Self {
            x0,
            y0,
            w,
            h,
            fill,
            shadow,
        }
    }

    /// The box alone, for what is measured around the mark.
    pub fn bounds(&self) -> MarkBox {
        MarkBox {
            x0: self.x0,
            y0: self.y0,
            x1: self.x1(),
            y1: self.y1(),
        }
    }

    /// Right edge (exclusive).
    pub fn x1(&self) -> u32 {
        self.x0 + self.w
    }

    /// Bottom edge (exclusive).
    pub fn y1(&self) -> u32 {
        self.y0 + self.h
    }

    /// `(ink, shadow)` opacity at stored pixel `(x, y)`; zero outside the box.
    #[inline]
    pub fn at(&self, x: u32, y: u32) -> (u8, u8) {
        if x < self.x0 || y < self.y0 || x >= self.x1() || y >= self.y1() {
            return (0, 0);
        }
        let i = ((y - self.y0) * self.w + (x - self.x0)) as usize;
        (self.fill[i], self.shadow[i])
    }
}

/// Share of the pixel square `[u, u+1) x [v, v+1)` covered by ink when a glyph cell is `cell`
/// pixels wide (exact box filter: cells are axis-aligned squares).
fn coverage(u: f32, v: f32, cell: f32) -> f32 {
    let (a0, a1) = (u / cell, (u + 1.0) / cell);
    let (b0, b1) = (v / cell, (v + 1.0) / cell);
    let mut area = 0.0;
    let cols = (a0.floor().max(0.0) as usize)..(a1.ceil().min(LOGO_COLS) as usize);
    let rows = (b0.floor().max(0.0) as usize)..(b1.ceil().min(LOGO_ROWS) as usize);
    for row in rows {
        let dy = (b1.min(row as f32 + 1.0) - b0.max(row as f32)).max(0.0);
        for col in cols.clone() {
            if LOGO[row][col] == b'#' {
                let dx = (a1.min(col as f32 + 1.0) - a0.max(col as f32)).max(0.0);
                area += dx * dy;
            }
        }
    }
    (area * cell * cell).min(1.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_mark_scales_with_the_image_within_bounds() {
        let small = Overlay::new(320, 240, Orientation::UPRIGHT);
        assert!(small.w >= 64, "{}", small.w);
        let big = Overlay::new(4000, 3000, Orientation::UPRIGHT);
        assert!(big.w <= 482 && big.w >= 400, "{}", big.w);
        let mid = Overlay::new(1600, 1200, Orientation::UPRIGHT);
        assert!(
            (mid.w as f32 - 1200.0 * WIDTH_SHARE).abs() < 4.0,
            "{}",
            mid.w
        );
    }

    #[test]
    fn the_box_sits_in_the_displayed_bottom_right_corner() {
        let o = Overlay::new(1000, 600, Orientation::UPRIGHT);
        assert_eq!(o.x1(), 1000 - 18);
        assert_eq!(o.y1(), 600 - 18);
        // Turned 90° clockwise for display: displayed bottom-right is stored top-right, and
        // the mark's long side runs down the stored image.
        let o = Overlay::new(1000, 600, Orientation::from_tag(6).unwrap());
        assert_eq!(o.x1(), 1000 - 18);
        assert_eq!(o.y0, 18);
        assert!(o.h > o.w);
    }

    #[test]
    fn ink_is_opaque_inside_glyphs_and_absent_between_them() {
        let o = Overlay::new(2000, 2000, Orientation::UPRIGHT);
        let cell = o.w as f32 / (LOGO_COLS + SHADOW_OFFSET);
        // Centre of J's top-left cell is ink; centre of the gap column 5 in row 3 is not.
        let at = |col: f32, row: f32| {
            o.at(
                o.x0 + ((col + 0.5) * cell) as u32,
                o.y0 + ((row + 0.5) * cell) as u32,
            )
        };
        assert_eq!(at(0.0, 0.0).0, (FILL_OPACITY * 255.0).round() as u8);
        assert_eq!(at(5.0, 3.0).0, 0);
    }
}
