//! Every scan of a JPEG decoded to coefficients (issue 21): sequential scans interleaved or
//! not, progressive scans (spectral selection and successive approximation, T.81 G.1.2, as
//! libjpeg's `jdphuff.c` reads them), restart intervals, tables and restart intervals
//! redefined between scans. Nothing is decoded to samples: the result is the [`Planes`].
//!
//! What libjpeg-turbo refuses, or warns about (so `djpeg -strict` refuses), is refused as
//! corrupt: bits read past a scan's data, bytes left over after its last MCU, restart markers
//! missing or out of order, a bogus progression, a scan with an undefined table, a missing
//! EOI. A progressive file that never sends some coefficients, or never scans a component, is
//! read as libjpeg reads it: those coefficients stay zero.

use super::arith;
use super::coef::{band_mask, new_planes, nonzero_mask, FrameGeometry, Planes, ScanSpec};
use super::huffman::{BitReader, Block, Checkpoint, DecodeTable, HuffSpec, ScanError, MAX_DC_SIZE};
use super::isa::Isa;
use super::jpeg::{
    check_app, corrupt, end_of_interval, parse_dac, parse_dht, parse_dqt, parse_dri, read_marker,
    read_segment, truncated, Conditioning, Frame, Header, ScanComponent, APP0, COM, DAC, DHT, DNL,
    DQT, DRI, EOI, SOI, SOS,
};
use super::WatermarkError;
use std::ops::Range;

/// A scan header (SOS): its components and its part of the progression.
#[derive(Clone, Debug)]
pub(crate) struct ScanHeader {
    pub components: Vec<ScanComponent>,
    pub ss: u8,
    pub se: u8,
    pub ah: u8,
    pub al: u8,
}

/// Parses an SOS payload against the frame. Table ids are checked where a scan uses them
/// (a refinement scan uses none).
pub(crate) fn parse_sos(p: &[u8], frame: &Frame) -> Result<ScanHeader, WatermarkError> {
    let n = usize::from(*p.first().ok_or_else(|| corrupt("SOS length"))?);
    if !(1..=4).contains(&n) || p.len() != 1 + 2 * n + 3 {
        return Err(corrupt("SOS length"));
    }
    let mut components: Vec<ScanComponent> = Vec::with_capacity(n);
    for c in p[1..1 + 2 * n].chunks_exact(2) {
        let component = frame
            .components
            .iter()
            .position(|f| f.id == c[0])
            .ok_or_else(|| corrupt("scan component not in frame"))?;
        if components.iter().any(|s| s.component == component) {
            return Err(corrupt("scan component twice"));
        }
        components.push(ScanComponent {
            component,
            dc: usize::from(c[1] >> 4),
            ac: usize::from(c[1] & 15),
        });
    }
    let tail = &p[1 + 2 * n..];
    Ok(ScanHeader {
        components,
        ss: tail[0],
        se: tail[1],
        ah: tail[2] >> 4,
        al: tail[2] & 15,
    })
}

/// A whole JPEG as coefficients.
pub(crate) struct Coefficients {
    pub geom: FrameGeometry,
    pub planes: Planes,
    /// The quantisation table of each component (frame order), as latched at its first scan.
    pub quant: Vec<[u16; 64]>,
    pub progressive: bool,
    /// The scans as the file sent them (the progression to write again).
    pub script: Vec<ScanSpec>,
    /// Where each scan of `script` is in the input, for the writer to copy what the mark does
    /// not change (Huffman-coded frames only; empty for arithmetic coding).
    pub scans: Vec<ScanRecord>,
}

/// One Huffman-coded scan of the input as the progressive splice (`jpeg_write::splice_scan`)
/// needs it: its data, the tables it was coded with, and where its coding can be taken up
/// again at the first block the mark may change.
#[derive(Clone, Debug)]
pub(crate) struct ScanRecord {
    /// The SOS payload.
    pub sos: Range<usize>,
    /// The entropy-coded data (restart markers included).
    pub data: Range<usize>,
    /// The Huffman tables the scan was decoded with, as `(class, id, table)`.
    pub tables: Vec<(u8, u8, HuffSpec)>,
    /// Whether the scan has restart intervals (then it is not spliced).
    pub restarts: bool,
    /// Where coding starts again; `None` when the mark touches none of the scan's blocks.
    pub resume: Option<Resume>,
}

