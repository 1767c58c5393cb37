//! Huffman entropy coding of sequential JPEG scans (ITU T.81 Annex C, F.1.2, F.2.2, K.2).
//!
//! The reader can say exactly which input byte and bit it stands on, so the untouched part of
//! a scan is copied from the file instead of being re-encoded; the writer can resume in the
//! middle of a byte and splice the rest of the original bit stream back after the mark.

use super::WatermarkError;

/// Natural (row-major) index of the coefficient at each zigzag position.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Quantised coefficients of one 8x8 block, in zigzag order (as coded).
pub(crate) type Block = [i16; 64];

/// Codes up to this length are decoded with one table lookup; longer ones bit by bit.
const LUT_BITS: u32 = 9;

/// Largest DC difference category decoded: libjpeg-turbo's (it reads 12..=15 without a warning,
/// though F.1.2.1 stops at 11 for 8-bit samples). Our writers write them where an arithmetic-coded
/// or drifted file's coefficients need them, and a published copy must read back (fuzzing,
/// issue 21).
pub(crate) const MAX_DC_SIZE: u8 = 15;

/// Largest symbol libjpeg-turbo accepts in a DC table, whatever the sample precision.
const MAX_DC_SYMBOL: u8 = 15;

fn corrupt(what: &str) -> WatermarkError {
    WatermarkError::Corrupt(what.to_owned())
}

/// A malformed scan, as the hot decoding loops report it (small, so it stays in registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError(pub &'static str);

impl From<ScanError> for WatermarkError {
    fn from(e: ScanError) -> Self {
        corrupt(e.0)
    }
}

const BAD_CODE: ScanError = ScanError("invalid Huffman code");
const BAD_DC: ScanError = ScanError("DC difference category");

/// Skip-table entry flag: end of block.
const SKIP_EOB: u16 = 1 << 15;

/// A Huffman table as a DHT segment stores it: how many codes of each length, then the
/// symbols in code order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HuffSpec {
    /// `counts[i]`: number of codes of length `i + 1`.
    pub counts: [u8; 16],
    /// Symbols in order of increasing code.
    pub symbols: Vec<u8>,
}

impl HuffSpec {
    /// Canonical codes (Annex C) as `(symbol, code, length)`; refuses what libjpeg-turbo's
    /// `jpeg_make_d_derived_tbl` refuses as a bogus table: more than 256 symbols, or more
    /// codes of a length than fit beside the all-ones code (which no table may use).
    fn codes(&self) -> Result<Vec<(u8, u16, u8)>, WatermarkError> {
        let total: usize = self.counts.iter().map(|&c| usize::from(c)).sum();
        if total != self.symbols.len() || total > 256 {
            return Err(corrupt("Huffman table size"));
        }
        let mut out = Vec::with_capacity(total);
        let mut code: u32 = 0;
        let mut next = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            let len = i as u32 + 1;
            for _ in 0..count {
                out.push((self.symbols[next], code as u16, len as u8));
                next += 1;
                code += 1;
            }
            // One past the last code of this length must still fit in it (libjpeg's check).
            if code >= 1 << len {
                return Err(corrupt("Huffman table overflows its code space"));
            }
            code <<= 1;
        }
        Ok(out)
    }

    /// Refuses a table libjpeg-turbo would refuse to read (class 0 = DC, 1 = AC): the code
    /// space rules of [`Self::codes`] for any table, and DC symbols above 15 (jdhuff.c),
    /// whether or not a scan ever codes them.
    pub fn check(&self, class: u8) -> Result<(), WatermarkError> {
        self.codes()?;
        if class == 0 && self.symbols.iter().any(|&s| s > MAX_DC_SYMBOL) {
            return Err(corrupt("DC Huffman table symbol above 15"));
        }
        Ok(())
    }

    /// Appends this table's part of a DHT payload (class 0 = DC, 1 = AC); refuses, writing
    /// nothing, a table libjpeg-turbo would not read ([`Self::check`]).
    pub fn write_dht(&self, class: u8, id: u8, out: &mut Vec<u8>) -> Result<(), WatermarkError> {
        self.check(class)?;
        out.push(class << 4 | id);
        out.extend_from_slice(&self.counts);
        out.extend_from_slice(&self.symbols);
        Ok(())
    }
}

/// Decoding side of a Huffman table.
pub(crate) struct DecodeTable {
    /// `(length << 8) | symbol` for every `LUT_BITS`-bit prefix that starts a short code;
    /// 0 where the code is longer (or invalid).
    lut: Box<[u16; 1 << LUT_BITS]>,
    /// For AC skipping, the same prefixes mapped to what the symbol does: bits to consume
    /// (code and value, low 5 bits), coefficient positions to advance (next 5 bits), or
    /// `SKIP_EOB`. One lookup per coefficient, none of them decoded.
    skip: Box<[u16; 1 << LUT_BITS]>,
    /// Largest code of each length (index = length), -1 where there is none.
    maxcode: [i32; 17],
    /// Symbol index of a code of length `l` is `code + valoff[l]`.
    valoff: [i32; 17],
    symbols: [u8; 256],
}

