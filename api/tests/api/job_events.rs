//! `GET /jobs/{id}/events`: a real job, run by the real engine after the stream is
//! open, seen going queued → running → succeeded (or failed, with its error); the
//! stream then closes. Same visibility as `GET /jobs/{id}`.

use std::time::Duration;

use api::auth::Role;
use futures::StreamExt;
use models::session_photo;
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Db, Queue, TestApp, error_code, fixture, run_next_job, spawn_app};

/// Reads server-sent events from a response body.
struct EventReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

/// One event: its type and its data as JSON.
#[derive(Debug)]
struct JobEvent {
    kind: String,
    job: Value,
}

impl EventReader {
    fn new(resp: reqwest::Response) -> EventReader {
        EventReader {
            body: resp.bytes_stream().boxed(),
            buffer: Vec::new(),
        }
    }

    /// The next event with data (keep-alive comments skipped); `None` when the server
    /// closed the stream. Fails after 120 s without one.
    async fn next(&mut self) -> Option<JobEvent> {
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    let block = String::from_utf8(raw).expect("events are UTF-8");
                    let mut kind = String::from("message");
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            kind = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if data.is_empty() {
                        continue;
                    }
                    let job = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(JobEvent { kind, job });
                }
                match self.body.next().await {
                    Some(chunk) => self.buffer.extend_from_slice(&chunk.unwrap()),
                    None => return None,
                }
            }
        })
        .await
        .expect("an event or the end of the stream within 120 s")
    }

    /// Every remaining event until the server closes the stream.
    async fn rest(&mut self) -> Vec<JobEvent> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

async fn open(app: &TestApp, job_id: &str, key: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/jobs/{job_id}/events")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// A class with Obama registered (his job run), and a queued attendance job on four
/// group photos. Returns the class, the session and the job id.
async fn queued_attendance(app: &TestApp) -> (Uuid, Uuid, String) {
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class_id,
            "01",
            "Barack Obama",
            vec![("1.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    assert_eq!(resp.status(), 202);
    run_next_job(app).await;

    let mut form = Form::new().text("class_id", class_id.to_string());
    for photo in [
        "groups/obama_and_biden.jpg",
        "groups/obama_biden_side_by_side.jpg",
        "groups/six_people.jpg",
        "groups/rose_and_kit.jpg",
    ] {
        form = form.part("photos", Part::bytes(fixture(photo)).file_name("g.jpg"));
    }
    let resp = app
        .post("/attendance/mark")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    (
        class_id,
        body["session_id"].as_str().unwrap().parse().unwrap(),
        body["job_id"].as_str().unwrap().to_string(),
    )
}

/// The statuses in order, repeats collapsed.
fn statuses(events: &[JobEvent]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for e in events {
        assert_eq!(e.kind, e.job["status"], "the event type is the status");
        if out.last() != Some(&e.kind.as_str()) {
            out.push(&e.kind);
        }
    }
    out
}

#[tokio::test]
async fn a_job_s_events_go_from_queued_through_running_to_succeeded_then_close() {
    let app = spawn_app(Db::Postgres, Queue::Embedded).await;
    let (_, session_id, job_id) = queued_attendance(&app).await;

    // A teacher of the department may watch; the stream opens on the queued job.
    let teacher = app.key(Role::Teacher).await;
    let resp = open(&app, &job_id, &teacher).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = EventReader::new(resp);
    let first = events.next().await.expect("the job as it is now");
    assert_eq!(first.kind, "queued");
    assert_eq!(first.job["id"], job_id);
    assert_eq!(first.job["subject_id"], session_id.to_string());

    // Now the worker runs it, while the stream is read.
    let ((), rest) = tokio::join!(run_next_job(&app), events.rest());
    let mut all = vec![first];
    all.extend(rest);
    assert_eq!(
        statuses(&all),
        ["queued", "running", "succeeded"],
        "{all:#?}"
    );
    let last = all.last().unwrap();
    assert_eq!(last.job["progress"], 1.0);
    assert_eq!(last.job["result"]["type"], "attendance");
    assert!(
        last.job["result"]["present"].as_u64().unwrap() >= 1,
        "{:#}",
        last.job
    );
    // Progress was reported on the way, never going back.
    let progress: Vec<f64> = all
        .iter()
        .map(|e| e.job["progress"].as_f64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.iter().any(|p| *p > 0.0 && *p < 1.0),
        "intermediate progress: {progress:?}"
    );

    // The session's records really are there.
    let detail: Value = app
        .get_json(&format!("/attendance/session/{session_id}"))
        .await;
    assert_eq!(detail["status"], "completed");
    assert_eq!(detail["records"][0]["status"], "present", "{detail:#}");

    // A finished job's stream is its final state, then the end.
    let mut again = EventReader::new(open(&app, &job_id, &app.admin_key).await);
    assert_eq!(again.next().await.unwrap().kind, "succeeded");
    assert!(again.next().await.is_none());
}

#[tokio::test]
async fn a_failed_job_s_events_end_with_failed_and_its_error() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let (_, session_id, job_id) = queued_attendance(&app).await;
    // One of the session's photos vanishes from storage: the job cannot succeed.
    let photo = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(session_id))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    app.state.blobs.delete(&photo.blob_key).await.unwrap();

    let mut events = EventReader::new(open(&app, &job_id, &app.admin_key).await);
    let first = events.next().await.unwrap();
    assert_eq!(first.kind, "queued");
    let ((), rest) = tokio::join!(run_next_job(&app), events.rest());
    let mut all = vec![first];
    all.extend(rest);
    let seen = statuses(&all);
    assert_eq!(seen.first(), Some(&"queued"));
    assert_eq!(seen.last(), Some(&"failed"), "{all:#?}");
    let last = &all.last().unwrap().job;
    let error = last["error"].as_str().expect("a failed job says why");
    assert!(error.contains("missing from storage"), "{error}");
    assert!(
        error.contains(&photo.id.to_string()),
        "names the photo: {error}"
    );
}

#[tokio::test]
async fn job_events_are_scoped_like_the_job() {
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let class_id = app.create_class("CSE 2A").await;
    let resp = app
        .register(
            class_id,
            "01",
            "Barack Obama",
            vec![("1.jpg".into(), fixture("people/obama/obama1.jpg"))],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let job_id = body["job_id"].as_str().unwrap();

    let outsider = app.key_in(Role::DepartmentAdmin, "ECE").await;
    let resp = open(&app, job_id, &outsider).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");

    let resp = open(&app, &Uuid::new_v4().to_string(), &app.admin_key).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");

    let resp = app
        .client
        .get(app.url(&format!("/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The department's own teacher sees the queued job.
    let teacher = app.key(Role::Teacher).await;
    let resp = open(&app, job_id, &teacher).await;
    assert_eq!(resp.status(), 200);
    let first = EventReader::new(resp).next().await.unwrap();
    assert_eq!(first.kind, "queued");
    assert_eq!(first.job["kind"], "registration");
}
