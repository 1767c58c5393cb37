//! EXIF orientation: reading it from the source, writing it back as the only EXIF field, and
//! mapping between stored and displayed pixel coordinates.
//!
//! The DCT path keeps the stored pixels and the tag (turning the pixels would mean decoding
//! and re-encoding the whole image, which it exists to avoid), so the mark is drawn in the
//! stored corner that displays as bottom-right, turned to read upright. The fallback decodes
//! anyway, so it turns the pixels and drops the tag (`fallback.rs`).

/// EXIF Orientation (tag 0x0112), values 1..=8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Orientation(u8);

impl Orientation {
    /// Stored pixels are displayed as they are.
    pub const UPRIGHT: Self = Self(1);

    /// The tag's value, if it is a valid one.
    pub fn from_tag(value: u16) -> Option<Self> {
        (1..=8).contains(&value).then_some(Self(value as u8))
    }

    /// Orientations 5..=8 turn by a quarter: display width is stored height.
    fn transposes(self) -> bool {
        self.0 >= 5
    }

    /// Displayed size of a `w` x `h` stored image.
    pub fn display_size(self, w: u32, h: u32) -> (u32, u32) {
        if self.transposes() {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Where stored pixel `(x, y)` of a `w` x `h` image is displayed.
    pub fn to_display(self, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
        match self.0 {
            2 => (w - 1 - x, y),
            3 => (w - 1 - x, h - 1 - y),
            4 => (x, h - 1 - y),
            5 => (y, x),
            6 => (h - 1 - y, x),
            7 => (h - 1 - y, w - 1 - x),
            8 => (y, w - 1 - x),
            _ => (x, y),
        }
    }

    /// The stored pixel displayed at `(u, v)` of a `w` x `h` (stored size) image.
    pub fn to_stored(self, u: u32, v: u32, w: u32, h: u32) -> (u32, u32) {
        match self.0 {
            2 => (w - 1 - u, v),
            3 => (w - 1 - u, h - 1 - v),
            4 => (u, h - 1 - v),
            5 => (v, u),
            6 => (v, h - 1 - u),
            7 => (w - 1 - v, h - 1 - u),
            8 => (w - 1 - v, u),
            _ => (u, v),
        }
    }
}

/// The orientation in an APP1 payload that starts with `Exif\0\0`, if it has a valid one.
pub(crate) fn read_exif(payload: &[u8]) -> Option<Orientation> {
    let tiff = payload.strip_prefix(b"Exif\0\0")?;
    let big = match tiff.get(..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = u32_at(4)? as usize;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|i| {
        let entry = ifd.checked_add(2 + 12 * i)?;
        // Tag 0x0112, type SHORT (3), count 1: the value sits in the first two value bytes.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3 && u32_at(entry + 4)? == 1)
            .then(|| u16_at(entry + 8))
            .flatten()
            .and_then(Orientation::from_tag)
    })
}

/// A complete APP1 segment whose EXIF holds only the orientation tag.
pub(crate) fn exif_segment(orientation: Orientation) -> Vec<u8> {
    let mut s = vec![0xFF, 0xE1, 0, 34];
    s.extend_from_slice(b"Exif\0\0");
    // Big-endian TIFF header, IFD0 at offset 8.
    s.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    // One entry: Orientation, SHORT, count 1, value, padding; then no next IFD.
    s.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation.0, 0, 0]);
    s.extend_from_slice(&[0, 0, 0, 0]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_and_display_coordinates_are_inverse() {
        let (w, h) = (7, 4);
        for tag in 1..=8 {
            let o = Orientation::from_tag(tag).unwrap();
            let (dw, dh) = o.display_size(w, h);
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = o.to_display(x, y, w, h);
                    assert!(u < dw && v < dh);
                    assert_eq!(o.to_stored(u, v, w, h), (x, y), "orientation {tag}");
                }
            }
        }
    }

    #[test]
    fn the_written_segment_reads_back() {
        for tag in 1..=8 {
            let o = Orientation::from_tag(tag).unwrap();
            let seg = exif_segment(o);
            assert_eq!(usize::from(seg[3]) + 2, seg.len());
            assert_eq!(read_exif(&seg[4..]), Some(o));
        }
    }
}
