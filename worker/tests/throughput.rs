//! The throughput harness and the device check, on the CPU: the synthesised classroom
//! photos hold faces the engine finds and recognises, the real worker marks the seated
//! people present (in-process, and as separate `attendance-worker run` processes against
//! PostgreSQL and RabbitMQ), and `device-check --quick` passes, so that the code the GPU
//! machine runs is exercised here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::FaceModel;
use worker::classroom;
use worker::device_check;
use worker::engine::FaceEngine;
use worker::engine::matching::{DecisionRule, distance};
use worker::golden::iou;
use worker::throughput::{self, Mode};

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

fn options(mode: Mode, photos: usize, concurrency: usize) -> throughput::Options {
    throughput::Options {
        photos,
        faces: 30,
        concurrency,
        model: FaceModel::DlibResnet,
        detector: None,
        device: "cpu".into(),
        model_dir: model_dir(),
        mode,
        timeout: Duration::from_secs(600),
    }
}

/// The dlib pipeline finds at least 28 of the 30 seated faces (each matched to its seat
/// by IoU ≥ 0.5), at most two elsewhere, and every face it finds in a seat is
/// recognised as the person seated there among the registered people (nearest
/// portrait within the default rule's ceiling). Measured: 30 of 30 found and
/// recognised, and one 29 px box at score 0.93 beside a back-row face (an MTCNN false
/// positive, which the attendance job records as an unknown face).
#[test]
fn the_engine_finds_and_recognises_the_seated_faces() {
    let manifest = classroom::synthesise(1, 30).unwrap();
    let photo = &manifest.photos[0];
    let engine = FaceEngine::from_model_dir(&model_dir(), "cpu", false).expect("models");
    let image = image::load_from_memory(&photo.jpeg).unwrap().to_rgb8();
    let faces = engine.analyze(&image).unwrap();
    let mut gallery = Vec::new();
    for person in &manifest.people {
        for portrait in &person.portraits {
            let img =
                worker::engine::pipeline::load_image(&worker::fixtures::photo(portrait)).unwrap();
            let face = engine
                .analyze_portrait(&img)
                .unwrap()
                .into_iter()
                .max_by(|a, b| a.area().total_cmp(&b.area()))
                .expect("a face in every portrait");
            gallery.push((person.name.clone(), face.descriptor));
        }
    }
    let rule = DecisionRule::for_model(FaceModel::DlibResnet);
    let (mut found, mut recognised, mut strays) = (0, 0, 0);
    for face in &faces {
        let seat = photo
            .faces
            .iter()
            .max_by(|a, b| {
                iou(&a.bbox, &face.detection.bbox).total_cmp(&iou(&b.bbox, &face.detection.bbox))
            })
            .unwrap();
        if iou(&seat.bbox, &face.detection.bbox) < 0.5 {
            strays += 1;
            continue;
        }
        found += 1;
        let (name, d) = gallery
            .iter()
            .map(|(n, g)| (n, distance(g, &face.descriptor)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        if *name == seat.person && d <= rule.max_distance {
            recognised += 1;
        }
    }
    eprintln!(
        "{} faces found: {found} in seats ({recognised} recognised), {strays} elsewhere",
        faces.len()
    );
    assert!(found >= 28, "only {found} of 30 seated faces found");
    assert!(strays <= 2, "{strays} faces found outside the seats");
    assert!(
        recognised >= found - 1,
        "only {recognised} of {found} faces recognised"
    );
}

/// The real worker, in-process, two jobs at once: every seated person present, nobody
/// else, and the figures consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_worker_marks_every_seated_person_present() {
    let report = throughput::run(&options(Mode::InProcess, 2, 2))
        .await
        .unwrap();
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.photos, 2);
    assert_eq!(report.expected, 2 * 5, "five people seated in each photo");
    assert_eq!(report.present, report.expected);
    assert_eq!(report.false_present, 0);
    assert!(report.faces_found_per_photo >= 28.0, "{report:?}");
    assert!(report.wall_seconds > 0.0);
    assert!((report.photos_per_minute - report.photos_per_second * 60.0).abs() < 1e-6);
}

/// Process mode: two `attendance-worker run` processes against a database of their
/// own on PostgreSQL and a queue prefix of their own on RabbitMQ, whose queues are gone
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_mark_every_seated_person_present() {
    let database_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let broker = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = format!("throughputtest{}", std::process::id());
    let mode = Mode::Processes {
        count: 2,
        database_url,
        queue_url: format!("{broker}?prefix={prefix}"),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_attendance-worker")),
    };
    let report = throughput::run(&options(mode, 2, 1)).await.unwrap();
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.processes, 2);
    assert_eq!(report.present, report.expected);
    assert_eq!(report.false_present, 0);
    assert!(report.faces_found_per_photo >= 28.0, "{report:?}");

    // A passive declare of each of the run's queues finds none: the broker keeps no
    // empty queues of finished runs.
    let connection = lapin::Connection::connect(&broker, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    for name in common::queue::QueueNames::with_prefix(&prefix).all() {
        let channel = connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                name.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        assert!(declared.is_err(), "{name} is still on the broker");
    }
}

/// `attendance-worker device-check --quick` on the CPU: every parity check passes
/// (with faces compared), every figure is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_device_check_passes_on_the_cpu() {
    let options = device_check::Options::new(model_dir(), "cpu".into(), true);
    let summary = device_check::run(&options, |line| eprintln!("{line}")).await;
    assert!(summary.errors.is_empty(), "{:#?}", summary.errors);
    assert_eq!(summary.parity.len(), 6);
    for check in &summary.parity {
        assert!(check.passed && check.faces > 0, "{check:#?}");
    }
    for embedder in ["dlib_resnet", "arcface_mbf"] {
        let rates = &summary.faces_per_second[embedder];
        assert_eq!(rates.keys().copied().collect::<Vec<_>>(), options.batches);
        assert!(rates.values().all(|&r| r > 0.0), "{rates:?}");
    }
    assert!(summary.detection_ms["mtcnn"]["1366x768"] > 0.0);
    assert!(summary.detection_ms["scrfd"]["1366x768"] > 0.0);
    assert_eq!(summary.end_to_end.len(), options.concurrency.len());
    assert!(summary.passed);
}
