//! `cargo bench -p worker --bench engine`: the face engine's speed on this machine.
//! Prints one JSON object (read by `scripts/bench.sh`): descriptor ms/face at batch 1
//! and 16, MTCNN ms per fixture photo, and whole-photo (detect + align + embed) ms.
//! `BENCH_ONLY=arcface` or `BENCH_ONLY=scrfd` measures that network alone, and
//! `BENCH_ONLY=classroom` the stages of one synthesised 30-face classroom photo (for
//! profiling; with `RAYON_NUM_THREADS=1`, what one of two worker processes spends).

use std::path::{Path, PathBuf};
use std::time::Instant;

use worker::engine::FaceEngine;
use worker::engine::arcface::ArcFaceEmbedder;
use worker::engine::dlib::face_chip::face_chip;
use worker::engine::dlib::resnet::FaceDescriptor;
use worker::engine::embedder::DlibEmbedder;
use worker::engine::model_files::verify_models;
use worker::engine::pipeline::load_image;
use worker::engine::scrfd::{
    Scrfd,
    tiling::{self, Tile},
};
use worker::fixtures;

/// ArcFace (MobileFaceNet) ms/face at batch 1 and 16 on the golden aligned crops, or
/// nulls when `w600k_mbf.onnx` is not in `model_dir`.
fn arcface_ms(model_dir: &Path, runs: usize) -> serde_json::Value {
    let path = model_dir.join("w600k_mbf.onnx");
    if !path.exists() {
        return serde_json::json!({ "batch1": null, "batch16": null, "missing": "w600k_mbf.onnx" });
    }
    let embedder = ArcFaceEmbedder::load(&path, &candle_core::Device::Cpu).expect("ArcFace");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/arcface_crops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden crops")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    files.sort();
    let crops: Vec<_> = files
        .iter()
        .map(|p| image::open(p).expect("crop").to_rgb8())
        .collect();
    let batch16: Vec<_> = crops.iter().cycle().take(16).cloned().collect();
    let b1 = median_ms(runs, || {
        embedder.embed_crops(&crops[..1]).unwrap();
    });
    let b16 = median_ms(runs, || {
        embedder.embed_crops(&batch16).unwrap();
    }) / 16.0;
    serde_json::json!({ "batch1": b1, "batch16": b16 })
}

/// SCRFD-500M (InsightFace's detector) ms per photo on `six` resized to 1366×768 (the
/// MTCNN figure's photo) and to a classroom-sized 2000×1125, or nulls when
/// `scrfd_500m_bnkps.onnx` is not in `model_dir`. `detector`: the whole detection (the
/// full-resolution pass beside the 640-pixel overview pass, decoding, NMS); `network`:
/// the network alone on the photo padded to multiples of 32, the work onnxruntime's
/// figure measures (`scripts/bench_reference_insightface.py`).
fn scrfd_ms(model_dir: &Path, six: &image::RgbImage, runs: usize) -> [serde_json::Value; 2] {
    let Some(file) = Some(model_dir.join("scrfd_500m_bnkps.onnx")).filter(|p| p.exists()) else {
        return [serde_json::Value::Null, serde_json::Value::Null];
    };
    let scrfd = Scrfd::load(&file, &candle_core::Device::Cpu).expect("scrfd");
    [(1366, 768), (2000, 1125)].map(|(w, h)| {
        let img = image::imageops::resize(six, w, h, image::imageops::FilterType::Triangle);
        // One tile of the whole photo, as the detector plans it below its size cap.
        let [whole] = <[Tile; 1]>::try_from(tiling::plan(w, h, u32::MAX, 0.0)).expect("one tile");
        let detector = median_ms(runs, || {
            scrfd.detect(&img).unwrap();
        });
        let network = median_ms(runs, || {
            scrfd.forward_region(&img, &whole).unwrap();
        });
        serde_json::json!({ "detector": detector, "network": network })
    })
}

/// The stages of an attendance job on one synthesised 30-face 2000×1125 classroom
/// photo with the default pipeline (MTCNN + dlib): decoding, detection, landmarks and
/// chips, the descriptors.
fn classroom_ms(model_dir: &Path, runs: usize) -> serde_json::Value {
    let paths = verify_models(model_dir).expect("models (run attendance-worker fetch-models)");
    let device = candle_core::Device::Cpu;
    let engine = FaceEngine::load(&paths, device.clone()).expect("engine");
    let dlib = DlibEmbedder::load(&paths, &device).expect("embedder");
    let resnet = FaceDescriptor::load(&paths.resnet, &device).expect("resnet");
    let manifest = worker::classroom::synthesise(1, 30).expect("classroom photo");
    let jpeg = &manifest.photos[0].jpeg;
    let decode = median_ms(runs, || {
        engine.decode(jpeg, "classroom").unwrap();
    });
    let image = engine.decode(jpeg, "classroom").unwrap().image;
    let faces = engine.detect(&image).expect("detect");
    let detect = median_ms(runs, || {
        engine.detect(&image).unwrap();
    });
    let chips = || -> Vec<_> {
        faces
            .iter()
            .map(|f| face_chip(&image, &dlib.landmarks(&image, f)))
            .collect()
    };
    let align = median_ms(runs, || {
        chips();
    });
    let chips = chips();
    let descriptors = median_ms(runs, || {
        resnet.embed(&chips).unwrap();
    });
    serde_json::json!({
        "runs": runs,
        "threads": rayon::current_num_threads(),
        "faces": faces.len(),
        "decode_ms": decode,
        "mtcnn_ms": detect,
        "landmarks_and_chips_ms": align,
        "descriptors_ms": descriptors,
    })
}