/// A point of a scan where its coder's state is known and clean (no EOB run pending): the
/// unit (block of a one-component scan, MCU of an interleaved one) coded next, the position
/// of its first bit in the scan's data (`byte`, and `bit` bits of that byte used before it),
/// and the DC predictions there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume {
    pub unit: usize,
    pub byte: usize,
    pub bit: u32,
    pub pred: [i32; 4],
}

/// Tables, restart interval and progression state as they evolve from scan to scan.
struct Decoder<'a> {
    input: &'a [u8],
    frame: &'a Frame,
    geom: FrameGeometry,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<HuffSpec>; 4],
    ac: [Option<HuffSpec>; 4],
    conditioning: Conditioning,
    restart_interval: usize,
    latched: Vec<Option<[u16; 64]>>,
    /// Per component and coefficient: the point transform of the last scan that sent it, -1
    /// before any (libjpeg's `coef_bits`).
    coef_bits: Vec<[i8; 64]>,
    script: Vec<ScanSpec>,
    scans: Vec<ScanRecord>,
    /// Per component, the DC coefficient of each block, as progressive DC scans send it:
    /// kept apart from the blocks so those scans touch half a megabyte rather than every
    /// block of the picture. AC scans copy it into the blocks they code; `dc_pending` marks
    /// a component whose blocks have not had its latest DC yet.
    dc_values: Vec<Vec<i16>>,
    dc_pending: Vec<bool>,
    /// Per component, the first block (x, y) the mark may change, if any.
    marked: &'a [Option<(usize, usize)>],
}

/// What a scan does to each of its blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

/// Decodes every scan of `input` (whose segments up to the first scan are `header`) up to EOI.
/// `marked` gives, per component (frame order), the first block the mark may change (its
/// box's top-left block): each scan records where its coding can resume before it.
pub(crate) fn decode(
    input: &[u8],
    header: &Header,
    marked: &[Option<(usize, usize)>],
) -> Result<Coefficients, WatermarkError> {
    let frame = &header.frame;
    let geom = FrameGeometry::new(frame.width, frame.height, frame.components.clone());
    let mut planes = new_planes(&geom);
    let n = frame.components.len();
    let mut d = Decoder {
        input,
        frame,
        geom,
        quant: header.quant,
        dc: header.dc.clone(),
        ac: header.ac.clone(),
        conditioning: header.conditioning.clone(),
        restart_interval: header.restart_interval,
        latched: vec![None; n],
        coef_bits: vec![[-1; 64]; n],
        script: Vec::new(),
        scans: Vec::new(),
        dc_values: planes.iter().map(|p| vec![0; p.blocks.len()]).collect(),
        dc_pending: vec![false; n],
        marked,
    };
    let mut i = header.sos.start;
    loop {
        // A file that ends without EOI is cut.
        let marker = read_marker(input, &mut i)?;
        match marker {
            EOI => break,
            // Parameterless markers between scans: libjpeg skips them.
            0x01 | 0xD0..=0xD7 => continue,
            SOI => return Err(corrupt("SOI inside the image")),
            _ => {}
        }
        let payload = read_segment(input, &mut i)?;
        match marker {
            SOS => {
                let scan = parse_sos(payload, frame)?;
                let sos = i - payload.len()..i;
                i = d.decode_scan(i, &scan, &mut planes, sos)?;
            }
            DHT => parse_dht(payload, &mut d.dc, &mut d.ac)?,
            DQT => parse_dqt(payload, &mut d.quant)?,
            DRI => d.restart_interval = parse_dri(payload)?,
            DAC => parse_dac(payload, &mut d.conditioning)?,
            // libjpeg-turbo skips a DNL (the height came from the SOF); metadata after the
            // first scan is dropped.
            APP0..=0xEF => check_app(marker, payload)?,
            DNL | COM => {}
            0xC0..=0xCF => return Err(corrupt("more than one frame")),
            _ => return Err(corrupt("unknown marker")),
        }
    }
    for ((plane, dc), pending) in planes.iter_mut().zip(&d.dc_values).zip(&d.dc_pending) {
        if *pending {
            for (block, &v) in plane.blocks.iter_mut().zip(dc) {
                block[0] = v;
            }
        }
    }
    // A component no scan sent stays zero, as libjpeg shows it; its table is the one its
    // id names at the end (or none: then any table is as good).
    let quant = frame
        .components
        .iter()
        .zip(&d.latched)
        .map(|(c, latched)| latched.or(d.quant[c.tq]).unwrap_or([1; 64]))
        .collect();
    Ok(Coefficients {
        geom: d.geom,
        planes,
        quant,
        progressive: frame.progressive,
        script: d.script,
        scans: d.scans,
    })
}