impl DecodeTable {
    /// Builds the lookup structures; `Corrupt` for a malformed table.
    pub fn new(spec: &HuffSpec) -> Result<Self, WatermarkError> {
        let codes = spec.codes()?;
        let mut lut = Box::new([0u16; 1 << LUT_BITS]);
        let mut skip = Box::new([0u16; 1 << LUT_BITS]);
        let mut maxcode = [-1i32; 17];
        let mut valoff = [0i32; 17];
        let mut symbols = [0u8; 256];
        for (index, &(symbol, code, len)) in codes.iter().enumerate() {
            symbols[index] = symbol;
            let l = usize::from(len);
            if maxcode[l] < 0 {
                valoff[l] = index as i32 - i32::from(code);
            }
            maxcode[l] = i32::from(code);
            if u32::from(len) <= LUT_BITS {
                let shift = LUT_BITS - u32::from(len);
                let first = usize::from(code) << shift;
                let entry = u16::from(len) << 8 | u16::from(symbol);
                lut[first..first + (1 << shift)].fill(entry);
                let (run, size) = (u16::from(symbol >> 4), u16::from(symbol & 15));
                let action = match (run, size) {
                    (0, 0) => SKIP_EOB | u16::from(len),
                    (15, 0) => 16 << 5 | u16::from(len),
                    // Other zero-size symbols are undefined: left to the checked slow path.
                    (_, 0) => 0,
                    _ => (run + 1) << 5 | (u16::from(len) + size),
                };
                skip[first..first + (1 << shift)].fill(action);
            }
        }
        Ok(Self {
            lut,
            skip,
            maxcode,
            valoff,
            symbols,
        })
    }
}

/// A [`BitReader`]'s state at one point of its data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Checkpoint {
    pos: usize,
    nbits: u32,
    fake_bytes: u32,
}

