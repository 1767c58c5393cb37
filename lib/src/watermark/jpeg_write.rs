//! The JPEG coefficient writer (issue 21): codes a frame's quantised coefficients as Huffman
//! scans again, sequential or progressive, each scan with tables built for its own symbols
//! (T.81 Annex K.2), so a re-written file is as small as libjpeg's `-optimize` or
//! `-progressive` output of the same coefficients.
//!
//! The coding follows libjpeg-turbo's encoders symbol for symbol (jchuff.c for sequential
//! scans, jcphuff.c for progressive ones: EOB runs, the correction-bit buffer of AC
//! refinement), and the scripts it accepts are those its `jcmaster.c` accepts, so what we
//! write is what libjpeg itself would write and every decoder that reads libjpeg reads it.
//! Each scan is run twice over the blocks: once counting symbols, once coding them; or, for a
//! progressive input, spliced: copied up to the mark and coded from there ([`splice_scan`]).

use super::coef::{band_mask, mask_of_flags, nonzero_mask, FrameGeometry, Plane, ScanSpec};
use super::huffman::{optimal_table, BitWriter, Block, HuffSpec, ScanError};
use super::jpeg_read::ScanRecord;
use super::WatermarkError;

const SOF0: u8 = 0xC0;
const SOF1: u8 = 0xC1;
const SOF2: u8 = 0xC2;
const DHT: u8 = 0xC4;
const SOS: u8 = 0xDA;

/// Components one scan may hold (T.81 B.2.3).
const MAX_COMPS_IN_SCAN: usize = 4;
/// Blocks in the MCU of an interleaved scan (T.81 B.2.3).
const MAX_BLOCKS_IN_MCU: usize = 10;
/// Largest successive-approximation bit position libjpeg accepts for 8-bit samples
/// (jcmaster.c: larger ones overflow the first DC scan's reconstruction).
const MAX_AH_AL: u8 = 10;
/// Correction bits AC refinement buffers before it forces its EOB run out (jcphuff.c).
const MAX_CORR_BITS: usize = 1000;
/// Longest EOB run (EOB14 with 14 extra bits; jcphuff.c forces the run out at this length).
const MAX_EOBRUN: u32 = 0x7FFF;
/// Largest magnitude category a Huffman symbol can name (4 bits).
const MAX_CATEGORY: u32 = 15;
/// Huffman tables of each class a baseline frame may use; other DCT frames may use 4.
const BASELINE_TABLES: usize = 2;
const TABLES: usize = 4;

const TOO_LARGE: ScanError = ScanError("coefficient too large to code");

fn corrupt(what: String) -> WatermarkError {
    WatermarkError::Corrupt(what)
}

/// Appends, for each scan of `script`: a DHT segment with the scan's optimised tables (Annex
/// K.2, two passes: count symbols, then code), the SOS, and the scan's entropy-coded data
/// (byte-stuffed, padded with 1-bits). No restart markers.
///
/// Sequential scans (ss=0, se=63, ah=al=0) and progressive ones (DC first/refine, AC
/// first/refine with EOB runs, as libjpeg's jcphuff.c codes them). Interleaved scans code the
/// padded MCU grid, with the blocks outside [`FrameGeometry::coded_blocks`] written as
/// jpegtran writes them (DC of the block before in the MCU, no AC; `planes` is not changed):
/// a non-interleaved input never coded them. A single-component scan codes
/// `geom.coded_blocks(c)`.
///
/// `Err` (corrupt) if the script is not one libjpeg would write and decoders accept (T.81
/// G.1.1.1, jcmaster.c's `validate_script`), if `planes` do not match `geom`, or if a
/// coefficient (or DC difference) needs more than 15 bits. Sequential scans use at most two
/// tables of each class, so the output is valid under an SOF0 as well as an SOF1.
///
/// With `input` (the file the planes were decoded from and its scans, one a scan of
/// `script`), each scan is spliced where it can be ([`splice_scan`]) and written anew where
/// not. Returns how many scans went which way.
pub(crate) fn write_scans(
    out: &mut Vec<u8>,
    geom: &FrameGeometry,
    planes: &[Plane],
    script: &[ScanSpec],
    input: Option<(&[u8], &[ScanRecord])>,
) -> Result<ScanCounts, WatermarkError> {
    check_planes(geom, planes)?;
    check_script(geom, script)?;
    let mut counts = ScanCounts::default();
    for (n, scan) in script.iter().enumerate() {
        if let Some((bytes, records)) = input {
            match splice_scan(out, geom, planes, scan, &records[n], bytes)? {
                Written::Spliced { extended } => {
                    counts.spliced += 1;
                    counts.extended += usize::from(extended);
                    continue;
                }
                Written::Recoded => {
                    counts.recoded += 1;
                    continue;
                }
                Written::No => {}
            }
        }
        write_scan(out, geom, planes, scan)?;
    }
    Ok(counts)
}

/// How the scans of [`write_scans`] were written, where not anew with counted tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanCounts {
    /// Spliced ([`Written::Spliced`]), and of those, with tables extended.
    pub spliced: usize,
    pub extended: usize,
    /// Coded whole in one pass ([`Written::Recoded`]).
    pub recoded: usize,
}

/// How [`splice_scan`] wrote a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The input's data up to the resume point, coded from there: with the file's tables, or
    /// (`extended`) with new symbols added where they leave code space (no code changes).
    Spliced { extended: bool },
    /// Coded whole in one pass, with tables derived from the file's (its code lengths stand
    /// for its symbols' counts) plus the symbols the mark added.
    Recoded,
    /// Nothing written: the caller writes the scan with tables counted from the planes.
    No,
}