/// Finds the end of a scan's entropy-coded data (the 0xFF of the marker after it) and its
/// restart markers as `(0xFF position, position after the marker, marker)`.
type Restart = (usize, usize, u8);

fn scan_data(input: &[u8], start: usize) -> Result<(Vec<Restart>, usize), WatermarkError> {
    let mut restarts = Vec::new();
    let mut i = start;
    loop {
        let ff = i + input
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .ok_or_else(truncated)?;
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
            _ => return Ok((restarts, ff)),
        }
    }
}

impl Decoder<'_> {
    /// Decodes the scan whose data starts at `start`; returns where its data ends.
    fn decode_scan(
        &mut self,
        start: usize,
        scan: &ScanHeader,
        planes: &mut Planes,
        sos: Range<usize>,
    ) -> Result<usize, WatermarkError> {
        let pass = self.check_progression(scan)?;
        for s in &scan.components {
            let c = s.component;
            if self.latched[c].is_none() {
                let tq = self.frame.components[c].tq;
                self.latched[c] =
                    Some(self.quant[tq].ok_or_else(|| corrupt("undefined quantisation table"))?);
            }
        }
        let geom = &self.geom;
        let single = scan.components.len() == 1;
        let (mcus_x, total) = if single {
            let (w, h) = geom.coded_blocks(scan.components[0].component);
            (w, w * h)
        } else {
            let blocks: usize = scan
                .components
                .iter()
                .map(|s| geom.components[s.component].h * geom.components[s.component].v)
                .sum();
            if blocks > 10 {
                return Err(corrupt("more than 10 blocks per MCU"));
            }
            (geom.mcus_x, geom.mcus_x * geom.mcus_y)
        };

        let (restarts, end) = scan_data(self.input, start)?;
        let ri = self.restart_interval;
        let intervals = if ri == 0 { 1 } else { total.div_ceil(ri) };
        if restarts.len() + 1 < intervals {
            return Err(corrupt("restart markers missing"));
        }
        let mut raw = Vec::with_capacity(restarts.len() + 1);
        let mut from = start;
        for (n, &(ff, after, m)) in restarts.iter().enumerate() {
            if usize::from(m - 0xD0) != n % 8 {
                return Err(corrupt("restart markers out of sequence"));
            }
            raw.push(from..ff);
            from = after;
        }
        raw.push(from..end);
        // libjpeg skips a restart marker after the last MCU: it ends an empty interval.
        if raw[intervals..].iter().any(|r| !r.is_empty()) {
            return Err(corrupt("restart marker inside an interval"));
        }
        raw.truncate(intervals);

        self.script.push(ScanSpec {
            components: scan.components.iter().map(|s| s.component).collect(),
            ss: scan.ss,
            se: scan.se,
            ah: scan.ah,
            al: scan.al,
        });
        if self.frame.arithmetic {
            let spec = self.script.last().expect("pushed above");
            let tables: Vec<(usize, usize)> =
                scan.components.iter().map(|s| (s.dc, s.ac)).collect();
            let stop = arith::decode_scan(
                &self.input[start..],
                geom,
                spec,
                &tables,
                &self.conditioning,
                ri,
                planes,
            )?;
            // The decoder stops at the first marker that is not its next restart: the one
            // found above, or the scan's intervals did not add up.
            if start + stop != end {
                return Err(corrupt("arithmetic scan data does not end at its marker"));
            }
            return Ok(end);
        }

        let table = |specs: &[Option<HuffSpec>; 4], id: usize| {
            specs
                .get(id)
                .and_then(Option::as_ref)
                .ok_or_else(|| corrupt("scan uses an undefined Huffman table"))
                .and_then(DecodeTable::new)
        };
        let mut tables = Vec::with_capacity(scan.components.len());
        let mut used: Vec<(u8, u8, HuffSpec)> = Vec::new();
        for s in &scan.components {
            let dc = match pass {
                Pass::Sequential | Pass::DcFirst => Some(table(&self.dc, s.dc)?),
                _ => None,
            };
            let ac = match pass {
                Pass::Sequential | Pass::AcFirst | Pass::AcRefine => Some(table(&self.ac, s.ac)?),
                _ => None,
            };
            for (class, id, specs, uses) in [
                (0u8, s.dc, &self.dc, dc.is_some()),
                (1u8, s.ac, &self.ac, ac.is_some()),
            ] {
                if uses && !used.iter().any(|u| (u.0, usize::from(u.1)) == (class, id)) {
                    if let Some(spec) = &specs[id] {
                        used.push((class, id as u8, spec.clone()));
                    }
                }
            }
            tables.push((dc, ac));
        }
        // The unit from which the mark may change blocks: the resume point is taken there.
        let split = if ri != 0 {
            None
        } else if single {
            let c = scan.components[0].component;
            let (w, h) = geom.coded_blocks(c);
            match self.marked.get(c).copied().flatten() {
                Some((bx, by)) if bx < w && by < h => Some(by * w + bx),
                _ => None,
            }
        } else {
            scan.components
                .iter()
                .filter_map(|s| {
                    let fc = geom.components[s.component];
                    let (bx, by) = self.marked.get(s.component).copied().flatten()?;
                    Some((by / fc.v) * mcus_x + bx / fc.h)
                })
                .min()
        };
        let split_at = split.unwrap_or(usize::MAX);
        let watch_from = match pass {
            Pass::AcFirst | Pass::AcRefine => split_at.saturating_sub(1 << 15),
            _ => split_at,
        };
        let mut blocks = BlockDecoder {
            pass,
            tables,
            pred: [0; 4],
            band: Band {
                ss: usize::from(scan.ss),
                se: usize::from(scan.se),
                al: u32::from(scan.al),
                eobrun: 0,
            },
        };

        let units = Units {
            input: self.input,
            raw: &raw,
            ri,
            total,
            single,
            mcus_x,
            components: &scan.components,
            geom,
            watch_from,
            split_at,
        };
        let resume = units.run(&mut blocks, planes, &mut self.dc_values)?;
        // DC scans write the DC array; AC scans copied it into each block they coded.
        for sc in &scan.components {
            self.dc_pending[sc.component] = matches!(pass, Pass::DcFirst | Pass::DcRefine);
        }
        self.scans.push(ScanRecord {
            sos,
            data: start..end,
            tables: used,
            restarts: ri != 0,
            resume,
        });
        Ok(end)
    }

    /// The scan's parameters against the frame and the progression so far, as libjpeg-turbo
    /// judges them (`jdphuff.c` `start_pass_phuff_decoder`, `jdhuff.c` for sequential frames):
    /// its errors and its warnings (JWRN_BOGUS_PROGRESSION, JWRN_NOT_SEQUENTIAL) both refuse.
    fn check_progression(&mut self, scan: &ScanHeader) -> Result<Pass, WatermarkError> {
        let (ss, se, ah, al) = (scan.ss, scan.se, scan.ah, scan.al);
        if !self.frame.progressive {
            if (ss, se, ah, al) != (0, 63, 0, 0) {
                return Err(corrupt("not a sequential scan"));
            }
            return Ok(Pass::Sequential);
        }
        let dc_band = ss == 0;
        let mut bad = if dc_band {
            se != 0
        } else {
            ss > se || se > 63 || scan.components.len() != 1
        };
        bad |= ah != 0 && al + 1 != ah;
        bad |= al > 13;
        if bad {
            return Err(corrupt("invalid progressive scan parameters"));
        }
        for s in &scan.components {
            let bits = &mut self.coef_bits[s.component];
            if !dc_band && bits[0] < 0 {
                return Err(corrupt("AC scan before the DC scan"));
            }
            for bit in &mut bits[usize::from(ss)..=usize::from(se)] {
                let expected = (*bit).max(0) as u8;
                if ah != expected {
                    return Err(corrupt("bogus progression"));
                }
                *bit = al as i8;
            }
        }
        Ok(match (dc_band, ah) {
            (true, 0) => Pass::DcFirst,
            (true, _) => Pass::DcRefine,
            (false, 0) => Pass::AcFirst,
            (false, _) => Pass::AcRefine,
        })
    }
}