/// Median wall time of `runs` calls, in milliseconds, after one warm-up call.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let model_dir =
        std::env::var_os("MODEL_DIR").map_or_else(|| PathBuf::from("data/models"), PathBuf::from);
    let model_dir = if model_dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(model_dir)
    } else {
        model_dir
    };
    // BENCH_ONLY=arcface or BENCH_ONLY=scrfd: that network alone, to profile it.
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("arcface") => {
            let report = serde_json::json!({
                "runs": runs,
                "arcface_ms_per_face": arcface_ms(&model_dir, runs),
            });
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
            return;
        }
        Ok("scrfd") => {
            let six =
                load_image(&fixtures::photo("groups/six_people.jpg")).expect("six_people.jpg");
            let [hd, classroom] = scrfd_ms(&model_dir, &six, runs);
            let report = serde_json::json!({
                "runs": runs,
                "scrfd_ms_1366x768": hd,
                "scrfd_ms_2000x1125": classroom,
            });
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
            return;
        }
        Ok("classroom") => {
            let report = classroom_ms(&model_dir, runs);
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
            return;
        }
        _ => {}
    }
    let paths = verify_models(&model_dir).expect("models (run attendance-worker fetch-models)");
    let device = candle_core::Device::Cpu;
    let engine = FaceEngine::load(&paths, device.clone()).expect("engine");
    let dlib = DlibEmbedder::load(&paths, &device).expect("embedder");
    let resnet = FaceDescriptor::load(&paths.resnet, &device).expect("resnet");

    let six = load_image(&fixtures::photo("groups/six_people.jpg")).expect("six_people.jpg");
    let faces = engine.detect(&six).expect("detect");
    let chips: Vec<_> = faces
        .iter()
        .map(|f| face_chip(&six, &dlib.landmarks(&six, f)))
        .collect();
    let batch16: Vec<_> = chips.iter().cycle().take(16).cloned().collect();

    let desc_b1 = median_ms(runs, || {
        resnet.embed(&chips[..1]).unwrap();
    });
    let desc_b16 = median_ms(runs, || {
        resnet.embed(&batch16).unwrap();
    }) / 16.0;

    let hd = image::imageops::resize(&six, 1366, 768, image::imageops::FilterType::Triangle);
    let mut mtcnn = serde_json::Map::new();
    let mut photos = vec![
        "groups/six_people.jpg",
        "groups/obama_and_biden.jpg",
        "people/obama/obama1.jpg",
    ];
    if fixtures::south_asian_present() {
        photos.push("south_asian/groups/dhoni_with_others.jpg");
    } else {
        eprintln!("the South-Asian set is absent: dhoni_with_others.jpg is not measured");
    }
    for rel in photos {
        let img = load_image(&fixtures::photo(rel)).expect(rel);
        let ms = median_ms(runs, || {
            engine.detect(&img).unwrap();
        });
        mtcnn.insert(
            format!("{rel} ({}x{})", img.width(), img.height()),
            ms.into(),
        );
    }
    let mtcnn_hd = median_ms(runs, || {
        engine.detect(&hd).unwrap();
    });
    let whole = median_ms(runs, || {
        engine.analyze(&six).unwrap();
    });
    let whole_hd = median_ms(runs, || {
        engine.analyze(&hd).unwrap();
    });
    let [scrfd_hd, scrfd_classroom] = scrfd_ms(&model_dir, &six, runs);
    let arcface = arcface_ms(&model_dir, runs);
    let report = serde_json::json!({
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "runs": runs,
        "descriptor_ms_per_face_batch1": desc_b1,
        "descriptor_ms_per_face_batch16": desc_b16,
        "mtcnn_ms": mtcnn,
        "mtcnn_ms_1366x768": mtcnn_hd,
        "whole_photo_ms_six_people": whole,
        "whole_photo_ms_1366x768_six_faces": whole_hd,
        "faces_in_six_people": faces.len(),
        "scrfd_ms_1366x768": scrfd_hd,
        "scrfd_ms_2000x1125": scrfd_classroom,
        "arcface_ms_per_face": arcface,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
