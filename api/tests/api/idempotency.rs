//! `Idempotency-Key` on uploads: a retried upload answers the first response and makes
//! no second session, student or job; a different request under the same key is a 422;
//! keys of different holders are independent; concurrent requests make one session.

use api::{
    auth::Role,
    services::idempotency::{self, Reservation, StoredResponse},
};
use chrono::{Duration, Utc};
use reqwest::multipart::{Form, Part};
use sea_orm::EntityTrait;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    Db, Queue, TestApp, empty_photo, error_code, fixture, run_next_job, spawn_app,
};

/// A fresh form each time: reqwest picks a new random boundary, as a retrying client would.
fn mark_form(class_id: Uuid, subject: &str, photo: Vec<u8>) -> Form {
    Form::new()
        .text("class_id", class_id.to_string())
        .text("subject", subject.to_string())
        .text("taken_at", "2026-11-20T09:30:00+05:30")
        .part("photos", Part::bytes(photo).file_name("class.png"))
}

async fn mark(
    app: &TestApp,
    key: &str,
    idempotency_key: Option<&str>,
    form: Form,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/attendance/mark"))
        .bearer_auth(key)
        .multipart(form);
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

async fn accepted(resp: reqwest::Response) -> (Value, bool) {
    let replayed = resp.headers().get("idempotency-replayed").is_some();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    (resp.json().await.unwrap(), replayed)
}

async fn sessions_and_jobs(app: &TestApp) -> (u64, u64) {
    let [_, _, sessions, _, jobs] = app.row_counts().await;
    (sessions, jobs)
}

async fn same_key_twice_is_one_session(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let key = app.admin_key.clone();

    let (first, replayed) = accepted(
        mark(
            &app,
            &key,
            Some("mark-2026-11-20-p1"),
            mark_form(class_id, "Idem", empty_photo()),
        )
        .await,
    )
    .await;
    assert!(!replayed);
    let (second, replayed) = accepted(
        mark(
            &app,
            &key,
            Some("mark-2026-11-20-p1"),
            mark_form(class_id, "Idem", empty_photo()),
        )
        .await,
    )
    .await;
    assert!(replayed, "the second answer is marked as a replay");
    assert_eq!(first, second, "the same session and job");
    assert_eq!(sessions_and_jobs(&app).await, (1, 1));

    // The same key with another photo: refused, nothing new.
    let resp = mark(
        &app,
        &key,
        Some("mark-2026-11-20-p1"),
        mark_form(class_id, "Idem", fixture("people/obama/obama3.jpg")),
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(resp).await, "idempotency_key_reused");
    // Another field changed: refused as well.
    let resp = mark(
        &app,
        &key,
        Some("mark-2026-11-20-p1"),
        mark_form(class_id, "Other subject", empty_photo()),
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(sessions_and_jobs(&app).await, (1, 1));

    // Another key holder with the same key: its own, independent upload.
    let teacher = app.key(Role::Teacher).await;
    let (theirs, replayed) = accepted(
        mark(
            &app,
            &teacher,
            Some("mark-2026-11-20-p1"),
            mark_form(class_id, "Idem", empty_photo()),
        )
        .await,
    )
    .await;
    assert!(!replayed);
    assert_ne!(theirs["session_id"], first["session_id"]);
    assert_eq!(sessions_and_jobs(&app).await, (2, 2));
    // Without a key, every upload is new.
    accepted(mark(&app, &key, None, mark_form(class_id, "Idem", empty_photo())).await).await;
    assert_eq!(sessions_and_jobs(&app).await, (3, 3));
}

#[tokio::test]
async fn same_key_twice_is_one_session_postgres() {
    same_key_twice_is_one_session(Db::Postgres).await;
}

#[tokio::test]
async fn same_key_twice_is_one_session_sqlite() {
    same_key_twice_is_one_session(Db::Sqlite).await;
}

#[tokio::test]
async fn a_retried_mark_gives_one_column_in_the_export() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let key = app.admin_key.clone();
    for _ in 0..2 {
        accepted(
            mark(
                &app,
                &key,
                Some("retry-me"),
                mark_form(class_id, "Idem", empty_photo()),
            )
            .await,
        )
        .await;
    }
    // Every job queued runs, so a second session would be a second column.
    let (_, jobs) = sessions_and_jobs(&app).await;
    for _ in 0..jobs {
        run_next_job(&app).await;
    }
    let resp = app
        .get(&format!(
            "/export/attendance?class_id={class_id}&format=csv"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    let header = csv.lines().next().expect("a header row");
    assert_eq!(
        header.matches("Idem").count(),
        1,
        "one session column: {header}"
    );
}

async fn concurrent_requests_with_one_key_make_one_session(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let key = app.admin_key.clone();
    let photo = fixture("groups/obama_biden_side_by_side.jpg");
    let sends = (0..4).map(|_| {
        mark(
            &app,
            &key,
            Some("same-moment"),
            mark_form(class_id, "Idem", photo.clone()),
        )
    });
    let answers = futures::future::join_all(sends).await;
    let mut sessions = Vec::new();
    for resp in answers {
        match resp.status().as_u16() {
            202 => sessions.push(accepted(resp).await.0["session_id"].clone()),
            409 => {
                assert_eq!(resp.headers()["retry-after"], "1");
                assert_eq!(error_code(resp).await, "idempotency_key_in_progress");
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(!sessions.is_empty());
    assert!(sessions.iter().all(|s| *s == sessions[0]), "{sessions:?}");
    assert_eq!(sessions_and_jobs(&app).await, (1, 1));
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_session_postgres() {
    concurrent_requests_with_one_key_make_one_session(Db::Postgres).await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_session_sqlite() {
    concurrent_requests_with_one_key_make_one_session(Db::Sqlite).await;
}

#[tokio::test]
async fn a_registration_retried_with_its_key_is_one_student() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let send = || {
        let form = Form::new()
            .text("roll_no", "21CS001")
            .text("name", "Barack Obama")
            .text("class_id", class_id.to_string())
            .part(
                "photos",
                Part::bytes(fixture("people/obama/obama3.jpg")).file_name("o.jpg"),
            );
        app.post("/students/register")
            .header("Idempotency-Key", "register-21CS001")
            .multipart(form)
            .send()
    };
    let (first, _) = accepted(send().await.unwrap()).await;
    let (second, replayed) = accepted(send().await.unwrap()).await;
    assert!(replayed);
    assert_eq!(first, second);
    let [students, photos, _, _, jobs] = app.row_counts().await;
    assert_eq!((students, photos, jobs), (1, 1, 1));
}

#[tokio::test]
async fn a_batch_retried_with_its_key_is_one_batch() {
    use std::io::Write;
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("21CS001/0.jpg", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&fixture("people/obama/obama3.jpg")).unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let send = || {
        let form = Form::new()
            .text("class_id", class_id.to_string())
            .part("file", Part::bytes(zip.clone()).file_name("batch.zip"));
        app.post("/students/batches")
            .header("Idempotency-Key", "batch-night-1")
            .multipart(form)
            .send()
    };
    let (first, _) = accepted(send().await.unwrap()).await;
    let (second, replayed) = accepted(send().await.unwrap()).await;
    assert!(replayed);
    assert_eq!(first, second);
    let batches = models::registration_batch::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(app.row_counts().await[4], 1, "one job");
}

/// A 5xx is not kept: once storage is back, the retry with the same key is processed.
#[tokio::test]
async fn a_server_error_is_not_replayed() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let key = app.admin_key.clone();
    // Storage breaks: the blob directory is replaced by a file.
    let parked = app.blob_dir.with_extension("parked");
    std::fs::rename(&app.blob_dir, &parked).unwrap();
    std::fs::write(&app.blob_dir, b"not a directory").unwrap();
    let resp = mark(
        &app,
        &key,
        Some("after-outage"),
        mark_form(class_id, "Idem", empty_photo()),
    )
    .await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert_eq!(sessions_and_jobs(&app).await, (0, 0));

    std::fs::remove_file(&app.blob_dir).unwrap();
    std::fs::rename(&parked, &app.blob_dir).unwrap();
    let resp = mark(
        &app,
        &key,
        Some("after-outage"),
        mark_form(class_id, "Idem", empty_photo()),
    )
    .await;
    let (_, replayed) = accepted(resp).await;
    assert!(!replayed);
    assert_eq!(sessions_and_jobs(&app).await, (1, 1));
}

#[tokio::test]
async fn keys_must_be_1_to_255_printable_ascii() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let key = app.admin_key.clone();
    for bad in ["".to_string(), "k".repeat(256), "tab\there".to_string()] {
        let resp = mark(
            &app,
            &key,
            Some(&bad),
            mark_form(class_id, "Idem", empty_photo()),
        )
        .await;
        assert_eq!(resp.status(), 400, "{bad:?}");
        assert_eq!(error_code(resp).await, "invalid_idempotency_key");
    }
    assert_eq!(sessions_and_jobs(&app).await, (0, 0));
    accepted(
        mark(
            &app,
            &key,
            Some(&"k".repeat(255)),
            mark_form(class_id, "Idem", empty_photo()),
        )
        .await,
    )
    .await;
}

/// The store itself, on the real database: a 5xx releases the key, an answer older
/// than 24 hours is forgotten, and an abandoned reservation can be taken over.
async fn the_store_keeps_answers_for_a_day(db: Db) {
    let app = spawn_app(db, Queue::Embedded).await;
    let db = &app.state.db;
    let holder = Uuid::new_v4();
    let now = Utc::now();
    let r = |key: &'static str, print: &'static str, at| {
        idempotency::reserve(db, holder, key, print, at)
    };

    assert_eq!(r("a", "p1", now).await.unwrap(), Reservation::Reserved);
    assert_eq!(r("a", "p1", now).await.unwrap(), Reservation::InProgress);
    assert_eq!(r("a", "p2", now).await.unwrap(), Reservation::Mismatch);
    // A 5xx: released, so the retry runs.
    idempotency::release(db, holder, "a").await.unwrap();
    assert_eq!(r("a", "p1", now).await.unwrap(), Reservation::Reserved);
    let answer = StoredResponse {
        status: 202,
        content_type: Some("application/json; charset=utf-8".into()),
        body: r#"{"session_id":"x"}"#.into(),
    };
    idempotency::complete(db, holder, "a", &answer)
        .await
        .unwrap();
    // Releasing a completed key does nothing.
    idempotency::release(db, holder, "a").await.unwrap();
    assert_eq!(
        r("a", "p1", now + Duration::hours(23)).await.unwrap(),
        Reservation::Replay(answer)
    );
    // A day later the answer is purged and the key is new again.
    assert_eq!(
        r("a", "p2", now + Duration::hours(25)).await.unwrap(),
        Reservation::Reserved
    );
    // A reservation whose request never finished is taken over after the lease.
    assert_eq!(r("b", "p1", now).await.unwrap(), Reservation::Reserved);
    let later = now + idempotency::PENDING_LEASE + Duration::seconds(1);
    assert_eq!(r("b", "p1", later).await.unwrap(), Reservation::Reserved);
    assert_eq!(r("b", "p1", later).await.unwrap(), Reservation::InProgress);
}

#[tokio::test]
async fn the_store_keeps_answers_for_a_day_postgres() {
    the_store_keeps_answers_for_a_day(Db::Postgres).await;
}

#[tokio::test]
async fn the_store_keeps_answers_for_a_day_sqlite() {
    the_store_keeps_answers_for_a_day(Db::Sqlite).await;
}
