//! Parity with the real dlib (`dlib-bin` + `face_recognition_models`): landmarks, chips
//! and descriptors against `tests/golden/dlib.json`, produced by dlib's Python binding
//! on the fixture photos. No Python runs here: the golden file is committed.
//!
//! The committed photos are always checked, the South-Asian ones when present
//! (`worker::fixtures`). Overrides: `MODELS_DIR` (weights), `DLIB_GOLDEN` (golden file).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Device;
use serde::Deserialize;
use worker::engine::dlib::face_chip::face_chip;
use worker::engine::dlib::resnet::FaceDescriptor;
use worker::engine::dlib::shape_predictor::{DlibRect, ShapePredictor};
use worker::engine::pipeline::load_image;
use worker::fixtures;

#[derive(Deserialize)]
struct Golden {
    generator: String,
    faces: Vec<GoldenFace>,
}

#[derive(Deserialize)]
struct GoldenFace {
    image: String,
    rect: [i64; 4],
    parts: [[i64; 2]; 5],
    descriptor: Vec<f64>,
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dir_from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn golden() -> Golden {
    let path = dir_from_env("DLIB_GOLDEN", manifest().join("tests/golden/dlib.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); it is generated with dlib's Python binding",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("golden file parses")
}

#[test]
fn landmarks_and_descriptors_match_dlib() {
    check_parity(false);
}

#[test]
fn landmarks_and_descriptors_match_dlib_south_asian() {
    if fixtures::south_asian("landmarks_and_descriptors_match_dlib_south_asian").is_some() {
        check_parity(true);
    }
}

/// Every golden face of one set (the committed photos, or the South-Asian ones).
fn check_parity(south_asian: bool) {
    let mut golden = golden();
    golden
        .faces
        .retain(|f| f.image.starts_with(fixtures::SOUTH_ASIAN_PREFIX) == south_asian);
    assert!(!golden.faces.is_empty(), "golden file lists no faces");
    let models = dir_from_env("MODELS_DIR", manifest().join("../data/models"));
    let sp = ShapePredictor::load(&models.join("shape_predictor_5_face_landmarks.dat"))
        .expect("load shape predictor");
    let net = FaceDescriptor::load(
        &models.join("dlib_face_recognition_resnet_model_v1.dat"),
        &Device::Cpu,
    )
    .expect("load descriptor net");

    let mut images = HashMap::new();
    let mut max_px = 0i64;
    let mut off_by_more: Vec<String> = Vec::new();
    let mut chips = Vec::new();
    for face in &golden.faces {
        let img = images.entry(face.image.clone()).or_insert_with(|| {
            let path = fixtures::photo(&face.image);
            // The engine's own decoding: what the service feeds the predictor.
            load_image(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        });
        let [left, top, right, bottom] = face.rect;
        let parts = sp.predict(
            img,
            DlibRect {
                left,
                top,
                right,
                bottom,
            },
        );
        let dev = parts
            .iter()
            .zip(&face.parts)
            .flat_map(|(a, b)| [(a[0] - b[0]).abs(), (a[1] - b[1]).abs()])
            .max()
            .unwrap_or(0);
        if dev > 1 {
            off_by_more.push(format!(
                "{} rect {:?}: {parts:?} vs dlib {:?}",
                face.image, face.rect, face.parts
            ));
        }
        max_px = max_px.max(dev);
        // The descriptor is checked on the chip of dlib's own landmarks so that the two
        // comparisons stay independent.
        chips.push(face_chip(img, &face.parts));
    }

    let descriptors = net.embed(&chips).expect("embed");
    assert_eq!(descriptors.len(), golden.faces.len());
    let mut max_l2 = 0f64;
    let mut l2_over: Vec<String> = Vec::new();
    for (face, d) in golden.faces.iter().zip(&descriptors) {
        assert_eq!(face.descriptor.len(), 128);
        let l2 = d
            .iter()
            .zip(&face.descriptor)
            .map(|(&a, &b)| (f64::from(a) - b).powi(2))
            .sum::<f64>()
            .sqrt();
        if l2 > 0.01 {
            l2_over.push(format!("{} rect {:?}: L2 {l2:.4}", face.image, face.rect));
        }
        max_l2 = max_l2.max(l2);
    }
    println!(
        "{} faces vs {}: max landmark deviation {max_px} px, max descriptor L2 {max_l2:.3e}",
        golden.faces.len(),
        golden.generator
    );
    // JPEGs are decoded by libjpeg-turbo as PIL does (`pipeline::load_image`), so our
    // pixels are dlib's: every landmark within 1 px and every descriptor within
    // L2 0.01 of dlib's.
    assert!(
        off_by_more.is_empty(),
        "landmarks beyond 1 px:\n{off_by_more:#?}"
    );
    assert!(
        l2_over.is_empty(),
        "descriptors beyond L2 0.01:\n{l2_over:#?}"
    );
}
