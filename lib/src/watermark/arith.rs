//! The arithmetic-coded scans of a JPEG (T.81 Annex D, F.1.4/F.2.4, G.1.3/G.2), decoded into
//! coefficient planes (issue 21), so that an arithmetic-coded file, which libjpeg-turbo reads,
//! is published like any other.
//!
//! The decoder follows libjpeg-turbo's `jdarith.c` step for step (its compact Qe table, its
//! statistics bins, its way of reading bytes), because the oracle for what we accept is
//! `djpeg -strict`: wherever libjpeg warns (a bad code, extraneous bytes before a marker, a
//! restart marker out of order, the file ending inside the data) we refuse the file as
//! [`WatermarkError::Corrupt`]. The one place we are stricter is a scan whose data ends early:
//! see [`TAIL_WINDOW`].

use super::coef::{FrameGeometry, Plane, ScanSpec};
use super::WatermarkError;

/// Conditioning tables a DAC segment may define: libjpeg numbers them 0..=15 (T.81 allows
/// 0..=3, but libjpeg reads any 4-bit selector, so we do too).
const TABLES: usize = 16;

/// Statistics bins of one DC conditioning table (T.81 F.1.4.4.1.3 needs 49).
const DC_BINS: usize = 64;
/// Statistics bins of one AC conditioning table (F.1.4.4.2 needs 245).
const AC_BINS: usize = 256;
/// The state of the fixed 0.5 estimate (T.851 10.3), the extra last row of [`QE`].
const FIXED_STATE: u8 = 113;

/// How many supplied zero bytes the decoder's code register may still hold real data in.
///
/// An arithmetic encoder drops the zero bytes its code ends with, and the decoder supplies
/// zeros after the marker instead (T.81 D.2.6, libjpeg's convention), so running into the
/// marker is normal and libjpeg never warns about it: a file cut inside a scan with an EOI
/// appended decodes silently in `djpeg -strict`, the rest of the scan made up from zeros.
/// We refuse it (DESIGN: nothing is published incomplete), but counting the zeros cannot
/// tell: a complete scan may draw hundreds (a flat area coded at the fixed 0.5 estimate, as
/// DC refinement is). What a complete code cannot do is move the interval's base (the
/// decoder's LPS path, where the encoder added to its code) once the register holds only
/// supplied zeros, unless it is within the final bytes the flush (jcarith `finish_pass`)
/// wrote: the added bits would have been written out as non-zero bytes. A cut code does it
/// as soon as the made-up decisions need it. So a scan whose base moves more than
/// `TAIL_WINDOW` zeros past the marker and more than `TAIL_WINDOW` zeros before its end is
/// refused. A cut whose made-up rest never moves the base is what some complete scan would
/// be and passes (2 of 156 cuts in the tests, both in a low-information progressive scan).
const TAIL_WINDOW: usize = 4;

/// libjpeg's compact Table D.2: `Qe << 16 | Next_Index_MPS << 8 | Switch_MPS << 7 |
/// Next_Index_LPS`, padded to 128 rows so that any 7-bit state indexes it.
const QE: [u32; 128] = {
    const ROWS: [(u32, u32, u32, u32); 114] = [
        (0x5a1d, 1, 1, 1),
        (0x2586, 14, 2, 0),
        (0x1114, 16, 3, 0),
        (0x080b, 18, 4, 0),
        (0x03d8, 20, 5, 0),
        (0x01da, 23, 6, 0),
        (0x00e5, 25, 7, 0),
        (0x006f, 28, 8, 0),
        (0x0036, 30, 9, 0),
        (0x001a, 33, 10, 0),
        (0x000d, 35, 11, 0),
        (0x0006, 9, 12, 0),
        (0x0003, 10, 13, 0),
        (0x0001, 12, 13, 0),
        (0x5a7f, 15, 15, 1),
        (0x3f25, 36, 16, 0),
        (0x2cf2, 38, 17, 0),
        (0x207c, 39, 18, 0),
        (0x17b9, 40, 19, 0),
        (0x1182, 42, 20, 0),
        (0x0cef, 43, 21, 0),
        (0x09a1, 45, 22, 0),
        (0x072f, 46, 23, 0),
        (0x055c, 48, 24, 0),
        (0x0406, 49, 25, 0),
        (0x0303, 51, 26, 0),
        (0x0240, 52, 27, 0),
        (0x01b1, 54, 28, 0),
        (0x0144, 56, 29, 0),
        (0x00f5, 57, 30, 0),
        (0x00b7, 59, 31, 0),
        (0x008a, 60, 32, 0),
        (0x0068, 62, 33, 0),
        (0x004e, 63, 34, 0),
        (0x003b, 32, 35, 0),
        (0x002c, 33, 9, 0),
        (0x5ae1, 37, 37, 1),
        (0x484c, 64, 38, 0),
        (0x3a0d, 65, 39, 0),
        (0x2ef1, 67, 40, 0),
        (0x261f, 68, 41, 0),
        (0x1f33, 69, 42, 0),
        (0x19a8, 70, 43, 0),
        (0x1518, 72, 44, 0),
        (0x1177, 73, 45, 0),
        (0x0e74, 74, 46, 0),
        (0x0bfb, 75, 47, 0),
        (0x09f8, 77, 48, 0),
        (0x0861, 78, 49, 0),
        (0x0706, 79, 50, 0),
        (0x05cd, 48, 51, 0),
        (0x04de, 50, 52, 0),
        (0x040f, 50, 53, 0),
        (0x0363, 51, 54, 0),
        (0x02d4, 52, 55, 0),
        (0x025c, 53, 56, 0),
        (0x01f8, 54, 57, 0),
        (0x01a4, 55, 58, 0),
        (0x0160, 56, 59, 0),
        (0x0125, 57, 60, 0),
        (0x00f6, 58, 61, 0),
        (0x00cb, 59, 62, 0),
        (0x00ab, 61, 63, 0),
        (0x008f, 61, 32, 0),
        (0x5b12, 65, 65, 1),
        (0x4d04, 80, 66, 0),
        (0x412c, 81, 67, 0),
        (0x37d8, 82, 68, 0),
        (0x2fe8, 83, 69, 0),
        (0x293c, 84, 70, 0),
        (0x2379, 86, 71, 0),
        (0x1edf, 87, 72, 0),
        (0x1aa9, 87, 73, 0),
        (0x174e, 72, 74, 0),
        (0x1424, 72, 75, 0),
        (0x119c, 74, 76, 0),
        (0x0f6b, 74, 77, 0),
        (0x0d51, 75, 78, 0),
        (0x0bb6, 77, 79, 0),
        (0x0a40, 77, 48, 0),
        (0x5832, 80, 81, 1),
        (0x4d1c, 88, 82, 0),
        (0x438e, 89, 83, 0),
        (0x3bdd, 90, 84, 0),
        (0x34ee, 91, 85, 0),
        (0x2eae, 92, 86, 0),
        (0x299a, 93, 87, 0),
        (0x2516, 86, 71, 0),
        (0x5570, 88, 89, 1),
        (0x4ca9, 95, 90, 0),
        (0x44d9, 96, 91, 0),
        (0x3e22, 97, 92, 0),
        (0x3824, 99, 93, 0),
        (0x32b4, 99, 94, 0),
        (0x2e17, 93, 86, 0),
        (0x56a8, 95, 96, 1),
        (0x4f46, 101, 97, 0),
        (0x47e5, 102, 98, 0),
        (0x41cf, 103, 99, 0),
        (0x3c3d, 104, 100, 0),
        (0x375e, 99, 93, 0),
        (0x5231, 105, 102, 0),
        (0x4c0f, 106, 103, 0),
        (0x4639, 107, 104, 0),
        (0x415e, 103, 99, 0),
        (0x5627, 105, 106, 1),
        (0x50e7, 108, 107, 0),
        (0x4b85, 109, 103, 0),
        (0x5597, 110, 109, 0),
        (0x504f, 111, 107, 0),
        (0x5a10, 110, 111, 1),
        (0x5522, 112, 109, 0),
        (0x59eb, 112, 111, 1),
        // The fixed 0.5 estimate: never leaves its state.
        (0x5a1d, 113, 113, 0),
    ];
    let mut table = [0u32; 128];
    let mut i = 0;
    while i < ROWS.len() {
        let (qe, nlps, nmps, switch) = ROWS[i];
        table[i] = qe << 16 | nmps << 8 | switch << 7 | nlps;
        i += 1;
    }
    table
};

