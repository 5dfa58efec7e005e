//! Retention of session photos and unknown faces' crops (`RETENTION_DAYS`), with a clock
//! the test controls: sessions taken through the API at different ages, the day's job
//! scheduled as the API process does, run by the worker from the bulk lane, and what a
//! reviewer sees afterwards.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::{
    Clock, Config, JobKind, JobQueue, Lane, ManualClock,
    job::result::{JobResult, RetentionResult},
    retention::daily_job_id,
};
use models::{detected_face, job, session_photo};
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use worker::jobs::JobContext;

use crate::helpers::{Db, Queue, TestApp, engine, fixture, run_next_job, spawn_app_at};

fn id(v: &Value, field: &str) -> Uuid {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

/// A worker context on the test's clock with `RETENTION_DAYS` = `days`.
fn context(app: &TestApp, days: Option<u32>) -> JobContext {
    JobContext {
        db: app.state.db.clone(),
        blobs: app.state.blobs.clone(),
        engine: engine(),
        queue: None,
        public_url: "http://127.0.0.1:8080".into(),
        clock: app.state.clock.clone(),
        retention_days: days,
    }
}

/// Takes the next message from the app's embedded queue, checks its lane, and handles
/// it the way the worker service does. Returns the job id.
async fn run_next_on(app: &TestApp, ctx: JobContext, lane: Lane) -> Uuid {
    let queue = app.embedded.as_ref().expect("an embedded queue");
    let mut consumer = queue.consume(1).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a job is queued")
        .unwrap();
    assert_eq!(delivery.lane, lane);
    let job_id = delivery.message.as_ref().expect("decodable").job_id;
    worker::service::Worker::new(
        ctx,
        worker::service::WorkerOptions::from_config(&Config::default()),
    )
    .handle(delivery)
    .await;
    job_id
}

/// Takes attendance from the Obama–Biden photo and runs its job; returns the session.
async fn session_now(app: &TestApp, class: Uuid) -> Uuid {
    let form = Form::new().text("class_id", class.to_string()).part(
        "photos",
        Part::bytes(fixture("groups/obama_biden_side_by_side.jpg")).file_name("g.jpg"),
    );
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let session = id(&resp.json().await.unwrap(), "session_id");
    run_next_job(app).await;
    session
}

async fn photo_keys(app: &TestApp, session: Uuid) -> Vec<String> {
    session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.blob_key)
        .collect()
}

async fn faces(app: &TestApp, session: Uuid) -> Vec<detected_face::Model> {
    detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session))
        .all(&app.state.db)
        .await
        .unwrap()
}

async fn job_row(app: &TestApp, id: Uuid) -> job::Model {
    job::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("job row")
}

fn retention_result(row: &job::Model) -> RetentionResult {
    match row.result.as_ref().and_then(JobResult::from_stored) {
        Some(JobResult::Retention(r)) => r,
        other => panic!("not a retention result: {other:?} ({row:?})"),
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|t| {
        DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .with_timezone(&Utc)
    })
}

