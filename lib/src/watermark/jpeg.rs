//! Sequential JPEG stamped in the DCT domain (DESIGN.md invariant 4, issue 9).
//!
//! Only the 8x8 blocks under the mark are decoded to samples, blended, and re-quantised with
//! the file's own tables; every other block keeps its quantised coefficients. The scan is not
//! re-encoded either, where that can be avoided:
//! - the entropy-coded bytes before the first MCU the mark touches are copied as they are
//!   (where that MCU starts is found by Huffman decoding alone: no IDCT, no colour);
//! - the MCUs from there to one past the last marked MCU are decoded and re-encoded (the one
//!   past, because its DC differences refer to a block that changed);
//! - the rest of the scan is spliced back bit for bit: its symbols are unchanged, only its bit
//!   alignment may differ;
//! - with restart intervals, intervals the mark does not touch are copied whole.
//!
//! The file's Huffman tables are kept when they have a code for every new symbol. Otherwise
//! (typical of files written with optimised tables, which hold only the symbols the photo
//! used) the whole scan moves to new optimised tables (Annex K.2) in two passes that still
//! build coefficients only inside the windows: one counts symbols while decoding codes, the
//! other re-codes each symbol with the new table and copies its value bits.

use std::ops::Range;

use super::dct;
use super::huffman::{
    optimal_table, BitReader, BitWriter, Block, BlockSink, DecodeTable, EncodeTable, Encoder,
    HuffSpec, MissingCode, ScanError, SymbolCounter, ZIGZAG,
};
use super::mark::Overlay;
use super::orientation::{self, Orientation};
use super::sniff::check_pixels;
use super::{Limits, WatermarkError};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DQT: u8 = 0xDB;
const DNL: u8 = 0xDC;
const DRI: u8 = 0xDD;
const DHT: u8 = 0xC4;
const DAC: u8 = 0xCC;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
const COM: u8 = 0xFE;

/// Why an arithmetic-coded file (SOF9 to SOF15, or a DAC segment) is refused.
const ARITHMETIC: &str = "arithmetic-coded JPEG";

/// Which Huffman tables the output scan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tables {
    /// The file's own: only the window around the mark was re-encoded.
    File,
    /// New optimised ones: a new symbol had no code, so the whole scan was re-encoded.
    Optimised,
}

/// What stamping did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// Tables of the output scan.
    pub tables: Tables,
    /// MCUs whose entropy-coded data was produced again (the rest was copied).
    pub reencoded_mcus: usize,
    /// MCUs in the scan.
    pub total_mcus: usize,
    /// Blocks whose coefficients changed.
    pub changed_blocks: usize,
}

fn corrupt(what: &str) -> WatermarkError {
    WatermarkError::Corrupt(what.to_owned())
}

fn truncated() -> WatermarkError {
    corrupt("truncated")
}

/// Why an attempt with the file's tables stopped.
enum Fail {
    Error(WatermarkError),
    MissingCode,
}

impl From<WatermarkError> for Fail {
    fn from(e: WatermarkError) -> Self {
        Fail::Error(e)
    }
}

impl From<ScanError> for Fail {
    fn from(e: ScanError) -> Self {
        Fail::Error(e.into())
    }
}

impl From<MissingCode> for Fail {
    fn from(_: MissingCode) -> Self {
        Fail::MissingCode
    }
}

#[derive(Clone, Copy, Debug)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
}

struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
}

/// Colour model of the samples, which decides what "white" and "black" are per component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Colour {
    Gray,
    YCbCr,
    Rgb,
}

/// A header segment as it goes to the output.
enum Piece {
    /// Copied from the input.
    Keep(Range<usize>),
    /// A DHT, copied unless the scan gets new tables.
    Dht(Range<usize>),
    /// JFIF APP0 without its thumbnail.
    App0(Vec<u8>),
}

/// One component of the scan: frame index and table ids.
#[derive(Clone, Copy)]
struct ScanComponent {
    component: usize,
    dc: usize,
    ac: usize,
}

/// Everything before the entropy-coded data.
pub(crate) struct Header {
    frame: Frame,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<HuffSpec>; 4],
    ac: [Option<HuffSpec>; 4],
    restart_interval: usize,
    orientation: Orientation,
    colour: Colour,
    scan: Vec<ScanComponent>,
    pieces: Vec<Piece>,
    sos: Range<usize>,
}