/// Reads the entropy-coded bits of one scan (or one restart interval), MSB first, undoing
/// byte stuffing. At a marker it feeds zeros, as T.81 decoders do, and remembers that it did
/// so: consuming those zeros means the data was truncated.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load.
    pos: usize,
    /// Unconsumed bits, left-aligned.
    acc: u64,
    nbits: u32,
    /// Zero bytes fed past the end of the data.
    fake_bytes: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over entropy-coded bytes (stuffed, as in the file).
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            acc: 0,
            nbits: 0,
            fake_bytes: 0,
        }
    }

    /// Tops the accumulator up to at least 57 bits.
    #[inline(always)]
    fn refill(&mut self) {
        // Fast path: eight bytes without 0xFF need no unstuffing and cannot hold a marker.
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0xFF; 8]));
            let inverted = !word;
            let has_ff =
                inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080
                    != 0;
            if !has_ff {
                let n = (64 - self.nbits) / 8;
                self.acc |= (word >> (64 - 8 * n)) << (64 - self.nbits - 8 * n);
                self.nbits += 8 * n;
                self.pos += n as usize;
                return;
            }
        }
        self.refill_slow();
    }

    /// [`Self::refill`] near a 0xFF (stuffing or a marker) or the end of the data.
    #[cold]
    #[inline(never)]
    fn refill_slow(&mut self) {
        while self.nbits <= 56 {
            let mut byte = 0u8;
            match self.data.get(self.pos) {
                Some(&0xFF) => {
                    if self.data.get(self.pos + 1) == Some(&0x00) {
                        byte = 0xFF;
                        self.pos += 2;
                    } else {
                        self.fake_bytes += 1;
                    }
                }
                Some(&b) => {
                    byte = b;
                    self.pos += 1;
                }
                None => self.fake_bytes += 1,
            }
            self.acc |= u64::from(byte) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n;
    }

    /// True once bits beyond the end of the data have been consumed (truncated or corrupt).
    pub fn overran(&self) -> bool {
        self.fake_bytes * 8 > self.nbits
    }

    /// Where the next unread bit is: `(byte index into the data, bits of that byte already
    /// consumed)`. The byte index points at the data byte, i.e. at the 0xFF of a stuffed pair.
    pub fn position(&self) -> (usize, u32) {
        self.position_at(self.checkpoint())
    }

    /// The reader's state, cheap to take at every block: [`Self::position_at`] turns it into
    /// a position later.
    #[inline]
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            pos: self.pos,
            nbits: self.nbits,
            fake_bytes: self.fake_bytes,
        }
    }

    /// [`Self::position`] as it was at `cp`.
    pub fn position_at(&self, cp: Checkpoint) -> (usize, u32) {
        let real = cp.nbits - (cp.fake_bytes * 8).min(cp.nbits);
        let mut back = real.div_ceil(8);
        let mut i = cp.pos;
        while back > 0 {
            // 0xFF only ever appears in data as the first byte of a stuffed pair, so a 0x00
            // after a 0xFF is always stuffing: stepping back is unambiguous.
            i = if i >= 2 && self.data[i - 1] == 0x00 && self.data[i - 2] == 0xFF {
                i - 2
            } else {
                i - 1
            };
            back -= 1;
        }
        (i, (8 - real % 8) % 8)
    }

    #[inline(always)]
    fn decode(&mut self, table: &DecodeTable) -> Result<u8, ScanError> {
        let entry = table.lut[(self.acc >> (64 - LUT_BITS)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        self.decode_long(table)
    }

    /// Codes longer than the lookup table: canonical decoding, one length at a time.
    #[cold]
    fn decode_long(&mut self, table: &DecodeTable) -> Result<u8, ScanError> {
        for len in LUT_BITS + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code <= table.maxcode[len as usize] {
                self.consume(len);
                return Ok(table.symbols[(code + table.valoff[len as usize]) as usize]);
            }
        }
        Err(BAD_CODE)
    }

    /// The signed value of a `size`-bit magnitude category (F.2.2.1 EXTEND).
    #[inline(always)]
    fn receive_extend(&mut self, size: u8) -> i32 {
        if size == 0 {
            return 0;
        }
        let size = u32::from(size);
        let v = (self.acc >> (64 - size)) as i32;
        self.consume(size);
        if v < 1 << (size - 1) {
            v - (1 << size) + 1
        } else {
            v
        }
    }

    /// Decodes one block into `out` (zigzag order); `pred` is the component's DC predictor.
    #[inline(always)]
    pub fn decode_block(
        &mut self,
        dc: &DecodeTable,
        ac: &DecodeTable,
        pred: &mut i32,
        out: &mut Block,
    ) -> Result<(), ScanError> {
        *out = [0; 64];
        if self.nbits < 32 {
            self.refill();
        }
        let size = self.decode(dc)?;
        if size > MAX_DC_SIZE {
            return Err(BAD_DC);
        }
        *pred = pred.wrapping_add(self.receive_extend(size));
        out[0] = i16::try_from(*pred).map_err(|_| ScanError("DC value out of range"))?;
        let mut k = 1;
        while k < 64 {
            if self.nbits < 32 {
                self.refill();
            }
            let rs = self.decode(ac)?;
            let (run, size) = (usize::from(rs >> 4), rs & 15);
            if size == 0 {
                if run != 15 {
                    break;
                }
                k += 16;
            } else {
                // A run past coefficient 63 lands on 63 and ends the block, as in libjpeg
                // (`jpeg_natural_order` has 16 spare entries of 63), which does not warn;
                // a ZRL past it just ends the block. So these blocks are read, not refused.
                k += run;
                out[k.min(63)] = self.receive_extend(size) as i16;
                k += 1;
            }
        }
        Ok(())
    }

    /// Steps over one block, keeping only the DC predictor: this is all the untouched prefix
    /// of a scan needs, so it is the hot loop of the DCT path.
    pub fn skip_block(
        &mut self,
        dc: &DecodeTable,
        ac: &DecodeTable,
        pred: &mut i32,
    ) -> Result<(), ScanError> {
        if self.nbits < 32 {
            self.refill();
        }
        let size = self.decode(dc)?;
        if size > MAX_DC_SIZE {
            return Err(BAD_DC);
        }
        // Wrapping: a hostile file may drift the predictor; decode_block refuses the value.
        *pred = pred.wrapping_add(self.receive_extend(size));
        let mut k = 1;
        while k < 64 {
            if self.nbits < 32 {
                self.refill();
            }
            let action = ac.skip[(self.acc >> (64 - LUT_BITS)) as usize];
            if action != 0 {
                self.consume(u32::from(action & 31));
                if action & SKIP_EOB != 0 {
                    break;
                }
                k += usize::from(action >> 5 & 31);
            } else {
                let rs = self.decode(ac)?;
                let (run, size) = (usize::from(rs >> 4), rs & 15);
                if size == 0 && run != 15 {
                    break;
                }
                self.consume(u32::from(size));
                k += if size == 0 { 16 } else { run + 1 };
            }
        }
        // Past coefficient 63: the block ends, as `decode_block` reads it.
        Ok(())
    }

    /// Decodes one block's symbols only, counting them: the blocks outside the mark need
    /// nothing else to size optimised tables.
    pub fn count_block(
        &mut self,
        dc: &DecodeTable,
        ac: &DecodeTable,
        pred: &mut i32,
        dc_freq: &mut [u32; 256],
        ac_freq: &mut [u32; 256],
    ) -> Result<(), ScanError> {
        if self.nbits < 32 {
            self.refill();
        }
        let size = self.decode(dc)?;
        if size > MAX_DC_SIZE {
            return Err(BAD_DC);
        }
        dc_freq[usize::from(size)] += 1;
        *pred = pred.wrapping_add(self.receive_extend(size));
        let mut k = 1;
        while k < 64 {
            if self.nbits < 32 {
                self.refill();
            }
            let rs = self.decode(ac)?;
            ac_freq[usize::from(rs)] += 1;
            let (run, size) = (usize::from(rs >> 4), rs & 15);
            if size == 0 && run != 15 {
                break;
            }
            self.consume(u32::from(size));
            k += if size == 0 { 16 } else { run + 1 };
        }
        // Past coefficient 63: the block ends, as `decode_block` reads it.
        Ok(())
    }

    /// Moves one unchanged block to new tables symbol by symbol: each code is looked up in
    /// the old table and written with the new one, the value bits copied as they are. No
    /// coefficients are built; the DC predictor is kept for where the mark's window starts.
    pub fn recode_block(
        &mut self,
        from: (&DecodeTable, &DecodeTable),
        to: (&EncodeTable, &EncodeTable),
        pred: &mut i32,
        w: &mut BitWriter,
    ) -> Result<(), ScanError> {
        const NO_CODE: ScanError = ScanError("symbol without a code in the new tables");
        if self.nbits < 32 {
            self.refill();
        }
        let size = self.decode(from.0)?;
        if size > MAX_DC_SIZE {
            return Err(BAD_DC);
        }
        let len = to.0.len[usize::from(size)];
        if len == 0 {
            return Err(NO_CODE);
        }
        w.put(u32::from(to.0.code[usize::from(size)]), u32::from(len));
        if size > 0 {
            w.put((self.acc >> (64 - u32::from(size))) as u32, u32::from(size));
        }
        *pred = pred.wrapping_add(self.receive_extend(size));
        let mut k = 1;
        while k < 64 {
            if self.nbits < 32 {
                self.refill();
            }
            let rs = self.decode(from.1)?;
            let len = to.1.len[usize::from(rs)];
            if len == 0 {
                return Err(NO_CODE);
            }
            w.put(u32::from(to.1.code[usize::from(rs)]), u32::from(len));
            let (run, size) = (usize::from(rs >> 4), rs & 15);
            if size == 0 && run != 15 {
                break;
            }
            if size > 0 {
                w.put((self.acc >> (64 - u32::from(size))) as u32, u32::from(size));
                self.consume(u32::from(size));
            }
            k += if size == 0 { 16 } else { run + 1 };
        }
        // Past coefficient 63: the block ends, as `decode_block` reads it.
        Ok(())
    }
}

