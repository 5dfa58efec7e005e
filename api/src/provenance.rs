//! What a photo's bytes say about where it came from: its SHA-256 and, when its EXIF
//! has one, the time it was taken (`DateTimeOriginal`). Read at upload, beside the
//! validation decode; the EXIF reader only walks the container's metadata segments.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use exif::{In, Tag, Value};
use sha2::{Digest, Sha256};

/// The provenance facts of one uploaded photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoFacts {
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// EXIF `DateTimeOriginal`, if present and valid.
    pub taken: Option<ExifTime>,
}

/// An EXIF time: a local clock time, with its UTC offset only when the photo has
/// `OffsetTimeOriginal` (EXIF 2.31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExifTime {
    pub local: chrono::NaiveDateTime,
    pub offset: Option<FixedOffset>,
}

impl ExifTime {
    /// The instant, taking `default_offset` (the operator's `EXIF_UTC_OFFSET`) for a
    /// photo that does not say its own offset.
    pub fn to_utc(self, default_offset: FixedOffset) -> DateTime<Utc> {
        let offset = self.offset.unwrap_or(default_offset);
        (self.local - offset).and_utc()
    }
}

pub fn inspect(bytes: &[u8]) -> PhotoFacts {
    PhotoFacts {
        sha256: hex::encode(Sha256::digest(bytes)),
        taken: exif_time(bytes),
    }
}

/// `DateTimeOriginal` (+ `OffsetTimeOriginal`) of a JPEG, PNG or WebP. Missing,
/// blank or malformed metadata is simply no time: the photo itself is fine.
fn exif_time(bytes: &[u8]) -> Option<ExifTime> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    let ascii = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(parts)) => parts.first().cloned(),
        _ => None,
    };
    let mut time = exif::DateTime::from_ascii(&ascii(Tag::DateTimeOriginal)?).ok()?;
    let offset = ascii(Tag::OffsetTimeOriginal)
        .and_then(|raw| time.parse_offset(&raw).ok().and(time.offset))
        .and_then(|minutes| FixedOffset::east_opt(i32::from(minutes) * 60));
    let local = NaiveDate::from_ymd_opt(
        i32::from(time.year),
        u32::from(time.month),
        u32::from(time.day),
    )?
    .and_hms_opt(
        u32::from(time.hour),
        u32::from(time.minute),
        u32::from(time.second),
    )?;
    Some(ExifTime { local, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_without_exif_has_a_hash_and_no_time() {
        let facts = inspect(b"abc");
        assert_eq!(facts.taken, None);
        // FIPS 180-2's first example.
        assert_eq!(
            facts.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn exif_times_use_their_own_offset_else_the_default() {
        let local = NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        let ist: FixedOffset = "+05:30".parse().unwrap();
        let brt: FixedOffset = "-03:00".parse().unwrap();
        let plain = ExifTime {
            local,
            offset: None,
        };
        assert_eq!(plain.to_utc(ist).to_rfc3339(), "2026-11-20T04:00:00+00:00");
        let own = ExifTime {
            local,
            offset: Some(brt),
        };
        assert_eq!(own.to_utc(ist).to_rfc3339(), "2026-11-20T12:30:00+00:00");
    }
}
