//! The shared embedding stage gives every photo exactly the descriptors the engine
//! gives it alone, for both face models, when photos analysed at once from several
//! threads share its passes.

use std::path::PathBuf;
use std::time::Duration;

use common::FaceModel;
use worker::engine::FaceEngine;
use worker::engine::batch_stage::BatchOptions;
use worker::engine::pipeline::decode_image;

const PHOTOS: [&str; 3] = [
    "groups/obama_biden_side_by_side.jpg",
    "groups/rose_and_kit.jpg",
    "groups/six_people.jpg",
];

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

fn open(model: FaceModel) -> FaceEngine {
    FaceEngine::open(&model_dir(), model, model.default_detector(), "cpu", false)
        .unwrap_or_else(|e| panic!("model files missing ({e}); run scripts/test.sh"))
}

fn check(model: FaceModel) {
    let images: Vec<_> = PHOTOS
        .iter()
        .map(|p| decode_image(&worker::fixtures::read(p).unwrap(), p).unwrap())
        .collect();
    let alone: Vec<Vec<Vec<f32>>> = {
        let engine = open(model);
        images
            .iter()
            .map(|image| {
                let faces = engine.analyze(image).unwrap();
                faces.into_iter().map(|f| f.descriptor).collect()
            })
            .collect()
    };
    let shared = open(model)
        .with_shared_batching(BatchOptions {
            max_items: 64,
            wait: Duration::from_secs(5),
        })
        .unwrap();
    let together: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = images
            .iter()
            .map(|image| s.spawn(|| shared.analyze(image).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap()
                    .into_iter()
                    .map(|f| f.descriptor)
                    .collect()
            })
            .collect()
    });
    let counts = shared.embed_stage_counts().unwrap();
    assert_eq!(counts.requests, 3, "{counts:?}");
    assert!(
        counts.passes < 3,
        "the photos never shared a pass: {counts:?}"
    );
    assert_eq!(counts.items, 10, "{counts:?}");
    for ((photo, a), t) in PHOTOS.iter().zip(&alone).zip(&together) {
        assert_eq!(a.len(), t.len(), "{photo}");
        assert_eq!(
            a, t,
            "{model}: {photo}'s descriptors changed in a shared pass"
        );
    }
}

#[test]
fn dlib_descriptors_are_the_same_in_shared_passes() {
    check(FaceModel::DlibResnet);
}

#[test]
fn arcface_embeddings_are_the_same_in_shared_passes() {
    check(FaceModel::ArcfaceMbf);
}