/// Decodes blocks of one scan; the state that runs across blocks (DC predictors, EOBRUN)
/// is reset at each restart.
struct BlockDecoder {
    pass: Pass,
    /// (DC, AC) table of each scan component, where the pass uses it.
    tables: Vec<(Option<DecodeTable>, Option<DecodeTable>)>,
    pred: [i32; 4],
    band: Band,
}

/// The coefficients and bit a scan sends, and its EOB run (AC scans).
struct Band {
    ss: usize,
    se: usize,
    al: u32,
    eobrun: u32,
}

const BAD_DC: ScanError = ScanError("DC difference category");
const PAST_BAND: ScanError = ScanError("AC coefficient index past the band");

/// The units (blocks of a one-component scan, MCUs of an interleaved one) of one
/// Huffman-coded scan, restart interval by restart interval.
struct Units<'s> {
    input: &'s [u8],
    /// Each interval's data.
    raw: &'s [Range<usize>],
    ri: usize,
    total: usize,
    single: bool,
    mcus_x: usize,
    components: &'s [ScanComponent],
    geom: &'s FrameGeometry,
    /// From which unit resume points are watched, and the unit the mark may change first.
    watch_from: usize,
    split_at: usize,
}

impl Units<'_> {
    /// Decodes every unit into `planes` (DC scans: into `dc_values`); returns the resume
    /// point before `split_at`, if the scan reached it.
    fn run(
        &self,
        blocks: &mut BlockDecoder,
        planes: &mut Planes,
        dc_values: &mut [Vec<i16>],
    ) -> Result<Option<Resume>, WatermarkError> {
        match Isa::current() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Bmi` is only made where the CPU has the features `run_bmi` is
            // compiled for.
            Isa::Bmi => unsafe { self.run_bmi(blocks, planes, dc_values) },
            Isa::Portable => self.run_any(blocks, planes, dc_values),
        }
    }

    /// [`Self::run_any`] compiled with the bit instructions of [`Isa::Bmi`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,lzcnt,bmi1,bmi2")]
    fn run_bmi(
        &self,
        blocks: &mut BlockDecoder,
        planes: &mut Planes,
        dc_values: &mut [Vec<i16>],
    ) -> Result<Option<Resume>, WatermarkError> {
        self.run_any(blocks, planes, dc_values)
    }

    /// The loop itself, inlined into each copy with everything it calls per block.
    #[inline(always)]
    fn run_any(
        &self,
        blocks: &mut BlockDecoder,
        planes: &mut Planes,
        dc_values: &mut [Vec<i16>],
    ) -> Result<Option<Resume>, WatermarkError> {
        let (ri, total, single, mcus_x) = (self.ri, self.total, self.single, self.mcus_x);
        let (watch_from, split_at, geom) = (self.watch_from, self.split_at, self.geom);
        let mut resume = None;
        for (n, r) in self.raw.iter().enumerate() {
            let mcus = if ri == 0 {
                0..total
            } else {
                n * ri..((n + 1) * ri).min(total)
            };
            let mut rd = BitReader::new(&self.input[r.clone()]);
            blocks.pred = [0; 4];
            blocks.band.eobrun = 0;
            // The last unit that began with no EOB run pending: a resume point. An EOB run
            // covers at most 32767 blocks, so only the units that close before the split are
            // watched (a DC scan has no runs: only the split itself).
            let mut clean: (Checkpoint, usize) = (rd.checkpoint(), 0);
            for m in mcus {
                if m >= watch_from && resume.is_none() {
                    if blocks.band.eobrun == 0 {
                        clean = (rd.checkpoint(), m);
                    }
                    if m == split_at {
                        let (cp, unit) = clean;
                        let (byte, bit) = rd.position_at(cp);
                        resume = Some(Resume {
                            unit,
                            byte,
                            bit,
                            pred: blocks.pred,
                        });
                    }
                }
                if single {
                    let c = self.components[0].component;
                    let plane = &mut planes[c];
                    let b = (m / mcus_x) * plane.width_blocks + m % mcus_x;
                    blocks.block(&mut rd, 0, &mut plane.blocks[b], &mut dc_values[c][b])?;
                    continue;
                }
                let (mx, my) = (m % mcus_x, m / mcus_x);
                for (s, sc) in self.components.iter().enumerate() {
                    let fc = geom.components[sc.component];
                    let plane = &mut planes[sc.component];
                    let dc = &mut dc_values[sc.component];
                    for j in 0..fc.v {
                        let row = (my * fc.v + j) * plane.width_blocks + mx * fc.h;
                        let (bs, ds) =
                            (&mut plane.blocks[row..row + fc.h], &mut dc[row..row + fc.h]);
                        for (block, dc) in bs.iter_mut().zip(ds) {
                            blocks.block(&mut rd, s, block, dc)?;
                        }
                    }
                }
            }
            end_of_interval(&rd)?;
        }
        Ok(resume)
    }
}

impl BlockDecoder {
    /// One block: `dc` is its DC coefficient in the decoder's DC array, which progressive DC
    /// scans write (not the block) and AC scans copy into the block.
    #[inline(always)]
    fn block(
        &mut self,
        rd: &mut BitReader,
        s: usize,
        block: &mut Block,
        dc: &mut i16,
    ) -> Result<(), ScanError> {
        let missing = ScanError("table");
        match self.pass {
            Pass::Sequential => {
                let (dc, ac) = &self.tables[s];
                rd.decode_block(
                    dc.as_ref().ok_or(missing)?,
                    ac.as_ref().ok_or(missing)?,
                    &mut self.pred[s],
                    block,
                )
            }
            Pass::DcFirst => {
                let size = rd.symbol(self.tables[s].0.as_ref().ok_or(missing)?)?;
                if size > MAX_DC_SIZE {
                    return Err(BAD_DC);
                }
                self.pred[s] = self.pred[s].wrapping_add(rd.value(size));
                *dc = self.pred[s]
                    .checked_shl(self.band.al)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or(ScanError("DC value out of range"))?;
                Ok(())
            }
            Pass::DcRefine => {
                if rd.bits(1) != 0 {
                    *dc |= 1 << self.band.al;
                }
                Ok(())
            }
            Pass::AcFirst => {
                let ac = self.tables[s].1.as_ref().ok_or(missing)?;
                block[0] = *dc;
                self.band.ac_first(rd, ac, block)
            }
            Pass::AcRefine => {
                let ac = self.tables[s].1.as_ref().ok_or(missing)?;
                block[0] = *dc;
                self.band.ac_refine(rd, ac, block)
            }
        }
    }
}

impl Band {
    /// G.1.2.2: the first bits of a band, with end-of-band runs across blocks.
    #[inline(always)]
    fn ac_first(
        &mut self,
        rd: &mut BitReader,
        ac: &DecodeTable,
        block: &mut Block,
    ) -> Result<(), ScanError> {
        if self.eobrun > 0 {
            self.eobrun -= 1;
            return Ok(());
        }
        let mut k = self.ss;
        while k <= self.se {
            let rs = rd.symbol(ac)?;
            let (r, size) = (usize::from(rs >> 4), rs & 15);
            if size != 0 {
                k += r;
                if k > self.se {
                    return Err(PAST_BAND);
                }
                // As libjpeg: the shifted value is kept in 16 bits.
                block[k] = (rd.value(size) << self.al) as i16;
                k += 1;
            } else if r == 15 {
                k += 16;
            } else {
                self.eobrun = (1 << r) + rd.bits(r as u32) - 1;
                break;
            }
        }
        Ok(())
    }

    /// G.1.2.3: one more bit of every coefficient of the band; new coefficients are ±1.
    /// The coefficients already non-zero are found from a mask of the block, not one by one:
    /// their correction bits are read in one go between the symbols.
    #[inline(always)]
    fn ac_refine(
        &mut self,
        rd: &mut BitReader,
        ac: &DecodeTable,
        block: &mut Block,
    ) -> Result<(), ScanError> {
        let p1: i16 = 1 << self.al;
        let m1: i16 = (-1i32 << self.al) as i16;
        let (ss, se) = (self.ss, self.se);
        let band = band_mask(ss, se);
        let nonzero = nonzero_mask(block, 0) & band;
        let mut k = ss;
        if self.eobrun == 0 {
            while k <= se {
                let rs = rd.symbol(ac)?;
                let (r, size) = (u32::from(rs >> 4), rs & 15);
                let mut value = 0;
                if size != 0 {
                    // libjpeg warns: "Corrupt JPEG data: bad Huffman code".
                    if size != 1 {
                        return Err(ScanError("refinement coefficient larger than 1"));
                    }
                    value = if rd.bits(1) != 0 { p1 } else { m1 };
                } else if r != 15 {
                    self.eobrun = (1 << r) + rd.bits(r);
                    break;
                }
                // Over the already-nonzero coefficients (each gets its correction bit) and r
                // still-zero ones, to the zero where the new coefficient goes (or, for ZRL, the
                // 16th zero): the (r + 1)th zero from k.
                let zeros = !nonzero & band & (u64::MAX << k);
                let stop = if zeros.count_ones() <= r {
                    se + 1
                } else {
                    select(zeros, r) as usize
                };
                refine(rd, block, nonzero & band_mask(k, stop - 1), p1, m1);
                k = stop;
                if value != 0 {
                    if k > se {
                        return Err(PAST_BAND);
                    }
                    block[k] = value;
                }
                k += 1;
            }
        }
        if self.eobrun > 0 {
            if k <= se {
                refine(rd, block, nonzero & (u64::MAX << k), p1, m1);
            }
            self.eobrun -= 1;
        }
        Ok(())
    }
}

/// Position of the `n`th (from 0) set bit of `x`, which has more than `n`: without a loop
/// whose length depends on `n` (a mispredicted branch per symbol of AC refinement). Bytes'
/// bit counts summed by a multiply find the byte, a table the bit in it (broadword select,
/// Vigna 2008).
#[inline(always)]
fn select(x: u64, n: u32) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut c = x - ((x >> 1) & 0x5555_5555_5555_5555);
    c = (c & 0x3333_3333_3333_3333) + ((c >> 2) & 0x3333_3333_3333_3333);
    c = (c + (c >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // Byte i: set bits in bytes 0..=i.
    let sums = c.wrapping_mul(ONES);
    // High bit of byte i set where sums[i] <= n: the bytes wholly before the one wanted.
    let before = (((u64::from(n) * ONES) | HIGH) - sums) & HIGH;
    let byte = before.count_ones() * 8;
    let below = ((sums << 8) >> byte) as u32 & 0xFF;
    byte + u32::from(SELECT_IN_BYTE[((x >> byte) & 0xFF) as usize][(n - below) as usize])
}

/// `SELECT_IN_BYTE[b][n]`: position of the `n`th set bit of byte `b` (8 where there is none).
static SELECT_IN_BYTE: [[u8; 8]; 256] = {
    let mut t = [[8u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut n = 0;
        let mut bit = 0;
        while bit < 8 {
            if b >> bit & 1 == 1 {
                t[b][n] = bit as u8;
                n += 1;
            }
            bit += 1;
        }
        b += 1;
    }
    t
};

/// Reads one correction bit for each coefficient in `mask` (zigzag positions, in order) and
/// adds it to the coefficient's magnitude at bit `p1` where that bit is not already set.
#[inline(always)]
fn refine(rd: &mut BitReader, block: &mut Block, mut mask: u64, p1: i16, m1: i16) {
    while mask != 0 {
        let take = mask.count_ones().min(16);
        let bits = rd.bits(take);
        for j in (0..take).rev() {
            let k = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let coef = &mut block[k];
            // Branch-free: the bits are as good as random, so a branch on them mispredicts
            // half the time.
            let apply = ((bits >> j) & 1) as i16 & i16::from(*coef & p1 == 0);
            let step = if *coef >= 0 { p1 } else { m1 };
            *coef = coef.wrapping_add(step & apply.wrapping_neg());
        }
    }
}

#[cfg(test)]
mod select_tests {
    use super::select;

    #[test]
    fn select_finds_every_set_bit_of_every_word() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Sparse, dense and edge words.
            let x = match i % 4 {
                0 => state,
                1 => state & (state >> 3) & (state >> 5),
                2 => u64::MAX << (i % 64),
                _ => state | 1 << 63,
            };
            let mut rest = x;
            for n in 0..x.count_ones() {
                assert_eq!(select(x, n), rest.trailing_zeros(), "{x:#x} bit {n}");
                rest &= rest - 1;
            }
        }
    }
}