/// Reads the segments up to the first scan: refuses what is too large from the SOF alone,
/// sends what the DCT path cannot stamp to the fallback, and sorts the metadata into what is
/// kept (JFIF without thumbnail, ICC profile, Adobe colour transform) and what is dropped
/// (EXIF, XMP, Photoshop, comments, every other APPn).
pub(crate) fn parse_header(input: &[u8], limits: &Limits) -> Result<Header, WatermarkError> {
    if !input.starts_with(&[0xFF, SOI]) {
        return Err(WatermarkError::Unsupported("not a JPEG"));
    }
    let mut frame: Option<Frame> = None;
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc: [Option<HuffSpec>; 4] = Default::default();
    let mut ac: [Option<HuffSpec>; 4] = Default::default();
    let mut restart_interval = 0;
    let mut orientation = None;
    let mut adobe_transform = None;
    let mut jfif = false;
    let mut pieces = Vec::new();
    let mut i = 2;
    loop {
        if input.get(i) != Some(&0xFF) {
            return Err(if i >= input.len() {
                truncated()
            } else {
                corrupt("expected a marker")
            });
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while input.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *input.get(i).ok_or_else(truncated)?;
        let start = i - 1;
        i += 1;
        if matches!(marker, SOI | EOI | 0x00 | 0x01 | 0xD0..=0xD7) {
            return Err(corrupt("unexpected marker before the image data"));
        }
        let len = usize::from(u16::from_be_bytes([
            *input.get(i).ok_or_else(truncated)?,
            *input.get(i + 1).ok_or_else(truncated)?,
        ]));
        if len < 2 {
            return Err(corrupt("segment length"));
        }
        let end = i + len;
        let payload = input.get(i + 2..end).ok_or_else(truncated)?;
        let range = start..end;
        i = end;
        match marker {
            0xC0..=0xCF if marker != DHT && marker != DAC && marker != 0xC8 => {
                if frame.is_some() {
                    return Err(corrupt("more than one frame"));
                }
                frame = Some(parse_frame(marker, payload, limits)?);
                pieces.push(Piece::Keep(range));
            }
            DAC => return Err(WatermarkError::Unsupported(ARITHMETIC)),
            DHT => {
                parse_dht(payload, &mut dc, &mut ac)?;
                pieces.push(Piece::Dht(range));
            }
            DQT => {
                parse_dqt(payload, &mut quant)?;
                pieces.push(Piece::Keep(range));
            }
            DRI => {
                if payload.len() != 2 {
                    return Err(corrupt("DRI length"));
                }
                restart_interval = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
                pieces.push(Piece::Keep(range));
            }
            SOS => {
                let frame = frame.ok_or_else(|| corrupt("scan before frame"))?;
                let scan = parse_sos(payload, &frame, &quant, &dc, &ac)?;
                let colour = match frame.components.len() {
                    1 => Colour::Gray,
                    _ => colour_of(&frame, adobe_transform, jfif),
                };
                return Ok(Header {
                    frame,
                    quant,
                    dc,
                    ac,
                    restart_interval,
                    orientation: orientation.unwrap_or(Orientation::UPRIGHT),
                    colour,
                    scan,
                    pieces,
                    sos: range,
                });
            }
            APP0 if payload.starts_with(b"JFIF\0") && payload.len() >= 14 => {
                // Keep density and version; drop the (unwatermarked) thumbnail.
                jfif = true;
                let mut seg = vec![0xFF, APP0, 0, 16];
                seg.extend_from_slice(&payload[..12]);
                seg.extend_from_slice(&[0, 0]);
                pieces.push(Piece::App0(seg));
            }
            // Only the first EXIF block counts, as in every viewer; all are dropped.
            APP1 if payload.starts_with(b"Exif\0\0") && orientation.is_none() => {
                orientation = Some(orientation::read_exif(payload).unwrap_or(Orientation::UPRIGHT));
            }
            APP2 if payload.starts_with(b"ICC_PROFILE\0") => pieces.push(Piece::Keep(range)),
            APP14 if payload.starts_with(b"Adobe") && payload.len() >= 12 => {
                adobe_transform = Some(payload[11]);
                pieces.push(Piece::Keep(range));
            }
            DNL => return Err(corrupt("DNL before the scan")),
            0xDE | 0xDF => return Err(WatermarkError::Unsupported("hierarchical JPEG")),
            0xF7 => return Err(WatermarkError::Unsupported("JPEG-LS")),
            // Every other APPn, COM and reserved segment: dropped.
            _ => {}
        }
    }
}

fn parse_frame(marker: u8, p: &[u8], limits: &Limits) -> Result<Frame, WatermarkError> {
    if p.len() < 6 {
        return Err(corrupt("SOF length"));
    }
    let precision = p[0];
    let height = usize::from(u16::from_be_bytes([p[1], p[2]]));
    let width = usize::from(u16::from_be_bytes([p[3], p[4]]));
    // The size is checked first, whatever the coding: nothing is allocated for a bomb.
    check_pixels(width as u64, height as u64, limits)?;
    // Valid files that nothing here decodes (the fallback's decoder reads neither arithmetic
    // coding nor 12-bit samples) are unsupported, not corrupt, whatever else they are.
    match marker {
        0xC0..=0xC2 => {}
        0xC9..=0xCF => return Err(WatermarkError::Unsupported(ARITHMETIC)),
        _ => return Err(WatermarkError::Unsupported("lossless or hierarchical JPEG")),
    }
    match precision {
        8 => {}
        12 => return Err(WatermarkError::Unsupported("12-bit JPEG")),
        _ => return Err(corrupt("sample precision of a DCT frame")),
    }
    if marker == 0xC2 {
        return Err(WatermarkError::NeedsFallback("progressive JPEG"));
    }
    if width == 0 {
        return Err(corrupt("zero width"));
    }
    if height == 0 {
        return Err(WatermarkError::Unsupported("height defined by DNL"));
    }
    let n = usize::from(p[5]);
    if n == 0 || p.len() != 6 + 3 * n {
        return Err(corrupt("SOF length"));
    }
    let components: Vec<Component> = p[6..]
        .chunks_exact(3)
        .map(|c| Component {
            id: c[0],
            h: usize::from(c[1] >> 4),
            v: usize::from(c[1] & 15),
            tq: usize::from(c[2]),
        })
        .collect();
    if components
        .iter()
        .any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v) || c.tq > 3)
    {
        return Err(corrupt("component sampling or table"));
    }
    if n != 1 && n != 3 {
        return Err(WatermarkError::NeedsFallback(
            "CMYK or other component counts",
        ));
    }
    let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
    if components
        .iter()
        .any(|c| hmax % c.h != 0 || vmax % c.v != 0)
    {
        return Err(WatermarkError::NeedsFallback(
            "non-integral sampling factors",
        ));
    }
    Ok(Frame {
        width,
        height,
        components,
    })
}

