//! SCRFD-500M parity with InsightFace's detector run by onnxruntime, on the real model
//! file and every fixture photo in `tests/golden/arcface.json` (`box`, `score`, `kps` per
//! face, made by `scripts/golden/make_golden_arcface.py` at the photo's own size padded to
//! multiples of 32, which is what `Scrfd::detect` does below its size cap).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;
use image::RgbImage;
use serde::Deserialize;
use worker::engine::pipeline::load_image;
use worker::engine::scrfd::tiling::Tile;
use worker::engine::scrfd::{Scrfd, ScrfdConfig, ScrfdDetection};
use worker::fixtures;

const MAX_PX: f32 = 0.5;
const MAX_SCORE_DIFF: f32 = 1e-3;
const MODEL_FILE: &str = "scrfd_500m_bnkps.onnx";

/// `$MODEL_DIR/scrfd_500m_bnkps.onnx` (`data/models` by default, as `scripts/test.sh`
/// lays it out).
fn model_path() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"),
            PathBuf::from,
        )
        .join(MODEL_FILE)
}

fn scrfd() -> &'static Scrfd {
    static MODEL: OnceLock<Scrfd> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = model_path();
        Scrfd::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn load(rel: &str) -> RgbImage {
    let path = fixtures::photo(rel);
    load_image(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct Golden {
    generator: String,
    images: BTreeMap<String, GoldenImage>,
}

#[derive(Deserialize)]
struct GoldenImage {
    width: u32,
    height: u32,
    faces: Vec<GoldenFace>,
}

#[derive(Deserialize)]
struct GoldenFace {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    kps: [[f32; 2]; 5],
}

fn golden() -> Golden {
    let path = std::env::var_os("ARCFACE_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/arcface.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden file format")
}

/// Largest coordinate difference between two boxes.
fn box_diff(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn kps_diff(a: &[[f32; 2]; 5], b: &[[f32; 2]; 5]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| [(p[0] - q[0]).abs(), (p[1] - q[1]).abs()])
        .fold(0.0, f32::max)
}

/// The same faces as onnxruntime on every fixture photo; boxes and keypoints within
/// 0.5 px, scores within 1e-3.
#[test]
fn matches_onnxruntime_golden_detections() {
    check_golden(false, 30);
}

/// The same on the South-Asian set, when it is present.
#[test]
fn matches_onnxruntime_golden_detections_south_asian() {
    if fixtures::south_asian("matches_onnxruntime_golden_detections_south_asian").is_some() {
        check_golden(true, 100);
    }
}

fn check_golden(south_asian: bool, min_faces: usize) {
    let golden = golden();
    println!("golden generator: {}", golden.generator);
    let (mut faces, mut worst_box, mut worst_kps, mut worst_score) = (0, 0.0f32, 0.0f32, 0.0f32);
    let mut problems = Vec::new();
    let start = Instant::now();
    let mut photos = 0;
    for (rel, expected) in &golden.images {
        if rel.starts_with(fixtures::SOUTH_ASIAN_PREFIX) != south_asian {
            continue;
        }
        photos += 1;
        let image = load(rel);
        assert_eq!(
            (image.width(), image.height()),
            (expected.width, expected.height),
            "{rel}: size"
        );
        let found = scrfd().detect(&image).unwrap();
        if found.len() != expected.faces.len() {
            problems.push(format!(
                "{rel}: {} faces, onnxruntime {}",
                found.len(),
                expected.faces.len()
            ));
            continue;
        }
        // Both lists are sorted by score; match each golden face to the nearest box so
        // that near-equal scores in a different order do not count as a difference.
        for face in &expected.faces {
            let Some(ours) = found.iter().min_by(|a, b| {
                box_diff(&a.bbox, &face.bbox).total_cmp(&box_diff(&b.bbox, &face.bbox))
            }) else {
                continue;
            };
            let (db, dk, ds) = (
                box_diff(&ours.bbox, &face.bbox),
                kps_diff(&ours.kps, &face.kps),
                (ours.score - face.score).abs(),
            );
            faces += 1;
            worst_box = worst_box.max(db);
            worst_kps = worst_kps.max(dk);
            worst_score = worst_score.max(ds);
            if db > MAX_PX || dk > MAX_PX || ds > MAX_SCORE_DIFF {
                problems.push(format!(
                    "{rel}: box off by {db:.3} px, keypoints {dk:.3} px, score {ds:.2e}"
                ));
            }
        }
    }
    println!(
        "{photos} photos, {faces} faces in {:.1} s: worst box {worst_box:.4} px, keypoints \
         {worst_kps:.4} px, score {worst_score:.2e}",
        start.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(faces >= min_faces, "only {faces} faces compared");
}

/// The CPU's NHWC layers and candle-nn's modules (CUDA's path) give the same head
/// outputs on the CPU.
#[test]
fn cpu_layers_agree_with_candle_nn() {
    let candle = Scrfd::load_with(&model_path(), &Device::Cpu, false, ScrfdConfig::default())
        .expect("model");
    let image = image::imageops::resize(
        &load("groups/six_people.jpg"),
        320,
        221,
        image::imageops::FilterType::Triangle,
    );
    let tile = Tile {
        x: 0,
        y: 0,
        w: image.width(),
        h: image.height(),
        own: [0.0, 0.0, 320.0, 221.0],
    };
    let ours = scrfd().forward_region(&image, &tile).unwrap();
    let theirs = candle.forward_region(&image, &tile).unwrap();
    let mut worst = 0.0f32;
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!((a.stride, a.h, a.w), (b.stride, b.h, b.w));
        for (x, y) in [(&a.scores, &b.scores), (&a.bbox, &b.bbox), (&a.kps, &b.kps)] {
            assert_eq!(x.len(), y.len());
            worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(worst, f32::max);
        }
    }
    println!("largest difference of a head output: {worst:.2e}");
    assert!(worst < 1e-3, "NHWC and candle-nn differ by {worst}");
    // And the faces agree.
    let (a, b) = (
        scrfd().detect(&image).unwrap(),
        candle.detect(&image).unwrap(),
    );
    assert_eq!(a.len(), b.len());
}

/// Independent of the golden file: six faces, each with its keypoints inside its box in
/// SCRFD's order (eyes above nose above mouth, left before right).
#[test]
fn finds_the_six_people() {
    let faces = scrfd().detect(&load("groups/six_people.jpg")).unwrap();
    assert!(
        faces.windows(2).all(|w| w[0].score >= w[1].score),
        "not sorted"
    );
    assert_eq!(faces.len(), 6, "{faces:#?}");
    for f in &faces {
        check_face_shape(f);
    }
}

fn check_face_shape(f: &ScrfdDetection) {
    let [x1, y1, x2, y2] = f.bbox;
    for [x, y] in f.kps {
        assert!(
            (x1..=x2).contains(&x) && (y1..=y2).contains(&y),
            "keypoint outside box: {f:?}"
        );
    }
    let [le, re, nose, ml, mr] = f.kps;
    assert!(le[0] < re[0] && ml[0] < mr[0], "left/right swapped: {f:?}");
    assert!(
        le[1].max(re[1]) < nose[1] && nose[1] < ml[1].min(mr[1]),
        "vertical order: {f:?}"
    );
}

/// A classroom-sized photo (2000×1125) whose six faces are back-row sized (about 30 px):
/// the photo goes through at full resolution, and every face is found.
#[test]
fn finds_back_row_sized_faces_in_a_large_photo() {
    let six = load("groups/six_people.jpg");
    let small = image::imageops::resize(&six, 400, 277, image::imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(2000, 1125, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut canvas, &small, 1500, 800);
    let faces = scrfd().detect(&canvas).unwrap();
    let widths: Vec<f32> = faces.iter().map(|f| f.bbox[2] - f.bbox[0]).collect();
    println!("face widths: {widths:?}");
    assert_eq!(faces.len(), 6, "{faces:#?}");
    for f in &faces {
        assert!(f.bbox[0] >= 1490.0 && f.bbox[1] >= 790.0, "{f:?}");
        assert!((15.0..=50.0).contains(&(f.bbox[2] - f.bbox[0])), "{f:?}");
    }
}

/// Above the size cap the photo is cut into overlapping full-resolution tiles: the faces
/// found are those of a single pass, each once.
#[test]
fn tiled_detection_finds_the_same_faces_once() {
    let six = load("groups/six_people.jpg");
    let whole = scrfd().detect(&six).unwrap();
    let tiled = Scrfd::load_with(
        &model_path(),
        &Device::Cpu,
        true,
        ScrfdConfig {
            max_side: 512,
            ..ScrfdConfig::default()
        },
    )
    .unwrap()
    .detect(&six)
    .unwrap();
    assert_eq!(tiled.len(), whole.len(), "{tiled:#?}");
    for w in &whole {
        let nearest = tiled
            .iter()
            .map(|t| box_diff(&t.bbox, &w.bbox))
            .fold(f32::INFINITY, f32::min);
        // Different zero padding around the face: close, not equal.
        assert!(
            nearest < 4.0,
            "{w:?}: nearest tiled box off by {nearest} px"
        );
    }
}

/// A registration photo where the face fills the frame: with the half-size black margin
/// the face is found, keypoints in the original photo's coordinates.
#[test]
fn padded_detection_finds_a_face_filling_the_frame() {
    let six = load("groups/six_people.jpg");
    let face = scrfd().detect(&six).unwrap()[0];
    let [x1, y1, x2, y2] = face.bbox.map(|v| v.max(0.0) as u32);
    let crop = image::imageops::crop_imm(&six, x1, y1, x2 - x1, y2 - y1).to_image();
    let found = scrfd().detect_padded(&crop).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    check_face_shape(&found[0]);
    let moved = face.transformed(-(x1 as f32), -(y1 as f32), 1.0);
    assert!(
        kps_diff(&found[0].kps, &moved.kps) < 5.0,
        "{found:?} vs {moved:?}"
    );
}

#[test]
fn blank_and_empty_images_have_no_faces() {
    assert!(scrfd().detect(&RgbImage::new(640, 480)).unwrap().is_empty());
    assert!(scrfd().detect(&RgbImage::new(10, 10)).unwrap().is_empty());
    assert!(scrfd().detect(&RgbImage::new(0, 0)).unwrap().is_empty());
    assert!(
        scrfd()
            .detect_padded(&RgbImage::new(0, 0))
            .unwrap()
            .is_empty()
    );
}

/// Timing on the CPU (median of 5 after a warm-up), at 1366×768 and 2000×1125; run with
/// `--ignored --nocapture`. Compare with `scripts/bench_reference_insightface.py`.
#[test]
#[ignore]
fn timing() {
    let six = load("groups/six_people.jpg");
    for (w, h) in [(1366, 768), (2000, 1125)] {
        let img = image::imageops::resize(&six, w, h, image::imageops::FilterType::Triangle);
        scrfd().detect(&img).unwrap();
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                scrfd().detect(&img).unwrap();
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("SCRFD {w}x{h}: {:.1} ms (median of 5)", times[2]);
    }
}