/// Conditioning from DAC segments (T.81 B.2.4.3); defaults L=0, U=1 for DC tables, Kx=5 for AC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conditioning {
    pub dc_l: [u8; TABLES],
    pub dc_u: [u8; TABLES],
    pub ac_kx: [u8; TABLES],
}

impl Default for Conditioning {
    /// The values T.81 and libjpeg assume until a DAC says otherwise (reset at each SOI).
    fn default() -> Self {
        Self {
            dc_l: [0; TABLES],
            dc_u: [1; TABLES],
            ac_kx: [5; TABLES],
        }
    }
}

impl Conditioning {
    /// Applies a DAC segment's payload (after its length field), refusing what libjpeg's
    /// `get_dac` refuses: a selector past its 16 DC and 16 AC tables, L > U, an odd length.
    /// libjpeg takes any Kx (0 and values past 63 just pick one bin set for every
    /// coefficient), so we do too: refusing them would refuse files the oracle reads.
    pub fn parse_dac(&mut self, payload: &[u8]) -> Result<(), WatermarkError> {
        if payload.len() % 2 != 0 {
            return Err(corrupt("DAC length"));
        }
        for entry in payload.chunks_exact(2) {
            let (index, value) = (usize::from(entry[0]), entry[1]);
            if index >= 2 * TABLES {
                return Err(corrupt("DAC table index"));
            }
            if index >= TABLES {
                self.ac_kx[index - TABLES] = value;
            } else {
                let (l, u) = (value & 15, value >> 4);
                if l > u {
                    return Err(corrupt("Bogus DAC value"));
                }
                self.dc_l[index] = l;
                self.dc_u[index] = u;
            }
        }
        Ok(())
    }
}

fn corrupt(what: &str) -> WatermarkError {
    WatermarkError::Corrupt(what.to_owned())
}

/// `JWRN_ARITH_BAD_CODE`: a magnitude or a run past the block. A warning in libjpeg (which
/// then leaves the rest of the scan zero), an error in `djpeg -strict`, so an error here.
fn bad_code() -> WatermarkError {
    corrupt("arithmetic code out of range")
}

/// The arithmetic decoder's registers and its position in the scan's bytes (libjpeg's
/// `arith_entropy_decoder` minus the statistics, which live apart so that a bin can be
/// borrowed while the registers change).
struct Coder<'a> {
    data: &'a [u8],
    /// Next byte to read.
    pos: usize,
    /// Where the marker that ended the data starts (its last 0xFF), once reached.
    marker: Option<usize>,
    /// Zero bytes supplied since the marker was reached.
    tail_zeros: usize,
    /// `tail_zeros` when the decoder first moved the code's base (took the LPS path of the
    /// comparison) with only supplied zeros in its window; 0 if it has not.
    late_base_move: usize,
    /// The data ran out without a marker: libjpeg's source warns ("premature end").
    overran: bool,
    c: u32,
    a: u32,
    ct: i32,
}