impl BitReader<'_> {
    /// One Huffman symbol: progressive scans are decoded symbol by symbol.
    #[inline(always)]
    pub fn symbol(&mut self, table: &DecodeTable) -> Result<u8, ScanError> {
        if self.nbits < 32 {
            self.refill();
        }
        self.decode(table)
    }

    /// The next `n` raw bits (`n` <= 16), MSB first.
    #[inline(always)]
    pub fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.nbits < 32 {
            self.refill();
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// The signed value of a `size`-bit magnitude category that follows a symbol.
    #[inline(always)]
    pub fn value(&mut self, size: u8) -> i32 {
        if self.nbits < 32 {
            self.refill();
        }
        self.receive_extend(size)
    }

    /// True when every byte of the data was used and nothing past it: at most the padding
    /// bits of the last byte are left. libjpeg-turbo warns about whole bytes left over
    /// ("extraneous bytes before marker") and about bits read past the data ("premature end
    /// of data segment"); both mean a damaged scan.
    pub fn at_end(&self) -> bool {
        if self.overran() {
            return false;
        }
        let (i, bit) = self.position();
        let next = match (bit, self.data.get(i)) {
            (0, _) => i,
            (_, Some(0xFF)) => i + 2,
            _ => i + 1,
        };
        next >= self.data.len()
    }
}

/// Encoding side of a Huffman table.
#[derive(Clone)]
pub(crate) struct EncodeTable {
    code: [u16; 256],
    /// 0 where the symbol has no code.
    len: [u8; 256],
}

impl EncodeTable {
    /// Builds the code map; `Corrupt` for a malformed table.
    pub fn new(spec: &HuffSpec) -> Result<Self, WatermarkError> {
        let mut code = [0u16; 256];
        let mut len = [0u8; 256];
        for (symbol, c, l) in spec.codes()? {
            code[usize::from(symbol)] = c;
            len[usize::from(symbol)] = l;
        }
        Ok(Self { code, len })
    }
}