fn parse_dqt(mut p: &[u8], quant: &mut [Option<[u16; 64]>; 4]) -> Result<(), WatermarkError> {
    while let Some((&pq_tq, rest)) = p.split_first() {
        let (precision, id) = (pq_tq >> 4, usize::from(pq_tq & 15));
        let size = match precision {
            0 => 64,
            1 => 128,
            _ => return Err(corrupt("DQT precision")),
        };
        if id > 3 || rest.len() < size {
            return Err(corrupt("DQT"));
        }
        let mut table = [0u16; 64];
        for (k, q) in table.iter_mut().enumerate() {
            *q = if precision == 0 {
                u16::from(rest[k])
            } else {
                u16::from_be_bytes([rest[2 * k], rest[2 * k + 1]])
            };
        }
        if table.contains(&0) {
            return Err(corrupt("zero quantiser"));
        }
        quant[id] = Some(table);
        p = &rest[size..];
    }
    Ok(())
}

fn parse_dht(
    mut p: &[u8],
    dc: &mut [Option<HuffSpec>; 4],
    ac: &mut [Option<HuffSpec>; 4],
) -> Result<(), WatermarkError> {
    while let Some((&tc_th, rest)) = p.split_first() {
        let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
        if class > 1 || id > 3 || rest.len() < 16 {
            return Err(corrupt("DHT"));
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&rest[..16]);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = rest.get(16..16 + total).ok_or_else(|| corrupt("DHT"))?;
        let spec = HuffSpec {
            counts,
            symbols: symbols.to_vec(),
        };
        // Every table is checked, used or not: the DHT is copied to the output as it is.
        spec.check(class)?;
        if class == 0 {
            dc[id] = Some(spec);
        } else {
            ac[id] = Some(spec);
        }
        p = &rest[16 + total..];
    }
    Ok(())
}

fn parse_sos(
    p: &[u8],
    frame: &Frame,
    quant: &[Option<[u16; 64]>; 4],
    dc: &[Option<HuffSpec>; 4],
    ac: &[Option<HuffSpec>; 4],
) -> Result<Vec<ScanComponent>, WatermarkError> {
    let n = usize::from(*p.first().ok_or_else(|| corrupt("SOS length"))?);
    if n == 0 || p.len() != 1 + 2 * n + 3 {
        return Err(corrupt("SOS length"));
    }
    if n != frame.components.len() {
        return Err(WatermarkError::NeedsFallback(
            "components in separate scans",
        ));
    }
    let mut scan = Vec::with_capacity(n);
    for c in p[1..1 + 2 * n].chunks_exact(2) {
        let component = frame
            .components
            .iter()
            .position(|f| f.id == c[0])
            .ok_or_else(|| corrupt("scan component not in frame"))?;
        if scan
            .iter()
            .any(|s: &ScanComponent| s.component == component)
        {
            return Err(corrupt("scan component twice"));
        }
        let (d, a) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if d > 3 || a > 3 || dc[d].is_none() || ac[a].is_none() {
            return Err(corrupt("scan uses an undefined Huffman table"));
        }
        scan.push(ScanComponent {
            component,
            dc: d,
            ac: a,
        });
    }
    let (ss, se, ahal) = (p[1 + 2 * n], p[2 + 2 * n], p[3 + 2 * n]);
    if ss != 0 || se != 63 || ahal != 0 {
        return Err(corrupt("not a sequential scan"));
    }
    if frame.components.iter().any(|c| quant[c.tq].is_none()) {
        return Err(corrupt("undefined quantisation table"));
    }
    if n > 1 && frame.components.iter().map(|c| c.h * c.v).sum::<usize>() > 10 {
        return Err(corrupt("more than 10 blocks per MCU"));
    }
    Ok(scan)
}

/// libjpeg's rules: an Adobe marker says it outright; JFIF means YCbCr; otherwise component
/// ids 'R','G','B' mean RGB.
fn colour_of(frame: &Frame, adobe_transform: Option<u8>, jfif: bool) -> Colour {
    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
    match adobe_transform {
        Some(0) => Colour::Rgb,
        Some(_) => Colour::YCbCr,
        None if !jfif && ids == b"RGB" => Colour::Rgb,
        None => Colour::YCbCr,
    }
}

/// A run of MCUs between restart markers (the whole scan without DRI) and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Interval {
    raw: Range<usize>,
    mcus: Range<usize>,
}

