//! Faces per photo are capped (`MAX_FACES_PER_PHOTO`): past the cap the photo is still
//! processed on its largest faces, and the session says so in its warnings.

use common::JobQueue;
use models::detected_face;
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;
use worker::engine::pipeline::{FaceEngine, PhotoLimits, decode_image};

use crate::helpers::{Db, Queue, TestApp, engine, fixture, spawn_app};

const CAP: usize = 3;

/// The job of the next queued message, run by a worker whose engine keeps `CAP` faces.
async fn run_next_job_capped(app: &TestApp, capped: std::sync::Arc<FaceEngine>) {
    let queue = app.embedded.as_ref().expect("an embedded queue");
    let mut consumer = queue.consume(1).await.unwrap();
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
        .await
        .expect("a job is queued")
        .unwrap();
    let worker = worker::service::Worker::new(
        worker::jobs::JobContext {
            db: app.state.db.clone(),
            blobs: app.state.blobs.clone(),
            engine: capped,
            queue: None,
            public_url: "http://127.0.0.1:8080".into(),
            clock: common::clock::system(),
            retention_days: None,
        },
        worker::service::WorkerOptions::from_config(&common::Config::default()),
    );
    worker.handle(delivery).await;
}

async fn a_photo_over_the_cap_is_matched_on_its_largest_faces(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 3A").await;
    let photo = fixture("groups/six_people.jpg");

    // What the uncapped engine finds, largest first: the cap must keep the first three.
    let image = decode_image(&photo, "six_people.jpg").unwrap();
    let mut all = engine().detect(&image).unwrap();
    assert!(
        all.len() > CAP,
        "the fixture must have more faces than the cap"
    );
    let area = |b: [f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    all.sort_by(|a, b| area(b.bbox).total_cmp(&area(a.bbox)));
    let largest: Vec<[f32; 4]> = all[..CAP].iter().map(|d| d.bbox).collect();

    let form = Form::new()
        .text("class_id", class_id.to_string())
        .part("photos", Part::bytes(photo).file_name("class.jpg"));
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let session_id: Uuid = resp.json::<Value>().await.unwrap()["session_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let dir = std::env::var_os("MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"));
    let capped = FaceEngine::from_model_dir(&dir, "cpu", false)
        .expect("models in MODEL_DIR")
        .with_limits(PhotoLimits {
            max_faces: CAP,
            ..PhotoLimits::default()
        });
    run_next_job_capped(&app, std::sync::Arc::new(capped)).await;

    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    assert_eq!(detail["status"], "completed", "{detail:#}");
    let warnings = detail["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{detail:#}");
    assert_eq!(warnings[0]["code"], "faces_over_cap");
    assert_eq!(warnings[0]["photo"], 1);
    assert_eq!(
        warnings[0]["message"],
        format!(
            "photo 1 has {} faces; only the {CAP} largest were matched",
            all.len()
        )
    );

    // Exactly the three largest faces were stored, with their crops.
    let faces = detail["faces"].as_array().unwrap();
    assert_eq!(faces.len(), CAP, "{detail:#}");
    for f in faces {
        let b = &f["box"];
        let got = [&b["x1"], &b["y1"], &b["x2"], &b["y2"]].map(|v| v.as_f64().unwrap() as f32);
        assert!(
            largest
                .iter()
                .any(|l| l.iter().zip(&got).all(|(a, b)| (a - b).abs() < 0.01)),
            "{got:?} is not one of the {CAP} largest {largest:?}"
        );
        assert!(f["crop_url"].is_string(), "{f}");
    }
    let rows = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), CAP);
}

#[tokio::test]
async fn a_photo_over_the_cap_is_matched_on_its_largest_faces_postgres() {
    a_photo_over_the_cap_is_matched_on_its_largest_faces(Db::Postgres).await;
}

#[tokio::test]
async fn a_photo_over_the_cap_is_matched_on_its_largest_faces_sqlite() {
    a_photo_over_the_cap_is_matched_on_its_largest_faces(Db::Sqlite).await;
}