/// A symbol the table has no code for: the scan needs new (optimised) tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MissingCode;

/// Writes entropy-coded bits with byte stuffing.
pub(crate) struct BitWriter {
    /// Everything written so far (the file up to here).
    pub out: Vec<u8>,
    acc: u64,
    /// Pending bits in the low end of `acc`; fewer than 32 between calls.
    nbits: u32,
}

impl BitWriter {
    /// Appends to `out`, starting byte-aligned.
    pub fn new(out: Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Appends to `out`, continuing a byte whose `bits` high bits (of `byte`) are already coded.
    pub fn resume(out: Vec<u8>, byte: u8, bits: u32) -> Self {
        let mut w = Self::new(out);
        if bits > 0 {
            w.put(u32::from(byte >> (8 - bits)), bits);
        }
        w
    }

    /// Appends the low `len` bits of `bits` (`len` <= 16).
    #[inline]
    pub fn put(&mut self, bits: u32, len: u32) {
        self.acc = self.acc << len | u64::from(bits);
        self.nbits += len;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let word = (self.acc >> self.nbits) as u32;
            if has_ff(word) {
                for b in word.to_be_bytes() {
                    self.out.push(b);
                    if b == 0xFF {
                        self.out.push(0);
                    }
                }
            } else {
                self.out.extend_from_slice(&word.to_be_bytes());
            }
        }
    }

    /// Emits whole pending bytes (the caller makes `nbits` a multiple of 8 first).
    fn drain_bytes(&mut self) {
        while self.nbits >= 8 {
            self.nbits -= 8;
            let b = (self.acc >> self.nbits) as u8;
            self.out.push(b);
            if b == 0xFF {
                self.out.push(0);
            }
        }
    }

    /// Pads the last byte with 1-bits (F.1.2.3) and flushes it.
    fn pad(&mut self) {
        let fill = (8 - self.nbits % 8) % 8;
        self.put((1 << fill) - 1, fill);
        self.drain_bytes();
    }

    /// Ends a restart interval: pad, then RSTn.
    pub fn restart_marker(&mut self, n: usize) {
        self.pad();
        self.out.push(0xFF);
        self.out.push(0xD0 + (n % 8) as u8);
    }

    /// Appends the original bit stream `data` from byte `byte`, bit `bit` to its end: the part
    /// of the scan after the mark, whose symbols are unchanged, is moved rather than
    /// re-encoded (a plain copy when it happens to line up on the same bit).
    pub fn splice(&mut self, data: &[u8], byte: usize, bit: u32) {
        let Some(&first) = data.get(byte) else {
            return;
        };
        let mut i = byte + if first == 0xFF { 2 } else { 1 };
        let keep = 8 - bit;
        self.put(u32::from(first) & ((1 << keep) - 1), keep);
        if self.nbits % 8 == 0 {
            self.drain_bytes();
            self.out.extend_from_slice(&data[i.min(data.len())..]);
            return;
        }
        while i < data.len() {
            let b = data[i];
            i += if b == 0xFF { 2 } else { 1 };
            self.put(u32::from(b), 8);
        }
    }

    /// Pads and returns the output.
    pub fn finish(mut self) -> Vec<u8> {
        self.pad();
        self.out
    }
}

#[inline]
fn has_ff(word: u32) -> bool {
    let x = !word;
    x.wrapping_sub(0x0101_0101) & !x & 0x8080_8080 != 0
}

/// Magnitude category and the bits that follow it (F.1.2.1, F.1.2.2).
#[inline]
fn category(v: i32) -> (u8, u32) {
    if v == 0 {
        return (0, 0);
    }
    let size = 32 - v.unsigned_abs().leading_zeros();
    let bits = if v < 0 { v - 1 } else { v } as u32 & ((1 << size) - 1);
    (size as u8, bits)
}

/// The symbols of one block (F.1.2): `emit(ac, symbol, extra_bits, extra_len)`.
#[inline]
fn block_symbols<E>(block: &Block, pred: &mut i32, mut emit: E) -> Result<(), MissingCode>
where
    E: FnMut(bool, u8, u32, u32) -> Result<(), MissingCode>,
{
    let dc = i32::from(block[0]);
    let (size, bits) = category(dc - *pred);
    *pred = dc;
    emit(false, size, bits, u32::from(size))?;
    let mut run = 0u8;
    for &v in &block[1..] {
        if v == 0 {
            run += 1;
            continue;
        }
        while run > 15 {
            emit(true, 0xF0, 0, 0)?;
            run -= 16;
        }
        let (size, bits) = category(i32::from(v));
        emit(true, run << 4 | size, bits, u32::from(size))?;
        run = 0;
    }
    if run > 0 {
        emit(true, 0x00, 0, 0)?;
    }
    Ok(())
}

