//! JPEG stamped in the DCT domain (DESIGN.md invariant 4, issues 9 and 21).
//!
//! Only the 8x8 blocks under the mark are decoded to samples, blended, and re-quantised with
//! the file's own tables; every other block keeps its quantised coefficients.
//!
//! Every JPEG that is not a single baseline-like scan (progressive, several scans, CMYK or
//! other component counts, any sampling libjpeg reads) is decoded whole to coefficients by
//! `jpeg_read.rs`, stamped there, and written again by the scan writer: "the planes path".
//! A progressive Huffman-coded file whose script libjpeg would write is spliced scan by scan
//! there too: each scan's data is copied up to a point before the mark's first block where
//! the decoder saw its coder clean (no EOB run pending; the DC predictions recorded), and
//! coded from there with the scan's own tables (extended where they lack a symbol the mark
//! needs and have room, or the scan coded whole in one pass: `jpeg_write::splice_scan`).
//!
//! A single sequential scan of one or three components takes "the splice path": the scan is
//! not re-encoded where that can be avoided, yet every bit of it is Huffman-decoded and
//! checked, so a cut or damaged scan is never published:
//! - the entropy-coded bytes before the first MCU the mark touches are copied as they are
//!   (where that MCU starts is found by Huffman decoding alone: no IDCT, no colour);
//! - the MCUs from there to one past the last marked MCU are decoded and re-encoded (the one
//!   past, because its DC differences refer to a block that changed);
//! - the rest of the scan is spliced back bit for bit: its symbols are unchanged, only its bit
//!   alignment may differ (it is decoded all the same, symbols only, to check it);
//! - with restart intervals, intervals the mark does not touch are copied whole (checked too).
//!
//! The file's Huffman tables are kept when they have a code for every new symbol. Otherwise
//! (typical of files written with optimised tables, which hold only the symbols the photo
//! used) the whole scan moves to new optimised tables (Annex K.2) in two passes that still
//! build coefficients only inside the windows: one counts symbols while decoding codes, the
//! other re-codes each symbol with the new table and copies its value bits.

use std::ops::Range;

use super::coef::{FrameComponent, FrameGeometry};
use super::coef_mark::{self, ComponentInk};
use super::huffman::{
    optimal_table, std_chroma_ac, std_chroma_dc, std_luma_ac, std_luma_dc, BitReader, BitWriter,
    Block, BlockSink, DecodeTable, EncodeTable, Encoder, HuffSpec, MissingCode, ScanError,
    SymbolCounter,
};
use super::jpeg_read::{self, ScanHeader};
use super::jpeg_write;
use super::mark::Overlay;
use super::orientation::{self, Orientation};
use super::sniff::check_pixels;
use super::{Limits, WatermarkError};

pub(crate) const SOI: u8 = 0xD8;
pub(crate) const EOI: u8 = 0xD9;
pub(crate) const SOS: u8 = 0xDA;
pub(crate) const DQT: u8 = 0xDB;
pub(crate) const DNL: u8 = 0xDC;
pub(crate) const DRI: u8 = 0xDD;
pub(crate) const DHT: u8 = 0xC4;
pub(crate) const DAC: u8 = 0xCC;
pub(crate) const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
pub(crate) const COM: u8 = 0xFE;

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
    /// Scans written; those of them spliced (copied up to the mark, coded from there),
    /// with the file's tables extended, and coded whole in one pass with derived tables.
    pub scans: usize,
    pub spliced_scans: usize,
    pub extended_scans: usize,
    pub recoded_scans: usize,
}

pub(crate) fn corrupt(what: &str) -> WatermarkError {
    WatermarkError::Corrupt(what.to_owned())
}

pub(crate) fn truncated() -> WatermarkError {
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

/// The frame header (SOF) of a DCT JPEG we decode: 8-bit, Huffman or arithmetic coding.
pub(crate) struct Frame {
    pub width: usize,
    pub height: usize,
    pub components: Vec<FrameComponent>,
    pub progressive: bool,
    pub arithmetic: bool,
}

/// Colour model of the samples, which decides what "white" and "black" are per component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Colour {
    Gray,
    YCbCr,
    Rgb,
    /// Adobe CMYK, stored inverted (255 is no ink), as Photoshop writes it.
    Cmyk,
    /// Adobe YCCK: inverted CMY as YCbCr, and inverted K.
    Ycck,
    /// Any other component count: every component treated as a lightness.
    Other,
}