/// A session 181 days old loses its photos and its unknown face's crop and descriptor;
/// its records, photo rows and matched face (with its crop) stay; a session 81 days old
/// is untouched. The API shows when, answers 410 for the deleted crop and refuses to
/// enrol that face (assigning it still works); processing the session again fails with
/// a readable error. A second run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_photos_and_unknown_crops_go_records_and_matched_faces_stay() {
    let clock = Arc::new(ManualClock::new(Utc::now().trunc_subsecs(0)));
    let app = spawn_app_at(Db::Sqlite, Queue::Embedded, &[], clock.clone()).await;
    let class = app.create_class("CSE 3A").await;
    let resp = app
        .register(
            class,
            "01",
            "Barack Obama",
            vec![("o.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let obama = id(&resp.json().await.unwrap(), "student_id");
    run_next_job(&app).await;

    let old = session_now(&app, class).await;
    clock.advance(TimeDelta::days(100));
    let young = session_now(&app, class).await;
    clock.advance(TimeDelta::days(81));

    let before: Value = app.get_json(&format!("/attendance/session/{old}")).await;
    assert_eq!(before["status"], "completed", "{before:#}");
    assert!(before["photos_deleted_at"].is_null());
    let old_faces = faces(&app, old).await;
    let matched = old_faces
        .iter()
        .find(|f| f.student_id == Some(obama))
        .expect("Obama recognised")
        .clone();
    let unknown: Vec<_> = old_faces
        .iter()
        .filter(|f| f.student_id.is_none())
        .cloned()
        .collect();
    assert!(!unknown.is_empty(), "Biden is an unknown face");
    assert!(
        unknown
            .iter()
            .all(|f| f.crop_key.is_some() && f.descriptor.is_some())
    );
    let (old_photos, young_photos) = (photo_keys(&app, old).await, photo_keys(&app, young).await);
    let young_crops: Vec<String> = faces(&app, young)
        .await
        .into_iter()
        .filter_map(|f| f.crop_key)
        .collect();
    let keys = app.blob_keys();
    for key in old_photos.iter().chain(&young_photos).chain(&young_crops) {
        assert!(keys.contains(key), "{key} stored before");
    }

    // The day's job, as the API process schedules it: once, however often it checks.
    let queue = app.embedded.clone().unwrap();
    let scheduled =
        api::retention_schedule::schedule_today(&app.state.db, &queue, clock.as_ref(), Some(180))
            .await
            .unwrap();
    assert_eq!(scheduled, Some(daily_job_id(clock.now())));
    let again =
        api::retention_schedule::schedule_today(&app.state.db, &queue, clock.as_ref(), Some(180))
            .await
            .unwrap();
    assert_eq!(again, None);
    let retention_jobs = job::Entity::find()
        .filter(job::Column::Kind.eq(JobKind::Retention))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(retention_jobs, 1);

    // The worker takes it from the bulk lane.
    let job_id = run_next_on(&app, context(&app, Some(180)), Lane::Bulk).await;
    assert_eq!(Some(job_id), scheduled);
    let row = job_row(&app, job_id).await;
    assert_eq!(row.status, job::JobStatus::Succeeded, "{row:?}");
    let result = retention_result(&row);
    assert_eq!(
        (
            result.retention_days,
            result.sessions,
            result.photos_deleted,
            result.crops_deleted,
            result.left_for_next_run
        ),
        (180, 1, old_photos.len() as u32, unknown.len() as u32, 0)
    );
    assert_eq!(result.cutoff, clock.now() - TimeDelta::days(180));

    // The store: the old session's photos and unknown crops are gone, nothing else.
    let keys = app.blob_keys();
    for key in &old_photos {
        assert!(!keys.contains(key), "{key} deleted");
    }
    for f in &unknown {
        assert!(!keys.contains(f.crop_key.as_ref().unwrap()), "{f:?}");
    }
    assert!(keys.contains(matched.crop_key.as_ref().unwrap()));
    for key in young_photos.iter().chain(&young_crops) {
        assert!(keys.contains(key), "{key} of the younger session kept");
    }
    // The rows: unknown faces without crop or descriptor; the rest as it was.
    for f in faces(&app, old).await {
        if f.student_id.is_none() {
            assert_eq!((f.crop_key, f.descriptor), (None, None));
        } else {
            assert_eq!(f, matched);
        }
    }
    let rows = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(old))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), old_photos.len());
    assert!(
        rows.iter().all(|p| p.sha256.is_some()),
        "kept for re-use checks"
    );

    // What a reviewer sees.
    let after: Value = app.get_json(&format!("/attendance/session/{old}")).await;
    assert_eq!(time(&after["photos_deleted_at"]), Some(clock.now()));
    assert_eq!(after["records"], before["records"]);
    assert_eq!(after["status"], "completed");
    assert_eq!(
        after["faces"].as_array().unwrap().len(),
        before["faces"].as_array().unwrap().len()
    );
    let young_detail: Value = app.get_json(&format!("/attendance/session/{young}")).await;
    assert!(young_detail["photos_deleted_at"].is_null());
    let listed: Value = app
        .get_json(&format!("/attendance/sessions?class_id={class}"))
        .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == json!(old) && !s["photos_deleted_at"].is_null())
    );

    let resp = app
        .get(&format!("/faces/{}/crop", unknown[0].id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "deleted_by_retention");
    let day = clock.now().format("%Y-%m-%d").to_string();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&day) && message.contains("retention"),
        "{message}"
    );
    let resp = app
        .get(&format!("/faces/{}/crop", matched.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A second run finds nothing more to do.
    let mut queued = row.clone().into_active_model();
    queued.status = sea_orm::ActiveValue::Set(job::JobStatus::Queued);
    job::Entity::update(queued)
        .exec(&app.state.db)
        .await
        .unwrap();
    queue
        .publish(
            Lane::Bulk,
            &common::JobMessage::new(job_id, JobKind::Retention),
        )
        .await
        .unwrap();
    run_next_on(&app, context(&app, Some(180)), Lane::Bulk).await;
    let rerun = job_row(&app, job_id).await;
    assert_eq!(rerun.status, job::JobStatus::Succeeded, "{rerun:?}");
    assert_eq!(retention_result(&rerun).sessions, 0);
    assert_eq!(app.blob_keys(), keys);
    let again: Value = app.get_json(&format!("/attendance/session/{old}")).await;
    assert_eq!(again["photos_deleted_at"], after["photos_deleted_at"]);

    // Processing the session again fails with a readable error; its records stay.
    let attendance_job = job::Entity::find()
        .filter(job::Column::SubjectId.eq(old))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut queued = attendance_job.into_active_model();
    queued.status = sea_orm::ActiveValue::Set(job::JobStatus::Queued);
    let attendance_job = job::Entity::update(queued)
        .exec(&app.state.db)
        .await
        .unwrap();
    queue
        .publish(
            Lane::Interactive,
            &common::JobMessage::new(attendance_job.id, JobKind::Attendance),
        )
        .await
        .unwrap();
    run_next_on(&app, context(&app, Some(180)), Lane::Interactive).await;
    let failed = job_row(&app, attendance_job.id).await;
    assert_eq!(failed.status, job::JobStatus::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert!(
        error.contains("deleted") && error.contains("retention") && error.contains(&day),
        "{error}"
    );
    let after_rerun: Value = app.get_json(&format!("/attendance/session/{old}")).await;
    assert_eq!(after_rerun["status"], "completed");
    assert_eq!(after_rerun["records"], before["records"]);

    // The unknown face cannot be enrolled any more (409, saying why), but can be named.
    let assign = |enroll: &str| {
        app.post(&format!(
            "/attendance/session/{old}/faces/{}/assign{enroll}",
            unknown[0].id
        ))
        .json(&json!({"student_id": obama}))
        .send()
    };
    let resp = assign("?enroll=true").await.unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "face_not_enrollable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("retention"), "{message}");
    let resp = assign("").await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The API process queues the day's job at start when retention is on, once per day
/// whatever the number of schedulers (two at once on PostgreSQL), and none when
/// `RETENTION_DAYS=0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_a_day_from_every_scheduler_and_none_when_off() {
    let clock = Arc::new(ManualClock::new(Utc::now().trunc_subsecs(0)));
    let app = spawn_app_at(
        Db::Postgres,
        Queue::RabbitMq,
        &[("RETENTION_DAYS", "180")],
        clock.clone(),
    )
    .await;
    let today = daily_job_id(clock.now());
    // At start: the job row, published on the bulk lane.
    let message = app.next_message().await;
    assert_eq!((message.job_id, message.kind), (today, JobKind::Retention));
    assert_eq!(message.lane(), Lane::Bulk);
    let row = job_row(&app, today).await;
    assert_eq!((row.kind, row.lane), (JobKind::Retention, Lane::Bulk));

    // Two schedulers checking at once, then again: still one row for the day.
    let check = || {
        api::retention_schedule::schedule_today(
            &app.state.db,
            app.state.queue.as_ref(),
            clock.as_ref(),
            Some(180),
        )
    };
    let (a, b) = tokio::join!(check(), check());
    assert_eq!((a.unwrap(), b.unwrap()), (None, None));
    let count = || async {
        job::Entity::find()
            .filter(job::Column::Kind.eq(JobKind::Retention))
            .count(&app.state.db)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);

    // The next day: one more, and only one, even from two schedulers at once.
    clock.advance(TimeDelta::days(1));
    let (a, b) = tokio::join!(check(), check());
    let created: Vec<Uuid> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(created, vec![daily_job_id(clock.now())]);
    assert_eq!(count().await, 2);
    let message = app.next_message().await;
    assert_eq!(message.job_id, created[0]);

    // RETENTION_DAYS=0: nothing is scheduled, at start or later.
    let off = spawn_app_at(Db::Sqlite, Queue::Embedded, &[], clock.clone()).await;
    let scheduled = api::retention_schedule::schedule_today(
        &off.state.db,
        off.state.queue.as_ref(),
        clock.as_ref(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(scheduled, None);
    // No periodic check is started either (the app above started none).
    assert!(
        api::retention_schedule::spawn(
            off.state.db.clone(),
            off.state.queue.clone(),
            off.state.clock.clone(),
            None,
            api::retention_schedule::CHECK_EVERY,
        )
        .is_none()
    );
    let rows = job::Entity::find().count(&off.state.db).await.unwrap();
    assert_eq!(rows, 0);
}
