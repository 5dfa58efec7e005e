//! Where tests, benchmarks and examples find the face photos: the one lookup, so that no
//! test carries a path of its own.
//!
//! - The MIT-licensed photos are committed under `worker/tests/fixtures/faces`
//!   (`people/`, `groups/`, `edge/`, described by its `labels.json`).
//! - The South-Asian set may not be committed (its licence is unknown). It is looked for
//!   at `$SOUTH_ASIAN_DIR`, else at `../shared/fixtures/faces/south_asian` beside the
//!   checkout; its labels are committed (`worker/tests/fixtures/south_asian.json`). Its
//!   photos are named `south_asian/…` everywhere (labels, golden files), as they sit
//!   beside the others in the shared folder.

use std::path::{Path, PathBuf};

/// The prefix that names a photo of the South-Asian set.
pub const SOUTH_ASIAN_PREFIX: &str = "south_asian/";

/// Overrides where the South-Asian set is looked for.
pub const SOUTH_ASIAN_DIR_VAR: &str = "SOUTH_ASIAN_DIR";

/// Overrides where the worker crate's folder (with `tests/fixtures` and `tests/golden`)
/// is: a binary copied to another machine (the GPU device check) finds the checkout
/// there rather than at the path it was built in.
pub const WORKER_DIR_VAR: &str = "WORKER_CRATE_DIR";

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The worker crate's folder: `$WORKER_CRATE_DIR`, else where it was built.
pub fn worker_dir() -> PathBuf {
    match std::env::var_os(WORKER_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    }
}

/// The committed golden files (`mtcnn.json`, `dlib.json`, `arcface.json`,
/// `arcface_crops/`).
pub fn golden_dir() -> PathBuf {
    worker_dir().join("tests/golden")
}

/// The committed photos (`people/`, `groups/`, `edge/`, `labels.json`).
pub fn faces_dir() -> PathBuf {
    worker_dir().join("tests/fixtures/faces")
}

/// Where the South-Asian set is looked for (it may not be there: see [`south_asian`]).
pub fn south_asian_dir() -> PathBuf {
    match std::env::var_os(SOUTH_ASIAN_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => worker_dir().join("../../shared/fixtures/faces/south_asian"),
    }
}

/// Whether the South-Asian set is present (its `people/` folder exists).
pub fn south_asian_present() -> bool {
    south_asian_dir().join("people").is_dir()
}

/// The South-Asian set for the test `test`, or `None` when it is absent outside CI: the
/// test then returns early and says so (`scripts/test.sh` reports it as NOT RUN). With
/// `CI=true` a missing set fails the test, as no test may pass without having run.
///
/// # Panics
///
/// When the set is missing and `CI=true`.
pub fn south_asian(test: &str) -> Option<PathBuf> {
    let dir = south_asian_dir();
    if south_asian_present() {
        return Some(dir);
    }
    let how = format!(
        "the South-Asian set is not at {} (put it at ../shared/fixtures/faces/south_asian \
         beside the checkout or set {SOUTH_ASIAN_DIR_VAR})",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {how}");
    }
    eprintln!("NOT RUN: {test}: {how}");
    None
}

/// The file of a photo named as in the labels and golden files: `south_asian/…` in the
/// South-Asian set, anything else among the committed photos.
pub fn photo(name: &str) -> PathBuf {
    match name.strip_prefix(SOUTH_ASIAN_PREFIX) {
        Some(rest) => south_asian_dir().join(rest),
        None => faces_dir().join(name),
    }
}

/// The bytes of a photo named as in [`photo`].
pub fn read(name: &str) -> Result<Vec<u8>, FixtureError> {
    let path = photo(name);
    std::fs::read(&path).map_err(|source| FixtureError::Read { path, source })
}

/// `labels.json` of the committed photos: `people`, `groups`, `edge`.
pub fn labels() -> Result<serde_json::Value, FixtureError> {
    read_json(&faces_dir().join("labels.json"))
}

/// The South-Asian set's labels: `people` and `groups` (with face boxes).
pub fn south_asian_labels() -> Result<serde_json::Value, FixtureError> {
    read_json(&worker_dir().join("tests/fixtures/south_asian.json"))
}

fn read_json(path: &Path) -> Result<serde_json::Value, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| FixtureError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels and the committed photos are the same set: a photo copied without its
    /// label, or a label whose photo was left behind, shows here.
    #[test]
    fn the_labels_name_exactly_the_committed_photos() {
        let labels = labels().unwrap();
        let mut labelled: Vec<String> = Vec::new();
        for photos in labels["people"].as_object().unwrap().values() {
            labelled.extend(
                photos
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string()),
            );
        }
        labelled.extend(labels["groups"].as_object().unwrap().keys().cloned());
        labelled.extend(labels["edge"].as_object().unwrap().keys().cloned());
        labelled.sort();

        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("jpg" | "jpeg" | "png")
                ) {
                    let rel = path.strip_prefix(root).unwrap();
                    out.push(rel.to_str().unwrap().replace('\\', "/"));
                }
            }
        }
        let mut committed = Vec::new();
        walk(&faces_dir(), &faces_dir(), &mut committed);
        committed.sort();
        assert_eq!(labelled, committed);
        assert_eq!(committed.len(), 24);
    }

    #[test]
    fn south_asian_names_resolve_into_the_set() {
        assert_eq!(
            photo("south_asian/groups/a.jpg"),
            south_asian_dir().join("groups/a.jpg")
        );
        assert_eq!(photo("groups/a.jpg"), faces_dir().join("groups/a.jpg"));
        let labels = south_asian_labels().unwrap();
        assert!(labels["people"].as_object().unwrap().len() >= 15);
    }
}