/// Position of the next 0xFF at or after `from`, eight bytes at a time.
fn next_ff(data: &[u8], mut from: usize) -> Option<usize> {
    while from + 8 <= data.len() {
        let word = u64::from_ne_bytes(data[from..from + 8].try_into().ok()?);
        let x = !word;
        if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        from += 8;
    }
    data[from.min(data.len())..]
        .iter()
        .position(|&b| b == 0xFF)
        .map(|p| from + p)
}

/// One component of the scan as the MCU loop sees it.
struct Slot {
    /// Blocks per MCU across and down (1x1 in a single-component scan).
    h: usize,
    v: usize,
    /// Pixels per sample across and down (subsampling).
    fx: usize,
    fy: usize,
    quant: [u16; 64],
    /// Sample values of the mark's ink and shadow in this component.
    ink: f32,
    shade: f32,
}

/// The scan geometry, tables and mark: everything the MCU loops need.
struct Stamper<'a> {
    input: &'a [u8],
    slots: Vec<Slot>,
    blocks_per_mcu: usize,
    mcus_x: usize,
    total_mcus: usize,
    restart_interval: usize,
    data_start: usize,
    decode: Vec<(DecodeTable, DecodeTable)>,
    overlay: Overlay,
    /// MCU columns and rows the mark's box touches (inclusive).
    marked_cols: (usize, usize),
    marked_rows: (usize, usize),
}

impl<'a> Stamper<'a> {
    fn new(input: &'a [u8], header: &Header) -> Result<Self, WatermarkError> {
        let frame = &header.frame;
        let hmax = frame.components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = frame.components.iter().map(|c| c.v).max().unwrap_or(1);
        let single = header.scan.len() == 1;
        // A single-component scan is not interleaved: its MCU is one block (A.2.2).
        let (mcu_w, mcu_h) = if single { (8, 8) } else { (8 * hmax, 8 * vmax) };
        let mcus_x = frame.width.div_ceil(mcu_w);
        let mcus_y = frame.height.div_ceil(mcu_h);
        let mut slots = Vec::new();
        let mut decode = Vec::new();
        for s in &header.scan {
            let c = frame.components[s.component];
            let (h, v) = if single { (1, 1) } else { (c.h, c.v) };
            let (ink, shade) = match (header.colour, s.component) {
                (Colour::YCbCr, 1 | 2) => (128.0, 128.0),
                _ => (255.0, 0.0),
            };
            slots.push(Slot {
                h,
                v,
                fx: hmax / c.h,
                fy: vmax / c.v,
                quant: header.quant[c.tq].ok_or_else(|| corrupt("quantisation table"))?,
                ink,
                shade,
            });
            let spec = |t: &Option<HuffSpec>| t.clone().ok_or_else(|| corrupt("Huffman table"));
            decode.push((
                DecodeTable::new(&spec(&header.dc[s.dc])?)?,
                DecodeTable::new(&spec(&header.ac[s.ac])?)?,
            ));
        }
        if single {
            slots[0].fx = 1;
            slots[0].fy = 1;
        }
        let overlay = Overlay::new(frame.width as u32, frame.height as u32, header.orientation);
        let marked_cols = (
            overlay.x0 as usize / mcu_w,
            (overlay.x1() as usize - 1) / mcu_w,
        );
        let marked_rows = (
            overlay.y0 as usize / mcu_h,
            (overlay.y1() as usize - 1) / mcu_h,
        );
        Ok(Self {
            input,
            blocks_per_mcu: slots.iter().map(|s| s.h * s.v).sum(),
            slots,
            mcus_x,
            total_mcus: mcus_x * mcus_y,
            restart_interval: header.restart_interval,
            data_start: header.sos.end,
            decode,
            overlay,
            marked_cols,
            marked_rows,
        })
    }

    /// Splits the entropy-coded data at its restart markers, checks their sequence, and
    /// checks that the file ends properly after the scan.
    fn intervals(&self) -> Result<Vec<Interval>, WatermarkError> {
        let input = self.input;
        let mut restarts = Vec::new();
        let mut i = self.data_start;
        let data_end = loop {
            let ff = next_ff(input, i).ok_or_else(truncated)?;
            let mut k = ff + 1;
            while input.get(k) == Some(&0xFF) {
                k += 1;
            }
            match *input.get(k).ok_or_else(truncated)? {
                0x00 => i = k + 1,
                m @ 0xD0..=0xD7 => {
                    restarts.push((ff, k + 1, m));
                    i = k + 1;
                }
                _ => break ff,
            }
        };
        check_trailer(input, data_end)?;

        let ri = self.restart_interval;
        if ri == 0 {
            if !restarts.is_empty() {
                return Err(corrupt("restart marker without DRI"));
            }
            return Ok(vec![Interval {
                raw: self.data_start..data_end,
                mcus: 0..self.total_mcus,
            }]);
        }
        if restarts.len() != self.total_mcus.div_ceil(ri) - 1 {
            return Err(corrupt("restart markers do not match the restart interval"));
        }
        let mut out = Vec::with_capacity(restarts.len() + 1);
        let mut start = self.data_start;
        for (n, &(ff, after, m)) in restarts.iter().enumerate() {
            if usize::from(m - 0xD0) != n % 8 {
                return Err(corrupt("restart markers out of sequence"));
            }
            out.push(Interval {
                raw: start..ff,
                mcus: n * ri..(n + 1) * ri,
            });
            start = after;
        }
        out.push(Interval {
            raw: start..data_end,
            mcus: restarts.len() * ri..self.total_mcus,
        });
        Ok(out)
    }

