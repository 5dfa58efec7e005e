//! Registration and marking: the happy path stores rows, blobs and a message; every
//! bad input is refused with its status and leaves nothing behind.

use std::io::Cursor;

use common::JobKind;
use image::{ImageEncoder, codecs::png::PngEncoder};
use models::{job::JobStatus, student::StudentStatus, student_photo::PhotoVerdict};
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, fixture, read_blob, spawn_app};

fn obama_photos() -> Vec<(String, Vec<u8>)> {
    vec![
        ("obama1.jpg".into(), fixture("people/obama/obama1.jpg")),
        ("obama2.jpg".into(), fixture("people/obama/obama2.jpg")),
    ]
}

async fn register_accepts_and_publishes(db: Db, queue: Queue) {
    let app = spawn_app(db, queue).await;
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(class_id, "21CS001", "Barack Obama", obama_photos())
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let student_id: Uuid = body["student_id"].as_str().unwrap().parse().unwrap();
    let job_id: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();

    // Rows really in the database.
    let student = models::student::Entity::find_by_id(student_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("student row");
    assert_eq!(student.class_id, class_id);
    assert_eq!(student.roll_no, "21CS001");
    assert_eq!(student.status, StudentStatus::Pending);
    let photos = models::student_photo::Entity::find()
        .filter(models::student_photo::Column::StudentId.eq(student_id))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(photos.len(), 2);
    let job = models::job::Entity::find_by_id(job_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("job row");
    assert_eq!(job.kind, JobKind::Registration);
    assert_eq!(job.lane, common::Lane::Interactive);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.subject_id, student_id);

    // Blobs really stored, byte for byte, under students/<student>/<photo>.jpg.
    let originals: Vec<Vec<u8>> = obama_photos().into_iter().map(|(_, b)| b).collect();
    for p in &photos {
        assert_eq!(p.verdict, PhotoVerdict::Pending);
        assert_eq!(p.content_type, "image/jpeg");
        assert_eq!(p.blob_key, format!("students/{student_id}/{}.jpg", p.id));
        let stored = read_blob(&app, &p.blob_key).await;
        assert!(originals.iter().any(|o| o[..] == stored[..]));
    }

    // The message really went to the queue (published beside the answer, after the
    // commit), and the row says so.
    let msg = app.next_message().await;
    assert_eq!(msg.version, 1);
    assert_eq!(msg.job_id, job_id);
    assert_eq!(msg.kind, JobKind::Registration);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let job = models::job::Entity::find_by_id(job_id)
            .one(&app.state.db)
            .await
            .unwrap()
            .expect("job row");
        if job.published_at.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "published_at never set");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The job is visible to clients.
    let job: Value = app.get_json(&format!("/jobs/{job_id}")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["progress"], 0.0);
    assert!(job["error"].is_null());
}

#[tokio::test]
async fn register_postgres_rabbitmq() {
    register_accepts_and_publishes(Db::Postgres, Queue::RabbitMq).await;
}

#[tokio::test]
async fn register_sqlite_embedded() {
    register_accepts_and_publishes(Db::Sqlite, Queue::Embedded).await;
}

#[tokio::test]
async fn mark_attendance_accepts_and_publishes() {
    let app = spawn_app(Db::Postgres, Queue::RabbitMq).await;
    let class_id = app.create_class("CSE 2A").await;
    let form = Form::new()
        .text("class_id", class_id.to_string())
        .text("subject", "Algorithms")
        .text("taken_at", "2026-11-20T09:30:00+05:30")
        .part(
            "photos",
            Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
        )
        .part(
            "photos",
            Part::bytes(fixture("people/alex_lacamoire/alex2.png")).file_name("a.png"),
        );
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let session_id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
    let job_id: Uuid = body["job_id"].as_str().unwrap().parse().unwrap();

    let session = models::attendance_session::Entity::find_by_id(session_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("session row");
    assert_eq!(session.subject.as_deref(), Some("Algorithms"));
    assert_eq!(session.taken_at.to_rfc3339(), "2026-11-20T04:00:00+00:00");
    let photos = models::session_photo::Entity::find()
        .filter(models::session_photo::Column::SessionId.eq(session_id))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(photos.len(), 2);
    for p in &photos {
        let bytes = read_blob(&app, &p.blob_key).await;
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (p.width, p.height),
            (Some(img.width() as i32), Some(img.height() as i32))
        );
        assert!(p.blob_key.starts_with(&format!("sessions/{session_id}/")));
    }
    assert!(
        photos
            .iter()
            .any(|p| p.content_type == "image/png" && p.blob_key.ends_with(".png"))
    );

    let msg = app.next_message().await;
    assert_eq!(msg.job_id, job_id);
    assert_eq!(msg.kind, JobKind::Attendance);

    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    assert_eq!(detail["status"], "pending");
    assert_eq!(detail["job_id"], job_id.to_string());
    assert_eq!(detail["records"], Value::Array(vec![]));
}