/// Writes one scan of the input again by splicing: its tables and SOS as the input has
/// them, its entropy-coded data copied up to the resume point the decoder recorded before
/// the first block the mark may change (a clean point: no EOB run pending), and coded from
/// there to the end of the scan with the same tables from the planes. Every block before the
/// resume point is unchanged, so the copied bits still code it; the file's coder state there
/// (DC predictions; no pending run, no buffered correction bits) is what ours starts from.
/// A scan the mark does not touch is copied whole.
///
/// When the coded part needs symbols the file's tables have no code for, they are added
/// after the table's longest codes where it has room (libjpeg's tables keep the all-ones
/// code free at every length: each longer length has room for one more code), which changes
/// no existing code; where it has not, the scan is coded whole in one pass with tables
/// derived from the file's. [`Written::No`], with `out` as it was, when neither works (a
/// symbol the file's encoder never used) or the scan has restart intervals.
pub(crate) fn splice_scan(
    out: &mut Vec<u8>,
    geom: &FrameGeometry,
    planes: &[Plane],
    scan: &ScanSpec,
    record: &ScanRecord,
    input: &[u8],
) -> Result<Written, WatermarkError> {
    if record.restarts {
        return Ok(Written::No);
    }
    let rollback = out.len();
    let sos = &input[record.sos.clone()];
    let data = &input[record.data.clone()];
    let Some(resume) = record.resume else {
        write_dht_sos(out, &record.tables, sos)?;
        out.extend_from_slice(data);
        return Ok(Written::Spliced { extended: false });
    };
    // Each slot's table ids, from the SOS (checked against the frame by the decoder).
    let by_table: Vec<(usize, usize)> = sos[1..1 + 2 * scan.components.len()]
        .chunks_exact(2)
        .map(|c| {
            (
                table_index(0, usize::from(c[1] >> 4)),
                table_index(1, usize::from(c[1] & 15)),
            )
        })
        .collect();
    let kind = Kind::of(scan);
    let mut tables = record.tables.clone();
    let mut missing = Vec::new();
    for attempt in 0..2 {
        write_dht_sos(out, &tables, sos)?;
        out.extend_from_slice(&data[..resume.byte]);
        let writer = match data.get(resume.byte) {
            Some(&byte) if resume.bit > 0 => {
                BitWriter::resume(std::mem::take(out), byte, resume.bit)
            }
            _ => BitWriter::new(std::mem::take(out)),
        };
        let mut coder = Coder::new(writer, triples(&tables));
        let result = run_scan(
            geom,
            planes,
            scan,
            kind,
            &by_table,
            &mut coder,
            resume.unit,
            resume.pred,
        );
        *out = coder.writer.finish();
        if let Err(e) = result {
            out.truncate(rollback);
            return Err(e.into());
        }
        if coder.missing.is_empty() {
            return Ok(Written::Spliced {
                extended: attempt > 0,
            });
        }
        out.truncate(rollback);
        missing.extend(coder.missing);
        if attempt == 1 {
            break;
        }
        let mut room = true;
        for (class, id, spec) in &mut tables {
            let index = table_index(usize::from(*class), usize::from(*id));
            let new: Vec<u8> = missing
                .iter()
                .filter(|m| m.0 == index)
                .map(|m| m.1)
                .collect();
            if new.is_empty() {
                continue;
            }
            match extended(spec, *class, &new) {
                Some(more) => *spec = more,
                None => room = false,
            }
        }
        if !room {
            break;
        }
    }

    // The whole scan in one pass, with tables for counts estimated without a pass over it:
    // the coded part's symbols counted, the copied part's from the file's code lengths (a
    // symbol of an n-bit code stands for 2^-n of the symbols), scaled by how many units it
    // has against the coded part.
    let mut counter = Counter {
        freq: Box::new([[0; 256]; 2 * TABLES]),
    };
    run_scan(
        geom,
        planes,
        scan,
        kind,
        &by_table,
        &mut counter,
        resume.unit,
        resume.pred,
    )?;
    let units = match *scan.components.as_slice() {
        [c] => {
            let (w, h) = geom.coded_blocks(c);
            w * h
        }
        _ => geom.mcus_x * geom.mcus_y,
    };
    let share = resume.unit as f64 / units.saturating_sub(resume.unit).max(1) as f64;
    let tables: Vec<(u8, u8, HuffSpec)> = record
        .tables
        .iter()
        .map(|(class, id, spec)| {
            let coded = &counter.freq[table_index(usize::from(*class), usize::from(*id))];
            let copied = coded.iter().map(|&f| f64::from(f)).sum::<f64>() * share;
            let mut freq = *coded;
            for (len, symbols) in code_lengths(spec) {
                for &s in symbols {
                    let estimate = (copied / (1u64 << len) as f64).round().max(1.0) as u32;
                    freq[usize::from(s)] = freq[usize::from(s)].saturating_add(estimate);
                }
            }
            (*class, *id, optimal_table(&freq))
        })
        .collect();
    write_dht_sos(out, &tables, sos)?;
    let mut coder = Coder::new(BitWriter::new(std::mem::take(out)), triples(&tables));
    let result = run_scan(geom, planes, scan, kind, &by_table, &mut coder, 0, [0; 4]);
    *out = coder.writer.finish();
    if let Err(e) = result {
        out.truncate(rollback);
        return Err(e.into());
    }
    if !coder.missing.is_empty() {
        out.truncate(rollback);
        return Ok(Written::No);
    }
    Ok(Written::Recoded)
}

