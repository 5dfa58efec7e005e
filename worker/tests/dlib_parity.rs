//! Parity with the real dlib (`dlib-bin` + `face_recognition_models`): landmarks, chips
//! and descriptors against `tests/golden/dlib.json`, produced by dlib's Python binding
//! on the fixture photos. No Python runs here: the golden file is committed.
//!
//! The committed photos are always checked, the South-Asian ones when present
//! (`worker::fixtures`). Overrides: `MODELS_DIR` (weights), `DLIB_GOLDEN` (golden file).

use std::path::PathBuf;

use candle_core::Device;
use worker::engine::dlib::resnet::FaceDescriptor;
use worker::engine::dlib::shape_predictor::ShapePredictor;
use worker::fixtures;
use worker::golden::{self, PhotoSet, Selection};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dir_from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

#[test]
fn landmarks_and_descriptors_match_dlib() {
    check_parity(PhotoSet::Committed);
}

#[test]
fn landmarks_and_descriptors_match_dlib_south_asian() {
    if fixtures::south_asian("landmarks_and_descriptors_match_dlib_south_asian").is_some() {
        check_parity(PhotoSet::SouthAsian);
    }
}

/// Every golden face of one set (the committed photos, or the South-Asian ones).
/// JPEGs are decoded by libjpeg-turbo as PIL does (`pipeline::load_image`), so our
/// pixels are dlib's: every landmark within 1 px and every descriptor within L2 0.01 of
/// dlib's (`worker::golden::dlib`).
fn check_parity(set: PhotoSet) {
    let models = dir_from_env("MODELS_DIR", manifest().join("../data/models"));
    let sp = ShapePredictor::load(&models.join("shape_predictor_5_face_landmarks.dat"))
        .expect("load shape predictor");
    let net = FaceDescriptor::load(
        &models.join("dlib_face_recognition_resnet_model_v1.dat"),
        &Device::Cpu,
    )
    .expect("load descriptor net");
    let check = golden::dlib(&sp, &net, Selection::all(set)).unwrap();
    println!("{} (vs {})", check.line(), check.reference);
    assert!(check.faces > 0, "golden file lists no faces");
    assert!(check.passed, "{:#?}", check.problems);
}