/// A PNG whose header declares `width`×`height` (the pixel data is a single row).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    PngEncoder::new(Cursor::new(&mut png))
        .write_image(&[0, 0, 0], 1, 1, image::ExtendedColorType::Rgb8)
        .unwrap();
    // IHDR data starts after the 8-byte signature, 4-byte length and 4-byte type.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

async fn assert_refused(
    app: &TestApp,
    resp: reqwest::Response,
    status: u16,
    code: &str,
    before: ([u64; 5], Vec<String>),
) {
    assert_eq!(resp.status(), status, "expected {status} {code}");
    assert_eq!(error_code(resp).await, code);
    assert_eq!(app.row_counts().await, before.0, "no rows written");
    assert_eq!(app.blob_keys(), before.1, "no blobs written");
}

async fn bad_inputs_leave_nothing(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(class_id, "7", "Barack Obama", obama_photos())
        .await;
    assert_eq!(resp.status(), 202);
    let snapshot = async || (app.row_counts().await, app.blob_keys());
    let jpeg = fixture("people/biden/biden1.jpg");

    // Oversized photo: 413.
    let mut big = jpeg.clone();
    big.resize(11 * 1024 * 1024, 0);
    let before = snapshot().await;
    let resp = app
        .register(
            class_id,
            "8",
            "Joe Biden",
            vec![("a.jpg".into(), jpeg.clone()), ("big.jpg".into(), big)],
        )
        .await;
    assert_refused(&app, resp, 413, "payload_too_large", before).await;

    // Not an image: 415, whatever the file name says.
    let before = snapshot().await;
    let resp = app
        .register(
            class_id,
            "8",
            "Joe Biden",
            vec![("face.jpg".into(), b"just some text, honestly".to_vec())],
        )
        .await;
    assert_refused(&app, resp, 415, "unsupported_media_type", before).await;

    // Truncated JPEG: 422.
    let before = snapshot().await;
    let resp = app
        .register(
            class_id,
            "8",
            "Joe Biden",
            vec![
                ("ok.jpg".into(), jpeg.clone()),
                ("cut.jpg".into(), jpeg[..jpeg.len() / 2].to_vec()),
            ],
        )
        .await;
    assert_refused(&app, resp, 422, "undecodable_image", before).await;

    // Decompression bomb: a tiny PNG declaring 100000×100000 pixels: 422.
    let before = snapshot().await;
    let resp = app
        .register(
            class_id,
            "8",
            "Joe Biden",
            vec![("bomb.png".into(), png_declaring(100_000, 100_000))],
        )
        .await;
    assert_refused(&app, resp, 422, "image_too_large", before).await;

    // No photos, eleven photos: 422.
    let before = snapshot().await;
    let resp = app.register(class_id, "8", "Joe Biden", vec![]).await;
    assert_refused(&app, resp, 422, "photo_count", before).await;
    let before = snapshot().await;
    let eleven = (0..11)
        .map(|i| (format!("{i}.jpg"), jpeg.clone()))
        .collect();
    let resp = app.register(class_id, "8", "Joe Biden", eleven).await;
    assert_refused(&app, resp, 422, "photo_count", before).await;

    // Unknown class: 404.
    let before = snapshot().await;
    let resp = app
        .register(
            Uuid::new_v4(),
            "8",
            "Joe Biden",
            vec![("a.jpg".into(), jpeg.clone())],
        )
        .await;
    assert_refused(&app, resp, 404, "not_found", before).await;

    // Roll number taken in this class: 409.
    let before = snapshot().await;
    let resp = app
        .register(
            class_id,
            "7",
            "Joe Biden",
            vec![("a.jpg".into(), jpeg.clone())],
        )
        .await;
    assert_refused(&app, resp, 409, "duplicate_roll_no", before).await;

    // Attendance: six photos, unknown class.
    let before = snapshot().await;
    let mut form = Form::new().text("class_id", class_id.to_string());
    for i in 0..6 {
        form = form.part(
            "photos",
            Part::bytes(jpeg.clone()).file_name(format!("{i}.jpg")),
        );
    }
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_refused(&app, resp, 422, "photo_count", before).await;
    let before = snapshot().await;
    let form = Form::new()
        .text("class_id", Uuid::new_v4().to_string())
        .part("photos", Part::bytes(jpeg.clone()).file_name("a.jpg"));
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_refused(&app, resp, 404, "not_found", before).await;
}

#[tokio::test]
async fn bad_inputs_leave_nothing_postgres() {
    bad_inputs_leave_nothing(Db::Postgres).await;
}

#[tokio::test]
async fn bad_inputs_leave_nothing_sqlite() {
    bad_inputs_leave_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn oversized_request_is_refused() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    // Seven 9 MB files: each under the per-file cap, 63 MB together.
    let mut file = fixture("people/biden/biden1.jpg");
    file.resize(9 * 1024 * 1024, 0);
    let photos = (0..7).map(|i| (format!("{i}.jpg"), file.clone())).collect();
    let before = (app.row_counts().await, app.blob_keys());
    let resp = app.register(class_id, "1", "Joe Biden", photos).await;
    assert_refused(&app, resp, 413, "payload_too_large", before).await;
}
