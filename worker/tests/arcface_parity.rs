//! Parity with InsightFace run by onnxruntime (`scripts/golden/make_golden_arcface.py`):
//! the network alone on the golden aligned crops, our alignment against cv2's crops, and
//! both together from the golden SCRFD keypoints, against `tests/golden/arcface.json`.
//! No Python runs here: the golden files are committed.
//!
//! Photos through `worker::fixtures` (the South-Asian ones in tests of their own);
//! `MODEL_DIR` holds `w600k_mbf.onnx`; `ARCFACE_GOLDEN` overrides the golden file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use worker::engine::arcface::alignment::{norm_crop, norm_crop_matrix};
use worker::engine::arcface::{ArcFaceEmbedder, EMBEDDING_LEN};
use worker::engine::pipeline::load_image;
use worker::fixtures;

#[derive(Deserialize)]
struct Golden {
    generator: String,
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
    embedding: Vec<f32>,
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

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn faces(golden: &Golden) -> impl Iterator<Item = (&str, usize, &GoldenFace)> {
    golden.images.iter().flat_map(|(image, g)| {
        g.faces
            .iter()
            .enumerate()
            .map(move |(i, f)| (image.as_str(), i, f))
    })
}

/// The network alone: fed cv2's aligned crops, our embeddings point where onnxruntime's do.
#[test]
fn network_matches_onnxruntime_on_golden_crops() {
    let golden = golden();
    let crops_dir = manifest().join("tests/golden/arcface_crops");
    let (mut names, mut crops, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    for (image, i, face) in faces(&golden) {
        if let Some(name) = &face.crop {
            let crop = image::open(crops_dir.join(name))
                .unwrap_or_else(|e| panic!("crop {name}: {e}"))
                .to_rgb8();
            names.push(format!("{image}#{i}"));
            crops.push(crop);
            expected.push(&face.embedding);
        }
    }
    assert!(crops.len() >= 10, "only {} golden crops", crops.len());
    let ours = embedder().embed_crops(&crops).unwrap();
    let mut worst = (1.0f32, String::new());
    for ((name, e), o) in names.iter().zip(&expected).zip(&ours) {
        assert_eq!(o.len(), EMBEDDING_LEN);
        let c = cosine(o, e);
        if c < worst.0 {
            worst = (c, name.clone());
        }
    }
    eprintln!(
        "network alone: {} crops, worst cosine {:.7} ({}) vs {}",
        crops.len(),
        worst.0,
        worst.1,
        golden.generator
    );
    assert!(worst.0 >= 0.9999, "worst cosine {} at {}", worst.0, worst.1);
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
/// keypoints on our decoded photo, one batch per photo.
#[test]
fn end_to_end_from_golden_keypoints() {
    check_end_to_end(false, 30);
}

#[test]
fn end_to_end_from_golden_keypoints_south_asian() {
    if fixtures::south_asian("end_to_end_from_golden_keypoints_south_asian").is_some() {
        check_end_to_end(true, 100);
    }
}

fn check_end_to_end(south_asian: bool, min_faces: usize) {
    let golden = golden();
    let embedder = embedder();
    let mut worst = (1.0f32, String::new());
    let mut count = 0;
    for (image, g) in &golden.images {
        if g.faces.is_empty() || !in_set(image, south_asian) {
            continue;
        }
        let photo = load_image(&fixtures::photo(image)).unwrap_or_else(|e| panic!("{image}: {e}"));
        let kps: Vec<_> = g.faces.iter().map(|f| f.kps).collect();
        let ours = embedder.embed(&photo, &kps).unwrap();
        assert_eq!(ours.len(), g.faces.len());
        for (i, (o, f)) in ours.iter().zip(&g.faces).enumerate() {
            let c = cosine(o, &f.embedding);
            if c < worst.0 {
                worst = (c, format!("{image}#{i}"));
            }
            count += 1;
        }
    }
    eprintln!(
        "end to end: {count} faces, worst cosine {:.7} ({})",
        worst.0, worst.1
    );
    assert!(count >= min_faces, "only {count} golden faces");
    assert!(worst.0 >= 0.999, "worst cosine {} at {}", worst.0, worst.1);
}