impl<'a> Coder<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut coder = Self {
            data,
            pos: 0,
            marker: None,
            tail_zeros: 0,
            late_base_move: 0,
            overran: false,
            c: 0,
            a: 0,
            ct: 0,
        };
        coder.restart();
        coder
    }

    /// Re-initialises the registers so that the next decision reads two fresh bytes.
    fn restart(&mut self) {
        self.c = 0;
        self.a = 0;
        self.ct = -16;
    }

    /// The next data byte, as libjpeg's `arith_decode` reads it: 0xFF 0x00 is a 0xFF, fill
    /// 0xFF bytes are swallowed, and from the first marker on every byte is zero.
    fn byte(&mut self) -> u32 {
        if self.marker.is_some() {
            self.tail_zeros += 1;
            return 0;
        }
        let Some(&b) = self.data.get(self.pos) else {
            self.overran = true;
            return 0;
        };
        self.pos += 1;
        if b != 0xFF {
            return u32::from(b);
        }
        loop {
            let Some(&next) = self.data.get(self.pos) else {
                self.overran = true;
                return 0;
            };
            self.pos += 1;
            match next {
                0xFF => continue,
                0 => return 0xFF,
                _ => {
                    self.marker = Some(self.pos - 2);
                    self.tail_zeros = 1;
                    return 0;
                }
            }
        }
    }

    /// One binary decision with the estimate in `st` (T.81 D.2.4-D.2.6, libjpeg's
    /// `arith_decode`), updating the estimate.
    #[inline(always)]
    fn decode(&mut self, st: &mut u8) -> bool {
        while self.a < 0x8000 {
            self.ct -= 1;
            if self.ct < 0 {
                let data = self.byte();
                self.c = (self.c << 8) | data;
                self.ct += 8;
                if self.ct < 0 {
                    self.ct += 1;
                    if self.ct == 0 {
                        // Two initial bytes read: A becomes 0x10000 below.
                        self.a = 0x8000;
                    }
                }
            }
            self.a <<= 1;
        }
        let sv = *st;
        let entry = QE[usize::from(sv & 0x7F)];
        let nl = (entry & 0xFF) as u8;
        let nm = ((entry >> 8) & 0xFF) as u8;
        let qe = entry >> 16;
        let mut bit = sv >> 7;
        // A >= 0x8000 > every Qe here, and the loop above leaves ct >= 0.
        let temp = self.a - qe;
        self.a = temp;
        let temp = temp << self.ct;
        if self.c >= temp {
            if self.tail_zeros > TAIL_WINDOW && self.late_base_move == 0 {
                self.late_base_move = self.tail_zeros;
            }
            self.c -= temp;
            if self.a < qe {
                self.a = qe;
                *st = (sv & 0x80) ^ nm;
            } else {
                self.a = qe;
                *st = (sv & 0x80) ^ nl;
                bit ^= 1;
            }
        } else if self.a < 0x8000 {
            if self.a < qe {
                *st = (sv & 0x80) ^ nl;
                bit ^= 1;
            } else {
                *st = (sv & 0x80) ^ nm;
            }
        }
        bit != 0
    }

    /// Where the data of a scan or restart interval ends: the marker the decoder ran into,
    /// or the one that must follow at once (libjpeg's `next_marker` warns about any byte it
    /// skips, 0xFF 0x00 included). Refuses data that ran out, and data that ended so early
    /// that the decoder moved the code's base on supplied zeros ([`TAIL_WINDOW`]).
    fn end(&mut self) -> Result<usize, WatermarkError> {
        if self.overran {
            return Err(corrupt("arithmetic data runs past the end of the file"));
        }
        if let Some(at) = self.marker {
            if self.late_base_move != 0 && self.late_base_move + TAIL_WINDOW < self.tail_zeros {
                return Err(corrupt("arithmetic data ends before its scan does"));
            }
            return Ok(at);
        }
        let rest = &self.data[self.pos..];
        if rest.first() != Some(&0xFF) {
            return Err(corrupt("extraneous bytes after arithmetic data"));
        }
        let fill = rest.iter().take_while(|&&b| b == 0xFF).count();
        match rest.get(fill) {
            None => Err(corrupt("arithmetic data runs past the end of the file")),
            Some(0) => Err(corrupt("extraneous bytes after arithmetic data")),
            Some(_) => Ok(self.pos + fill - 1),
        }
    }
}

/// Statistics areas of the scan's tables (libjpeg's `dc_stats`, `ac_stats`, `fixed_bin`).
struct Stats {
    dc: [[u8; DC_BINS]; TABLES],
    ac: [[u8; AC_BINS]; TABLES],
    fixed: u8,
}

/// What a scan codes, from its Ss, Se, Ah (T.81 G.1.3; F.1.4 for sequential).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

impl Pass {
    /// The scan's pass, refusing what libjpeg's `start_pass` refuses. A scan coding 0..=63
    /// with no approximation is sequential (no progressive scan can be: its DC scans stop
    /// at 0); that a sequential frame has only such scans is the header parser's check.
    fn of(scan: &ScanSpec) -> Result<Self, WatermarkError> {
        let (ss, se, ah, al) = (scan.ss, scan.se, scan.ah, scan.al);
        if (ss, se, ah, al) == (0, 63, 0, 0) {
            return Ok(Self::Sequential);
        }
        let bad = if ss == 0 {
            se != 0
        } else {
            se < ss || se > 63 || scan.components.len() != 1
        };
        if bad || (ah != 0 && u16::from(al) + 1 != u16::from(ah)) || al > 13 {
            return Err(corrupt("invalid progressive scan parameters"));
        }
        Ok(match (ss == 0, ah == 0) {
            (true, true) => Self::DcFirst,
            (true, false) => Self::DcRefine,
            (false, true) => Self::AcFirst,
            (false, false) => Self::AcRefine,
        })
    }

    fn uses_dc_stats(self) -> bool {
        matches!(self, Self::Sequential | Self::DcFirst)
    }

    fn uses_ac_stats(self) -> bool {
        matches!(self, Self::Sequential | Self::AcFirst | Self::AcRefine)
    }
}

