//! MTCNN parity with facenet-pytorch 2.6.0 on the real weights and the fixture photos.
//!
//! The golden file `tests/golden/mtcnn.json` holds what facenet-pytorch's `MTCNN.detect`
//! returned for each fixture (PIL `.convert('RGB')`). Photos are decoded as the engine
//! does (JPEG through libjpeg-turbo, like PIL); boxes are compared by IoU and landmarks by
//! pixel distance on every face (`worker::golden::mtcnn`, which the GPU device check
//! runs too): IoU ≥ 0.95 and landmarks within 2 px.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::Device;
use image::RgbImage;
use worker::engine::mtcnn::{Detection, Mtcnn};
use worker::engine::pipeline::load_image;
use worker::fixtures;
use worker::golden::{self, PhotoSet, Selection};

fn models_dir() -> PathBuf {
    std::env::var_os("MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

fn mtcnn() -> &'static Mtcnn {
    static MODEL: OnceLock<Mtcnn> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = models_dir();
        Mtcnn::load(
            &dir.join("pnet.pt"),
            &dir.join("rnet.pt"),
            &dir.join("onet.pt"),
            &Device::Cpu,
        )
        .expect("MTCNN weights in data/models (run the model downloader)")
    })
}

fn load(rel: &str) -> RgbImage {
    let path = fixtures::photo(rel);
    // The engine's own decoding: what the service feeds the detector.
    load_image(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parity with facenet-pytorch: the same number of faces on every fixture, and every face
/// within the tolerances of `worker::golden` (IoU 0.95, 2 px). (Measured: IoU deficit
/// 0.0000, landmarks 0.000 px, probabilities within 1e-6: the same pixels and the same
/// arithmetic up to float rounding of the network outputs.)
#[test]
fn matches_facenet_pytorch_golden_detections() {
    check_parity(PhotoSet::Committed, 35);
}

/// The same on the South-Asian set, when it is present.
#[test]
fn matches_facenet_pytorch_golden_detections_south_asian() {
    if fixtures::south_asian("matches_facenet_pytorch_golden_detections_south_asian").is_some() {
        check_parity(PhotoSet::SouthAsian, 160);
    }
}

fn check_parity(set: PhotoSet, min_faces: usize) {
    let check = golden::mtcnn(mtcnn(), Selection::all(set)).unwrap();
    println!("{} (vs {})", check.line(), check.reference);
    assert!(check.passed, "{:#?}", check.problems);
    assert!(
        check.faces >= min_faces,
        "only {} faces compared",
        check.faces
    );
}

/// Independent of the golden file: the group photo has six clearly visible faces, each with
/// its landmarks inside its box in the facenet order (eyes above nose above mouth).
/// facenet-pytorch itself also reports two weaker detections (p ≈ 0.87 and 0.86) there, so
/// only the confident ones are counted.
#[test]
fn finds_the_six_people() {
    let faces: Vec<Detection> = mtcnn().detect(&load("groups/six_people.jpg")).unwrap();
    assert!(
        faces.windows(2).all(|w| w[0].score >= w[1].score),
        "not sorted by score"
    );
    let confident: Vec<&Detection> = faces.iter().filter(|f| f.score > 0.95).collect();
    assert_eq!(confident.len(), 6, "{faces:#?}");
    for f in confident {
        let [x1, y1, x2, y2] = f.bbox;
        assert!(x2 - x1 > 50.0 && y2 - y1 > 50.0, "{f:?}");
        for [x, y] in f.landmarks {
            assert!(
                (x1..=x2).contains(&x) && (y1..=y2).contains(&y),
                "landmark outside box: {f:?}"
            );
        }
        let [le, re, nose, ml, mr] = f.landmarks;
        assert!(le[0] < re[0] && ml[0] < mr[0], "left/right swapped: {f:?}");
        assert!(
            le[1].max(re[1]) < nose[1] && nose[1] < ml[1].min(mr[1]),
            "vertical order: {f:?}"
        );
    }
}

#[test]
fn black_image_has_no_faces() {
    assert!(mtcnn().detect(&RgbImage::new(640, 480)).unwrap().is_empty());
}

#[test]
fn tiny_image_has_no_faces() {
    assert!(mtcnn().detect(&RgbImage::new(10, 10)).unwrap().is_empty());
    assert!(mtcnn().detect(&RgbImage::new(0, 0)).unwrap().is_empty());
}

/// Timing on the CPU; run with `--ignored --nocapture` in an optimised build.
#[test]
#[ignore]
fn timing() {
    let model = mtcnn();
    let six = load("groups/six_people.jpg");
    let wide = image::imageops::resize(
        &load("groups/obama_and_biden.jpg"),
        1366,
        768,
        image::imageops::FilterType::Triangle,
    );
    for (name, image) in [
        ("six_people 1280x886", &six),
        ("obama_and_biden 1366x768", &wide),
    ] {
        model.detect(image).unwrap();
        let runs = 5;
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..runs {
            n = model.detect(image).unwrap().len();
        }
        println!(
            "{name}: {n} faces, {:.1} ms per image",
            start.elapsed().as_secs_f64() * 1000.0 / runs as f64
        );
    }
}