impl Colour {
    /// Sample values of the mark's ink (white) and shadow (black) in component `c`: 128 in
    /// both for the chroma of YCbCr and YCCK, full scale elsewhere (inverted CMYK included).
    pub fn ink_and_shade(self, c: usize) -> (f32, f32) {
        match (self, c) {
            (Colour::YCbCr | Colour::Ycck, 1 | 2) => (128.0, 128.0),
            _ => (255.0, 0.0),
        }
    }
}

/// A header segment as it goes to the output.
pub(crate) enum Piece {
    /// Copied from the input.
    Keep(Range<usize>),
    /// SOF, DQT or DRI: copied by the splice path, written anew by the planes path.
    Coding(Range<usize>),
    /// A DHT, copied unless the scan gets new tables.
    Dht(Range<usize>),
    /// JFIF APP0 without its thumbnail.
    App0(Vec<u8>),
}

/// One component of a scan: frame index and table ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanComponent {
    pub component: usize,
    pub dc: usize,
    pub ac: usize,
}

pub(crate) use super::arith::Conditioning;

/// Everything before the entropy-coded data of the first scan.
pub(crate) struct Header {
    pub frame: Frame,
    pub quant: [Option<[u16; 64]>; 4],
    pub dc: [Option<HuffSpec>; 4],
    pub ac: [Option<HuffSpec>; 4],
    pub conditioning: Conditioning,
    pub restart_interval: usize,
    orientation: Orientation,
    colour: Colour,
    /// The first scan's components when the splice path can take the file.
    scan: Option<Vec<ScanComponent>>,
    pieces: Vec<Piece>,
    /// The first SOS segment.
    pub sos: Range<usize>,
    /// A DHT of the standard tables the file uses without defining them (Motion-JPEG).
    implied_dht: Option<Vec<u8>>,
}

/// Reads the marker at `*i`, after any number of 0xFF fill bytes, and moves past it. Anything
/// but 0xFF at `*i` is corrupt; a file that ends first is cut (libjpeg: "Premature end of JPEG
/// file").
pub(crate) fn read_marker(input: &[u8], i: &mut usize) -> Result<u8, WatermarkError> {
    if input.get(*i) != Some(&0xFF) {
        return Err(if *i >= input.len() {
            truncated()
        } else {
            corrupt("expected a marker")
        });
    }
    while input.get(*i) == Some(&0xFF) {
        *i += 1;
    }
    let marker = *input.get(*i).ok_or_else(truncated)?;
    *i += 1;
    Ok(marker)
}

/// Reads the segment whose length field is at `*i` and moves past it: its payload.
pub(crate) fn read_segment<'a>(input: &'a [u8], i: &mut usize) -> Result<&'a [u8], WatermarkError> {
    let len = input.get(*i..*i + 2).ok_or_else(truncated)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if len < 2 {
        return Err(corrupt("segment length"));
    }
    let payload = input.get(*i + 2..*i + len).ok_or_else(truncated)?;
    *i += len;
    Ok(payload)
}