/// Where re-coded blocks go: an encoder, or a symbol counter for building optimised tables.
pub(crate) trait BlockSink {
    /// One block of the scan component at `slot` (scan order).
    fn block(&mut self, slot: usize, block: &Block) -> Result<(), MissingCode>;
    /// A restart marker follows block data of interval `n` (0-based).
    fn restart(&mut self, n: usize);
}

/// Huffman-encodes blocks with given tables.
pub(crate) struct Encoder<'t> {
    /// Where the bits go.
    pub writer: BitWriter,
    /// (DC, AC) table of each scan slot.
    tables: Vec<(&'t EncodeTable, &'t EncodeTable)>,
    /// DC predictor of each slot.
    pub pred: [i32; 4],
}

impl<'t> Encoder<'t> {
    /// An encoder for the scan slots' `(DC, AC)` tables.
    pub fn new(writer: BitWriter, tables: Vec<(&'t EncodeTable, &'t EncodeTable)>) -> Self {
        Self {
            writer,
            tables,
            pred: [0; 4],
        }
    }
}

impl BlockSink for Encoder<'_> {
    #[inline]
    fn block(&mut self, slot: usize, block: &Block) -> Result<(), MissingCode> {
        let (dc, ac) = self.tables[slot];
        let w = &mut self.writer;
        block_symbols(block, &mut self.pred[slot], |is_ac, symbol, bits, len| {
            let table = if is_ac { ac } else { dc };
            let code_len = table.len[usize::from(symbol)];
            if code_len == 0 {
                return Err(MissingCode);
            }
            w.put(
                u32::from(table.code[usize::from(symbol)]),
                u32::from(code_len),
            );
            w.put(bits, len);
            Ok(())
        })
    }

    fn restart(&mut self, n: usize) {
        self.writer.restart_marker(n);
        self.pred = [0; 4];
    }
}

/// Counts symbol frequencies per table, for Annex K.2 code lengths.
pub(crate) struct SymbolCounter {
    /// (DC table id, AC table id) of each scan slot.
    pub slots: Vec<(usize, usize)>,
    /// `[class][id][symbol]`.
    pub freq: Box<[[[u32; 256]; 4]; 2]>,
    /// DC predictor of each slot.
    pub pred: [i32; 4],
}

impl SymbolCounter {
    /// A counter for the scan slots' `(DC id, AC id)`.
    pub fn new(slots: Vec<(usize, usize)>) -> Self {
        Self {
            slots,
            freq: Box::new([[[0; 256]; 4]; 2]),
            pred: [0; 4],
        }
    }
}

impl BlockSink for SymbolCounter {
    fn block(&mut self, slot: usize, block: &Block) -> Result<(), MissingCode> {
        let (dc, ac) = self.slots[slot];
        let freq = &mut self.freq;
        block_symbols(block, &mut self.pred[slot], |is_ac, symbol, _, _| {
            let (class, id) = if is_ac { (1, ac) } else { (0, dc) };
            freq[class][id][usize::from(symbol)] += 1;
            Ok(())
        })
    }

    fn restart(&mut self, _: usize) {
        self.pred = [0; 4];
    }
}

/// Code lengths for the given symbol frequencies, at most 16 bits, never an all-ones code:
/// the procedure of T.81 Annex K.2 (figures K.1 to K.4), as libjpeg implements it.
pub(crate) fn optimal_table(freq: &[u32; 256]) -> HuffSpec {
    // Symbol 256 is a reserved pseudo-symbol with the smallest frequency: its code is the
    // all-ones one, which is then dropped.
    let mut f: Vec<u64> = freq.iter().map(|&x| u64::from(x)).collect();
    if f.iter().all(|&x| x == 0) {
        // A table nothing uses still needs one code to be valid.
        f[0] = 1;
    }
    f.push(1);
    let mut codesize = [0usize; 257];
    let mut others = [usize::MAX; 257];
    loop {
        // The two least frequent live entries (ties go to the larger symbol, as in libjpeg).
        let mut c1 = usize::MAX;
        let mut v = u64::MAX;
        for (i, &fi) in f.iter().enumerate() {
            if fi != 0 && fi <= v {
                v = fi;
                c1 = i;
            }
        }
        let mut c2 = usize::MAX;
        v = u64::MAX;
        for (i, &fi) in f.iter().enumerate() {
            if fi != 0 && fi <= v && i != c1 {
                v = fi;
                c2 = i;
            }
        }
        if c2 == usize::MAX {
            break;
        }
        f[c1] += f[c2];
        f[c2] = 0;
        codesize[c1] += 1;
        while others[c1] != usize::MAX {
            c1 = others[c1];
            codesize[c1] += 1;
        }
        others[c1] = c2;
        codesize[c2] += 1;
        while others[c2] != usize::MAX {
            c2 = others[c2];
            codesize[c2] += 1;
        }
    }
    let mut bits = [0u32; 258];
    for &size in &codesize {
        if size > 0 {
            bits[size] += 1;
        }
    }
    // K.3: move codes longer than 16 bits up the tree.
    for i in (17..bits.len()).rev() {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
    }
    // Drop the reserved code (the longest one).
    let mut i = 16;
    while bits[i] == 0 {
        i -= 1;
    }
    bits[i] -= 1;
    let mut counts = [0u8; 16];
    for (len, count) in counts.iter_mut().enumerate() {
        *count = bits[len + 1] as u8;
    }
    let mut symbols = Vec::new();
    for size in 1..=256 {
        for (symbol, &s) in codesize.iter().enumerate().take(256) {
            if s == size {
                symbols.push(symbol as u8);
            }
        }
    }
    HuffSpec { counts, symbols }
}

