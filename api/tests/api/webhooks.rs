//! Signed webhooks, received by a real HTTP receiver on 127.0.0.1: events fired by real
//! jobs (a registered student recognised in a group photo; a session whose photo
//! storage lost), the signature recomputed with the secret from the create answer,
//! retries after failures with exactly one success per event, department scoping,
//! who may manage subscriptions, private URLs refused, and a pending delivery that
//! survives a restart of the application.
//!
//! Teachers cannot manage webhooks (403): a subscription sends a department's data to
//! an outside system, a decision for the department's admin.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use api::{AppState, auth::Role};
use common::{Config, blob::FsBlobStore, queue::EmbeddedQueue};
use hmac::{Hmac, Mac};
use poem::{
    EndpointExt, Route, Server, handler,
    http::{HeaderMap, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use reqwest::multipart::{Form, Part};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

use crate::helpers::{Db, PgDatabase, Queue, TEST_DEPARTMENT, error_code, fixture, spawn_app};

// ---------------------------------------------------------------------------------------
// The receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    event: String,
    delivery: String,
    body: String,
    /// What the receiver answered.
    answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Answer 500 to everything while set.
    fail_all: AtomicBool,
}

#[handler]
async fn receive(
    state: Data<&Arc<ReceiverState>>,
    headers: &HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let fail = state.fail_all.load(Ordering::SeqCst)
        || state
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    state.requests.lock().unwrap().push(Received {
        signature: header("x-attendance-signature"),
        event: header("x-attendance-event"),
        delivery: header("x-attendance-delivery"),
        body,
        answered: status.as_u16(),
    });
    status
}

/// A webhook receiver on 127.0.0.1, port 0.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    server: JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        state.fail_first.store(fail_first, Ordering::SeqCst);
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let app = Route::new()
            .at("/hook", poem::post(receive))
            .data(state.clone());
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            server,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    fn successes(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits (up to `within`) until `n` deliveries succeeded.
    async fn wait_for_successes(&self, n: usize, within: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let ok = self.successes();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                start.elapsed() < within,
                "{} of {n} deliveries succeeded within {within:?}; received: {:#?}",
                ok.len(),
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Recomputes the signature of a request with `secret`, independently of the server.
fn assert_signed(r: &Received, secret: &str) {
    let mut parts = BTreeMap::new();
    for part in r.signature.split(',') {
        let (k, v) = part.split_once('=').expect("k=v");
        parts.insert(k, v);
    }
    let t: i64 = parts["t"].parse().expect("t is unix seconds");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() < 120, "timestamp {t} is not now ({now})");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(parts["v1"], expected, "bad signature on {r:?}");
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another secret").unwrap();
    wrong.update(format!("{t}.{}", r.body).as_bytes());
    assert_ne!(parts["v1"], hex::encode(wrong.finalize().into_bytes()));
}

// ---------------------------------------------------------------------------------------
// The application, with its in-process worker and webhook dispatcher, restartable on
// the same database and storage.

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

pub(crate) struct Running {
    base: String,
    pub(crate) admin_key: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts the application on `database_url` and `dir` (blobs, data); with
    /// `worker`, its in-process worker (jobs and webhook dispatcher) runs.
    pub(crate) async fn start(
        database_url: &str,
        dir: &Path,
        worker: bool,
        retry_base_ms: &str,
    ) -> Running {
        common::telemetry::init("api-tests");
        let blob_dir = dir.join("blobs");
        let data_dir = dir.join("data");
        let model_dir = model_dir();
        let config = Config::from_pairs([
            ("DATABASE_URL", database_url),
            ("QUEUE_URL", "embedded"),
            ("STORAGE_URL", &format!("file://{}", blob_dir.display())),
            ("BIND", "127.0.0.1:0"),
            ("DATA_DIR", &data_dir.display().to_string()),
            ("MODEL_DIR", &model_dir.display().to_string()),
            ("DEVICE", "cpu"),
            ("PUBLIC_URL", "https://attendance.example.edu"),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ("WEBHOOK_RETRY_BASE_MS", retry_base_ms),
        ])
        .expect("valid test config");
        let state = AppState {
            db: api::database::connect_and_migrate(&config.database_url)
                .await
                .expect("database"),
            blobs: Arc::new(FsBlobStore::open(&blob_dir).await.expect("blob dir")),
            queue: Arc::new(EmbeddedQueue::new()),
            exif_utc_offset: config.exif_utc_offset,
            clock: common::clock::system(),
            privacy: config.privacy,
        };
        let app = api::build_with(&config, state, worker)
            .await
            .expect("the application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let admin_key = std::fs::read_to_string(data_dir.join("admin.key"))
            .expect("the first start writes admin.key")
            .trim()
            .to_string();
        Running {
            base,
            admin_key,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops serving and the background tasks (worker, dispatcher), and waits.
    pub(crate) async fn stop(mut self) {
        drop(std::mem::take(&mut self.client));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("the application stops")
                .expect("server task");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn key(&self, db: &sea_orm::DatabaseConnection, role: Role, department: &str) -> String {
        api::auth::create_key(db, "test", role, Some(department))
            .await
            .unwrap()
            .key
    }

    async fn post_json(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get(&self, key: &str, path: &str) -> Value {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// Subscribes; returns (id, secret).
    async fn subscribe(&self, key: &str, url: &str, events: &[&str]) -> (String, String) {
        let resp = self
            .post_json(key, "/webhooks", json!({"url": url, "events": events}))
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_string(),
            body["secret"].as_str().unwrap().to_string(),
        )
    }

    pub(crate) async fn create_class(&self, name: &str, department: &str) -> String {
        let resp = self
            .post_json(
                &self.admin_key,
                "/classes",
                json!({"name": name, "department": department, "year": 2, "section": "A"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn register(&self, class_id: &str, roll_no: &str, photos: &[&str]) -> String {
        let mut form = Form::new()
            .text("roll_no", roll_no.to_string())
            .text("name", roll_no.to_string())
            .text("class_id", class_id.to_string());
        for p in photos {
            form = form.part("photos", Part::bytes(fixture(p)).file_name("p.jpg"));
        }
        let resp = self
            .client
            .post(self.url("/students/register"))
            .bearer_auth(&self.admin_key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        resp.json::<Value>().await.unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Marks attendance from `photo`; returns (session id, job id).
    async fn mark(&self, class_id: &str, photo: &str) -> (String, String) {
        let form = Form::new()
            .text("class_id", class_id.to_string())
            .text("subject", "DBMS")
            .part("photos", Part::bytes(fixture(photo)).file_name("class.jpg"));
        let resp = self
            .client
            .post(self.url("/attendance/mark"))
            .bearer_auth(&self.admin_key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        (
            body["session_id"].as_str().unwrap().to_string(),
            body["job_id"].as_str().unwrap().to_string(),
        )
    }

    /// Waits for a job to finish; returns its JSON.
    async fn finished_job(&self, job: &str) -> Value {
        let start = Instant::now();
        loop {
            let j = self.get(&self.admin_key, &format!("/jobs/{job}")).await;
            if matches!(j["status"].as_str(), Some("succeeded" | "failed")) {
                return j;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "job {job} did not finish: {j}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn deliveries(&self, key: &str, hook: &str) -> Vec<Value> {
        self.get(key, &format!("/webhooks/{hook}/deliveries"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

pub(crate) async fn database(db: Db, dir: &TempDir) -> (Option<PgDatabase>, String) {
    match db {
        Db::Sqlite => (
            None,
            format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        ),
        Db::Postgres => {
            let (pg, url) = PgDatabase::create().await;
            (Some(pg), url)
        }
    }
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

// ---------------------------------------------------------------------------------------

/// A real attendance job: Obama, Biden and Kit Harington registered from their photos,
/// attendance marked from a photo of Obama and Biden. The admin's receiver fails the
/// first two deliveries; the event then arrives once, signed, with the counts; the
/// CSE department admin's subscription gets it too, the ECE one's does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_completed_is_signed_retried_and_delivered_once_per_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = database(Db::Postgres, &dir).await;
    let app = Running::start(&url, dir.path(), true, "100").await;
    let db = api::database::connect_and_migrate(&url).await.unwrap();

    let admin_receiver = Receiver::start(2).await;
    let cse_receiver = Receiver::start(0).await;
    let ece_receiver = Receiver::start(0).await;
    let events = ["attendance.session.completed", "job.failed"];
    let admin = app.admin_key.clone();
    let cse = app.key(&db, Role::DepartmentAdmin, TEST_DEPARTMENT).await;
    let ece = app.key(&db, Role::DepartmentAdmin, "ECE").await;
    let (admin_hook, admin_secret) = app.subscribe(&admin, &admin_receiver.url, &events).await;
    let (cse_hook, cse_secret) = app.subscribe(&cse, &cse_receiver.url, &events).await;
    let (ece_hook, _) = app.subscribe(&ece, &ece_receiver.url, &events).await;
    assert_ne!(admin_secret, cse_secret);

    let class = app.create_class("CSE 2A", TEST_DEPARTMENT).await;
    for (roll, photos) in [
        (
            "obama",
            ["people/obama/obama1.jpg", "people/obama/obama2.jpg"],
        ),
        (
            "biden",
            ["people/biden/biden1.jpg", "people/biden/biden2.jpg"],
        ),
        (
            "kit",
            [
                "people/kit_harington/kit1.jpeg",
                "people/kit_harington/kit2.jpeg",
            ],
        ),
    ] {
        let job = app.register(&class, roll, &photos).await;
        let done = app.finished_job(&job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (session, job) = app
        .mark(&class, "groups/obama_biden_side_by_side.jpg")
        .await;
    let done = app.finished_job(&job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // What labels.json says of the photo: Obama and Biden, nobody else.
    assert_eq!(done["result"]["present"], 2, "{done}");
    assert_eq!(done["result"]["absent"], 1, "{done}");
    assert_eq!(done["result"]["unknown"], 0, "{done}");

    let within = Duration::from_secs(30);
    let delivered = admin_receiver.wait_for_successes(1, within).await;
    cse_receiver.wait_for_successes(1, within).await;
    // Well past several retry periods: nothing more may arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Admin: two failures, then one success, all the same signed delivery.
    let all = admin_receiver.requests();
    assert_eq!(
        all.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 204],
        "{all:#?}"
    );
    assert_eq!(delivered.len(), 1);
    for r in &all {
        assert_signed(r, &admin_secret);
        assert_eq!(r.delivery, all[0].delivery);
        assert_eq!(r.body, all[0].body);
        assert_eq!(r.event, "attendance.session.completed");
    }
    let event = body(&delivered[0]);
    assert_eq!(event["id"], delivered[0].delivery.as_str());
    assert_eq!(event["event"], "attendance.session.completed");
    let data = &event["data"];
    assert_eq!(data["session_id"], session.as_str());
    assert_eq!(data["job_id"], job.as_str());
    assert_eq!(data["class"]["id"], class.as_str());
    assert_eq!(data["class"]["name"], "CSE 2A");
    assert_eq!(data["class"]["department"], TEST_DEPARTMENT);
    assert_eq!(data["subject"], "DBMS");
    assert!(data["taken_at"].as_str().is_some(), "{data}");
    assert_eq!(
        (&data["present"], &data["absent"], &data["unknown"]),
        (&json!(2), &json!(1), &json!(0)),
        "{data}"
    );
    assert_eq!(
        data["url"],
        format!("https://attendance.example.edu/attendance/session/{session}")
    );

    // The department admin of CSE: one delivery, signed with its own secret.
    let cse_all = cse_receiver.requests();
    assert_eq!(cse_all.len(), 1, "{cse_all:#?}");
    assert_signed(&cse_all[0], &cse_secret);
    assert_ne!(cse_all[0].delivery, all[0].delivery);
    assert_eq!(body(&cse_all[0])["data"]["session_id"], session.as_str());
    // ECE's subscription never hears of a CSE session (nor of the registrations).
    assert!(ece_receiver.requests().is_empty());
    assert!(app.deliveries(&ece, &ece_hook).await.is_empty());

    // The log: one delivery, three attempts with their statuses.
    let log = app.deliveries(&admin, &admin_hook).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["id"], all[0].delivery.as_str());
    assert_eq!(log[0]["event"], "attendance.session.completed");
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempts"], 3);
    let attempts = log[0]["attempt_log"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (
                a["attempt"].as_i64().unwrap(),
                a["status_code"].as_i64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [(1, 500), (2, 500), (3, 204)]
    );
    assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
    assert!(attempts[2]["error"].is_null());
    assert!(
        attempts
            .iter()
            .all(|a| a["duration_ms"].as_i64().unwrap() >= 0)
    );
    // Another department's admin cannot read it.
    let resp = app
        .client
        .get(app.url(&format!("/webhooks/{admin_hook}/deliveries")))
        .bearer_auth(&ece)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let cse_log = app.deliveries(&cse, &cse_hook).await;
    assert_eq!(cse_log.len(), 1);
    assert_eq!(cse_log[0]["attempts"], 1);
    app.stop().await;
}

/// A job that really fails: the storage lost the session's photo before the worker got
/// to it (the application was down meanwhile). The worker gives up on the job and
/// `job.failed` arrives, signed, naming the job and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_raises_job_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = database(Db::Sqlite, &dir).await;
    let receiver = Receiver::start(0).await;

    // Accepted while no worker runs.
    let app = Running::start(&url, dir.path(), false, "100").await;
    let admin = app.admin_key.clone();
    let (hook, secret) = app.subscribe(&admin, &receiver.url, &["job.failed"]).await;
    let class = app.create_class("CSE 2A", TEST_DEPARTMENT).await;
    let (_session, job) = app
        .mark(&class, "groups/obama_biden_side_by_side.jpg")
        .await;
    app.stop().await;
    let sessions = dir.path().join("blobs/sessions");
    let removed = std::fs::remove_dir_all(&sessions);
    assert!(removed.is_ok(), "{}: {removed:?}", sessions.display());

    // Back up with its worker, which picks the job up again.
    let app = Running::start(&url, dir.path(), true, "100").await;
    let done = app.finished_job(&job).await;
    assert_eq!(done["status"], "failed", "{done}");
    let delivered = receiver
        .wait_for_successes(1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.requests().len(), 1);
    assert_signed(&delivered[0], &secret);
    assert_eq!(delivered[0].event, "job.failed");
    let event = body(&delivered[0]);
    assert_eq!(event["event"], "job.failed");
    let data = &event["data"];
    assert_eq!(data["job_id"], job.as_str());
    assert_eq!(data["kind"], "attendance");
    assert!(
        data["error"]
            .as_str()
            .unwrap()
            .contains("missing from storage"),
        "{data}"
    );
    assert_eq!(data["error"], done["error"]);
    assert_eq!(
        data["url"],
        format!("https://attendance.example.edu/jobs/{job}")
    );
    let log = app.deliveries(&admin, &hook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "succeeded");
    app.stop().await;
}

/// A delivery still pending when the application stops (its first attempt failed, the
/// next not yet due) is delivered by the next start on the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = database(Db::Postgres, &dir).await;
    let receiver = Receiver::start(0).await;
    receiver.state.fail_all.store(true, Ordering::SeqCst);

    // Retries 1.5–3 s apart: the application is stopped between two attempts.
    let app = Running::start(&url, dir.path(), true, "3000").await;
    let admin = app.admin_key.clone();
    let (hook, secret) = app.subscribe(&admin, &receiver.url, &["job.failed"]).await;
    let resp = app
        .post_json(&admin, &format!("/webhooks/{hook}/test"), json!({}))
        .await;
    assert_eq!(resp.status(), 202);
    let delivery = resp.json::<Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = Instant::now();
    loop {
        let log = app.deliveries(&admin, &hook).await;
        if log[0]["attempts"] == 1 {
            assert_eq!(log[0]["status"], "pending");
            assert_eq!(log[0]["last_status"], 500);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{log:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
    // Usually one attempt; another if stopping took longer than the retry wait.
    let before = receiver.requests();
    assert!(before.iter().all(|r| r.answered == 500), "{before:#?}");

    receiver.state.fail_all.store(false, Ordering::SeqCst);
    let app = Running::start(&url, dir.path(), true, "100").await;
    let delivered = receiver
        .wait_for_successes(1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.successes().len(), 1);
    assert_eq!(delivered[0].delivery, delivery);
    assert_eq!(delivered[0].event, "webhook.test");
    assert_signed(&delivered[0], &secret);
    let log = app.deliveries(&admin, &hook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempts"], before.len() + 1);
    let codes: Vec<i64> = log[0]["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    let mut expected = vec![500; before.len()];
    expected.push(204);
    assert_eq!(codes, expected);
    app.stop().await;
}

/// Who may manage which subscriptions, and what is refused.
#[tokio::test]
async fn subscriptions_are_validated_and_scoped() {
    // The default configuration: private addresses refused.
    let app = spawn_app(Db::Sqlite, Queue::Embedded).await;
    let public = "http://93.184.215.14/hook";
    let post = |key: String, body: Value| {
        app.client
            .post(app.url("/webhooks"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let admin = app.admin_key.clone();

    for (url, code) in [
        ("http://127.0.0.1:9/hook", "private_address"),
        ("http://localhost:9/hook", "private_address"),
        ("http://169.254.169.254/latest/meta-data", "private_address"),
        ("http://10.0.0.5/hook", "private_address"),
        ("http://[::1]/hook", "private_address"),
        ("ftp://93.184.215.14/hook", "invalid_url"),
        ("not a url", "invalid_url"),
    ] {
        let resp = post(admin.clone(), json!({"url": url, "events": ["job.failed"]}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{url}");
        assert_eq!(error_code(resp).await, code, "{url}");
    }
    for events in [json!([]), json!(["job.exploded"]), json!(["webhook.test"])] {
        let resp = post(admin.clone(), json!({"url": public, "events": events}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{events}");
    }
    let resp = post(
        admin.clone(),
        json!({"url": public, "events": ["job.failed"], "secret": "short"}),
    )
    .await
    .unwrap();
    assert_eq!(error_code(resp).await, "invalid_secret");
    assert!(
        app.get_json::<Vec<Value>>("/webhooks").await.is_empty(),
        "nothing refused was stored"
    );

    // Created: a generated secret, or the client's own.
    let resp = post(
        admin.clone(),
        json!({"url": public, "events": ["job.failed", "attendance.session.completed"]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let admin_hook: Value = resp.json().await.unwrap();
    assert!(admin_hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(admin_hook["department"].is_null());
    let cse = app.key(Role::DepartmentAdmin).await;
    let resp = post(
        cse.clone(),
        json!({"url": public, "events": ["registration.batch.completed"], "secret": "a-secret-of-my-own"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let cse_hook: Value = resp.json().await.unwrap();
    assert_eq!(cse_hook["secret"], "a-secret-of-my-own");
    assert_eq!(cse_hook["department"], TEST_DEPARTMENT);
    let cse_id = cse_hook["id"].as_str().unwrap().to_string();

    // Lists: the admin sees both, a department admin its own; never a secret.
    let listed = |key: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .get(app.url("/webhooks"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Vec<Value>>().await.unwrap()
        }
    };
    let all = listed(admin.clone()).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|h| h.get("secret").is_none()), "{all:?}");
    let own = listed(cse.clone()).await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["id"], cse_id.as_str());
    let ece = app.key_in(Role::DepartmentAdmin, "ECE").await;
    assert!(listed(ece.clone()).await.is_empty());

    // Teachers manage none (403); another department's subscription is 404.
    let teacher = app.key(Role::Teacher).await;
    let call = |method: reqwest::Method, path: String, key: String| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(key)
            .json(&json!({"url": public, "events": ["job.failed"]}))
            .send()
    };
    let routes = |id: &str| {
        [
            (reqwest::Method::GET, format!("/webhooks/{id}/deliveries")),
            (reqwest::Method::POST, format!("/webhooks/{id}/test")),
            (reqwest::Method::DELETE, format!("/webhooks/{id}")),
        ]
    };
    for (method, path) in [
        (reqwest::Method::POST, "/webhooks".to_string()),
        (reqwest::Method::GET, "/webhooks".to_string()),
    ]
    .into_iter()
    .chain(routes(&cse_id))
    {
        let resp = call(method.clone(), path.clone(), teacher.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} {path}");
    }
    for (method, path) in routes(&cse_id) {
        let resp = call(method.clone(), path.clone(), ece.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert_eq!(error_code(resp).await, "not_found");
    }
    let admin_id = admin_hook["id"].as_str().unwrap();
    for (method, path) in routes(admin_id) {
        let resp = call(method.clone(), path.clone(), cse.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
    for (method, path) in routes(&Uuid::new_v4().to_string()) {
        let resp = call(method.clone(), path.clone(), admin.clone())
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
    }

    // A test event is queued as a delivery (no worker runs here to send it).
    let resp = call(
        reqwest::Method::POST,
        format!("/webhooks/{cse_id}/test"),
        cse.clone(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    let delivery = resp.json::<Value>().await.unwrap()["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let log: Vec<Value> = app
        .get_json(&format!("/webhooks/{cse_id}/deliveries"))
        .await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], delivery.as_str());
    assert_eq!(log[0]["event"], "webhook.test");
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"], 0);

    // Deleted: gone from the list and the routes; its pending delivery given up.
    let resp = call(
        reqwest::Method::DELETE,
        format!("/webhooks/{cse_id}"),
        cse.clone(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(listed(cse.clone()).await.is_empty());
    let resp = call(
        reqwest::Method::GET,
        format!("/webhooks/{cse_id}/deliveries"),
        admin.clone(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);
    let row = models::webhook_delivery::Entity::find_by_id(delivery.parse::<Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, models::webhook_delivery::DeliveryStatus::Failed);
}

/// A real batch: a ZIP with one good student (two photos) and one entry that is not an
/// image, unpacked and registered by the in-process worker. `registration.batch.completed`
/// arrives once the last student is settled, signed, with the batch's counts and links,
/// after the receiver failed the first delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_batch_raises_registration_batch_completed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = database(Db::Sqlite, &dir).await;
    let app = Running::start(&url, dir.path(), true, "100").await;
    let receiver = Receiver::start(1).await;
    let (_hook, secret) = app
        .subscribe(
            &app.admin_key,
            &receiver.url,
            &["registration.batch.completed"],
        )
        .await;
    let class = app.create_class("CSE 2A", TEST_DEPARTMENT).await;

    let options = zip::write::SimpleFileOptions::default();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, photo) in ["people/obama/obama1.jpg", "people/obama/obama2.jpg"]
        .iter()
        .enumerate()
    {
        zip.start_file(format!("21CS001/{i}.jpg"), options).unwrap();
        zip.write_all(&fixture(photo)).unwrap();
    }
    zip.start_file("21CS002/notes.jpg", options).unwrap();
    zip.write_all(b"not a photo").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let form = Form::new()
        .text("class_id", class.clone())
        .part("file", Part::bytes(bytes).file_name("batch.zip"));
    let resp = app
        .client
        .post(app.url("/students/batches"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let batch = resp.json::<Value>().await.unwrap()["batch_id"]
        .as_str()
        .unwrap()
        .to_string();

    let ok = receiver
        .wait_for_successes(1, Duration::from_secs(180))
        .await;
    let delivered = &ok[0];
    assert_eq!(delivered.event, "registration.batch.completed");
    assert_signed(delivered, &secret);
    let event = body(delivered);
    let data = &event["data"];
    assert_eq!(data["batch_id"], batch.as_str());
    assert_eq!(data["class_id"], class.as_str());
    assert_eq!(data["department"], TEST_DEPARTMENT);
    assert_eq!(data["counts"]["active"], 1, "{event}");
    // Refused: the entry that is not an image, and so its student, left without photos.
    assert_eq!(data["counts"]["rejected"], 2, "{event}");
    assert_eq!(data["counts"]["queued"], 0, "{event}");
    assert_eq!(
        data["report_url"],
        format!("https://attendance.example.edu/students/batches/{batch}/report.csv")
    );
    // The batch the event describes is really completed, with the same counts.
    let shown = app
        .get(&app.admin_key, &format!("/students/batches/{batch}"))
        .await;
    assert_eq!(shown["status"], "completed", "{shown}");
    for (outcome, n) in data["counts"].as_object().unwrap() {
        assert_eq!(&shown["counts"][outcome], n, "{outcome}: {shown}");
    }
    // The failed first attempt was retried, and nothing more arrives after the success.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = receiver.requests();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[0].delivery, all[1].delivery);
    assert_eq!(receiver.successes().len(), 1);
    app.stop().await;
}
