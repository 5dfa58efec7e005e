//! A JPEG's marker segments, walked without decoding: whether it is progressive, and its
//! skeleton, a copy with every scan's entropy-coded data left out and a frame of one
//! pixel.
//!
//! Why: a progressive JPEG's refinement scans must be entropy-decoded in full whatever
//! the output scale, into coefficient buffers for the whole image (3–6 bytes a pixel),
//! so the 1/8-scale check of a 2.9 MP progressive photo took 59 ms of the API's CPU (12
//! times a baseline one of half its size) and a 100 MP one would need 600 MB. libjpeg
//! raises only warnings from the entropy-coded bits (which the check accepts, as the
//! worker's decoder repairs the damage the same way); its fatal errors come from
//! markers, tables, scan parameters and the frame's size. So libjpeg run on the
//! skeleton, with the size checked here, refuses exactly the files it would refuse
//! whole, in time and memory that do not grow with the image.

use std::fmt;

/// Why the marker structure is not a complete JPEG.
#[derive(Debug, PartialEq, Eq)]
pub enum StructureError {
    /// The data stops inside a segment or a scan, or before the end-of-image marker.
    Truncated,
    /// A segment's length is too short to hold its own length field.
    BadLength { offset: usize },
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StructureError::Truncated => write!(f, "the JPEG data is truncated"),
            StructureError::BadLength { offset } => {
                write!(f, "a JPEG marker segment at byte {offset} has a bad length")
            }
        }
    }
}

/// What [`walk`] found.
pub struct Scans {
    /// Frame header SOF2, SOF6, SOF10 or SOF14.
    pub progressive: bool,
    /// Every marker segment in order, up to and including the end-of-image marker,
    /// without the entropy-coded data after each start of scan, and with the frame
    /// header's size set to 1×1 where it is one libjpeg accepts.
    pub skeleton: Vec<u8>,
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Markers with no length field: restart markers and TEM.
fn standalone(marker: u8) -> bool {
    matches!(marker, 0xD0..=0xD7 | 0x01)
}

fn progressive_frame(marker: u8) -> bool {
    matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE)
}

/// Start-of-frame markers (C4, C8 and CC are tables and an extension).
fn frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// libjpeg's `JPEG_MAX_DIMENSION`.
const MAX_DIMENSION: u16 = 65500;

/// A frame header (length, precision, height, width, components…) made 1×1, unless
/// its size is one libjpeg refuses (0, or over its maximum), which is kept so that
/// libjpeg refuses it.
fn shrink_frame(segment: &mut [u8]) {
    let Some(size) = segment.get_mut(3..7) else {
        return;
    };
    let height = u16::from_be_bytes([size[0], size[1]]);
    let width = u16::from_be_bytes([size[2], size[3]]);
    if (1..=MAX_DIMENSION).contains(&height) && (1..=MAX_DIMENSION).contains(&width) {
        size.copy_from_slice(&[0, 1, 0, 1]);
    }
}

/// Walks the segments from the start-of-image marker to the end-of-image one. Bytes
/// between segments that are not a marker are skipped, as libjpeg skips them (with a
/// warning).
pub fn walk(bytes: &[u8]) -> Result<Scans, StructureError> {
    if !bytes.starts_with(&[0xFF, SOI]) {
        return Err(StructureError::Truncated);
    }
    let mut skeleton = Vec::with_capacity(bytes.len().min(64 * 1024));
    skeleton.extend_from_slice(&[0xFF, SOI]);
    let mut progressive = false;
    let mut at = 2;
    loop {
        // The next marker: 0xFF, any fill bytes 0xFF, then the marker's code.
        let ff = find(bytes, at, |b| b == 0xFF)?;
        let code_at = find(bytes, ff, |b| b != 0xFF)?;
        let marker = bytes[code_at];
        if marker == 0x00 {
            // A stuffed zero outside a scan is junk, skipped.
            at = code_at + 1;
            continue;
        }
        if marker == EOI {
            skeleton.extend_from_slice(&[0xFF, EOI]);
            return Ok(Scans {
                progressive,
                skeleton,
            });
        }
        if standalone(marker) {
            at = code_at + 1;
            continue;
        }
        let length = bytes
            .get(code_at + 1..code_at + 3)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or(StructureError::Truncated)?;
        if length < 2 {
            return Err(StructureError::BadLength { offset: ff });
        }
        let end = code_at + 1 + length;
        let segment = bytes
            .get(code_at + 1..end)
            .ok_or(StructureError::Truncated)?;
        skeleton.extend_from_slice(&[0xFF, marker]);
        let copied = skeleton.len();
        skeleton.extend_from_slice(segment);
        if frame(marker) {
            shrink_frame(&mut skeleton[copied..]);
        }
        progressive |= progressive_frame(marker);
        at = if marker == SOS {
            scan_end(bytes, end)?
        } else {
            end
        };
    }
}