/// Reads the segments up to the first scan: refuses what is too large from the SOF alone,
/// and sorts the metadata into what is kept (JFIF without thumbnail, ICC profile, Adobe
/// colour transform) and what is dropped (EXIF, XMP, Photoshop, comments, every other APPn).
/// Whether the splice path can take the file is decided here; `jpeg_read` reads the rest.
pub(crate) fn parse_header(input: &[u8], limits: &Limits) -> Result<Header, WatermarkError> {
    if !input.starts_with(&[0xFF, SOI]) {
        return Err(WatermarkError::Unsupported("not a JPEG"));
    }
    let mut frame: Option<Frame> = None;
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc: [Option<HuffSpec>; 4] = Default::default();
    let mut ac: [Option<HuffSpec>; 4] = Default::default();
    let mut conditioning = Conditioning::default();
    let mut restart_interval = 0;
    let mut orientation = None;
    let mut adobe_transform = None;
    let mut jfif = false;
    let mut pieces = Vec::new();
    let mut i = 2;
    loop {
        let marker = read_marker(input, &mut i)?;
        // The segment's bytes from the 0xFF of its marker (fill bytes before it left out).
        let start = i - 2;
        // Parameterless markers: libjpeg skips a stray RSTn or TEM before the first scan.
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue;
        }
        if matches!(marker, SOI | EOI | 0x00) {
            return Err(corrupt("unexpected marker before the image data"));
        }
        let payload = read_segment(input, &mut i)?;
        let range = start..i;
        match marker {
            0xC0..=0xCF if marker != DHT && marker != DAC && marker != 0xC8 => {
                if frame.is_some() {
                    return Err(corrupt("more than one frame"));
                }
                frame = Some(parse_frame(marker, payload, limits)?);
                pieces.push(Piece::Coding(range));
            }
            DAC => parse_dac(payload, &mut conditioning)?,
            DHT => {
                parse_dht(payload, &mut dc, &mut ac)?;
                pieces.push(Piece::Dht(range));
            }
            DQT => {
                parse_dqt(payload, &mut quant)?;
                pieces.push(Piece::Coding(range));
            }
            DRI => {
                restart_interval = parse_dri(payload)?;
                pieces.push(Piece::Coding(range));
            }
            SOS => {
                let frame = frame.ok_or_else(|| corrupt("scan before frame"))?;
                let first_scan = jpeg_read::parse_sos(payload, &frame)?;
                let colour = colour_of(&frame, adobe_transform, jfif)?;
                // Tables 0 and 1 that nothing defined are the standard ones (Motion-JPEG
                // frames leave them out), as libjpeg decides at the first scan.
                let mut implied = Vec::new();
                for (id, (dc_std, ac_std)) in [
                    (std_luma_dc(), std_luma_ac()),
                    (std_chroma_dc(), std_chroma_ac()),
                ]
                .into_iter()
                .enumerate()
                {
                    if dc[id].is_none() && !frame.arithmetic {
                        dc_std.write_dht(0, id as u8, &mut implied)?;
                        dc[id] = Some(dc_std);
                    }
                    if ac[id].is_none() && !frame.arithmetic {
                        ac_std.write_dht(1, id as u8, &mut implied)?;
                        ac[id] = Some(ac_std);
                    }
                }
                let implied_dht = (!implied.is_empty()).then(|| {
                    let mut seg = vec![0xFF, DHT];
                    seg.extend_from_slice(&((implied.len() + 2) as u16).to_be_bytes());
                    seg.extend_from_slice(&implied);
                    seg
                });
                let scan = splice_scan(&frame, &first_scan, &quant, &dc, &ac);
                return Ok(Header {
                    frame,
                    quant,
                    dc,
                    ac,
                    conditioning,
                    restart_interval,
                    orientation: orientation.unwrap_or(Orientation::UPRIGHT),
                    colour,
                    scan,
                    pieces,
                    sos: range,
                    implied_dht,
                });
            }
            APP0 if payload.starts_with(b"JFIF\0") && payload.len() >= 14 => {
                check_app(marker, payload)?;
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
            // The JPG extension marker: libjpeg refuses it as an unsupported frame.
            0xC8 => return Err(WatermarkError::Unsupported("JPEG extension (JPG marker)")),
            // Every other APPn and COM: dropped.
            APP0..=0xEF | COM => {}
            // A reserved marker (JPGn, RESn): libjpeg stops at it ("Unsupported marker type").
            _ => return Err(corrupt("unknown marker")),
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
    // Valid files that nothing here decodes are unsupported, not corrupt, whatever else
    // they are: the precision is judged before anything that depends on it.
    let (progressive, arithmetic) = match marker {
        0xC0 | 0xC1 => (false, false),
        0xC2 => (true, false),
        0xC9 => (false, true),
        0xCA => (true, true),
        _ => return Err(WatermarkError::Unsupported("lossless or hierarchical JPEG")),
    };
    match precision {
        8 => {}
        12 => return Err(WatermarkError::Unsupported("12-bit JPEG")),
        _ => return Err(corrupt("sample precision of a DCT frame")),
    }
    if width == 0 {
        return Err(corrupt("zero width"));
    }
    if height == 0 {
        // libjpeg-turbo refuses it too ("Empty JPEG image (DNL not supported)").
        return Err(WatermarkError::Unsupported("height defined by DNL"));
    }
    let n = usize::from(p[5]);
    if n == 0 || p.len() != 6 + 3 * n {
        return Err(corrupt("SOF length"));
    }
    let components: Vec<FrameComponent> = p[6..]
        .chunks_exact(3)
        .map(|c| FrameComponent {
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
    // libjpeg's MAX_COMPONENTS.
    if n > 10 {
        return Err(WatermarkError::Unsupported("more than 10 components"));
    }
    let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
    // libjpeg-turbo reads them but cannot show them ("Fractional sampling not implemented").
    if components
        .iter()
        .any(|c| hmax % c.h != 0 || vmax % c.v != 0)
    {
        return Err(WatermarkError::Unsupported("fractional sampling factors"));
    }
    Ok(Frame {
        width,
        height,
        components,
        progressive,
        arithmetic,
    })
}

/// A DRI payload: the restart interval in MCUs (0: none).
pub(crate) fn parse_dri(p: &[u8]) -> Result<usize, WatermarkError> {
    match p {
        &[a, b] => Ok(usize::from(u16::from_be_bytes([a, b]))),
        _ => Err(corrupt("DRI length")),
    }
}

/// A DAC payload (T.81 B.2.4.3): conditioning per table class and id, judged as libjpeg's
/// `get_dac` judges it.
pub(crate) fn parse_dac(p: &[u8], cond: &mut Conditioning) -> Result<(), WatermarkError> {
    cond.parse_dac(p)
}

pub(crate) fn parse_dqt(
    mut p: &[u8],
    quant: &mut [Option<[u16; 64]>; 4],
) -> Result<(), WatermarkError> {
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

pub(crate) fn parse_dht(
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

/// The first scan's components if the splice path can take the file: one sequential
/// Huffman scan of every component of a grey or three-component frame, every table defined.
/// Anything else (including what is invalid) goes to the planes path, which judges it.
fn splice_scan(
    frame: &Frame,
    scan: &ScanHeader,
    quant: &[Option<[u16; 64]>; 4],
    dc: &[Option<HuffSpec>; 4],
    ac: &[Option<HuffSpec>; 4],
) -> Option<Vec<ScanComponent>> {
    let n = frame.components.len();
    let sequential = (scan.ss, scan.se, scan.ah, scan.al) == (0, 63, 0, 0);
    if frame.progressive
        || frame.arithmetic
        || !sequential
        || (n != 1 && n != 3)
        || scan.components.len() != n
        || frame.components.iter().any(|c| quant[c.tq].is_none())
        || (n > 1 && frame.components.iter().map(|c| c.h * c.v).sum::<usize>() > 10)
        || scan.components.iter().any(|s| {
            dc.get(s.dc).is_none_or(Option::is_none) || ac.get(s.ac).is_none_or(Option::is_none)
        })
    {
        return None;
    }
    Some(scan.components.clone())
}

/// libjpeg's rules (`default_decompress_parms`), in its order: three components are YCbCr under
/// JFIF, whatever an Adobe marker says; else the Adobe marker's transform (0 RGB, 1 YCbCr);
/// else component ids 'R','G','B' mean RGB and anything else YCbCr. Four components are CMYK,
/// or YCCK when Adobe says 2. An Adobe transform outside those is libjpeg's warning "Unknown
/// Adobe color transform code", refused as the reference decoder under `-strict` refuses it.
fn colour_of(
    frame: &Frame,
    adobe_transform: Option<u8>,
    jfif: bool,
) -> Result<Colour, WatermarkError> {
    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
    Ok(match (frame.components.len(), adobe_transform) {
        (1, _) => Colour::Gray,
        (3, _) if jfif => Colour::YCbCr,
        (3, Some(0)) => Colour::Rgb,
        (3, Some(1)) => Colour::YCbCr,
        (3, None) if ids == b"RGB" => Colour::Rgb,
        (3, None) => Colour::YCbCr,
        (4, Some(0) | None) => Colour::Cmyk,
        (4, Some(2)) => Colour::Ycck,
        (3 | 4, Some(_)) => return Err(corrupt("unknown Adobe colour transform")),
        _ => Colour::Other,
    })
}

/// What libjpeg checks of an APPn segment wherever it meets one, before or between scans: a
/// JFIF APP0 (14 bytes or more) of a major version other than 1 is its warning "Warning:
/// unknown JFIF revision number", which the reference decoder under `-strict` refuses (and
/// the copy would keep the segment).
pub(crate) fn check_app(marker: u8, payload: &[u8]) -> Result<(), WatermarkError> {
    if marker == APP0 && payload.len() >= 14 && payload.starts_with(b"JFIF\0") && payload[5] != 1 {
        return Err(corrupt("JFIF version"));
    }
    Ok(())
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
    /// How the mark is drawn into it.
    ink: ComponentInk,
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
        let scan = header.scan.as_deref().ok_or(WatermarkError::NeedsFallback(
            "not a single sequential scan",
        ))?;
        let hmax = frame.components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = frame.components.iter().map(|c| c.v).max().unwrap_or(1);
        let single = scan.len() == 1;
        // A single-component scan is not interleaved: its MCU is one block (A.2.2).
        let (mcu_w, mcu_h) = if single { (8, 8) } else { (8 * hmax, 8 * vmax) };
        let mcus_x = frame.width.div_ceil(mcu_w);
        let mcus_y = frame.height.div_ceil(mcu_h);
        let mut slots = Vec::new();
        let mut decode = Vec::new();
        for s in scan {
            let c = frame.components[s.component];
            let (h, v) = if single { (1, 1) } else { (c.h, c.v) };
            let (ink, shade) = header.colour.ink_and_shade(s.component);
            slots.push(Slot {
                h,
                v,
                ink: ComponentInk {
                    fx: hmax / c.h,
                    fy: vmax / c.v,
                    quant: header.quant[c.tq].ok_or_else(|| corrupt("quantisation table"))?,
                    ink,
                    shade,
                    al: [0; 64],
                },
            });
            let spec = |t: &Option<HuffSpec>| t.clone().ok_or_else(|| corrupt("Huffman table"));
            decode.push((
                DecodeTable::new(&spec(&header.dc[s.dc])?)?,
                DecodeTable::new(&spec(&header.ac[s.ac])?)?,
            ));
        }
        if single {
            slots[0].ink.fx = 1;
            slots[0].ink.fy = 1;
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
                    if coef_mark::mark_block(&self.overlay, &slot.ink, bx, by, &mut blocks[b]) {
                        changed += 1;
                    }
                    b += 1;
                }
            }
        }
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
            self.check_interval(iv)?;
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
        // What is spliced back is checked first: decoded to its end, symbols only. Its end
        // is where its last MCU ends: the input's padding bits are not copied.
        for _ in window_end..iv.mcus.end {
            self.skip_mcu(&mut rd, &mut pred)?;
        }
        end_of_interval(&rd)?;
        let rest_end = rd.position();
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
            let (end, end_bit) = rest_end;
            if end == byte {
                let bits = (u32::from(raw[byte]) >> (8 - end_bit)) & ((1 << (end_bit - bit)) - 1);
                enc.writer.put(bits, end_bit - bit);
            } else {
                enc.writer.splice(&raw[..end], byte, bit);
                if end_bit > 0 {
                    enc.writer
                        .put(u32::from(raw[end]) >> (8 - end_bit), end_bit);
                }
            }
        }
        *out = enc.writer.finish();
        report.reencoded_mcus += window_end - first;
        Ok(())
    }

    /// Decodes an interval that is copied as it is, symbols only, to check it.
    fn check_interval(&self, iv: &Interval) -> Result<(), WatermarkError> {
        let mut rd = BitReader::new(&self.input[iv.raw.clone()]);
        let mut pred = [0i32; 4];
        for _ in iv.mcus.clone() {
            self.skip_mcu(&mut rd, &mut pred)?;
        }
        end_of_interval(&rd)
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
            end_of_interval(&rd)?;
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
            end_of_interval(&rd)?;
        }
        Ok(())
    }
}

/// A restart interval or scan must end exactly where its data does: bits read past it mean
/// a cut or damaged scan, whole bytes left over mean damaged data (libjpeg-turbo warns about
/// both, and `djpeg -strict` refuses).
pub(crate) fn end_of_interval(rd: &BitReader) -> Result<(), WatermarkError> {
    if rd.overran() {
        Err(truncated())
    } else if !rd.at_end() {
        Err(corrupt("data after the last MCU"))
    } else {
        Ok(())
    }
}

/// After the scan: only APPn/COM (and a DNL, which libjpeg ignores) may come before EOI;
/// anything after EOI is dropped. Another scan sends the file to the planes path.
fn check_trailer(input: &[u8], mut i: usize) -> Result<(), WatermarkError> {
    loop {
        while input.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *input.get(i).ok_or_else(truncated)?;
        i += 1;
        match marker {
            EOI => return Ok(()),
            APP0..=0xEF | COM | DNL => {
                check_app(marker, read_segment(input, &mut i)?)?;
                if input.get(i) != Some(&0xFF) {
                    return Err(truncated());
                }
            }
            SOS | DHT | DQT | DRI | DAC => {
                return Err(WatermarkError::NeedsFallback("more than one scan"))
            }
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
            Piece::Keep(r) | Piece::Coding(r) => out.extend_from_slice(&input[r.clone()]),
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
    if let Some(dht) = new_dht.or(header.implied_dht.as_deref()) {
        out.extend_from_slice(dht);
    }
    out.extend_from_slice(&input[header.sos.clone()]);
    out
}

/// Stamps a JPEG in the DCT domain: the splice path when the file is one sequential scan,
/// the planes path otherwise. Never returns `NeedsFallback`.
pub(crate) fn stamp(input: &[u8], limits: &Limits) -> Result<(Vec<u8>, Report), WatermarkError> {
    let header = parse_header(input, limits)?;
    if header.scan.is_some() {
        match stamp_spliced(input, &header) {
            Err(WatermarkError::NeedsFallback(_)) => {}
            done => return done,
        }
    }
    stamp_planes(input, &header)
}

/// The planes path: every scan decoded to coefficients, the mark's blocks stamped, the
/// planes written again (sequential, or progressive with the input's own script when the
/// writer can). Only the planes are picture-sized.
fn stamp_planes(input: &[u8], header: &Header) -> Result<(Vec<u8>, Report), WatermarkError> {
    let frame = &header.frame;
    let (mut coefs, changed_blocks) = stamped_coefficients(input, header)?;
    let geom = &coefs.geom;
    // A progressive input keeps its own script (its bytes stay close to the input's), or
    // libjpeg's standard one where ours would not write its script (one libjpeg's encoder
    // refuses, which decoders still read); a sequential input stays sequential.
    // A progressive Huffman-coded input whose script we keep is spliced scan by scan: what
    // comes before the mark in each scan is copied, not coded again.
    let (script, splice) = if !coefs.progressive {
        (jpeg_write::default_script(geom), false)
    } else if keeps_script(&coefs) {
        let splice = !frame.arithmetic && coefs.scans.len() == coefs.script.len();
        (std::mem::take(&mut coefs.script), splice)
    } else {
        (jpeg_write::progressive_script(geom), false)
    };
    let progressive = script
        .iter()
        .any(|s| (s.ss, s.se, s.ah, s.al) != (0, 63, 0, 0));
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
            // Written below from what the scans used.
            Piece::Coding(_) | Piece::Dht(_) => {}
        }
    }
    if let Some(e) = exif {
        out.extend_from_slice(&e);
    }
    let extended = write_quant_tables(&mut out, geom, &coefs.quant)?;
    jpeg_write::write_sof(&mut out, geom, progressive, !extended);
    // The input's buffers are done with: only the planes and the output remain.
    let total_mcus = geom.mcus_x * geom.mcus_y;
    let spliced = splice.then_some((input, &coefs.scans[..]));
    let counts = jpeg_write::write_scans(&mut out, geom, &coefs.planes, &script, spliced)?;
    out.extend_from_slice(&[0xFF, EOI]);
    Ok((
        out,
        Report {
            tables: if counts.spliced == script.len() {
                Tables::File
            } else {
                Tables::Optimised
            },
            reencoded_mcus: total_mcus,
            total_mcus,
            changed_blocks,
            scans: script.len(),
            spliced_scans: counts.spliced,
            extended_scans: counts.extended,
            recoded_scans: counts.recoded,
        },
    ))
}

/// Whether the planes path writes a file with the input's own scan script: a progressive
/// one our writer can write (libjpeg's encoder would), else `stamp_planes` picks another.
fn keeps_script(coefs: &jpeg_read::Coefficients) -> bool {
    coefs.progressive && jpeg_write::check_script(&coefs.geom, &coefs.script).is_ok()
}

/// The planes path's picture: every scan decoded (each recording where its coding can resume
/// before the mark's first block), the mark stamped into the planes; and how many blocks
/// changed.
fn stamped_coefficients(
    input: &[u8],
    header: &Header,
) -> Result<(jpeg_read::Coefficients, usize), WatermarkError> {
    let frame = &header.frame;
    let overlay = Overlay::new(frame.width as u32, frame.height as u32, header.orientation);
    // Where the mark's blocks start in each component, for the scans' resume points.
    let geom = FrameGeometry::new(frame.width, frame.height, frame.components.clone());
    let marked: Vec<Option<(usize, usize)>> = (0..geom.components.len())
        .map(|c| {
            let fc = geom.components[c];
            let (bx, by) = coef_mark::first_block(&overlay, geom.hmax / fc.h, geom.vmax / fc.v);
            let (w, h) = geom.padded_blocks(c);
            (bx < w && by < h).then_some((bx, by))
        })
        .collect();
    let mut coefs = jpeg_read::decode(input, header, &marked)?;
    let geom = &coefs.geom;
    // The precision the output's scans send each coefficient to (see `stamp_planes`).
    let al = if keeps_script(&coefs) {
        jpeg_write::final_point_transforms(geom.components.len(), &coefs.script)
    } else {
        vec![[0; 64]; geom.components.len()]
    };
    let inks: Vec<ComponentInk> = geom
        .components
        .iter()
        .enumerate()
        .map(|(c, fc)| {
            let (ink, shade) = header.colour.ink_and_shade(c);
            ComponentInk {
                fx: geom.hmax / fc.h,
                fy: geom.vmax / fc.v,
                quant: coefs.quant[c],
                ink,
                shade,
                al: al[c],
            }
        })
        .collect();
    let changed_blocks = coef_mark::stamp_planes(&overlay, &inks, &mut coefs.planes);
    Ok((coefs, changed_blocks))
}

/// One DQT with the table each component used (as latched at its first scan); true when a
/// table needs 16-bit entries (then the frame cannot be SOF0). Two components naming the same
/// table id but latched with different contents (a DQT between their scans) are not handled.
fn write_quant_tables(
    out: &mut Vec<u8>,
    geom: &FrameGeometry,
    quant: &[[u16; 64]],
) -> Result<bool, WatermarkError> {
    let mut tables: [Option<[u16; 64]>; 4] = [None; 4];
    for (c, q) in geom.components.iter().zip(quant) {
        match tables[c.tq] {
            Some(t) if t != *q => {
                return Err(WatermarkError::Unsupported(
                    "quantisation table redefined between scans",
                ))
            }
            _ => tables[c.tq] = Some(*q),
        }
    }
    let mut payload = Vec::new();
    let mut extended = false;
    for (id, t) in tables.iter().enumerate() {
        let Some(t) = t else { continue };
        if t.iter().all(|&q| q <= 255) {
            payload.push(id as u8);
            payload.extend(t.iter().map(|&q| q as u8));
        } else {
            extended = true;
            payload.push(0x10 | id as u8);
            payload.extend(t.iter().flat_map(|q| q.to_be_bytes()));
        }
    }
    out.extend_from_slice(&[0xFF, DQT]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(extended)
}

/// The splice path: one sequential scan, stamped in place.
fn stamp_spliced(input: &[u8], header: &Header) -> Result<(Vec<u8>, Report), WatermarkError> {
    let stamper = Stamper::new(input, header)?;
    let intervals = stamper.intervals()?;
    let mut report = Report {
        tables: Tables::File,
        reencoded_mcus: 0,
        total_mcus: stamper.total_mcus,
        changed_blocks: 0,
        scans: 1,
        spliced_scans: 1,
        extended_scans: 0,
        recoded_scans: 0,
    };

    let scan = header.scan.as_deref().unwrap_or_default();
    let file_tables: Vec<(EncodeTable, EncodeTable)> = scan
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
    let mut out = write_header(input, header, None);
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
    let ids: Vec<(usize, usize)> = scan.iter().map(|s| (s.dc, s.ac)).collect();
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
    let mut segment = Vec::new();
    jpeg_write::write_dht(
        &mut segment,
        specs.iter().enumerate().flat_map(|(class, tables)| {
            tables.iter().enumerate().filter_map(move |(id, spec)| {
                spec.as_ref().map(|spec| (class as u8, id as u8, spec))
            })
        }),
    )?;

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
        BitWriter::new(write_header(input, header, Some(&segment))),
        refs.clone(),
    );
    report = Report {
        tables: Tables::Optimised,
        reencoded_mcus: stamper.total_mcus,
        changed_blocks: 0,
        spliced_scans: 0,
        ..report
    };
    stamper.recode(&intervals, &mut enc, &refs, &mut report)?;
    let mut out = enc.writer.finish();
    out.extend_from_slice(&[0xFF, EOI]);
    Ok((out, report))
}

/// An oracle for the fuzzer and the regression replay: whether what the planes path publishes
/// for `input` decodes, in our decoder, to exactly the stamped coefficients (every coded block
/// of every component), whichever way its scans were written (spliced, extended, coded whole).
/// A script that never sends a coefficient's last bits (a final point transform above 0)
/// publishes it without them, as every decoder shows it: those bits are not compared.
/// `None` when the planes path does not publish `input` (refused, or a single sequential scan
/// the splice path takes).
pub(crate) fn planes_output_is_exact(input: &[u8], limits: &Limits) -> Option<bool> {
    let header = parse_header(input, limits).ok()?;
    if header.scan.is_some()
        && !matches!(
            stamp_spliced(input, &header),
            Err(WatermarkError::NeedsFallback(_))
        )
    {
        return None;
    }
    let (out, _) = stamp_planes(input, &header).ok()?;
    let (expected, _) = stamped_coefficients(input, &header).ok()?;
    let got = parse_header(&out, limits).and_then(|h| jpeg_read::decode(&out, &h, &[]));
    let Ok(got) = got else {
        return Some(false);
    };
    let geom = &expected.geom;
    Some((0..geom.components.len()).all(|c| {
        // The last point transform of each coefficient in the output's script (None: never
        // sent, so zero).
        let mut sent: [Option<u8>; 64] = [None; 64];
        for scan in got.script.iter().filter(|s| s.components.contains(&c)) {
            for bits in &mut sent[usize::from(scan.ss)..=usize::from(scan.se.min(63))] {
                *bits = Some(bits.map_or(scan.al, |b| b.min(scan.al)));
            }
        }
        let (w, h) = geom.coded_blocks(c);
        (0..h).all(|by| {
            (0..w).all(|bx| {
                let mut want = *expected.planes[c].block(bx, by);
                for (k, v) in want.iter_mut().enumerate() {
                    *v = match sent[k] {
                        None => 0,
                        // DC's point transform is an arithmetic shift, AC's divides the
                        // magnitude (T.81 G.1.2.1).
                        Some(al) if k == 0 => (*v >> al) << al,
                        Some(al) => v.signum() * ((v.abs() >> al) << al),
                    };
                }
                got.planes.get(c).map(|p| p.block(bx, by)) == Some(&want)
            })
        })
    }))
}

/// Test access to the planes path's picture: the input decoded and stamped, before writing.
#[cfg(test)]
pub(crate) fn stamped_planes(input: &[u8]) -> Result<super::coef::Planes, WatermarkError> {
    let header = parse_header(input, &Limits::default())?;
    Ok(stamped_coefficients(input, &header)?.0.planes)
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
        end_of_interval(&rd)?;
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
        .as_ref()
        .unwrap()
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
    let single = header.scan.as_ref().unwrap().len() == 1;
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