    fn marked(&self, mcu: usize) -> bool {
        let (x, y) = (mcu % self.mcus_x, mcu / self.mcus_x);
        (self.marked_cols.0..=self.marked_cols.1).contains(&x)
            && (self.marked_rows.0..=self.marked_rows.1).contains(&y)
    }

    fn skip_mcu(&self, rd: &mut BitReader, pred: &mut [i32; 4]) -> Result<(), ScanError> {
        for (s, slot) in self.slots.iter().enumerate() {
            let (dc, ac) = &self.decode[s];
            for _ in 0..slot.h * slot.v {
                rd.skip_block(dc, ac, &mut pred[s])?;
            }
        }
        Ok(())
    }

    fn decode_mcu(
        &self,
        rd: &mut BitReader,
        pred: &mut [i32; 4],
        blocks: &mut [Block],
    ) -> Result<(), ScanError> {
        let mut b = 0;
        for (s, slot) in self.slots.iter().enumerate() {
            let (dc, ac) = &self.decode[s];
            for _ in 0..slot.h * slot.v {
                rd.decode_block(dc, ac, &mut pred[s], &mut blocks[b])?;
                b += 1;
            }
        }
        Ok(())
    }

    fn encode_mcu(&self, sink: &mut impl BlockSink, blocks: &[Block]) -> Result<(), MissingCode> {
        let mut b = 0;
        for (s, slot) in self.slots.iter().enumerate() {
            for _ in 0..slot.h * slot.v {
                sink.block(s, &blocks[b])?;
                b += 1;
            }
        }
        Ok(())
    }

    /// Stamps the blocks of MCU `mcu`; returns how many changed.
    fn mark_mcu(&self, mcu: usize, blocks: &mut [Block]) -> usize {
        let (mx, my) = (mcu % self.mcus_x, mcu / self.mcus_x);
        let mut b = 0;
        let mut changed = 0;
        for slot in &self.slots {
            for j in 0..slot.v {
                for i in 0..slot.h {
                    let (bx, by) = (mx * slot.h + i, my * slot.v + j);
                    if self.mark_block(slot, bx, by, &mut blocks[b]) {
                        changed += 1;
                    }
                    b += 1;
                }
            }
        }
        changed
    }