/// One block of an MCU: the scan component it belongs to and its place in that plane.
#[derive(Clone, Copy)]
struct McuBlock {
    ci: usize,
    dx: usize,
    dy: usize,
}

/// Decodes the entropy-coded data of one arithmetic scan, starting at `data[0]` (the byte after
/// the SOS segment), into `planes`. `tables[i]` = (DC conditioning table id, AC table id) of scan
/// component i. `restart_interval` in MCUs (0 = none). Returns the offset in `data` of the
/// marker that ends the scan (the first marker that is not an expected RSTn): `data[offset]`
/// is its 0xFF, `data[offset + 1]` its code.
///
/// A scan coding coefficients 0..=63 without approximation is decoded as sequential; the
/// caller checks that a sequential frame (SOF9) has only such scans and that a progressive
/// one (SOF10) has none, and follows the progression across scans (libjpeg's
/// `JWRN_BOGUS_PROGRESSION`). Every block of the MCUs is decoded: an interleaved scan codes
/// the padded grid, a non-interleaved one [`FrameGeometry::coded_blocks`].
pub(crate) fn decode_scan(
    data: &[u8],
    geom: &FrameGeometry,
    scan: &ScanSpec,
    tables: &[(usize, usize)],
    cond: &Conditioning,
    restart_interval: usize,
    planes: &mut [Plane],
) -> Result<usize, WatermarkError> {
    let pass = Pass::of(scan)?;
    let n = scan.components.len();
    if n == 0 || n > 4 || tables.len() != n {
        return Err(corrupt("scan component count"));
    }
    for (i, &c) in scan.components.iter().enumerate() {
        if c >= geom.components.len() || scan.components[..i].contains(&c) {
            return Err(corrupt("scan component"));
        }
    }
    if planes.len() != geom.components.len()
        || (0..planes.len()).any(|c| {
            let (w, h) = geom.padded_blocks(c);
            planes[c].width_blocks != w || planes[c].height_blocks != h
        })
    {
        return Err(corrupt("planes do not match the frame"));
    }
    for &(dc, ac) in tables {
        if (pass.uses_dc_stats() && dc >= TABLES) || (pass.uses_ac_stats() && ac >= TABLES) {
            return Err(corrupt("arithmetic table selector"));
        }
    }

    // The MCU's blocks and the grid of MCUs.
    let mut mcu: Vec<McuBlock> = Vec::new();
    let (mcus_x, mcus_y) = if n == 1 {
        mcu.push(McuBlock {
            ci: 0,
            dx: 0,
            dy: 0,
        });
        geom.coded_blocks(scan.components[0])
    } else {
        for (ci, &c) in scan.components.iter().enumerate() {
            let fc = &geom.components[c];
            for dy in 0..fc.v {
                for dx in 0..fc.h {
                    mcu.push(McuBlock { ci, dx, dy });
                }
            }
        }
        if mcu.len() > 10 {
            return Err(corrupt("too many blocks in an MCU"));
        }
        (geom.mcus_x, geom.mcus_y)
    };
    let unit: Vec<(usize, usize)> = scan
        .components
        .iter()
        .map(|&c| {
            if n == 1 {
                (1, 1)
            } else {
                (geom.components[c].h, geom.components[c].v)
            }
        })
        .collect();

    let mut coder = Coder::new(data);
    let mut stats = Box::new(Stats {
        dc: [[0; DC_BINS]; TABLES],
        ac: [[0; AC_BINS]; TABLES],
        fixed: FIXED_STATE,
    });
    let mut pred = [0i32; 4];
    let mut dc_context = [0usize; 4];
    let mut to_go = restart_interval;
    let mut next_rst = 0u8;

    for my in 0..mcus_y {
        for mx in 0..mcus_x {
            if restart_interval > 0 {
                if to_go == 0 {
                    let at = coder.end()?;
                    if coder.data.get(at + 1) != Some(&(0xD0 + next_rst)) {
                        return Err(corrupt("restart marker missing or out of order"));
                    }
                    next_rst = (next_rst + 1) & 7;
                    coder.pos = at + 2;
                    coder.marker = None;
                    coder.tail_zeros = 0;
                    coder.late_base_move = 0;
                    coder.restart();
                    stats.reset(pass, tables);
                    pred = [0; 4];
                    dc_context = [0; 4];
                    to_go = restart_interval;
                }
                to_go -= 1;
            }
            for b in &mcu {
                let c = scan.components[b.ci];
                let (uh, uv) = unit[b.ci];
                let plane = &mut planes[c];
                let (bx, by) = (mx * uh + b.dx, my * uv + b.dy);
                let block = &mut plane.blocks[by * plane.width_blocks + bx];
                let (dc_tbl, ac_tbl) = tables[b.ci];
                let Stats { dc, ac, fixed } = &mut *stats;
                match pass {
                    Pass::Sequential => {
                        decode_dc(
                            &mut coder,
                            &mut dc[dc_tbl],
                            &mut dc_context[b.ci],
                            &mut pred[b.ci],
                            cond.dc_l[dc_tbl],
                            cond.dc_u[dc_tbl],
                        )?;
                        block[0] = pred[b.ci] as i16;
                        decode_ac_first(
                            &mut coder,
                            &mut ac[ac_tbl],
                            fixed,
                            cond.ac_kx[ac_tbl],
                            (1, 63, 0),
                            block,
                        )?;
                    }
                    Pass::DcFirst => {
                        decode_dc(
                            &mut coder,
                            &mut dc[dc_tbl],
                            &mut dc_context[b.ci],
                            &mut pred[b.ci],
                            cond.dc_l[dc_tbl],
                            cond.dc_u[dc_tbl],
                        )?;
                        block[0] = (pred[b.ci] << scan.al) as i16;
                    }
                    Pass::DcRefine => {
                        if coder.decode(fixed) {
                            block[0] |= 1 << scan.al;
                        }
                    }
                    Pass::AcFirst => decode_ac_first(
                        &mut coder,
                        &mut ac[ac_tbl],
                        fixed,
                        cond.ac_kx[ac_tbl],
                        (scan.ss, scan.se, scan.al),
                        block,
                    )?,
                    Pass::AcRefine => decode_ac_refine(
                        &mut coder,
                        &mut ac[ac_tbl],
                        fixed,
                        (scan.ss, scan.se, scan.al),
                        block,
                    )?,
                }
            }
            if coder.overran {
                return Err(corrupt("arithmetic data runs past the end of the file"));
            }
        }
    }
    coder.end()
}

