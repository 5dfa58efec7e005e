//! SHA-256 pin checks: the state of a model file on disk, and a copy that hashes what
//! it writes so that a download or an extraction is checked without reading it twice.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::engine::{EngineError, Result};

/// A model file on disk compared with its pinned hash.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FileState {
    Valid,
    Missing,
    /// Present with this (other) SHA-256.
    WrongHash(String),
}

impl FileState {
    pub(super) fn describe(&self) -> &'static str {
        match self {
            FileState::Valid => "valid",
            FileState::Missing => "missing",
            FileState::WrongHash(_) => "wrong hash",
        }
    }
}

/// Hashes the file once; a missing file is a state, any other I/O failure an error.
pub(super) fn file_state(path: &Path, pinned_sha256: &str) -> Result<FileState> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(source) => {
            return Err(EngineError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher).map_err(|source| EngineError::Io {
        path: path.to_owned(),
        source,
    })?;
    let actual = hex::encode(hasher.finalize());
    Ok(if actual == pinned_sha256 {
        FileState::Valid
    } else {
        FileState::WrongHash(actual)
    })
}

/// Which side of [`copy_hashed`] failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CopyError {
    #[error("reading: {0}")]
    Read(#[source] io::Error),
    #[error("writing: {0}")]
    Write(#[source] io::Error),
}

/// Copies `from` into `to` and returns the SHA-256 (lower-case hex) of what was copied;
/// `progress` sees the size of every chunk.
pub(super) fn copy_hashed(
    mut from: impl Read,
    to: &mut impl Write,
    mut progress: impl FnMut(usize),
) -> std::result::Result<String, CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        progress(n);
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of the three bytes "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn states_of_a_valid_a_changed_and_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        assert_eq!(file_state(&path, ABC).unwrap(), FileState::Missing);
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(file_state(&path, ABC).unwrap(), FileState::Valid);
        std::fs::write(&path, b"abd").unwrap();
        let FileState::WrongHash(actual) = file_state(&path, ABC).unwrap() else {
            panic!("a changed byte went unnoticed");
        };
        assert_ne!(actual, ABC);
        assert_eq!(actual.len(), 64);
    }

    #[test]
    fn copy_hashes_what_it_copies_and_reports_progress() {
        let mut out = Vec::new();
        let mut seen = 0;
        let sha = copy_hashed(&b"abc"[..], &mut out, |n| seen += n).unwrap();
        assert_eq!(sha, ABC);
        assert_eq!(out, b"abc");
        assert_eq!(seen, 3);
    }
}