    /// Decodes one block to samples, blends the mark over it, and re-quantises it with the
    /// file's table. Blending happens on each component's own samples: JFIF YCbCr (and RGB)
    /// are affine in RGB, so blending towards white or black in YCbCr is exactly blending in
    /// RGB, with no colour conversion. Subsampled chroma gets the mark's mean opacity over
    /// the pixels each sample covers.
    fn mark_block(&self, slot: &Slot, bx: usize, by: usize, block: &mut Block) -> bool {
        let (px0, py0) = (bx * 8 * slot.fx, by * 8 * slot.fy);
        let ov = &self.overlay;
        if px0 >= ov.x1() as usize
            || py0 >= ov.y1() as usize
            || px0 + 8 * slot.fx <= ov.x0 as usize
            || py0 + 8 * slot.fy <= ov.y0 as usize
        {
            return false;
        }
        let area = (slot.fx * slot.fy) as f32 * 255.0;
        let mut ink = [0f32; 64];
        let mut shade = [0f32; 64];
        let mut any = false;
        for sy in 0..8 {
            for sx in 0..8 {
                let (mut a, mut s) = (0u32, 0u32);
                for dy in 0..slot.fy {
                    for dx in 0..slot.fx {
                        let x = (px0 + sx * slot.fx + dx) as u32;
                        let y = (py0 + sy * slot.fy + dy) as u32;
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
            coef[ZIGZAG[k]] = f32::from(block[k]) * f32::from(slot.quant[k]);
        }
        let mut samples = dct::inverse(&coef);
        for (i, sample) in samples.iter_mut().enumerate() {
            if ink[i] == 0.0 && shade[i] == 0.0 {
                // Left unclamped so an untouched sample re-quantises to what it was.
                continue;
            }
            let mut v = (*sample + 128.0).clamp(0.0, 255.0);
            v += (slot.shade - v) * shade[i];
            v += (slot.ink - v) * ink[i];
            *sample = v - 128.0;
        }
        let coef = dct::forward(&samples);
        let mut out = [0i16; 64];
        for k in 0..64 {
            let q = f32::from(slot.quant[k]);
            // Limits of 8-bit sequential coding: DC within ±1023, AC sizes up to 10 bits.
            let limit = 1023.0 / if k == 0 { q } else { 1.0 };
            out[k] = (coef[ZIGZAG[k]] / q).round().clamp(-limit, limit) as i16;
        }
        let changed = out != *block;
        *block = out;
        changed
    }

    /// One interval with the file's tables: prefix copied, window re-encoded, rest spliced.
    fn restamp_interval(
        &self,
        iv: &Interval,
        tables: &[(&EncodeTable, &EncodeTable)],
        out: &mut Vec<u8>,
        report: &mut Report,
    ) -> Result<(), Fail> {
        let raw = &self.input[iv.raw.clone()];
        let Some(window) = self.window(iv) else {
            out.extend_from_slice(raw);
            return Ok(());
        };
        let (first, window_end) = (window.start, window.end);
        let mut rd = BitReader::new(raw);
        let mut pred = [0i32; 4];
        for _ in iv.mcus.start..first {
            self.skip_mcu(&mut rd, &mut pred)?;
        }
        if rd.overran() {
            return Err(truncated().into());
        }
        let (cut, cut_bit) = rd.position();
        let pred_at_cut = pred;

        let bpm = self.blocks_per_mcu;
        let mut blocks = vec![[0i16; 64]; (window_end - first) * bpm];
        for mcu in blocks.chunks_mut(bpm) {
            self.decode_mcu(&mut rd, &mut pred, mcu)?;
        }
        if rd.overran() {
            return Err(truncated().into());
        }
        let rest = (window_end < iv.mcus.end).then(|| rd.position());
        for (n, mcu) in blocks.chunks_mut(bpm).enumerate() {
            if self.marked(first + n) {
                report.changed_blocks += self.mark_mcu(first + n, mcu);
            }
        }

        out.extend_from_slice(&raw[..cut]);
        let partial = raw.get(cut).copied().unwrap_or(0);
        let mut enc = Encoder::new(
            BitWriter::resume(std::mem::take(out), partial, cut_bit),
            tables.to_vec(),
        );
        enc.pred = pred_at_cut;
        for mcu in blocks.chunks(bpm) {
            self.encode_mcu(&mut enc, mcu)?;
        }
        if let Some((byte, bit)) = rest {
            enc.writer.splice(raw, byte, bit);
        }
        *out = enc.writer.finish();
        report.reencoded_mcus += window_end - first;
        Ok(())
    }

    /// The MCUs of `iv` that are decoded and re-encoded: from the first marked one to one
    /// past the last (whose DC differences refer to a changed block).
    fn window(&self, iv: &Interval) -> Option<Range<usize>> {
        let first = iv.mcus.clone().find(|&m| self.marked(m))?;
        let last = iv.mcus.clone().rev().find(|&m| self.marked(m))?;
        Some(first..(last + 2).min(iv.mcus.end))
    }

    /// Pass 1 of the optimised-table path: symbol counts of the stamped scan. Outside the
    /// windows the symbols are the file's own (same coefficients, same DC differences), so
    /// they are counted while decoding codes only.
    fn count_symbols(
        &self,
        intervals: &[Interval],
        counter: &mut SymbolCounter,
    ) -> Result<(), WatermarkError> {
        let mut blocks = vec![[0i16; 64]; self.blocks_per_mcu];
        for iv in intervals {
            let window = self.window(iv).unwrap_or(iv.mcus.end..iv.mcus.end);
            let mut rd = BitReader::new(&self.input[iv.raw.clone()]);
            let mut pred = [0i32; 4];
            for m in iv.mcus.clone() {
                if window.contains(&m) {
                    if m == window.start {
                        counter.pred = pred;
                    }
                    self.decode_mcu(&mut rd, &mut pred, &mut blocks)?;
                    if self.marked(m) {
                        self.mark_mcu(m, &mut blocks);
                    }
                    // Counting never lacks a code.
                    let _ = self.encode_mcu(counter, &blocks);
                    continue;
                }
                for (s, slot) in self.slots.iter().enumerate() {
                    let (dc, ac) = &self.decode[s];
                    let (d, a) = counter.slots[s];
                    let (dc_freq, ac_freq) = counter.freq.split_at_mut(1);
                    for _ in 0..slot.h * slot.v {
                        rd.count_block(
                            dc,
                            ac,
                            &mut pred[s],
                            &mut dc_freq[0][d],
                            &mut ac_freq[0][a],
                        )?;
                    }
                }
            }
            if rd.overran() {
                return Err(truncated());
            }
        }
        Ok(())
    }

    /// Pass 2 of the optimised-table path: every symbol outside the windows is re-coded with
    /// the new tables, the windows are stamped and encoded.
    fn recode(
        &self,
        intervals: &[Interval],
        enc: &mut Encoder,
        to: &[(&EncodeTable, &EncodeTable)],
        report: &mut Report,
    ) -> Result<(), WatermarkError> {
        let mut blocks = vec![[0i16; 64]; self.blocks_per_mcu];
        for (n, iv) in intervals.iter().enumerate() {
            if n > 0 {
                enc.restart(n - 1);
            }
            let window = self.window(iv).unwrap_or(iv.mcus.end..iv.mcus.end);
            let mut rd = BitReader::new(&self.input[iv.raw.clone()]);
            let mut pred = [0i32; 4];
            for m in iv.mcus.clone() {
                if window.contains(&m) {
                    if m == window.start {
                        enc.pred = pred;
                    }
                    self.decode_mcu(&mut rd, &mut pred, &mut blocks)?;
                    if self.marked(m) {
                        report.changed_blocks += self.mark_mcu(m, &mut blocks);
                    }
                    self.encode_mcu(enc, &blocks)
                        .map_err(|_| corrupt("symbol without a code in optimised tables"))?;
                    continue;
                }
                for (s, slot) in self.slots.iter().enumerate() {
                    let (dc, ac) = &self.decode[s];
                    for _ in 0..slot.h * slot.v {
                        rd.recode_block((dc, ac), to[s], &mut pred[s], &mut enc.writer)?;
                    }
                }
            }
            if rd.overran() {
                return Err(truncated());
            }
        }
        Ok(())
    }
}

/// After the scan: only APPn/COM may come before EOI; anything after EOI is dropped.
fn check_trailer(input: &[u8], mut i: usize) -> Result<(), WatermarkError> {
    loop {
        while input.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *input.get(i).ok_or_else(truncated)?;
        i += 1;
        match marker {
            EOI => return Ok(()),
            APP0..=0xEF | COM => {
                let len = input.get(i..i + 2).ok_or_else(truncated)?;
                i += usize::from(u16::from_be_bytes([len[0], len[1]]));
                if i > input.len() || input.get(i) != Some(&0xFF) {
                    return Err(truncated());
                }
            }
            SOS | DHT | DQT | DRI => {
                return Err(WatermarkError::NeedsFallback("more than one scan"))
            }
            DNL => return Err(WatermarkError::Unsupported("height defined by DNL")),
            _ => return Err(corrupt("unexpected marker after the scan")),
        }
    }
}

/// Writes SOI, the kept header segments (with the orientation-only EXIF after JFIF), an
/// optional replacement DHT, and the SOS header.
fn write_header(input: &[u8], header: &Header, new_dht: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 1024);
    out.extend_from_slice(&[0xFF, SOI]);
    let mut exif = (header.orientation != Orientation::UPRIGHT)
        .then(|| orientation::exif_segment(header.orientation));
    for piece in &header.pieces {
        if !matches!(piece, Piece::App0(_)) {
            if let Some(e) = exif.take() {
                out.extend_from_slice(&e);
            }
        }
        match piece {
            Piece::App0(seg) => out.extend_from_slice(seg),
            Piece::Keep(r) => out.extend_from_slice(&input[r.clone()]),
            Piece::Dht(r) => {
                if new_dht.is_none() {
                    out.extend_from_slice(&input[r.clone()]);
                }
            }
        }
    }
    if let Some(e) = exif {
        out.extend_from_slice(&e);
    }
    if let Some(dht) = new_dht {
        out.extend_from_slice(dht);
    }
    out.extend_from_slice(&input[header.sos.clone()]);
    out
}

/// Stamps a baseline or extended-sequential JPEG in the DCT domain.
pub(crate) fn stamp(input: &[u8], limits: &Limits) -> Result<(Vec<u8>, Report), WatermarkError> {
    let header = parse_header(input, limits)?;
    let stamper = Stamper::new(input, &header)?;
    let intervals = stamper.intervals()?;
    let mut report = Report {
        tables: Tables::File,
        reencoded_mcus: 0,
        total_mcus: stamper.total_mcus,
        changed_blocks: 0,
    };

    let file_tables: Vec<(EncodeTable, EncodeTable)> = header
        .scan
        .iter()
        .map(|s| {
            let spec = |t: &Option<HuffSpec>| t.clone().ok_or_else(|| corrupt("Huffman table"));
            Ok((
                EncodeTable::new(&spec(&header.dc[s.dc])?)?,
                EncodeTable::new(&spec(&header.ac[s.ac])?)?,
            ))
        })
        .collect::<Result<_, WatermarkError>>()?;
    let refs: Vec<(&EncodeTable, &EncodeTable)> = file_tables.iter().map(|(d, a)| (d, a)).collect();
    let mut out = write_header(input, &header, None);
    let attempt = (|| {
        for (n, iv) in intervals.iter().enumerate() {
            if n > 0 {
                out.extend_from_slice(&[0xFF, 0xD0 + ((n - 1) % 8) as u8]);
            }
            stamper.restamp_interval(iv, &refs, &mut out, &mut report)?;
        }
        Ok(())
    })();
    match attempt {
        Ok(()) => {
            out.extend_from_slice(&[0xFF, EOI]);
            return Ok((out, report));
        }
        Err(Fail::Error(e)) => return Err(e),
        Err(Fail::MissingCode) => {}
    }

    // A new symbol has no code in the file's tables: count every symbol of the stamped scan,
    // build optimal tables, and move the whole scan to them.
    let ids: Vec<(usize, usize)> = header.scan.iter().map(|s| (s.dc, s.ac)).collect();
    let mut counter = SymbolCounter::new(ids.clone());
    stamper.count_symbols(&intervals, &mut counter)?;
    let mut specs: [[Option<HuffSpec>; 4]; 2] = Default::default();
    for &(d, a) in &ids {
        specs[0][d] = Some(optimal_table(&counter.freq[0][d]));
        let ac = &mut counter.freq[1][a];
        // EOB and ZRL always get a code: our encoder may use them where the file's did not
        // (e.g. EOB instead of trailing ZRLs).
        ac[0x00] = ac[0x00].max(1);
        ac[0xF0] = ac[0xF0].max(1);
        specs[1][a] = Some(optimal_table(ac));
    }
    let mut dht = Vec::new();
    for (class, tables) in specs.iter().enumerate() {
        for (id, spec) in tables.iter().enumerate() {
            if let Some(spec) = spec {
                spec.write_dht(class as u8, id as u8, &mut dht)?;
            }
        }
    }
    let mut segment = vec![0xFF, DHT];
    segment.extend_from_slice(&((dht.len() + 2) as u16).to_be_bytes());
    segment.extend_from_slice(&dht);

    let new_tables: Vec<(EncodeTable, EncodeTable)> = ids
        .iter()
        .map(|&(d, a)| {
            let table = |class: usize, id: usize| {
                specs[class][id]
                    .as_ref()
                    .ok_or_else(|| corrupt("Huffman table"))
                    .and_then(EncodeTable::new)
            };
            Ok((table(0, d)?, table(1, a)?))
        })
        .collect::<Result<_, WatermarkError>>()?;
    let refs: Vec<(&EncodeTable, &EncodeTable)> = new_tables.iter().map(|(d, a)| (d, a)).collect();
    let mut enc = Encoder::new(
        BitWriter::new(write_header(input, &header, Some(&segment))),
        refs.clone(),
    );
    report = Report {
        tables: Tables::Optimised,
        reencoded_mcus: stamper.total_mcus,
        changed_blocks: 0,
        ..report
    };
    stamper.recode(&intervals, &mut enc, &refs, &mut report)?;
    let mut out = enc.writer.finish();
    out.extend_from_slice(&[0xFF, EOI]);
    Ok((out, report))
}

/// Test access to the coefficients: every block of the (single) scan, in MCU order.
#[cfg(test)]
pub(crate) fn decode_coefficients(input: &[u8]) -> Result<Vec<Block>, WatermarkError> {
    let header = parse_header(input, &Limits::default())?;
    let stamper = Stamper::new(input, &header)?;
    let intervals = stamper.intervals()?;
    let mut all = Vec::new();
    let mut blocks = vec![[0i16; 64]; stamper.blocks_per_mcu];
    for iv in &intervals {
        let mut rd = BitReader::new(&input[iv.raw.clone()]);
        let mut pred = [0i32; 4];
        for _ in iv.mcus.clone() {
            stamper.decode_mcu(&mut rd, &mut pred, &mut blocks)?;
            all.extend_from_slice(&blocks);
        }
        if rd.overran() {
            return Err(truncated());
        }
    }
    Ok(all)
}

/// Test access: re-encodes the scan unchanged with the file's tables, optionally
/// inserting restart markers every `restart_interval` MCUs (and a DRI segment for them).
#[cfg(test)]
pub(crate) fn reencode_unchanged(input: &[u8], restart_interval: Option<u16>) -> Vec<u8> {
    let header = parse_header(input, &Limits::default()).unwrap();
    let stamper = Stamper::new(input, &header).unwrap();
    let intervals = stamper.intervals().unwrap();
    let tables: Vec<(EncodeTable, EncodeTable)> = header
        .scan
        .iter()
        .map(|s| {
            (
                EncodeTable::new(header.dc[s.dc].as_ref().unwrap()).unwrap(),
                EncodeTable::new(header.ac[s.ac].as_ref().unwrap()).unwrap(),
            )
        })
        .collect();
    let refs = tables.iter().map(|(d, a)| (d, a)).collect();
    // Everything up to the SOS as it is, plus a DRI when asked.
    let mut head = input[..header.sos.start].to_vec();
    if let Some(ri) = restart_interval.filter(|_| header.restart_interval == 0) {
        head.extend_from_slice(&[0xFF, DRI, 0, 4]);
        head.extend_from_slice(&ri.to_be_bytes());
    }
    head.extend_from_slice(&input[header.sos.clone()]);
    let mut enc = Encoder::new(BitWriter::new(head), refs);
    let ri = restart_interval.map_or(0, usize::from);
    let mut blocks = vec![[0i16; 64]; stamper.blocks_per_mcu];
    let mut restarts = 0;
    let mut m = 0;
    for iv in &intervals {
        let mut rd = BitReader::new(&input[iv.raw.clone()]);
        let mut pred = [0i32; 4];
        for _ in iv.mcus.clone() {
            if ri > 0 && m > 0 && m % ri == 0 {
                enc.restart(restarts);
                restarts += 1;
            }
            stamper.decode_mcu(&mut rd, &mut pred, &mut blocks).unwrap();
            stamper.encode_mcu(&mut enc, &blocks).unwrap();
            m += 1;
        }
    }
    let mut out = enc.writer.finish();
    out.extend_from_slice(&[0xFF, EOI]);
    out
}

/// Test access: the stamper's view of an input (MCU grid and the mark's box).
#[cfg(test)]
pub(crate) struct Geometry {
    pub mcu_w: usize,
    pub mcu_h: usize,
    pub marked_cols: (usize, usize),
    pub marked_rows: (usize, usize),
    pub blocks_per_mcu: usize,
    pub mcus_x: usize,
}

#[cfg(test)]
pub(crate) fn geometry(input: &[u8]) -> Geometry {
    let header = parse_header(input, &Limits::default()).unwrap();
    let s = Stamper::new(input, &header).unwrap();
    let single = header.scan.len() == 1;
    let hmax = header.frame.components.iter().map(|c| c.h).max().unwrap();
    let vmax = header.frame.components.iter().map(|c| c.v).max().unwrap();
    Geometry {
        mcu_w: if single { 8 } else { 8 * hmax },
        mcu_h: if single { 8 } else { 8 * vmax },
        marked_cols: s.marked_cols,
        marked_rows: s.marked_rows,
        blocks_per_mcu: s.blocks_per_mcu,
        mcus_x: s.mcus_x,
    }
}