/// The first byte at or after `from` that `is` accepts; running off the end is a
/// truncation.
fn find(bytes: &[u8], from: usize, is: impl Fn(u8) -> bool) -> Result<usize, StructureError> {
    bytes[from..]
        .iter()
        .position(|&b| is(b))
        .map(|i| from + i)
        .ok_or(StructureError::Truncated)
}

/// Where the entropy-coded data starting at `from` ends: at the first marker that is
/// neither a stuffed zero (`FF 00`) nor a restart marker.
fn scan_end(bytes: &[u8], from: usize) -> Result<usize, StructureError> {
    let mut at = from;
    loop {
        let ff = find(bytes, at, |b| b == 0xFF)?;
        match bytes.get(ff + 1) {
            None => return Err(StructureError::Truncated),
            Some(0x00 | 0xD0..=0xD7) => at = ff + 2,
            // A fill byte: the marker's code follows it.
            Some(0xFF) => at = ff + 1,
            Some(_) => return Ok(ff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0 of 3 bytes, SOF2 (8 bits, 600×800, one component), SOS with data
    /// holding a stuffed zero and a restart marker, a second SOS, EOI.
    fn sample() -> Vec<u8> {
        let mut j = vec![0xFF, SOI];
        j.extend([0xFF, 0xE0, 0x00, 0x05, 1, 2, 3]);
        j.extend([
            0xFF, 0xC2, 0x00, 0x0B, 8, 0x02, 0x58, 0x03, 0x20, 1, 1, 0x11, 0,
        ]);
        j.extend([0xFF, SOS, 0x00, 0x03, 9]);
        j.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
        j.extend([0xFF, 0xFF, SOS, 0x00, 0x02]);
        j.extend([0x78]);
        j.extend([0xFF, EOI]);
        j
    }

    #[test]
    fn keeps_every_segment_and_drops_the_scan_data() {
        let scans = walk(&sample()).unwrap();
        assert!(scans.progressive);
        let mut expected = vec![0xFF, SOI];
        expected.extend([0xFF, 0xE0, 0x00, 0x05, 1, 2, 3]);
        expected.extend([0xFF, 0xC2, 0x00, 0x0B, 8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        expected.extend([0xFF, SOS, 0x00, 0x03, 9]);
        expected.extend([0xFF, SOS, 0x00, 0x02]);
        expected.extend([0xFF, EOI]);
        assert_eq!(scans.skeleton, expected);
    }

    #[test]
    fn a_cut_anywhere_before_the_end_marker_is_truncated() {
        let full = sample();
        for len in 0..full.len() {
            assert!(walk(&full[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn padding_after_the_end_marker_is_ignored() {
        let mut j = sample();
        j.extend([0u8; 10]);
        assert_eq!(
            walk(&j).unwrap().skeleton,
            walk(&sample()).unwrap().skeleton
        );
    }

    #[test]
    fn a_length_shorter_than_its_own_field_is_refused() {
        let mut j = vec![0xFF, SOI, 0xFF, 0xE0, 0x00, 0x01];
        j.extend([0xFF, EOI]);
        assert_eq!(
            walk(&j).err(),
            Some(StructureError::BadLength { offset: 2 })
        );
    }

    #[test]
    fn a_frame_size_libjpeg_refuses_is_kept() {
        for size in [[0x00, 0x00, 0x03, 0x20], [0xFF, 0xF0, 0x03, 0x20]] {
            let mut j = sample();
            j[14..18].copy_from_slice(&size);
            assert_eq!(walk(&j).unwrap().skeleton[14..18], size);
        }
    }

    #[test]
    fn a_baseline_frame_is_not_progressive() {
        let mut j = sample();
        j[10] = 0xC0;
        assert!(!walk(&j).unwrap().progressive);
    }
}
