//! Reading a registration batch's ZIP safely: which entries may be used and why the
//! others are refused, before and while they are decompressed.
//!
//! Refused, each with a reason for the batch report while the rest goes on: absolute
//! paths and `..` (path traversal), symbolic links, nested archives, entries that are
//! not JPEG/PNG/WebP images (or exceed the pixel limit), and entries that declare or
//! actually decompress to more than a photo may be (zip bombs). An archive whose
//! declared total exceeds the batch's uncompressed limit is refused as a whole; one
//! that lies about its sizes is cut off when the actual total passes the limit.

use std::{
    fs::File,
    io::{Cursor, Read},
    path::{Component, Path},
};

use common::image_limits::MAX_IMAGE_PIXELS;
use image::{ImageFormat, ImageReader};
use zip::ZipArchive;

/// Largest photo (as in single registrations) and largest manifest, uncompressed.
pub const MAX_ENTRY_BYTES: u64 = 10 * 1024 * 1024;
/// The optional manifest at the archive's root.
pub const MANIFEST: &str = "students.csv";

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const ARCHIVE_EXTENSIONS: [&str; 10] = [
    "zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "zst", "jar",
];

/// One file entry of the archive, as its central directory describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub index: usize,
    /// The name as stored (shown in the report).
    pub name: String,
    /// The safe relative path's components, when the name is safe.
    pub components: Vec<String>,
    pub declared_size: u64,
    /// Why the entry is refused from its metadata alone.
    pub refused: Option<String>,
}

impl Entry {
    pub fn path(&self) -> String {
        self.components.join("/")
    }
}

/// The archive's file entries (directories left out), each judged on its metadata.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Sum of the declared sizes of every entry.
    pub declared_total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a readable ZIP archive: {0}")]
    Unreadable(#[from] zip::result::ZipError),
    #[error("cannot read the archive: {0}")]
    Io(#[from] std::io::Error),
}

pub fn open(path: &Path) -> Result<ZipArchive<File>, ArchiveError> {
    Ok(ZipArchive::new(File::open(path)?)?)
}

/// Lists and judges every entry from the central directory (nothing is decompressed).
pub fn list(archive: &mut ZipArchive<File>) -> Result<Listing, ArchiveError> {
    let mut listing = Listing::default();
    for index in 0..archive.len() {
        let file = archive.by_index_raw(index)?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().to_string();
        let declared_size = file.size();
        listing.declared_total = listing.declared_total.saturating_add(declared_size);
        let components: Vec<String> = file
            .enclosed_name()
            .map(|p| {
                p.components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let refused = judge_metadata(
            &name,
            &components,
            file.enclosed_name().is_some(),
            file.unix_mode(),
            declared_size,
        );
        listing.entries.push(Entry {
            index,
            name,
            components,
            declared_size,
            refused,
        });
    }
    Ok(listing)
}

/// Why an entry is refused from its name, mode and declared size; `None` if it may be read.
pub fn judge_metadata(
    name: &str,
    components: &[String],
    enclosed: bool,
    unix_mode: Option<u32>,
    declared_size: u64,
) -> Option<String> {
    if !enclosed || components.is_empty() {
        let absolute = name.starts_with('/')
            || name.starts_with('\\')
            || name.as_bytes().get(1) == Some(&b':');
        return Some(if absolute {
            "absolute path: entries must be relative (ROLL/photo.jpg)".into()
        } else {
            "path traversal: the name leaves the archive with '..'".into()
        });
    }
    if unix_mode.is_some_and(|m| m & S_IFMT == S_IFLNK) {
        return Some("symbolic link: links are not followed".into());
    }
    if let Some(ext) = Path::new(name).extension().and_then(|e| e.to_str())
        && ARCHIVE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
    {
        return Some("nested archive: archives inside the batch are not unpacked".into());
    }
    if declared_size > MAX_ENTRY_BYTES {
        return Some(format!(
            "declares {} uncompressed, more than the {} limit of a photo (zip bomb?)",
            megabytes(declared_size),
            megabytes(MAX_ENTRY_BYTES)
        ));
    }
    None
}

/// Decompresses one entry, never more than [`MAX_ENTRY_BYTES`] (plus one byte to tell),
/// whatever it declares. `Err` is the report's reason.
pub fn read_entry(archive: &mut ZipArchive<File>, entry: &Entry) -> Result<Vec<u8>, String> {
    let file = archive
        .by_index(entry.index)
        .map_err(|e| format!("cannot be decompressed: {e}"))?;
    let mut bytes = Vec::with_capacity(entry.declared_size.min(MAX_ENTRY_BYTES) as usize);
    file.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be decompressed: {e}"))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(format!(
            "decompresses to more than {} although it declares {} (zip bomb)",
            megabytes(MAX_ENTRY_BYTES),
            megabytes(entry.declared_size)
        ));
    }
    if bytes.len() as u64 != entry.declared_size {
        return Err(format!(
            "decompresses to {} bytes although it declares {} (corrupt or forged archive)",
            bytes.len(),
            entry.declared_size
        ));
    }
    Ok(bytes)
}

/// A photo's format, judged from its bytes: nested archives and anything but a
/// JPEG, PNG or WebP image within the pixel limit are refused.
pub fn judge_photo(bytes: &[u8]) -> Result<ImageFormat, String> {
    const MAGIC: [(&[u8], &str); 5] = [
        (b"PK\x03\x04", "ZIP"),
        (b"\x1f\x8b", "gzip"),
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"Rar!", "RAR"),
        (b"BZh", "bzip2"),
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(m, _)| bytes.starts_with(m)) {
        return Err(format!(
            "nested archive ({kind}): archives inside the batch are not unpacked"
        ));
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        _ => return Err("not an image: only JPEG, PNG and WebP photos are accepted".into()),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| format!("not a readable image: {e}"))?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(format!(
            "{width}×{height} pixels, more than the {MAX_IMAGE_PIXELS} pixel limit"
        ));
    }
    Ok(format)
}

/// The MIME type and file extension a photo is stored with.
pub fn stored_as(format: ImageFormat) -> (&'static str, &'static str) {
    match format {
        ImageFormat::Png => ("image/png", "png"),
        ImageFormat::WebP => ("image/webp", "webp"),
        _ => ("image/jpeg", "jpg"),
    }
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    #[test]
    fn metadata_refusals_say_why() {
        assert_eq!(
            judge_metadata("21CS001/a.jpg", &comps("21CS001/a.jpg"), true, None, 10),
            None
        );
        let reason = |name: &str, enclosed: bool, mode: Option<u32>, size: u64| {
            judge_metadata(name, &comps(name), enclosed, mode, size).unwrap()
        };
        assert!(reason("/etc/passwd", false, None, 1).starts_with("absolute path"));
        assert!(reason("../../x.jpg", false, None, 1).starts_with("path traversal"));
        assert!(reason("21CS001/l.jpg", true, Some(0o120_777), 1).starts_with("symbolic link"));
        assert!(reason("21CS001/more.zip", true, None, 1).starts_with("nested archive"));
        assert!(reason("21CS001/big.jpg", true, None, 11 << 20).contains("zip bomb"));
    }

    #[test]
    fn content_refusals_say_why() {
        assert!(
            judge_photo(b"PK\x03\x04rest")
                .unwrap_err()
                .starts_with("nested archive")
        );
        assert!(
            judge_photo(b"hello")
                .unwrap_err()
                .starts_with("not an image")
        );
    }
}