/// Appends one DHT segment with `tables` as `(class, id, table)`; nothing when there are none.
/// Refuses, as [`HuffSpec::write_dht`] does, a table libjpeg-turbo would not read.
pub(crate) fn write_dht<'a>(
    out: &mut Vec<u8>,
    tables: impl IntoIterator<Item = (u8, u8, &'a HuffSpec)>,
) -> Result<(), WatermarkError> {
    let mut payload = Vec::new();
    for (class, id, spec) in tables {
        spec.write_dht(class, id, &mut payload)?;
    }
    if !payload.is_empty() {
        out.extend_from_slice(&[0xFF, DHT]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
    }
    Ok(())
}

/// `tables` as `(class, id, table)` triples, as [`write_dht`] and [`Coder::new`] take them.
fn triples(tables: &[(u8, u8, HuffSpec)]) -> impl Iterator<Item = (u8, u8, &HuffSpec)> {
    tables.iter().map(|(class, id, spec)| (*class, *id, spec))
}

/// A DHT with `tables` (none when empty), then the SOS segment with payload `sos`.
fn write_dht_sos(
    out: &mut Vec<u8>,
    tables: &[(u8, u8, HuffSpec)],
    sos: &[u8],
) -> Result<(), WatermarkError> {
    write_dht(out, triples(tables))?;
    out.extend_from_slice(&[0xFF, SOS]);
    out.extend_from_slice(&((sos.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(sos);
    Ok(())
}

/// Each code length (1..=16) with its symbols, in table order.
fn code_lengths(spec: &HuffSpec) -> impl Iterator<Item = (usize, &[u8])> {
    let mut next = 0;
    spec.counts.iter().enumerate().map(move |(i, &count)| {
        let symbols = &spec.symbols[next..next + usize::from(count)];
        next += usize::from(count);
        (i + 1, symbols)
    })
}

/// `spec` with `new` symbols added after its longest codes, at the shortest lengths that
/// keep the table valid for libjpeg (the all-ones code of each length unused): every code
/// it had stays the same (canonical codes of a length depend only on the shorter ones).
/// `None` when there is not room for them all.
fn extended(spec: &HuffSpec, class: u8, new: &[u8]) -> Option<HuffSpec> {
    let longest = spec
        .counts
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0, |i| i + 1);
    let mut out = spec.clone();
    let mut rest = new.iter();
    let mut symbol = rest.next();
    for len in longest + 1..=16 {
        while let Some(&s) = symbol {
            out.counts[len - 1] += 1;
            out.symbols.push(s);
            if out.check(class).is_err() {
                out.counts[len - 1] -= 1;
                out.symbols.pop();
                break;
            }
            symbol = rest.next();
        }
    }
    symbol.is_none().then_some(out)
}

/// One interleaved sequential scan when the MCU has ≤ 10 blocks (and the frame ≤ 4
/// components), else one scan per component.
pub(crate) fn default_script(geom: &FrameGeometry) -> Vec<ScanSpec> {
    let all: Vec<usize> = (0..geom.components.len()).collect();
    if interleavable(geom, &all) {
        vec![ScanSpec::sequential(all)]
    } else {
        all.into_iter()
            .map(|c| ScanSpec::sequential(vec![c]))
            .collect()
    }
}

/// libjpeg's `jpeg_simple_progression` script for this frame: its custom script for three
/// components (taken as YCbCr, as libjpeg does without other markers), the all-purpose one
/// otherwise. Where libjpeg would interleave a DC scan whose MCU has more than 10 blocks
/// (which it then refuses), the DC scans are per component.
pub(crate) fn progressive_script(geom: &FrameGeometry) -> Vec<ScanSpec> {
    let n = geom.components.len();
    let scan = |c: usize, ss: u8, se: u8, ah: u8, al: u8| ScanSpec {
        components: vec![c],
        ss,
        se,
        ah,
        al,
    };
    let dc_scans = |ah: u8, al: u8| -> Vec<ScanSpec> {
        let all: Vec<usize> = (0..n).collect();
        if interleavable(geom, &all) {
            vec![ScanSpec {
                components: all,
                ss: 0,
                se: 0,
                ah,
                al,
            }]
        } else {
            (0..n).map(|c| scan(c, 0, 0, ah, al)).collect()
        }
    };
    let mut script = dc_scans(0, 1);
    if n == 3 {
        script.extend([
            scan(0, 1, 5, 0, 2),
            scan(2, 1, 63, 0, 1),
            scan(1, 1, 63, 0, 1),
            scan(0, 6, 63, 0, 2),
            scan(0, 1, 63, 2, 1),
        ]);
        script.extend(dc_scans(1, 0));
        script.extend([
            scan(2, 1, 63, 1, 0),
            scan(1, 1, 63, 1, 0),
            scan(0, 1, 63, 1, 0),
        ]);
    } else {
        script.extend((0..n).map(|c| scan(c, 1, 5, 0, 2)));
        script.extend((0..n).map(|c| scan(c, 6, 63, 0, 2)));
        script.extend((0..n).map(|c| scan(c, 1, 63, 2, 1)));
        script.extend(dc_scans(1, 0));
        script.extend((0..n).map(|c| scan(c, 1, 63, 1, 0)));
    }
    script
}

/// Appends the SOF segment for the output: SOF2 when `progressive`, else SOF0 when `baseline`
/// (every quantisation table 8-bit: the caller knows), else SOF1 (extended sequential); 8-bit
/// samples, the frame's size and components with their sampling and quantisation selectors.
/// The size comes from a parsed SOF (or DNL), so it fits its 16-bit fields.
pub(crate) fn write_sof(
    out: &mut Vec<u8>,
    geom: &FrameGeometry,
    progressive: bool,
    baseline: bool,
) {
    let marker = match (progressive, baseline) {
        (true, _) => SOF2,
        (false, true) => SOF0,
        (false, false) => SOF1,
    };
    let n = geom.components.len();
    let length = 8 + 3 * n;
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.push(8);
    out.extend_from_slice(&(geom.height.min(0xFFFF) as u16).to_be_bytes());
    out.extend_from_slice(&(geom.width.min(0xFFFF) as u16).to_be_bytes());
    out.push(n as u8);
    for c in &geom.components {
        out.extend_from_slice(&[c.id, (c.h as u8) << 4 | c.v as u8, c.tq as u8]);
    }
}

/// True when `components` may share one scan: at most 4, and at most 10 blocks an MCU.
fn interleavable(geom: &FrameGeometry, components: &[usize]) -> bool {
    components.len() == 1
        || components.len() <= MAX_COMPS_IN_SCAN
            && components
                .iter()
                .map(|&c| geom.components[c].h * geom.components[c].v)
                .sum::<usize>()
                <= MAX_BLOCKS_IN_MCU
}

/// The planes must be the frame's padded grids, or the scans would index outside them.
fn check_planes(geom: &FrameGeometry, planes: &[Plane]) -> Result<(), WatermarkError> {
    if planes.len() != geom.components.len() {
        return Err(corrupt("planes do not match the frame's components".into()));
    }
    for (c, plane) in planes.iter().enumerate() {
        let (w, h) = geom.padded_blocks(c);
        let (cw, ch) = geom.coded_blocks(c);
        if (plane.width_blocks, plane.height_blocks) != (w, h)
            || plane.blocks.len() != w * h
            || cw > w
            || ch > h
        {
            return Err(corrupt(format!(
                "plane {c} does not match the frame's grid"
            )));
        }
    }
    Ok(())
}

/// Per component, the point transform of the last scan of each coefficient (zigzag order) in
/// `script`: the bits below it are never sent. 0 for a coefficient no scan sends.
pub(crate) fn final_point_transforms(components: usize, script: &[ScanSpec]) -> Vec<[u8; 64]> {
    let mut al = vec![[u8::MAX; 64]; components];
    for scan in script {
        for &c in &scan.components {
            for a in &mut al[c][usize::from(scan.ss)..=usize::from(scan.se)] {
                *a = (*a).min(scan.al);
            }
        }
    }
    for a in al.iter_mut().flatten() {
        if *a == u8::MAX {
            *a = 0;
        }
    }
    al
}

/// Refuses a script libjpeg's encoder would refuse (jcmaster.c `validate_script`, which
/// covers T.81 G.1.1.1 and what libjpeg's decoder warns about, and so `djpeg -strict` fails
/// on): components in frame order, ≤ 4 a scan and ≤ 10 blocks an MCU; sequential scans all
/// `0..=63` with each component once; progressive DC before AC, AC scans of one component,
/// refinements one bit at a time from where the previous scan of each coefficient stopped;
/// every component's DC sent.
pub(crate) fn check_script(
    geom: &FrameGeometry,
    script: &[ScanSpec],
) -> Result<(), WatermarkError> {
    let first = script
        .first()
        .ok_or_else(|| corrupt("empty scan script".into()))?;
    let progressive = first.ss != 0 || first.se != 63;
    let n = geom.components.len();
    let mut sent = vec![false; n];
    // Per component and coefficient: the last scan's Al, -1 before any scan.
    let mut last_al = vec![[-1i16; 64]; n];
    for (i, scan) in script.iter().enumerate() {
        let bad = |what: &str| corrupt(format!("scan script, scan {}: {what}", i + 1));
        let comps = &scan.components;
        if comps.is_empty() || comps.len() > MAX_COMPS_IN_SCAN {
            return Err(bad("component count"));
        }
        if comps.iter().any(|&c| c >= n) || comps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("components not in frame order"));
        }
        if !interleavable(geom, comps) {
            return Err(bad("more than 10 blocks in an MCU"));
        }
        let (ss, se, ah, al) = (scan.ss, scan.se, scan.ah, scan.al);
        if !progressive {
            if (ss, se, ah, al) != (0, 63, 0, 0) {
                return Err(bad("a sequential frame's scans code all of every block"));
            }
            for &c in comps {
                if std::mem::replace(&mut sent[c], true) {
                    return Err(bad("component sent twice"));
                }
            }
            continue;
        }
        if se < ss || se > 63 || ah > MAX_AH_AL || al > MAX_AH_AL {
            return Err(bad(
                "spectral selection or successive approximation out of range",
            ));
        }
        if ss == 0 && se != 0 {
            return Err(bad("DC and AC in one progressive scan"));
        }
        if ss != 0 && comps.len() != 1 {
            return Err(bad("AC scan of more than one component"));
        }
        for &c in comps {
            let bits = &mut last_al[c];
            if ss != 0 && bits[0] < 0 {
                return Err(bad("AC before the component's DC"));
            }
            for bit in &mut bits[usize::from(ss)..=usize::from(se)] {
                let ok = if *bit < 0 {
                    ah == 0
                } else {
                    i16::from(ah) == *bit && al + 1 == ah
                };
                if !ok {
                    return Err(bad("successive approximation out of order"));
                }
                *bit = i16::from(al);
            }
        }
    }
    let complete = if progressive {
        last_al.iter().all(|bits| bits[0] >= 0)
    } else {
        sent.iter().all(|&s| s)
    };
    if !complete {
        return Err(corrupt("scan script leaves a component out".into()));
    }
    Ok(())
}

/// What a scan codes, which fixes how its blocks are coded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

impl Kind {
    fn of(scan: &ScanSpec) -> Self {
        match (scan.ss, scan.se, scan.ah) {
            (0, 63, 0) if scan.al == 0 => Kind::Sequential,
            (0, _, 0) => Kind::DcFirst,
            (0, _, _) => Kind::DcRefine,
            (_, _, 0) => Kind::AcFirst,
            _ => Kind::AcRefine,
        }
    }
}

/// Table index of the counting and coding sinks: `class * 4 + id`, class 0 = DC, 1 = AC.
fn table_index(class: usize, id: usize) -> usize {
    class * TABLES + id
}

fn write_scan(
    out: &mut Vec<u8>,
    geom: &FrameGeometry,
    planes: &[Plane],
    scan: &ScanSpec,
) -> Result<(), WatermarkError> {
    let kind = Kind::of(scan);
    let slots = scan.components.len();
    // Pass 1: symbol counts per scan slot (table index = class * 4 + slot).
    let mut selectors = vec![(0usize, 0usize); slots];
    let mut tables: [Vec<HuffSpec>; 2] = [Vec::new(), Vec::new()];
    if kind != Kind::DcRefine {
        let mut counter = Counter {
            freq: Box::new([[0; 256]; 2 * TABLES]),
        };
        let by_slot: Vec<(usize, usize)> = (0..slots)
            .map(|s| (table_index(0, s), table_index(1, s)))
            .collect();
        run_scan(geom, planes, scan, kind, &by_slot, &mut counter, 0, [0; 4])?;
        let max_tables = if kind == Kind::Sequential {
            BASELINE_TABLES
        } else {
            TABLES
        };
        let uses_dc = matches!(kind, Kind::Sequential | Kind::DcFirst);
        let uses_ac = matches!(kind, Kind::Sequential | Kind::AcFirst | Kind::AcRefine);
        for (class, used) in [(0, uses_dc), (1, uses_ac)] {
            if !used {
                continue;
            }
            let freqs: Vec<&[u32; 256]> = (0..slots)
                .map(|s| &counter.freq[table_index(class, s)])
                .collect();
            let (ids, specs) = choose_tables(&freqs, max_tables);
            for (slot, id) in ids.into_iter().enumerate() {
                if class == 0 {
                    selectors[slot].0 = id;
                } else {
                    selectors[slot].1 = id;
                }
            }
            tables[class] = specs;
        }
    }
    // DHT with exactly the tables this scan uses.
    let numbered = || {
        tables.iter().enumerate().flat_map(|(class, specs)| {
            specs
                .iter()
                .enumerate()
                .map(move |(id, spec)| (class as u8, id as u8, spec))
        })
    };
    write_dht(out, numbered())?;
    // SOS.
    out.extend_from_slice(&[0xFF, SOS]);
    out.extend_from_slice(&((6 + 2 * slots) as u16).to_be_bytes());
    out.push(slots as u8);
    for (slot, &c) in scan.components.iter().enumerate() {
        let (dc, ac) = selectors[slot];
        out.push(geom.components[c].id);
        out.push((dc as u8) << 4 | ac as u8);
    }
    out.extend_from_slice(&[scan.ss, scan.se, scan.ah << 4 | scan.al]);
    // Pass 2: the entropy-coded data.
    let mut coder = Coder::new(BitWriter::new(std::mem::take(out)), numbered());
    let by_table: Vec<(usize, usize)> = selectors
        .iter()
        .map(|&(dc, ac)| (table_index(0, dc), table_index(1, ac)))
        .collect();
    let result = run_scan(geom, planes, scan, kind, &by_table, &mut coder, 0, [0; 4]);
    *out = coder.writer.finish();
    result.map_err(WatermarkError::from)
}

/// Groups the scan's slots into at most `max_tables` tables of one class, the grouping that
/// makes the scan smallest (coded bits plus the tables' DHT bytes); libjpeg's (luma alone,
/// the chroma components sharing) is one of those tried. Returns each slot's table id and
/// the tables.
fn choose_tables(freqs: &[&[u32; 256]], max_tables: usize) -> (Vec<usize>, Vec<HuffSpec>) {
    let n = freqs.len();
    // Bits and table of each subset of slots (bit mask), built on first use.
    let mut memo: Vec<Option<(u64, HuffSpec)>> = vec![None; 1 << n];
    let mut subset = |mask: usize| -> u64 {
        if let Some((cost, _)) = &memo[mask] {
            return *cost;
        }
        let mut freq = [0u32; 256];
        for (s, f) in freqs.iter().enumerate() {
            if mask & 1 << s != 0 {
                for (a, &b) in freq.iter_mut().zip(f.iter()) {
                    *a = a.saturating_add(b);
                }
            }
        }
        let spec = optimal_table(&freq);
        let mut bits = 8 * (17 + spec.symbols.len() as u64);
        let mut next = 0;
        for (len, &count) in spec.counts.iter().enumerate() {
            for &symbol in &spec.symbols[next..next + usize::from(count)] {
                bits += (len as u64 + 1) * u64::from(freq[usize::from(symbol)]);
            }
            next += usize::from(count);
        }
        memo[mask] = Some((bits, spec));
        bits
    };
    // Every assignment of slots to table ids in canonical form (slot 0 in table 0, each later
    // slot in a table already used or the next new one): every partition once.
    let mut best: Option<(u64, Vec<usize>)> = None;
    let combos = max_tables.pow(n as u32);
    for code in 0..combos {
        let ids: Vec<usize> = (0..n)
            .map(|s| code / max_tables.pow(s as u32) % max_tables)
            .collect();
        let canonical = ids
            .iter()
            .enumerate()
            .all(|(s, &id)| id <= ids[..s].iter().map(|&i| i + 1).max().unwrap_or(0));
        if !canonical {
            continue;
        }
        let groups = ids.iter().max().map_or(0, |&m| m + 1);
        let cost: u64 = (0..groups)
            .map(|g| {
                let mask = ids
                    .iter()
                    .enumerate()
                    .filter(|&(_, &id)| id == g)
                    .fold(0, |m, (s, _)| m | 1 << s);
                subset(mask)
            })
            .sum();
        if best.as_ref().is_none_or(|(b, _)| cost < *b) {
            best = Some((cost, ids));
        }
    }
    let ids = best.map_or_else(|| vec![0; n], |(_, ids)| ids);
    let groups = ids.iter().max().map_or(0, |&m| m + 1);
    let specs = (0..groups)
        .map(|g| {
            let mask = ids
                .iter()
                .enumerate()
                .filter(|&(_, &id)| id == g)
                .fold(0, |m, (s, _)| m | 1 << s);
            memo[mask]
                .take()
                .map(|(_, spec)| spec)
                .unwrap_or_else(|| optimal_table(&[0; 256]))
        })
        .collect();
    (ids, specs)
}

/// Each symbol's code as `code << 8 | length` (Annex C), 0 for a symbol without one.
fn canonical_codes(spec: &HuffSpec) -> [u32; 256] {
    let mut codes = [0u32; 256];
    let mut code = 0u32;
    let mut next = 0;
    for (i, &count) in spec.counts.iter().enumerate() {
        for &symbol in spec.symbols.iter().skip(next).take(usize::from(count)) {
            codes[usize::from(symbol)] = code << 8 | (i as u32 + 1);
            code += 1;
        }
        next += usize::from(count);
        code <<= 1;
    }
    codes
}

/// Where a scan's symbols and bits go: a counter (pass 1) or the bit writer (pass 2). Both
/// passes run the same coding functions, so their EOB runs and buffers agree.
trait Sink {
    fn symbol(&mut self, table: usize, symbol: u8);
    /// The low `len` bits of `bits` (`len` ≤ 16).
    fn bits(&mut self, bits: u32, len: u32);
    /// Buffered correction bits of AC refinement, one a byte.
    fn correction_bits(&mut self, bits: &[u8]);
}

struct Counter {
    freq: Box<[[u32; 256]; 2 * TABLES]>,
}

impl Sink for Counter {
    #[inline]
    fn symbol(&mut self, table: usize, symbol: u8) {
        let f = &mut self.freq[table][usize::from(symbol)];
        *f = f.saturating_add(1);
    }

    #[inline]
    fn bits(&mut self, _: u32, _: u32) {}

    #[inline]
    fn correction_bits(&mut self, _: &[u8]) {}
}

struct Coder {
    codes: Box<[[u32; 256]; 2 * TABLES]>,
    writer: BitWriter,
    /// `(table, symbol)` of each symbol that had no code (only with the file's tables: with
    /// our own, pass 1 counted every symbol pass 2 codes). What is written is then void.
    missing: Vec<(usize, u8)>,
}

impl Coder {
    /// A coder with `tables` as `(class, id, table)`.
    fn new<'a>(
        writer: BitWriter,
        tables: impl IntoIterator<Item = (u8, u8, &'a HuffSpec)>,
    ) -> Self {
        let mut coder = Self {
            codes: Box::new([[0; 256]; 2 * TABLES]),
            writer,
            missing: Vec::new(),
        };
        for (class, id, spec) in tables {
            coder.codes[table_index(usize::from(class), usize::from(id))] = canonical_codes(spec);
        }
        coder
    }
}

impl Sink for Coder {
    #[inline]
    fn symbol(&mut self, table: usize, symbol: u8) {
        let entry = self.codes[table][usize::from(symbol)];
        if entry & 0xFF == 0 {
            if !self.missing.contains(&(table, symbol)) {
                self.missing.push((table, symbol));
            }
            return;
        }
        self.writer.put(entry >> 8, entry & 0xFF);
    }

    #[inline]
    fn bits(&mut self, bits: u32, len: u32) {
        self.writer.put(bits & ((1 << len) - 1), len);
    }

    fn correction_bits(&mut self, bits: &[u8]) {
        // Sixteen bits a call.
        for chunk in bits.chunks(16) {
            let word = chunk.iter().fold(0u32, |w, &b| w << 1 | u32::from(b));
            self.writer.put(word, chunk.len() as u32);
        }
    }
}

/// Runs the blocks of one scan, in scan order, through the coding function of its kind, from
/// unit `from` (block of a one-component scan, MCU of an interleaved one) with the DC
/// predictions `pred` there and no EOB run pending. `tables[slot]` is the slot's (DC, AC)
/// table index in `sink`.
#[allow(clippy::too_many_arguments)]
fn run_scan<S: Sink>(
    geom: &FrameGeometry,
    planes: &[Plane],
    scan: &ScanSpec,
    kind: Kind,
    tables: &[(usize, usize)],
    sink: &mut S,
    from: usize,
    pred: [i32; MAX_COMPS_IN_SCAN],
) -> Result<(), ScanError> {
    let comps = &scan.components;
    let (ss, se, al) = (
        usize::from(scan.ss),
        usize::from(scan.se),
        u32::from(scan.al),
    );
    match kind {
        Kind::Sequential => {
            let mut pred = pred;
            for_each_block(geom, planes, comps, from, |slot, b| {
                let (dc, ac) = tables[slot];
                sequential_block(sink, b, &mut pred[slot], dc, ac)
            })
        }
        Kind::DcFirst => {
            let mut pred = pred;
            for_each_block(geom, planes, comps, from, |slot, b| {
                let v = i32::from(b[0]) >> al;
                let (size, bits) = category(v - pred[slot])?;
                pred[slot] = v;
                sink.symbol(tables[slot].0, size as u8);
                if size > 0 {
                    sink.bits(bits, size);
                }
                Ok(())
            })
        }
        Kind::DcRefine => for_each_block(geom, planes, comps, from, |_, b| {
            sink.bits((i32::from(b[0]) >> al) as u32 & 1, 1);
            Ok(())
        }),
        Kind::AcFirst => {
            let table = tables[0].1;
            let mut run = EobRun::new();
            for_each_block(geom, planes, comps, from, |_, b| {
                ac_first_block(sink, &mut run, b, ss, se, al, table)
            })?;
            run.flush(sink, table);
            Ok(())
        }
        Kind::AcRefine => {
            let table = tables[0].1;
            let mut run = EobRun::new();
            for_each_block(geom, planes, comps, from, |_, b| {
                ac_refine_block(sink, &mut run, b, ss, se, al, table)
            })?;
            run.flush(sink, table);
            Ok(())
        }
    }
}

/// Calls `f(slot, block)` for the scan's blocks in order, from unit `from`. One component:
/// its coded blocks, row by row. Several: MCU by MCU over the padded grid, where blocks
/// outside the coded ones are jpegtran's dummy blocks (jctrans.c `compress_output`): DC of
/// the block before in the MCU, AC zero. The first block of each component in an MCU is
/// always a coded one.
#[inline]
fn for_each_block<F>(
    geom: &FrameGeometry,
    planes: &[Plane],
    comps: &[usize],
    from: usize,
    mut f: F,
) -> Result<(), ScanError>
where
    F: FnMut(usize, &Block) -> Result<(), ScanError>,
{
    if let [c] = *comps {
        let plane = &planes[c];
        let (w, h) = geom.coded_blocks(c);
        let (row0, col0) = (from / w.max(1), from % w.max(1));
        for (r, row) in plane
            .blocks
            .chunks_exact(plane.width_blocks)
            .enumerate()
            .take(h)
            .skip(row0)
        {
            let first = if r == row0 { col0 } else { 0 };
            for b in &row[first..w] {
                f(0, b)?;
            }
        }
        return Ok(());
    }
    let coded: Vec<(usize, usize)> = comps.iter().map(|&c| geom.coded_blocks(c)).collect();
    let mut dummy: Block = [0; 64];
    for my in from / geom.mcus_x.max(1)..geom.mcus_y {
        let first = if my == from / geom.mcus_x.max(1) {
            from % geom.mcus_x.max(1)
        } else {
            0
        };
        for mx in first..geom.mcus_x {
            for (slot, &c) in comps.iter().enumerate() {
                let fc = &geom.components[c];
                let plane = &planes[c];
                let (cw, ch) = coded[slot];
                let mut prev_dc = 0;
                for by in my * fc.v..(my + 1) * fc.v {
                    for bx in mx * fc.h..(mx + 1) * fc.h {
                        if bx < cw && by < ch {
                            let b = plane.block(bx, by);
                            prev_dc = b[0];
                            f(slot, b)?;
                        } else {
                            dummy[0] = prev_dc;
                            f(slot, &dummy)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Magnitude category of a value and its extra bits (F.1.2.1: the value if positive, its
/// one's complement if negative), refusing what a 4-bit category cannot name.
#[inline]
fn category(v: i32) -> Result<(u32, u32), ScanError> {
    let size = 32 - v.unsigned_abs().leading_zeros();
    if size > MAX_CATEGORY {
        return Err(TOO_LARGE);
    }
    let bits = if v < 0 { v - 1 } else { v } as u32 & ((1 << size) - 1);
    Ok((size, bits))
}

/// One block of a sequential scan (F.1.2, jchuff.c `encode_one_block`).
#[inline]
fn sequential_block<S: Sink>(
    sink: &mut S,
    b: &Block,
    pred: &mut i32,
    dc_table: usize,
    ac_table: usize,
) -> Result<(), ScanError> {
    let dc = i32::from(b[0]);
    let (size, bits) = category(dc - *pred)?;
    *pred = dc;
    sink.symbol(dc_table, size as u8);
    if size > 0 {
        sink.bits(bits, size);
    }
    let mut mask = nonzero_mask(b, 0) & !1;
    let mut next = 1;
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let mut run = k - next;
        while run > 15 {
            sink.symbol(ac_table, 0xF0);
            run -= 16;
        }
        let (size, bits) = category(i32::from(b[k]))?;
        sink.symbol(ac_table, (run << 4) as u8 | size as u8);
        sink.bits(bits, size);
        next = k + 1;
    }
    if next < 64 {
        sink.symbol(ac_table, 0x00);
    }
    Ok(())
}

/// The EOB run of a progressive AC scan and, for refinement, the correction bits that wait
/// for it (jcphuff.c `EOBRUN`, `BE`, `bit_buffer`).
struct EobRun {
    run: u32,
    /// Correction bits buffered, in `buffer[..pending]`, ahead of the block being coded.
    pending: usize,
    buffer: [u8; MAX_CORR_BITS],
}

impl EobRun {
    fn new() -> Self {
        Self {
            run: 0,
            pending: 0,
            buffer: [0; MAX_CORR_BITS],
        }
    }

    /// Codes the pending run (EOBn symbol and its extra bits), then its correction bits
    /// (jcphuff.c `emit_eobrun`).
    #[inline]
    fn flush<S: Sink>(&mut self, sink: &mut S, table: usize) {
        if self.run == 0 {
            return;
        }
        // run < 2^15, so nbits <= 14.
        let nbits = 31 - self.run.leading_zeros();
        sink.symbol(table, (nbits << 4) as u8);
        if nbits > 0 {
            sink.bits(self.run, nbits);
        }
        self.run = 0;
        sink.correction_bits(&self.buffer[..self.pending]);
        self.pending = 0;
    }
}

/// One block of a first AC scan (G.1.2.2, jcphuff.c `encode_mcu_AC_first`).
#[inline]
fn ac_first_block<S: Sink>(
    sink: &mut S,
    eob: &mut EobRun,
    b: &Block,
    ss: usize,
    se: usize,
    al: u32,
    table: usize,
) -> Result<(), ScanError> {
    // A narrow band is cheaper alone; a wide one in one pass over the block, which
    // compilers vectorise.
    let mut mask = if se - ss < 16 {
        (ss..=se).fold(0u64, |m, k| {
            m | u64::from(b[k].unsigned_abs() >> al != 0) << k
        })
    } else {
        nonzero_mask(b, al) & band_mask(ss, se)
    };
    if mask != 0 {
        eob.flush(sink, table);
    }
    let mut next = ss;
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let mut run = k - next;
        while run > 15 {
            sink.symbol(table, 0xF0);
            run -= 16;
        }
        // The point transform of an AC coefficient divides its magnitude, rounding to zero.
        let v = i32::from(b[k]);
        let magnitude = (v.unsigned_abs() >> al) as i32;
        let (size, bits) = category(if v < 0 { -magnitude } else { magnitude })?;
        sink.symbol(table, (run << 4) as u8 | size as u8);
        sink.bits(bits, size);
        next = k + 1;
    }
    if next <= se {
        eob.run += 1;
        if eob.run == MAX_EOBRUN {
            eob.flush(sink, table);
        }
    }
    Ok(())
}

/// One block of an AC refinement scan (G.1.2.3, jcphuff.c `encode_mcu_AC_refine`): newly
/// non-zero coefficients (magnitude 1 at this bit) are coded with their zero runs, older ones
/// get a correction bit buffered until the next symbol, runs of zeros past the last newly
/// non-zero coefficient fold into the EOB run.
#[inline]
fn ac_refine_block<S: Sink>(
    sink: &mut S,
    eob: &mut EobRun,
    b: &Block,
    ss: usize,
    se: usize,
    al: u32,
    table: usize,
) -> Result<(), ScanError> {
    let band = band_mask(ss, se);
    debug_assert!(al <= u32::from(MAX_AH_AL));
    // |v| >> al == 1: 2^al <= |v| < 2^(al + 1).
    let (t, t2) = (1i16 << al, 2i16 << al);
    let mut flags = [0u8; 64];
    for (f, &v) in flags.iter_mut().zip(b) {
        *f = u8::from(((v >= t) & (v < t2)) | ((v <= -t) & (v > -t2)));
    }
    let ones = mask_of_flags(&flags) & band;
    let mut mask = nonzero_mask(b, al) & band;
    // Position of the last newly non-zero coefficient (ss when none: no ZRL is then needed).
    let last_new = if ones == 0 {
        ss
    } else {
        63 - ones.leading_zeros() as usize
    };
    // This block's correction bits are buffered at `start..start + count`, after those of
    // the blocks in the pending EOB run.
    let mut start = eob.pending;
    let mut count = 0;
    let mut run = 0;
    let mut next = ss;
    while mask != 0 {
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        run += k - next;
        next = k + 1;
        // ZRLs, except where the zeros can fold into the EOB that ends the block.
        while run > 15 && k <= last_new {
            eob.flush(sink, table);
            sink.symbol(table, 0xF0);
            run -= 16;
            sink.correction_bits(&eob.buffer[start..start + count]);
            start = 0;
            count = 0;
        }
        let a = b[k].unsigned_abs() >> al;
        if a > 1 {
            // Non-zero before this scan: only its next bit, later.
            eob.buffer[start + count] = (a & 1) as u8;
            count += 1;
            continue;
        }
        eob.flush(sink, table);
        sink.symbol(table, (run << 4) as u8 | 1);
        sink.bits(u32::from(b[k] > 0), 1);
        sink.correction_bits(&eob.buffer[start..start + count]);
        start = 0;
        count = 0;
        run = 0;
    }
    if run > 0 || next <= se || count > 0 {
        eob.run += 1;
        eob.pending = start + count;
        // Force the run out before its counter or the buffer (≤ 63 bits a block) overflows.
        if eob.run == MAX_EOBRUN || eob.pending > MAX_CORR_BITS - 63 {
            eob.flush(sink, table);
        }
    }
    Ok(())
}

#[cfg(test)]
mod extend_tests {
    use super::*;

    #[test]
    fn symbols_added_where_a_table_has_room_leave_every_code_as_it_was() {
        // libjpeg's optimal tables: longest code 11 bits, so five more lengths have room.
        let mut freq = [0u32; 256];
        for (i, s) in [
            0x00, 0x01, 0x02, 0x11, 0x12, 0x21, 0x31, 0x03, 0xF0, 0x41, 0x51,
        ]
        .into_iter()
        .enumerate()
        {
            freq[s] = 1 << (11 - i);
        }
        let spec = optimal_table(&freq);
        let longest = spec.counts.iter().rposition(|&c| c > 0).unwrap() + 1;
        let room = 16 - longest;
        assert!(room >= 2, "{spec:?}");
        let new: Vec<u8> = (0..room as u8).map(|i| 0x90 + i).collect();
        let more = extended(&spec, 1, &new).expect("room for one a length");
        more.check(1).unwrap();
        let (old_codes, new_codes) = (canonical_codes(&spec), canonical_codes(&more));
        for s in 0..256 {
            if old_codes[s] != 0 {
                assert_eq!(new_codes[s], old_codes[s], "symbol {s:#x} moved");
            }
        }
        assert!(new.iter().all(|&s| new_codes[usize::from(s)] != 0));
        // One more than there is room for: refused, not a table libjpeg would reject.
        let too_many: Vec<u8> = (0..=room as u8).map(|i| 0x90 + i).collect();
        assert_eq!(extended(&spec, 1, &too_many), None);
        // A DC table cannot take a symbol above 15.
        let mut dc = [0u32; 256];
        for (s, f) in dc.iter_mut().take(6).enumerate() {
            *f = 100 >> s;
        }
        let dc = optimal_table(&dc);
        assert_eq!(extended(&dc, 0, &[0x10]), None);
        extended(&dc, 0, &[7]).unwrap().check(0).unwrap();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Real files in, real decoders out: inputs made by libjpeg-turbo's `cjpeg` (Debian
    //! libjpeg-turbo-progs), their coefficients read by our baseline decoder, written back in
    //! every kind of script, then checked by `djpeg -strict` (same pixels as the input) and
    //! by `jpegtran` (back to baseline, same coefficients).

    use super::super::coef::{new_planes, FrameComponent};
    use super::super::jpeg::decode_coefficients;
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn tools_present() -> bool {
        let ok = ["cjpeg", "djpeg", "jpegtran"].iter().all(|t| {
            Command::new(t)
                .arg("-version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !ok {
            eprintln!(
                "\n*** SKIPPED: cjpeg/djpeg/jpegtran missing: apt-get install libjpeg-turbo-progs ***\n"
            );
        }
        ok
    }

    fn scratch(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("jpeg_write_{}_{n}_{name}", std::process::id()))
    }

    /// Runs `tool args... input` and returns its stdout; `None` when it fails.
    fn run(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
        let path = scratch("in");
        std::fs::write(&path, input).unwrap();
        let out = Command::new(tool).args(args).arg(&path).output().unwrap();
        std::fs::remove_file(&path).unwrap();
        if !out.status.success() {
            eprintln!("{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(out.stdout)
    }

    /// A PPM of gradients, grain and hard edges.
    fn ppm(w: usize, h: usize) -> Vec<u8> {
        let mut rgb = super::super::tests::photo(w, h, (w * 31 + h) as u64);
        for y in 0..h {
            for x in 0..w {
                if (x / 13 + y / 7) % 5 == 0 && x % 29 < 9 {
                    let v = if (x + y) % 2 == 0 { 0 } else { 255 };
                    rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[v, 255 - v, v]);
                }
            }
        }
        let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
        out.extend_from_slice(&rgb);
        out
    }

    /// A baseline file's frame, everything before its SOF (SOI, APP0, DQT), and its planes.
    struct Parsed {
        head: Vec<u8>,
        geom: FrameGeometry,
        planes: Vec<Plane>,
    }

    fn parse(jpeg: &[u8]) -> Parsed {
        let mut i = 2;
        loop {
            assert_eq!(jpeg[i], 0xFF);
            let marker = jpeg[i + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if matches!(marker, 0xC0 | 0xC1) {
                let p = &jpeg[i + 4..i + 2 + len];
                let height = usize::from(u16::from_be_bytes([p[1], p[2]]));
                let width = usize::from(u16::from_be_bytes([p[3], p[4]]));
                let components = p[6..]
                    .chunks_exact(3)
                    .map(|c| FrameComponent {
                        id: c[0],
                        h: usize::from(c[1] >> 4),
                        v: usize::from(c[1] & 15),
                        tq: usize::from(c[2]),
                    })
                    .collect();
                let geom = FrameGeometry::new(width, height, components);
                let planes = planes_of(&geom, &decode_coefficients(jpeg).unwrap());
                return Parsed {
                    head: jpeg[..i].to_vec(),
                    geom,
                    planes,
                };
            }
            i += 2 + len;
        }
    }

    /// `decode_coefficients` gives blocks in MCU order: into planes.
    pub(crate) fn planes_of(geom: &FrameGeometry, blocks: &[Block]) -> Vec<Plane> {
        let mut planes = new_planes(geom);
        let mut it = blocks.iter();
        if geom.components.len() == 1 {
            for b in planes[0].blocks.iter_mut() {
                *b = *it.next().unwrap();
            }
        } else {
            for my in 0..geom.mcus_y {
                for mx in 0..geom.mcus_x {
                    for (c, fc) in geom.components.iter().enumerate() {
                        for v in 0..fc.v {
                            for h in 0..fc.h {
                                *planes[c].block_mut(mx * fc.h + h, my * fc.v + v) =
                                    *it.next().unwrap();
                            }
                        }
                    }
                }
            }
        }
        assert!(it.next().is_none());
        planes
    }

    fn file(p: &Parsed, script: &[ScanSpec]) -> Vec<u8> {
        let progressive = script[0].ss != 0 || script[0].se != 63;
        let mut out = p.head.clone();
        write_sof(&mut out, &p.geom, progressive, true);
        write_scans(&mut out, &p.geom, &p.planes, script, None).unwrap();
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    fn scan(components: Vec<usize>, ss: u8, se: u8, ah: u8, al: u8) -> ScanSpec {
        ScanSpec {
            components,
            ss,
            se,
            ah,
            al,
        }
    }

    /// The test scripts: default, libjpeg's progression, spectral selection only, one
    /// sequential scan a component, and successive approximation on DC and AC.
    fn scripts(geom: &FrameGeometry) -> Vec<(&'static str, Vec<ScanSpec>)> {
        let n = geom.components.len();
        let all: Vec<usize> = (0..n).collect();
        let mut spectral = vec![scan(all.clone(), 0, 0, 0, 0)];
        for c in 0..n {
            spectral.push(scan(vec![c], 1, 5, 0, 0));
            spectral.push(scan(vec![c], 6, 63, 0, 0));
        }
        let mut approx = vec![scan(all.clone(), 0, 0, 0, 2)];
        for c in (0..n).rev() {
            approx.push(scan(vec![c], 1, 63, 0, 2));
        }
        approx.push(scan(all.clone(), 0, 0, 2, 1));
        for c in 0..n {
            approx.push(scan(vec![c], 1, 9, 2, 1));
            approx.push(scan(vec![c], 10, 63, 2, 1));
        }
        approx.push(scan(all, 0, 0, 1, 0));
        for c in 0..n {
            approx.push(scan(vec![c], 1, 63, 1, 0));
        }
        vec![
            ("default", default_script(geom)),
            ("progressive", progressive_script(geom)),
            ("spectral", spectral),
            (
                "non-interleaved",
                (0..n).map(|c| ScanSpec::sequential(vec![c])).collect(),
            ),
            ("successive approximation", approx),
        ]
    }

    /// Every script, checked by djpeg (pixels) and jpegtran (coefficients).
    fn check_every_script(input: &[u8], what: &str) {
        let p = parse(input);
        let pixels = run("djpeg", &["-strict"], input).unwrap();
        for (name, script) in scripts(&p.geom) {
            let out = file(&p, &script);
            let decoded = run("djpeg", &["-strict"], &out)
                .unwrap_or_else(|| panic!("{what}, {name}: djpeg -strict refused it"));
            assert!(decoded == pixels, "{what}, {name}: pixels differ");
            let baseline = run("jpegtran", &["-copy", "none"], &out).unwrap();
            let back = planes_of(&p.geom, &decode_coefficients(&baseline).unwrap());
            assert!(back == p.planes, "{what}, {name}: coefficients differ");
        }
    }

    const SAMPLINGS: [(&str, &[&str]); 6] = [
        ("4:4:4", &["-sample", "1x1,1x1,1x1"]),
        ("4:2:2", &["-sample", "2x1,1x1,1x1"]),
        ("4:2:0", &["-sample", "2x2,1x1,1x1"]),
        ("4:4:0", &["-sample", "1x2,1x1,1x1"]),
        ("4:1:1", &["-sample", "4x1,1x1,1x1"]),
        ("gray", &["-grayscale"]),
    ];

    #[test]
    fn every_script_round_trips_through_libjpeg_at_every_sampling_and_size() {
        if !tools_present() {
            return;
        }
        for (w, h) in [(300, 200), (173, 97), (1, 1), (8, 8), (17, 33)] {
            let image = ppm(w, h);
            for (sampling, args) in SAMPLINGS {
                let mut args = args.to_vec();
                args.extend(["-quality", "85"]);
                let input = run("cjpeg", &args, &image).unwrap();
                check_every_script(&input, &format!("{w}x{h} {sampling}"));
            }
        }
    }

    fn astronaut_ppm() -> Vec<u8> {
        let photo = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/photos/astronaut.jpg"
        ))
        .unwrap();
        run("djpeg", &[], &photo).unwrap()
    }

    #[test]
    fn every_script_round_trips_the_astronaut_photo() {
        if !tools_present() {
            return;
        }
        let image = astronaut_ppm();
        for (sampling, args) in SAMPLINGS {
            let mut args = args.to_vec();
            args.extend(["-quality", "90"]);
            let input = run("cjpeg", &args, &image).unwrap();
            check_every_script(&input, &format!("astronaut {sampling}"));
        }
    }

    /// Our progressive output against `cjpeg -progressive`, our default against `cjpeg
    /// -optimize`, same coefficients and headers.
    #[test]
    fn output_is_as_small_as_libjpegs() {
        if !tools_present() {
            return;
        }
        for (name, image) in [("astronaut", astronaut_ppm()), ("synthetic", ppm(640, 480))] {
            for (sampling, args) in SAMPLINGS {
                let mut args = args.to_vec();
                args.extend(["-quality", "90"]);
                let baseline = run("cjpeg", &args, &image).unwrap();
                let p = parse(&baseline);
                let with = |extra: &str| {
                    let mut a = args.clone();
                    a.push(extra);
                    run("cjpeg", &a, &image).unwrap().len() as f64
                };
                let progressive = file(&p, &progressive_script(&p.geom)).len() as f64;
                let sequential = file(&p, &default_script(&p.geom)).len() as f64;
                let (lp, lo) = (with("-progressive"), with("-optimize"));
                println!(
                    "{name} {sampling}: progressive {progressive} / cjpeg -progressive {lp} = {:.4}; default {sequential} / cjpeg -optimize {lo} = {:.4}",
                    progressive / lp,
                    sequential / lo
                );
                assert!(progressive <= lp * 1.02, "{name} {sampling} progressive");
                assert!(sequential <= lo * 1.005, "{name} {sampling} sequential");
            }
        }
    }

    #[test]
    fn scripts_decoders_refuse_are_refused() {
        let geom = FrameGeometry::new(
            64,
            64,
            (0..3)
                .map(|i| FrameComponent {
                    id: i + 1,
                    h: if i == 0 { 2 } else { 1 },
                    v: if i == 0 { 2 } else { 1 },
                    tq: 0,
                })
                .collect(),
        );
        let planes = new_planes(&geom);
        let refused = |script: Vec<ScanSpec>| {
            let mut out = Vec::new();
            matches!(
                write_scans(&mut out, &geom, &planes, &script, None),
                Err(WatermarkError::Corrupt(_))
            )
        };
        assert!(refused(vec![]));
        // Out of frame order, a component twice, one missing.
        assert!(refused(vec![ScanSpec::sequential(vec![1, 0, 2])]));
        assert!(refused(vec![
            ScanSpec::sequential(vec![0, 1, 2]),
            ScanSpec::sequential(vec![2])
        ]));
        assert!(refused(vec![ScanSpec::sequential(vec![0, 1])]));
        // AC before DC; DC and AC together; AC of two components; a refinement skipping a
        // bit; a refinement of nothing; a second first scan.
        let dc = scan(vec![0, 1, 2], 0, 0, 0, 0);
        assert!(refused(vec![scan(vec![0], 1, 63, 0, 0), dc.clone()]));
        assert!(refused(vec![scan(vec![0, 1, 2], 0, 5, 0, 0)]));
        assert!(refused(vec![dc.clone(), scan(vec![0, 1], 1, 63, 0, 0)]));
        assert!(refused(vec![
            scan(vec![0, 1, 2], 0, 0, 0, 3),
            scan(vec![0, 1, 2], 0, 0, 3, 1)
        ]));
        assert!(refused(vec![dc.clone(), scan(vec![0], 1, 63, 1, 0)]));
        assert!(refused(vec![dc.clone(), dc.clone()]));
        assert!(refused(vec![scan(vec![0, 1, 2], 0, 0, 0, 11)]));
        // A sequential scan after a progressive one.
        assert!(refused(vec![dc.clone(), ScanSpec::sequential(vec![0])]));
        // And what libjpeg accepts is accepted, even without every bit sent.
        let mut out = Vec::new();
        write_scans(&mut out, &geom, &planes, &[dc], None).unwrap();
        write_scans(&mut out, &geom, &planes, &progressive_script(&geom), None).unwrap();
    }

    #[test]
    fn a_coefficient_past_15_bits_is_refused_not_miscoded() {
        let geom = FrameGeometry::new(
            8,
            8,
            vec![FrameComponent {
                id: 1,
                h: 1,
                v: 1,
                tq: 0,
            }],
        );
        let mut planes = new_planes(&geom);
        planes[0].blocks[0][5] = i16::MIN;
        let mut out = Vec::new();
        let err = write_scans(&mut out, &geom, &planes, &default_script(&geom), None);
        assert!(matches!(err, Err(WatermarkError::Corrupt(_))));
        planes[0].blocks[0][5] = -16384;
        write_scans(&mut out, &geom, &planes, &default_script(&geom), None).unwrap();
    }

    /// EOB runs past 0x7FFF and correction-bit buffers past 1000 bits force their flushes:
    /// a large sparse plane, refined.
    #[test]
    fn long_eob_runs_and_full_correction_buffers_decode_in_libjpeg() {
        if !tools_present() {
            return;
        }
        // 1600x1600 gray: 40,000 blocks, most of them empty (one long EOB run), some with
        // many old coefficients (correction bits) and no new ones.
        let geom = FrameGeometry::new(
            1600,
            1600,
            vec![FrameComponent {
                id: 1,
                h: 1,
                v: 1,
                tq: 0,
            }],
        );
        let mut planes = new_planes(&geom);
        for (i, b) in planes[0].blocks.iter_mut().enumerate() {
            b[0] = (i % 50) as i16 - 25;
            if i > 36_000 {
                for (k, v) in b.iter_mut().enumerate().skip(1) {
                    *v = if (k + i) % 3 == 0 { 6 } else { -2 };
                }
            }
        }
        let mut head = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
        head.extend([1u8; 64]);
        let p = Parsed { head, geom, planes };
        let reference = file(&p, &default_script(&p.geom));
        let pixels = run("djpeg", &["-strict"], &reference).unwrap();
        let script = vec![
            scan(vec![0], 0, 0, 0, 1),
            scan(vec![0], 1, 63, 0, 2),
            scan(vec![0], 0, 0, 1, 0),
            scan(vec![0], 1, 63, 2, 1),
            scan(vec![0], 1, 63, 1, 0),
        ];
        let out = file(&p, &script);
        assert!(run("djpeg", &["-strict"], &out).unwrap() == pixels);
        let back = run("jpegtran", &["-copy", "none"], &out).unwrap();
        assert!(planes_of(&p.geom, &decode_coefficients(&back).unwrap()) == p.planes);
    }

    /// Four components (CMYK, as Adobe writes it: APP14 with transform 0), made from a 4:4:4
    /// file's planes with luma again as K. `jpegtran` turns every script's output back into
    /// the same baseline bytes (it re-codes the coefficients it read, so equal bytes mean
    /// equal coefficients), and `djpeg -strict` reads each one as it reads the default one.
    #[test]
    fn cmyk_round_trips_in_every_script() {
        if !tools_present() {
            return;
        }
        let input = run("cjpeg", &["-sample", "1x1,1x1,1x1"], &ppm(173, 97)).unwrap();
        let p = parse(&input);
        let mut components = p.geom.components.clone();
        components.push(FrameComponent {
            id: 4,
            ..components[0]
        });
        let geom = FrameGeometry::new(p.geom.width, p.geom.height, components);
        let mut planes = p.planes.clone();
        planes.push(p.planes[0].clone());
        // SOI, Adobe APP14 (version 100, flags 0, 0, transform 0 = CMYK), then the DQTs.
        let mut head = vec![0xFF, 0xD8, 0xFF, 0xEE, 0, 14];
        head.extend_from_slice(b"Adobe\0\x64\0\0\0\0\0");
        let dqt = p.head.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
        head.extend_from_slice(&p.head[dqt..]);
        let cmyk = Parsed { head, geom, planes };
        let reference = file(&cmyk, &default_script(&cmyk.geom));
        let pixels = run("djpeg", &["-strict"], &reference).unwrap();
        let baseline = run("jpegtran", &["-copy", "none"], &reference).unwrap();
        for (name, script) in scripts(&cmyk.geom) {
            let out = file(&cmyk, &script);
            let decoded = run("djpeg", &["-strict"], &out)
                .unwrap_or_else(|| panic!("CMYK {name}: djpeg -strict refused it"));
            assert!(decoded == pixels, "CMYK {name}: pixels differ");
            let back = run("jpegtran", &["-copy", "none"], &out).unwrap();
            assert!(back == baseline, "CMYK {name}: coefficients differ");
        }
    }

    /// A non-interleaved input leaves the padding blocks of the MCU grid zero; written
    /// interleaved, they become jpegtran's (and cjpeg's) dummy blocks: reading our baseline
    /// output back gives exactly cjpeg's planes, padding included, and the caller's planes are
    /// left as they were.
    #[test]
    fn padding_blocks_are_written_as_libjpegs_dummy_blocks() {
        if !tools_present() {
            return;
        }
        for sampling in ["2x2,1x1,1x1", "1x2,1x1,1x1", "4x1,1x1,1x1"] {
            let input = run("cjpeg", &["-sample", sampling], &ppm(173, 97)).unwrap();
            let p = parse(&input);
            let mut zeroed = Parsed {
                head: p.head.clone(),
                geom: p.geom.clone(),
                planes: p.planes.clone(),
            };
            let mut padding = 0;
            for (c, plane) in zeroed.planes.iter_mut().enumerate() {
                let (cw, ch) = p.geom.coded_blocks(c);
                for by in 0..plane.height_blocks {
                    for bx in 0..plane.width_blocks {
                        if bx >= cw || by >= ch {
                            *plane.block_mut(bx, by) = [0; 64];
                            padding += 1;
                        }
                    }
                }
            }
            assert!(padding > 0, "{sampling}: the test needs padding blocks");
            let before = zeroed.planes.clone();
            let out = file(&zeroed, &default_script(&zeroed.geom));
            assert!(zeroed.planes == before);
            let back = planes_of(&p.geom, &decode_coefficients(&out).unwrap());
            assert!(back == p.planes, "{sampling}: padding differs from cjpeg's");
            assert!(
                run("djpeg", &["-strict"], &out).unwrap()
                    == run("djpeg", &["-strict"], &input).unwrap()
            );
        }
    }
}
