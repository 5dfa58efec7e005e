//! Parity with InsightFace run by onnxruntime (`scripts/golden/make_golden_arcface.py`):
//! the network alone on the golden aligned crops, our alignment against cv2's crops, and
//! both together from the golden SCRFD keypoints, and the whole pipeline from the photo
//! (our SCRFD → our alignment → our network), against `tests/golden/arcface.json`.
//! No Python runs here: the golden files are committed.
//!
//! Photos through `worker::fixtures` (the South-Asian ones in tests of their own);
//! `MODEL_DIR` holds `w600k_mbf.onnx`; `ARCFACE_GOLDEN` overrides the golden file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use worker::engine::arcface::ArcFaceEmbedder;
use worker::engine::arcface::alignment::{norm_crop, norm_crop_matrix};
use worker::engine::pipeline::load_image;
use worker::engine::scrfd::{Scrfd, ScrfdConfig};
use worker::fixtures;
use worker::golden::{self, PhotoSet, Selection};

#[derive(Deserialize)]
struct Golden {
    images: BTreeMap<String, GoldenImage>,
}

#[derive(Deserialize)]
struct GoldenImage {
    faces: Vec<GoldenFace>,
}

#[derive(Deserialize)]
struct GoldenFace {
    kps: [[f32; 2]; 5],
    matrix: [[f64; 3]; 2],
    crop_sha256: String,
    crop: Option<String>,
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn golden() -> Golden {
    let path = env_path(
        "ARCFACE_GOLDEN",
        manifest().join("tests/golden/arcface.json"),
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); scripts/golden/generate_insightface.sh makes it",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("golden file parses")
}

fn embedder() -> ArcFaceEmbedder {
    let path = env_path("MODEL_DIR", manifest().join("../data/models")).join("w600k_mbf.onnx");
    ArcFaceEmbedder::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

/// The golden photos of one set: the committed ones, or the South-Asian ones.
fn in_set(image: &str, south_asian: bool) -> bool {
    image.starts_with(fixtures::SOUTH_ASIAN_PREFIX) == south_asian
}

/// The network alone: fed cv2's aligned crops, our embeddings point where onnxruntime's do
/// (cosine ≥ 0.9999, `worker::golden::arcface_network`).
#[test]
fn network_matches_onnxruntime_on_golden_crops() {
    let check = golden::arcface_network(&embedder(), None).unwrap();
    eprintln!("{} (vs {})", check.line(), check.reference);
    assert!(check.faces >= 10, "only {} golden crops", check.faces);
    assert!(check.passed, "{:#?}", check.problems);
}

/// Alignment alone: from the golden keypoints, the transform is skimage's and the crop
/// is cv2.warpAffine's: byte-identical for (nearly) every face, within 1 grey level on
/// average for the stored crops.
#[test]
fn alignment_matches_insightface_norm_crop() {
    check_alignment(false, 30);
}

#[test]
fn alignment_matches_insightface_norm_crop_south_asian() {
    if fixtures::south_asian("alignment_matches_insightface_norm_crop_south_asian").is_some() {
        check_alignment(true, 100);
    }
}

fn check_alignment(south_asian: bool, min_faces: usize) {
    let golden = golden();
    let crops_dir = manifest().join("tests/golden/arcface_crops");
    let (mut total, mut identical, mut worst_matrix) = (0usize, 0usize, 0f64);
    let mut worst_mean = (0f64, String::new());
    for (image, g) in &golden.images {
        if g.faces.is_empty() || !in_set(image, south_asian) {
            continue;
        }
        let photo = load_image(&fixtures::photo(image)).unwrap_or_else(|e| panic!("{image}: {e}"));
        for (i, face) in g.faces.iter().enumerate() {
            let m = norm_crop_matrix(&face.kps).unwrap();
            for (r, e) in m.iter().flatten().zip(face.matrix.iter().flatten()) {
                worst_matrix = worst_matrix.max((r - e).abs() / e.abs().max(1.0));
            }
            let crop = norm_crop(&photo, &face.kps).unwrap();
            total += 1;
            if hex::encode(Sha256::digest(crop.as_raw())) == face.crop_sha256 {
                identical += 1;
            }
            if let Some(name) = &face.crop {
                let want = image::open(crops_dir.join(name)).unwrap().to_rgb8();
                let diff: u64 = crop
                    .as_raw()
                    .iter()
                    .zip(want.as_raw())
                    .map(|(a, b)| u64::from(a.abs_diff(*b)))
                    .sum();
                let mean = diff as f64 / crop.as_raw().len() as f64;
                if mean >= worst_mean.0 {
                    worst_mean = (mean, format!("{image}#{i}"));
                }
            }
        }
    }
    eprintln!(
        "alignment: {identical}/{total} crops byte-identical to cv2's; worst mean abs diff \
         {:.4} ({}); worst relative matrix difference {worst_matrix:.2e}",
        worst_mean.0, worst_mean.1
    );
    assert!(total >= min_faces, "only {total} golden faces");
    assert!(worst_matrix < 1e-9, "transform differs by {worst_matrix}");
    assert!(
        worst_mean.0 <= 1.0,
        "crop {} differs by {} on average",
        worst_mean.1,
        worst_mean.0
    );
    assert!(
        identical * 100 >= total * 95,
        "only {identical} of {total} crops byte-identical"
    );
}

/// Alignment and network together, every golden face: embeddings from the golden
/// keypoints on our decoded photo, one batch per photo (cosine ≥ 0.999).
#[test]
fn end_to_end_from_golden_keypoints() {
    check_end_to_end(PhotoSet::Committed, 30);
}

#[test]
fn end_to_end_from_golden_keypoints_south_asian() {
    if fixtures::south_asian("end_to_end_from_golden_keypoints_south_asian").is_some() {
        check_end_to_end(PhotoSet::SouthAsian, 100);
    }
}

fn check_end_to_end(set: PhotoSet, min_faces: usize) {
    let check = golden::arcface_from_keypoints(&embedder(), Selection::all(set)).unwrap();
    eprintln!("{} (vs {})", check.line(), check.reference);
    assert!(
        check.faces >= min_faces,
        "only {} golden faces",
        check.faces
    );
    assert!(check.passed, "{:#?}", check.problems);
}

/// The whole ArcFace pipeline from the photo: our SCRFD finds the faces and their
/// keypoints, our alignment and network embed them; each golden face's embedding is
/// matched by its box. Cosine ≥ 0.999 for every face.
#[test]
fn end_to_end_from_the_photo_through_scrfd() {
    check_through_scrfd(PhotoSet::Committed, 30);
}

#[test]
fn end_to_end_from_the_photo_through_scrfd_south_asian() {
    if fixtures::south_asian("end_to_end_from_the_photo_through_scrfd_south_asian").is_some() {
        check_through_scrfd(PhotoSet::SouthAsian, 100);
    }
}

fn check_through_scrfd(set: PhotoSet, min_faces: usize) {
    let scrfd_file =
        env_path("MODEL_DIR", manifest().join("../data/models")).join("scrfd_500m_bnkps.onnx");
    // The golden generator runs SCRFD at the photo's own resolution only.
    let scrfd = Scrfd::load_with(
        &scrfd_file,
        &Device::Cpu,
        true,
        ScrfdConfig {
            overview_side: 0,
            ..ScrfdConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("load {}: {e}", scrfd_file.display()));
    let check = golden::arcface_through_scrfd(&embedder(), &scrfd, Selection::all(set)).unwrap();
    eprintln!("{} (vs {})", check.line(), check.reference);
    assert!(
        check.faces >= min_faces,
        "only {} golden faces",
        check.faces
    );
    assert!(check.passed, "{:#?}", check.problems);
}
