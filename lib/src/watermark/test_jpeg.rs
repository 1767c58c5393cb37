//! A small baseline JPEG encoder for tests: any luma sampling (4:4:4, 4:2:2, 4:2:0, 4:1:1),
//! grayscale, restart intervals, standard or optimised Huffman tables. The `image` crate's
//! encoder only writes 4:4:4 without restart markers; this one writes what cameras and
//! libjpeg write. Its output is always checked by an independent decoder (zune-jpeg).

use super::dct;
use super::huffman::{
    optimal_table, BitWriter, Block, BlockSink, EncodeTable, Encoder, HuffSpec, SymbolCounter,
    ZIGZAG,
};
use super::huffman::{std_chroma_ac, std_chroma_dc, std_luma_ac, std_luma_dc};

/// What to write.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Luma sampling factors (chroma is 1x1): (2, 2) is 4:2:0.
    pub sampling: (usize, usize),
    pub gray: bool,
    pub quality: u32,
    pub restart_interval: u16,
    /// Huffman tables built for this image (only the symbols it uses), as libjpeg's
    /// `optimize_coding` and mozjpeg write them.
    pub optimise: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sampling: (2, 2),
            gray: false,
            quality: 90,
            restart_interval: 0,
            optimise: false,
        }
    }
}

const LUMA_Q: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_Q: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// libjpeg's quality scaling, in zigzag order.
fn scaled(table: &[u16; 64], quality: u32) -> [u16; 64] {
    let q = quality.clamp(1, 100);
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    std::array::from_fn(|k| ((u32::from(table[ZIGZAG[k]]) * scale + 50) / 100).clamp(1, 255) as u16)
}

struct Plane {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Plane {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.px[y.min(self.h - 1) * self.w + x.min(self.w - 1)]
    }

    fn block(&self, bx: usize, by: usize, quant: &[u16; 64]) -> Block {
        let samples: [f32; 64] =
            std::array::from_fn(|i| self.at(bx * 8 + i % 8, by * 8 + i / 8) - 128.0);
        let coef = dct::forward(&samples);
        std::array::from_fn(|k| (coef[ZIGZAG[k]] / f32::from(quant[k])).round() as i16)
    }
}