impl Stats {
    /// Zeroes the bins a pass of these tables uses (at a restart marker, libjpeg's
    /// `process_restart`; the scan's fresh `Stats` start zeroed).
    fn reset(&mut self, pass: Pass, tables: &[(usize, usize)]) {
        for &(dc, ac) in tables {
            if pass.uses_dc_stats() {
                self.dc[dc] = [0; DC_BINS];
            }
            if pass.uses_ac_stats() {
                self.ac[ac] = [0; AC_BINS];
            }
        }
    }
}

/// A DC difference (T.81 F.1.4.4.1, Figures F.19 and F.21-F.24), added to the prediction
/// modulo 2^16 as libjpeg does; `ctx` is the component's conditioning for its next block.
fn decode_dc(
    coder: &mut Coder,
    st: &mut [u8; DC_BINS],
    ctx: &mut usize,
    pred: &mut i32,
    l: u8,
    u: u8,
) -> Result<(), WatermarkError> {
    let s0 = *ctx;
    if !coder.decode(&mut st[s0]) {
        *ctx = 0;
        return Ok(());
    }
    let sign = usize::from(coder.decode(&mut st[s0 + 1]));
    let mut bin = s0 + 2 + sign;
    let mut m: i32 = i32::from(coder.decode(&mut st[bin]));
    if m != 0 {
        bin = 20;
        while coder.decode(&mut st[bin]) {
            m <<= 1;
            if m == 0x8000 {
                return Err(bad_code());
            }
            bin += 1;
        }
    }
    *ctx = if m < (1i32 << l) >> 1 {
        0
    } else if m > (1i32 << u) >> 1 {
        12 + sign * 4
    } else {
        4 + sign * 4
    };
    let v = magnitude_bits(coder, st, bin + 14, m);
    let v = if sign != 0 { -v } else { v };
    *pred = (*pred + v) & 0xFFFF;
    Ok(())
}

/// The low bits of a magnitude of category `m` (Figure F.24) from bins at `bin`, plus one.
#[inline(always)]
fn magnitude_bits(coder: &mut Coder, st: &mut [u8], bin: usize, mut m: i32) -> i32 {
    let mut v = m;
    while {
        m >>= 1;
        m != 0
    } {
        if coder.decode(&mut st[bin]) {
            v |= m;
        }
    }
    v + 1
}

/// AC coefficients `ss..=se` of a sequential or first progressive scan (Figure F.20,
/// G.1.3.2), scaled by 2^al, into the zigzag block.
fn decode_ac_first(
    coder: &mut Coder,
    st: &mut [u8; AC_BINS],
    fixed: &mut u8,
    kx: u8,
    (ss, se, al): (u8, u8, u8),
    block: &mut [i16; 64],
) -> Result<(), WatermarkError> {
    let (se, kx) = (usize::from(se), usize::from(kx));
    let mut k = usize::from(ss);
    while k <= se {
        let mut bin = 3 * (k - 1);
        if coder.decode(&mut st[bin]) {
            break; // EOB
        }
        while !coder.decode(&mut st[bin + 1]) {
            bin += 3;
            k += 1;
            if k > se {
                return Err(bad_code());
            }
        }
        let sign = coder.decode(fixed);
        bin += 2;
        let mut m: i32 = i32::from(coder.decode(&mut st[bin]));
        if m != 0 && coder.decode(&mut st[bin]) {
            m <<= 1;
            bin = if k <= kx { 189 } else { 217 };
            while coder.decode(&mut st[bin]) {
                m <<= 1;
                if m == 0x8000 {
                    return Err(bad_code());
                }
                bin += 1;
            }
        }
        let v = magnitude_bits(coder, st, bin + 14, m);
        let v = if sign { -v } else { v };
        block[k] = ((v as u32) << al) as i16;
        k += 1;
    }
    Ok(())
}

