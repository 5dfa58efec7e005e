//! SCRFD-500M parity with InsightFace's detector run by onnxruntime, on the real model
//! file and every fixture photo in `tests/golden/arcface.json` (`box`, `score`, `kps` per
//! face, made by `scripts/golden/make_golden_arcface.py` at the photo's own size padded to
//! multiples of 32, which is what `Scrfd::detect` does below its size cap).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;
use image::RgbImage;
use worker::engine::pipeline::load_image;
use worker::engine::scrfd::tiling::Tile;
use worker::engine::scrfd::{Scrfd, ScrfdConfig, ScrfdDetection};
use worker::fixtures;
use worker::golden::{self, PhotoSet, Selection, box_diff, kps_diff};

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

/// SCRFD at the photo's own resolution only, as the golden generator runs it (no
/// downscaled overview pass).
fn scrfd() -> &'static Scrfd {
    static MODEL: OnceLock<Scrfd> = OnceLock::new();
    MODEL.get_or_init(|| native_only(ScrfdConfig::default()))
}

fn native_only(config: ScrfdConfig) -> Scrfd {
    let path = model_path();
    Scrfd::load_with(
        &path,
        &Device::Cpu,
        true,
        ScrfdConfig {
            overview_side: 0,
            ..config
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A phone portrait: the face several hundred pixels wide. At full resolution SCRFD's
/// anchors are too small for it; the downscaled overview pass finds it, once.
#[test]
fn a_face_filling_a_large_photo_is_found_by_the_overview_pass() {
    let small = load("people/obama/obama1.jpg");
    let (w, h) = (small.width() * 4, small.height() * 4);
    let big = image::imageops::resize(&small, w, h, image::imageops::FilterType::Triangle);
    let with_overview = Scrfd::load(&model_path(), &Device::Cpu).unwrap();
    let found = with_overview.detect(&big).unwrap();
    assert_eq!(found.len(), 1, "{w}×{h}: {found:?}");
    check_face_shape(&found[0]);
    let width = found[0].bbox[2] - found[0].bbox[0];
    eprintln!(
        "{w}×{h}: face {width:.0} px wide; at full resolution only: {} faces",
        scrfd().detect(&big).unwrap().len()
    );
}

fn load(rel: &str) -> RgbImage {
    let path = fixtures::photo(rel);
    load_image(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same faces as onnxruntime on every fixture photo; boxes and keypoints within
/// 0.5 px, scores within 1e-3 (`worker::golden::scrfd`).
#[test]
fn matches_onnxruntime_golden_detections() {
    check_golden(PhotoSet::Committed, 30);
}

/// The same on the South-Asian set, when it is present.
#[test]
fn matches_onnxruntime_golden_detections_south_asian() {
    if fixtures::south_asian("matches_onnxruntime_golden_detections_south_asian").is_some() {
        check_golden(PhotoSet::SouthAsian, 100);
    }
}

fn check_golden(set: PhotoSet, min_faces: usize) {
    let start = Instant::now();
    let check = golden::scrfd(scrfd(), Selection::all(set)).unwrap();
    println!(
        "{} in {:.1} s (vs {})",
        check.line(),
        start.elapsed().as_secs_f64(),
        check.reference
    );
    assert!(check.passed, "{:#?}", check.problems);
    assert!(
        check.faces >= min_faces,
        "only {} faces compared",
        check.faces
    );
}

/// The CPU's NHWC layers and candle-nn's modules (CUDA's path) give the same head
/// outputs on the CPU.
#[test]
fn cpu_layers_agree_with_candle_nn() {
    let candle = Scrfd::load_with(
        &model_path(),
        &Device::Cpu,
        false,
        ScrfdConfig {
            overview_side: 0,
            ..ScrfdConfig::default()
        },
    )
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
    let tiled = native_only(ScrfdConfig {
        max_side: 512,
        ..ScrfdConfig::default()
    })
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