/// T.81 Annex K.3, table K.3: luminance DC. The four standard tables are what a Motion-JPEG
/// frame without DHT is decoded with (libjpeg does the same), and what our tests write.
pub(crate) fn std_luma_dc() -> HuffSpec {
    HuffSpec {
        counts: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        symbols: (0..12).collect(),
    }
}

/// Table K.4: chrominance DC.
pub(crate) fn std_chroma_dc() -> HuffSpec {
    HuffSpec {
        counts: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        symbols: (0..12).collect(),
    }
}

/// Table K.5: luminance AC.
pub(crate) fn std_luma_ac() -> HuffSpec {
    HuffSpec {
        counts: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
        symbols: vec![
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
            0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1,
            0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
            0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
            0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57,
            0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
            0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
            0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
            0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
            0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        ],
    }
}

/// Table K.6: chrominance AC.
pub(crate) fn std_chroma_ac() -> HuffSpec {
    HuffSpec {
        counts: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
        symbols: vec![
            0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
            0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09,
            0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25,
            0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
            0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56,
            0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74,
            0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
            0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
            0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
            0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
            0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2,
            0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        ],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    fn random_block(seed: &mut u64) -> Block {
        let mut b = [0i16; 64];
        let nonzero = (lcg(seed) % 64) as usize;
        for _ in 0..nonzero {
            let k = (lcg(seed) % 64) as usize;
            let size = (lcg(seed) % 10) as i16 + 1;
            let v = (lcg(seed) % (1 << size)) as i16 - (1 << (size - 1));
            b[k] = v;
        }
        b[0] = (lcg(seed) % 2000) as i16 - 1000;
        b
    }

    /// The standard luminance tables (T.81 K.3, K.5), for coding and for decoding.
    fn std_luma_tables() -> (EncodeTable, EncodeTable, DecodeTable, DecodeTable) {
        let (dc, ac) = (std_luma_dc(), std_luma_ac());
        (
            EncodeTable::new(&dc).unwrap(),
            EncodeTable::new(&ac).unwrap(),
            DecodeTable::new(&dc).unwrap(),
            DecodeTable::new(&ac).unwrap(),
        )
    }

    #[test]
    fn encoded_blocks_decode_back_with_standard_tables() {
        let (edc, eac, ddc, dac) = std_luma_tables();
        let mut seed = 7;
        let blocks: Vec<Block> = (0..2000).map(|_| random_block(&mut seed)).collect();
        let mut enc = Encoder::new(BitWriter::new(Vec::new()), vec![(&edc, &eac)]);
        for b in &blocks {
            enc.block(0, b).unwrap();
        }
        let data = enc.writer.finish();
        let mut rd = BitReader::new(&data);
        let mut pred = 0;
        let mut out = [0; 64];
        for b in &blocks {
            rd.decode_block(&ddc, &dac, &mut pred, &mut out).unwrap();
            assert_eq!(&out, b);
        }
        assert!(!rd.overran());
    }

    #[test]
    fn an_ac_run_past_63_lands_on_63_and_ends_the_block_as_in_libjpeg() {
        let (edc, eac, ddc, dac) = std_luma_tables();
        let sym = |w: &mut BitWriter, t: &EncodeTable, s: u8| {
            w.put(
                u32::from(t.code[usize::from(s)]),
                u32::from(t.len[usize::from(s)]),
            );
        };
        let mut w = BitWriter::new(Vec::new());
        // Block 1: DC 0, three ZRLs (k = 49), then run 15 size 1: k = 64, one past the end.
        sym(&mut w, &edc, 0);
        for _ in 0..3 {
            sym(&mut w, &eac, 0xF0);
        }
        sym(&mut w, &eac, 0xF1);
        w.put(1, 1);
        // Block 2: DC 0, four ZRLs (k = 65): the block just ends.
        sym(&mut w, &edc, 0);
        for _ in 0..4 {
            sym(&mut w, &eac, 0xF0);
        }
        // Block 3: DC 0, coefficient 1 = -1, EOB.
        sym(&mut w, &edc, 0);
        sym(&mut w, &eac, 0x01);
        w.put(0, 1);
        sym(&mut w, &eac, 0x00);
        let data = w.finish();

        let mut rd = BitReader::new(&data);
        let (mut pred, mut out) = (0, [0; 64]);
        rd.decode_block(&ddc, &dac, &mut pred, &mut out).unwrap();
        let mut first = [0; 64];
        first[63] = 1;
        assert_eq!(out, first);
        rd.decode_block(&ddc, &dac, &mut pred, &mut out).unwrap();
        assert_eq!(out, [0; 64]);
        rd.decode_block(&ddc, &dac, &mut pred, &mut out).unwrap();
        assert_eq!((out[1], out[2..].iter().all(|&v| v == 0)), (-1, true));
        let end = rd.position();
        // Skipping and counting read the same bits.
        let mut rd = BitReader::new(&data);
        for _ in 0..3 {
            rd.skip_block(&ddc, &dac, &mut pred).unwrap();
        }
        assert_eq!(rd.position(), end);
        let mut rd = BitReader::new(&data);
        let (mut fdc, mut fac) = ([0; 256], [0; 256]);
        for _ in 0..3 {
            rd.count_block(&ddc, &dac, &mut pred, &mut fdc, &mut fac)
                .unwrap();
        }
        assert_eq!((rd.position(), fac[0xF0], fac[0xF1]), (end, 7, 1));
    }

    #[test]
    fn optimal_tables_are_limited_to_16_bits_and_cover_every_used_symbol() {
        // Fibonacci-like frequencies force code lengths far past 16 before K.3's adjustment.
        let mut freq = [0u32; 256];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut().take(40) {
            *f = a;
            let next = a.saturating_add(b);
            a = b;
            b = next;
        }
        let spec = optimal_table(&freq);
        assert_eq!(spec.symbols.len(), 40);
        let codes = spec.codes().unwrap();
        assert!(codes.iter().all(|&(_, _, len)| len <= 16));
        // No code is all ones.
        assert!(codes
            .iter()
            .all(|&(_, code, len)| u32::from(code) != (1 << len) - 1));
        let enc = EncodeTable::new(&spec).unwrap();
        assert!((0..40).all(|s| enc.len[s] > 0));
    }

    #[test]
    fn dc_tables_we_write_never_hold_a_symbol_above_15() {
        let mut freq = [0u32; 256];
        freq[0] = 5;
        freq[11] = 1;
        let mut out = Vec::new();
        optimal_table(&freq).write_dht(0, 0, &mut out).unwrap();
        assert!(!out.is_empty());
        // A DC difference of category 16 (a hostile, drifted predictor): libjpeg-turbo
        // would refuse the table, so it is never written.
        freq[16] = 1;
        let spec = optimal_table(&freq);
        let mut out = Vec::new();
        assert!(matches!(
            spec.write_dht(0, 0, &mut out),
            Err(WatermarkError::Corrupt(_))
        ));
        assert!(out.is_empty());
        // The same symbols make a valid AC table.
        spec.write_dht(1, 0, &mut out).unwrap();
    }

    #[test]
    fn reader_position_points_at_the_next_unread_bit() {
        // Bytes: 0xAB, 0xFF (stuffed), 0x12.
        let data = [0xAB, 0xFF, 0x00, 0x12];
        let mut rd = BitReader::new(&data);
        rd.refill();
        assert_eq!(rd.position(), (0, 0));
        rd.consume(3);
        assert_eq!(rd.position(), (0, 3));
        rd.consume(5);
        assert_eq!(rd.position(), (1, 0));
        rd.consume(9);
        assert_eq!(rd.position(), (3, 1));
        assert!(!rd.overran());
        rd.consume(8);
        assert!(rd.overran());
    }

    #[test]
    fn splicing_moves_bits_across_any_alignment() {
        let data: Vec<u8> = vec![0xA5, 0xFF, 0x00, 0x3C, 0xFF, 0x00, 0x01];
        for prefix_bits in 0..8u32 {
            for bit in 0..8u32 {
                let mut w = BitWriter::new(Vec::new());
                w.put(0, prefix_bits);
                w.splice(&data, 0, bit);
                let out = w.finish();
                // Read back: skip prefix, compare the remaining original bits.
                let mut a = BitReader::new(&out);
                let mut b = BitReader::new(&data);
                a.refill();
                b.refill();
                a.consume(prefix_bits);
                b.consume(bit);
                let n = 32 - bit;
                assert_eq!(a.acc >> (64 - n), b.acc >> (64 - n), "{prefix_bits} {bit}");
            }
        }
    }
}