/// One more bit of AC coefficients `ss..=se` (G.1.3.3, libjpeg's `decode_mcu_AC_refine`).
fn decode_ac_refine(
    coder: &mut Coder,
    st: &mut [u8; AC_BINS],
    fixed: &mut u8,
    (ss, se, al): (u8, u8, u8),
    block: &mut [i16; 64],
) -> Result<(), WatermarkError> {
    let se = usize::from(se);
    let p1: i16 = 1 << al;
    let m1: i16 = -1i16 << al;
    // EOBx: the end of the block as the earlier scans left it.
    let kex = (1..=se).rev().find(|&k| block[k] != 0).unwrap_or(0);
    let mut k = usize::from(ss);
    while k <= se {
        let mut bin = 3 * (k - 1);
        if k > kex && coder.decode(&mut st[bin]) {
            break; // EOB
        }
        loop {
            let coef = &mut block[k];
            if *coef != 0 {
                if coder.decode(&mut st[bin + 2]) {
                    *coef = if *coef < 0 {
                        coef.wrapping_add(m1)
                    } else {
                        coef.wrapping_add(p1)
                    };
                }
                break;
            }
            if coder.decode(&mut st[bin + 1]) {
                *coef = if coder.decode(fixed) { m1 } else { p1 };
                break;
            }
            bin += 3;
            k += 1;
            if k > se {
                return Err(bad_code());
            }
        }
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Files written by libjpeg-turbo's `cjpeg -arithmetic` in each of its modes; the oracle
    //! for their coefficients is `jpegtran -copy none` (arithmetic to Huffman, lossless in
    //! the coefficient domain) read by our baseline decoder, and for what is refused
    //! `djpeg -strict`. Needs Debian's libjpeg-turbo-progs.

    use super::*;
    use crate::watermark::coef::{new_planes, FrameComponent, Planes};
    use crate::watermark::jpeg::decode_coefficients;
    use std::path::PathBuf;
    use std::process::Command;

    fn tools_present() -> bool {
        let ok = ["cjpeg", "djpeg", "jpegtran"]
            .iter()
            .all(|t| Command::new(t).arg("-version").output().is_ok());
        if !ok {
            eprintln!(
                "SKIPPED: cjpeg/djpeg/jpegtran missing (apt-get install libjpeg-turbo-progs)"
            );
        }
        ok
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("joip-arith-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// A gradient with noise and hard edges (a saturated box, a diagonal), as a PPM.
    fn synthetic_ppm(w: usize, h: usize) -> Vec<u8> {
        let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
        let mut seed = 0x2545_f491_u32;
        for y in 0..h {
            for x in 0..w {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let noise = (seed % 41) as i32 - 20;
                let mut px = [
                    (x * 255 / w) as i32 + noise,
                    (y * 255 / h) as i32 - noise,
                    ((x + y) * 127 / (w + h)) as i32 + noise / 2,
                ];
                if x > w / 4 && x < w / 2 && y > h / 3 && y < 2 * h / 3 {
                    px = [250, 10, 30];
                }
                if (x as i64 - 2 * y as i64).abs() < 3 {
                    px = [0, 0, 0];
                }
                out.extend(px.iter().map(|&v| v.clamp(0, 255) as u8));
            }
        }
        out
    }

    /// Texture over the top third, one flat colour below: the arithmetic code of the flat
    /// part ends in zero bytes the encoder drops.
    fn flat_bottom_ppm(w: usize, h: usize) -> Vec<u8> {
        let mut ppm = synthetic_ppm(w, h);
        let header = ppm.len() - 3 * w * h;
        for px in ppm[header + 3 * w * (h / 3)..].chunks_exact_mut(3) {
            px.copy_from_slice(&[40, 90, 200]);
        }
        ppm
    }

    fn astronaut_ppm() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/photos/astronaut.jpg");
        let out = Command::new("djpeg")
            .arg("-pnm")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// `cjpeg` with `args` (and a scan script, if any) over `ppm`.
    fn cjpeg(name: &str, ppm: &[u8], args: &[&str], script: Option<&str>) -> PathBuf {
        let input = scratch(&format!("{name}.ppm"));
        std::fs::write(&input, ppm).unwrap();
        let output = scratch(&format!("{name}.jpg"));
        let mut cmd = Command::new("cjpeg");
        cmd.args(args);
        if let Some(script) = script {
            let path = scratch(&format!("{name}.scans"));
            std::fs::write(&path, script).unwrap();
            cmd.arg("-scans").arg(path);
        }
        let out = cmd
            .arg("-outfile")
            .arg(&output)
            .arg(&input)
            .output()
            .unwrap();
        assert!(out.status.success(), "cjpeg {args:?}: {out:?}");
        output
    }

    fn djpeg_strict_accepts(bytes: &[u8], name: &str) -> bool {
        let path = scratch(name);
        std::fs::write(&path, bytes).unwrap();
        Command::new("djpeg")
            .args(["-strict", "-outfile", "/dev/null"])
            .arg(&path)
            .output()
            .unwrap()
            .status
            .success()
    }

    fn be16(p: &[u8]) -> Option<usize> {
        Some(usize::from(*p.first()?) << 8 | usize::from(*p.get(1)?))
    }

    fn bad(what: &str) -> WatermarkError {
        WatermarkError::Corrupt(format!("test parser: {what}"))
    }

    /// The least of a header parser that drives [`decode_scan`] over a whole file (the real
    /// one is the JPEG reader's): SOF9/10, DAC, DRI, SOS; everything else skipped.
    fn decode_file(bytes: &[u8]) -> Result<(FrameGeometry, Planes), WatermarkError> {
        if bytes.get(..2) != Some(&[0xFF, 0xD8][..]) {
            return Err(bad("SOI"));
        }
        let mut pos = 2;
        let mut frame: Option<(FrameGeometry, Planes)> = None;
        let mut cond = Conditioning::default();
        let mut restart = 0;
        loop {
            if bytes.get(pos) != Some(&0xFF) {
                return Err(bad("marker expected"));
            }
            while bytes.get(pos) == Some(&0xFF) {
                pos += 1;
            }
            let code = *bytes.get(pos).ok_or_else(|| bad("cut marker"))?;
            pos += 1;
            match code {
                0xD9 => break,
                0xD0..=0xD7 => continue,
                _ => {}
            }
            let len = be16(&bytes[pos..]).ok_or_else(|| bad("cut length"))?;
            let seg = bytes
                .get(pos + 2..pos + len)
                .ok_or_else(|| bad("cut segment"))?;
            pos += len;
            match code {
                0xC9 | 0xCA => {
                    let n = usize::from(seg[5]);
                    let components = (0..n)
                        .map(|i| FrameComponent {
                            id: seg[6 + 3 * i],
                            h: usize::from(seg[7 + 3 * i] >> 4),
                            v: usize::from(seg[7 + 3 * i] & 15),
                            tq: usize::from(seg[8 + 3 * i]),
                        })
                        .collect();
                    let geom = FrameGeometry::new(
                        be16(&seg[3..]).unwrap(),
                        be16(&seg[1..]).unwrap(),
                        components,
                    );
                    let planes = new_planes(&geom);
                    frame = Some((geom, planes));
                }
                0xCC => cond.parse_dac(seg)?,
                0xDD => restart = be16(seg).ok_or_else(|| bad("DRI"))?,
                0xDA => {
                    let (geom, planes) = frame.as_mut().ok_or_else(|| bad("SOS first"))?;
                    let n = usize::from(seg[0]);
                    let mut components = Vec::new();
                    let mut tables = Vec::new();
                    for i in 0..n {
                        let id = seg[1 + 2 * i];
                        let c = geom
                            .components
                            .iter()
                            .position(|fc| fc.id == id)
                            .ok_or_else(|| bad("component id"))?;
                        components.push(c);
                        let t = seg[2 + 2 * i];
                        tables.push((usize::from(t >> 4), usize::from(t & 15)));
                    }
                    let p = &seg[1 + 2 * n..];
                    let scan = ScanSpec {
                        components,
                        ss: p[0],
                        se: p[1],
                        ah: p[2] >> 4,
                        al: p[2] & 15,
                    };
                    pos +=
                        decode_scan(&bytes[pos..], geom, &scan, &tables, &cond, restart, planes)?;
                }
                _ => {}
            }
        }
        frame.ok_or_else(|| bad("no frame"))
    }

    /// The oracle's coefficients: `jpegtran -copy none` to baseline, read by our baseline
    /// decoder, its MCU order laid out on the planes.
    fn oracle_planes(path: &PathBuf, geom: &FrameGeometry) -> Planes {
        let out = Command::new("jpegtran")
            .args(["-copy", "none"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let blocks = decode_coefficients(&out.stdout).unwrap();
        crate::watermark::jpeg_write::tests::planes_of(geom, &blocks)
    }

    /// Our planes equal the oracle's on every block that carries picture (jpegtran writes
    /// its own padding blocks).
    fn assert_matches_oracle(path: &PathBuf) {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            djpeg_strict_accepts(&bytes, &format!("strict-{name}")),
            "{path:?}"
        );
        let (geom, planes) = decode_file(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let oracle = oracle_planes(path, &geom);
        for c in 0..geom.components.len() {
            let (w, h) = geom.coded_blocks(c);
            for by in 0..h {
                for bx in 0..w {
                    assert_eq!(
                        planes[c].block(bx, by),
                        oracle[c].block(bx, by),
                        "{path:?} component {c} block ({bx}, {by})"
                    );
                }
            }
        }
    }

    const PROGRESSIVE_SEPARATE: &str = "0: 0 0 0 1; 1: 0 0 0 0; 2: 0 0 0 0;\n\
        0: 1 5 0 2; 0: 6 63 0 2; 2: 1 63 0 1; 1: 1 63 0 1;\n\
        0: 1 63 2 1; 0: 0 0 1 0; 0: 1 63 1 0; 1: 1 63 1 0; 2: 1 63 1 0;\n";

    fn pictures() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("synthetic300x200", synthetic_ppm(300, 200)),
            ("synthetic173x97", synthetic_ppm(173, 97)),
            ("astronaut", astronaut_ppm()),
            ("flat-bottom", flat_bottom_ppm(640, 480)),
        ]
    }

    fn check_modes(modes: &[(&str, &[&str], Option<&str>)]) {
        if !tools_present() {
            return;
        }
        for (picture, ppm) in pictures() {
            for (mode, args, script) in modes {
                let mut all = vec!["-arithmetic"];
                all.extend_from_slice(args);
                let path = cjpeg(&format!("{picture}-{mode}"), &ppm, &all, *script);
                assert_matches_oracle(&path);
            }
        }
    }

    #[test]
    fn sequential_files_decode_to_jpegtrans_coefficients() {
        check_modes(&[
            ("420", &["-sample", "2x2"], None),
            ("422", &["-sample", "2x1"], None),
            ("444", &["-sample", "1x1"], None),
            ("440", &["-sample", "1x2"], None),
            ("gray", &["-grayscale"], None),
            ("q100", &["-quality", "100"], None),
            ("restart1", &["-restart", "1"], None),
            ("restart3b", &["-restart", "3B"], None),
        ]);
    }

    #[test]
    fn progressive_files_decode_to_jpegtrans_coefficients() {
        check_modes(&[
            ("prog420", &["-progressive"], None),
            ("prog444", &["-progressive", "-sample", "1x1"], None),
            ("proggray", &["-progressive", "-grayscale"], None),
            ("progrestart", &["-progressive", "-restart", "3B"], None),
        ]);
    }

    #[test]
    fn non_interleaved_files_decode_to_jpegtrans_coefficients() {
        check_modes(&[
            ("sep420", &["-sample", "2x2"], Some("0;\n1;\n2;\n")),
            ("sep440", &["-sample", "1x2"], Some("0;\n2;\n1;\n")),
            (
                "sep-restart",
                &["-sample", "2x2", "-restart", "2B"],
                Some("0;\n1 2;\n"),
            ),
            (
                "sepprog420",
                &["-sample", "2x2"],
                Some(PROGRESSIVE_SEPARATE),
            ),
            (
                "sepprog440",
                &["-sample", "1x2"],
                Some(PROGRESSIVE_SEPARATE),
            ),
        ]);
    }

    /// Where the entropy-coded data of the first scan starts.
    fn first_scan_data(bytes: &[u8]) -> usize {
        entropy_coded(bytes)[0].start
    }

    /// The entropy-coded data of every scan, restart markers included.
    fn entropy_coded(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut ranges = Vec::new();
        let mut pos = 2;
        while pos + 4 <= bytes.len() {
            let code = bytes[pos + 1];
            if code == 0xD9 {
                break;
            }
            let start = pos + 2 + be16(&bytes[pos + 2..]).unwrap();
            if code != 0xDA {
                pos = start;
                continue;
            }
            let mut end = start;
            while bytes[end] != 0xFF || matches!(bytes[end + 1], 0 | 0xD0..=0xD7 | 0xFF) {
                end += 1;
            }
            ranges.push(start..end);
            pos = end;
        }
        ranges
    }

    /// A cut file without EOI is refused by both. With an EOI appended, djpeg -strict reads
    /// most of them silently (zeros made up for the rest of the scan); we refuse them, except
    /// where the decoder's made-up rest never needs the code to move (see [`TAIL_WINDOW`]):
    /// such a tail is what a complete scan's encoder would have written, so nothing in the
    /// scan tells them apart. The test holds that to a few percent of the cuts.
    #[test]
    fn cut_files_are_refused() {
        if !tools_present() {
            return;
        }
        let synthetic = synthetic_ppm(300, 200);
        let astronaut = astronaut_ppm();
        let modes: [(&str, &[u8], &[&str]); 4] = [
            ("cut-seq", &synthetic, &["-arithmetic"]),
            ("cut-prog", &synthetic, &["-arithmetic", "-progressive"]),
            ("cut-restart", &synthetic, &["-arithmetic", "-restart", "1"]),
            (
                "cut-astronaut",
                &astronaut,
                &["-arithmetic", "-progressive"],
            ),
        ];
        let (mut cuts, mut djpeg_accepts, mut escapes) = (0, 0, 0);
        for (name, ppm, args) in modes {
            let bytes = std::fs::read(cjpeg(name, ppm, args, None)).unwrap();
            let start = first_scan_data(&bytes);
            for step in 1..40 {
                let cut = start + (bytes.len() - start) * step / 40;
                let mut cut_bytes = bytes[..cut].to_vec();
                // A cut that lands on a marker's 0xFF would leave half a marker.
                while cut_bytes.last() == Some(&0xFF) {
                    cut_bytes.pop();
                }
                assert!(!djpeg_strict_accepts(
                    &cut_bytes,
                    &format!("{name}-cut.jpg")
                ));
                assert!(decode_file(&cut_bytes).is_err(), "{name} cut at {cut}");
                cut_bytes.extend_from_slice(&[0xFF, 0xD9]);
                cuts += 1;
                if djpeg_strict_accepts(&cut_bytes, &format!("{name}-cut-eoi.jpg")) {
                    djpeg_accepts += 1;
                }
                match decode_file(&cut_bytes) {
                    Err(WatermarkError::Corrupt(_)) => {}
                    Err(e) => panic!("{name} cut at {cut} with EOI: {e}"),
                    Ok(_) => {
                        eprintln!("{name} cut at {cut} with EOI: accepted");
                        escapes += 1;
                    }
                }
            }
        }
        eprintln!(
            "{cuts} cut files with EOI: djpeg -strict accepts {djpeg_accepts}, we accept {escapes}"
        );
        assert!(
            escapes * 20 <= cuts,
            "{escapes} of {cuts} cut files accepted"
        );
    }

    #[test]
    fn byte_flips_are_never_accepted_where_djpeg_strict_refuses() {
        if !tools_present() {
            return;
        }
        let ppm = synthetic_ppm(173, 97);
        let modes: [(&str, &[&str]); 3] = [
            ("flip-seq", &["-arithmetic"]),
            ("flip-prog", &["-arithmetic", "-progressive"]),
            ("flip-restart", &["-arithmetic", "-restart", "1"]),
        ];
        let (mut both_refuse, mut both_accept, mut only_we_refuse) = (0, 0, 0);
        let mut seed = 0x9e37_79b9_u32;
        for (name, args) in modes {
            let bytes = std::fs::read(cjpeg(name, &ppm, args, None)).unwrap();
            let data: Vec<usize> = entropy_coded(&bytes).into_iter().flatten().collect();
            for _ in 0..40 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = data[seed as usize % data.len()];
                let flipped = bytes[at] ^ (1 << (seed >> 28 & 7));
                // Flips that make or unmake a marker or a stuffed byte change the file's
                // structure, which the test parser does not read as libjpeg does.
                if bytes[at] == 0xFF || flipped == 0xFF || bytes[at - 1] == 0xFF {
                    continue;
                }
                let mut damaged = bytes.clone();
                damaged[at] = flipped;
                let djpeg = djpeg_strict_accepts(&damaged, &format!("{name}-flip.jpg"));
                let ours = decode_file(&damaged);
                match (djpeg, &ours) {
                    (true, Ok(_)) => both_accept += 1,
                    (false, Err(_)) => both_refuse += 1,
                    (true, Err(e)) => {
                        eprintln!("{name}: flip at {at} refused ({e}), djpeg -strict reads it");
                        only_we_refuse += 1
                    }
                    (false, Ok(_)) => panic!("{name}: flip at {at} accepted, djpeg refuses"),
                }
            }
        }
        eprintln!(
            "flips: {both_accept} both accept, {both_refuse} both refuse, \
             {only_we_refuse} only we refuse"
        );
    }

    #[test]
    fn dac_refuses_what_libjpeg_refuses() {
        let mut cond = Conditioning::default();
        cond.parse_dac(&[0x01, 0x52, 0x11, 7, 0x1F, 0]).unwrap();
        assert_eq!((cond.dc_l[1], cond.dc_u[1]), (2, 5));
        assert_eq!((cond.ac_kx[1], cond.ac_kx[15]), (7, 0));
        assert!(cond.parse_dac(&[0x00, 0x12]).is_err(), "L > U");
        assert!(cond.parse_dac(&[0x20, 5]).is_err(), "index past 31");
        assert!(cond.parse_dac(&[0x10]).is_err(), "odd length");
    }

    /// Release-mode figure for the report: `cargo test --release -p joip --lib
    /// arith::tests::speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn speed() {
        if !tools_present() {
            return;
        }
        let path = cjpeg("speed", &synthetic_ppm(4000, 3000), &["-arithmetic"], None);
        let bytes = std::fs::read(path).unwrap();
        let t = std::time::Instant::now();
        decode_file(&bytes).unwrap();
        eprintln!("12 MP arithmetic decode: {:?}", t.elapsed());
    }
}