/// Encodes interleaved RGB (`w * h * 3` bytes).
pub(crate) fn encode(rgb: &[u8], w: usize, h: usize, opts: &Options) -> Vec<u8> {
    let (hs, vs) = if opts.gray { (1, 1) } else { opts.sampling };
    let pixel = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        (
            f32::from(rgb[i]),
            f32::from(rgb[i + 1]),
            f32::from(rgb[i + 2]),
        )
    };
    let luma = Plane {
        w,
        h,
        px: (0..w * h)
            .map(|i| {
                let (r, g, b) = pixel(i % w, i / w);
                0.299 * r + 0.587 * g + 0.114 * b
            })
            .collect(),
    };
    let chroma = |f: &dyn Fn(f32, f32, f32) -> f32| {
        let (cw, ch) = (w.div_ceil(hs), h.div_ceil(vs));
        let mut px = Vec::with_capacity(cw * ch);
        for cy in 0..ch {
            for cx in 0..cw {
                let mut sum = 0.0;
                for dy in 0..vs {
                    for dx in 0..hs {
                        let (r, g, b) = pixel((cx * hs + dx).min(w - 1), (cy * vs + dy).min(h - 1));
                        sum += f(r, g, b);
                    }
                }
                px.push(sum / (hs * vs) as f32);
            }
        }
        Plane { w: cw, h: ch, px }
    };
    let mut planes = vec![luma];
    if !opts.gray {
        planes.push(chroma(&|r, g, b| {
            -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0
        }));
        planes.push(chroma(&|r, g, b| {
            0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0
        }));
    }
    let lq = scaled(&LUMA_Q, opts.quality);
    let cq = scaled(&CHROMA_Q, opts.quality);

    // Blocks in scan order, one Vec per MCU.
    let (mcu_w, mcu_h) = (8 * hs, 8 * vs);
    let mut mcus: Vec<Vec<Block>> = Vec::new();
    if opts.gray {
        for by in 0..h.div_ceil(8) {
            for bx in 0..w.div_ceil(8) {
                mcus.push(vec![planes[0].block(bx, by, &lq)]);
            }
        }
    } else {
        for my in 0..h.div_ceil(mcu_h) {
            for mx in 0..w.div_ceil(mcu_w) {
                let mut blocks = Vec::new();
                for j in 0..vs {
                    for i in 0..hs {
                        blocks.push(planes[0].block(mx * hs + i, my * vs + j, &lq));
                    }
                }
                blocks.push(planes[1].block(mx, my, &cq));
                blocks.push(planes[2].block(mx, my, &cq));
                mcus.push(blocks);
            }
        }
    }
    let slot_of = |n: usize| {
        if opts.gray || n < hs * vs {
            0
        } else {
            n - hs * vs + 1
        }
    };
    let ncomp = if opts.gray { 1 } else { 3 };
    let ids: Vec<(usize, usize)> = (0..ncomp)
        .map(|c| if c == 0 { (0, 0) } else { (1, 1) })
        .collect();
    let ri = usize::from(opts.restart_interval);
    let feed = |sink: &mut dyn FnMut(Option<usize>, usize, &Block)| {
        for (m, blocks) in mcus.iter().enumerate() {
            if ri > 0 && m > 0 && m % ri == 0 {
                sink(Some(m / ri - 1), 0, &blocks[0]);
            }
            for (n, b) in blocks.iter().enumerate() {
                sink(None, slot_of(n), b);
            }
        }
    };
    let specs: [HuffSpec; 4] = if opts.optimise {
        let mut counter = SymbolCounter::new(ids.clone());
        feed(&mut |restart, slot, b| match restart {
            Some(n) => counter.restart(n),
            None => counter.block(slot, b).unwrap(),
        });
        let fallback = |f: &[u32; 256], std: HuffSpec| {
            if f.iter().any(|&x| x > 0) {
                optimal_table(f)
            } else {
                std
            }
        };
        [
            optimal_table(&counter.freq[0][0]),
            optimal_table(&counter.freq[1][0]),
            fallback(&counter.freq[0][1], std_chroma_dc()),
            fallback(&counter.freq[1][1], std_chroma_ac()),
        ]
    } else {
        [
            std_luma_dc(),
            std_luma_ac(),
            std_chroma_dc(),
            std_chroma_ac(),
        ]
    };

    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    let mut dqt = vec![0u8];
    dqt.extend(lq.iter().map(|&q| q as u8));
    if !opts.gray {
        dqt.push(1);
        dqt.extend(cq.iter().map(|&q| q as u8));
    }
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&(h as u16).to_be_bytes());
    sof.extend_from_slice(&(w as u16).to_be_bytes());
    sof.push(ncomp as u8);
    sof.extend_from_slice(&[1, (hs << 4 | vs) as u8, 0]);
    if !opts.gray {
        sof.extend_from_slice(&[2, 0x11, 1, 3, 0x11, 1]);
    }
    segment(&mut out, 0xC0, &sof);
    let mut dht = Vec::new();
    specs[0].write_dht(0, 0, &mut dht).unwrap();
    specs[1].write_dht(1, 0, &mut dht).unwrap();
    if !opts.gray {
        specs[2].write_dht(0, 1, &mut dht).unwrap();
        specs[3].write_dht(1, 1, &mut dht).unwrap();
    }
    segment(&mut out, 0xC4, &dht);
    if ri > 0 {
        segment(&mut out, 0xDD, &opts.restart_interval.to_be_bytes());
    }
    let mut sos = vec![ncomp as u8, 1, 0x00];
    if !opts.gray {
        sos.extend_from_slice(&[2, 0x11, 3, 0x11]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    segment(&mut out, 0xDA, &sos);

    let tables: Vec<EncodeTable> = specs.iter().map(|s| EncodeTable::new(s).unwrap()).collect();
    let refs = (0..ncomp)
        .map(|c| {
            if c == 0 {
                (&tables[0], &tables[1])
            } else {
                (&tables[2], &tables[3])
            }
        })
        .collect();
    let mut enc = Encoder::new(BitWriter::new(out), refs);
    feed(&mut |restart, slot, b| match restart {
        Some(n) => enc.restart(n),
        None => enc.block(slot, b).unwrap(),
    });
    let mut out = enc.writer.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// Appends a marker segment with its length.
pub(crate) fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
}
