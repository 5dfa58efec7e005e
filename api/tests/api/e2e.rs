//! End to end with the real binaries: `attendance-api` (and, in production mode, separate
//! `attendance-worker` processes) over PostgreSQL, RabbitMQ and S3, or everything in one
//! process on SQLite, the filesystem and the in-process queue. Fixture people are
//! registered over HTTP, attendance is marked from group photos, and the records are
//! checked against `labels.json` — through the API and straight in the database.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::blob::{S3BlobStore, S3Options};
use models::{attendance_record, detected_face};
use reqwest::multipart::{Form, Part};
use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

use crate::helpers::{PgDatabase, RabbitQueues, fixture, s3_url};

/// Registered from their first two photos.
const PEOPLE: [&str; 5] = [
    "obama",
    "biden",
    "alex_lacamoire",
    "kit_harington",
    "rose_leslie",
];
/// One session over both photos: four of the five are in them.
const GROUPS: [&str; 2] = [
    "groups/obama_biden_side_by_side.jpg",
    "groups/rose_and_kit.jpg",
];

fn binary(name: &str) -> PathBuf {
    // Both binaries land in the same target directory; `cargo test --workspace` (and
    // scripts/test.sh) build the worker's too.
    let api = PathBuf::from(env!("CARGO_BIN_EXE_attendance-api"));
    let path = api.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

/// A child process whose output goes to a log file; killed when dropped, and its log
/// printed if the test is failing.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown handler runs, unacknowledged messages go back to the broker.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}:\n{}",
                self.name,
                tail(&self.output())
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, tail(&self.output()));
        }
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(6000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[start..]
}

/// The environment both binaries read (`common::config`), nothing inherited that
/// could change the mode.
fn configure(cmd: &mut Command, env: &[(&str, String)]) {
    for var in [
        "DATABASE_URL",
        "QUEUE_URL",
        "STORAGE_URL",
        "BIND",
        "DATA_DIR",
        "FACE_MODEL",
        "DETECTOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("MODEL_DIR", model_dir())
        .env("DEVICE", "cpu")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// A running system: the API (plus any workers) and an HTTP client holding the admin
/// key the API printed on its first start.
struct System {
    dir: TempDir,
    env: Vec<(&'static str, String)>,
    api: Proc,
    workers: Vec<Proc>,
    base: String,
    key: String,
    client: reqwest::Client,
}

impl System {
    async fn start(env: Vec<(&'static str, String)>, workers: usize) -> System {
        let dir = TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut env = env;
        env.push(("BIND", format!("127.0.0.1:{port}")));
        env.push(("DATA_DIR", dir.path().join("data").display().to_string()));

        let mut cmd = Command::new(binary("attendance-api"));
        configure(&mut cmd, &env);
        let mut api = Proc::spawn("attendance-api", cmd, dir.path());

        // First start: the URL is printed on stdout; the admin key is written to
        // data/admin.key and, stdout not being a terminal, not printed.
        let deadline = Instant::now() + Duration::from_secs(120);
        let base = loop {
            api.assert_running();
            let out = api.output();
            let url = out
                .lines()
                .find_map(|l| l.split("listening on ").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap().to_string());
            if let Some(url) = url {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "the API did not print its URL:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(base, format!("http://127.0.0.1:{port}"));
        let key_file = dir.path().join("data/admin.key");
        let key = std::fs::read_to_string(&key_file)
            .expect("the first start writes data/admin.key")
            .trim()
            .to_string();
        let out = api.output();
        assert!(
            !out.contains(&key),
            "the admin key must not be printed when stdout is not a terminal:\n{out}"
        );
        assert!(
            out.contains(&key_file.display().to_string()),
            "the log names the admin key's file:\n{out}"
        );

        let mut system = System {
            dir,
            env,
            api,
            workers: Vec::new(),
            base,
            key,
            client: reqwest::Client::new(),
        };
        for _ in 0..workers {
            system.start_worker();
        }
        system
    }

    /// Stops the API (SIGKILL) and starts it again on a new port with `changes` applied
    /// to its environment (e.g. another `FACE_MODEL`); same data, same admin key.
    async fn restart_api(&mut self, changes: &[(&'static str, &str)]) {
        self.api.kill();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut changes = changes.to_vec();
        let bind = format!("127.0.0.1:{port}");
        changes.push(("BIND", &bind));
        for (k, v) in changes {
            self.env.retain(|(name, _)| *name != k);
            self.env.push((k, v.to_string()));
        }
        let mut cmd = Command::new(binary("attendance-api"));
        configure(&mut cmd, &self.env);
        self.api = Proc::spawn("attendance-api-restarted", cmd, self.dir.path());
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.api.output().contains("listening on") {
            self.api.assert_running();
            assert!(Instant::now() < deadline, "the API did not start again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.base = format!("http://{bind}");
    }

    fn start_worker(&mut self) {
        let mut cmd = Command::new(binary("attendance-worker"));
        cmd.arg("run");
        configure(&mut cmd, &self.env);
        let name = format!("attendance-worker-{}", self.workers.len() + 1);
        self.workers.push(Proc::spawn(&name, cmd, self.dir.path()));
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post_form(&self, path: &str, form: Form) -> Value {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 202, "POST {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn create_class(&self) -> Uuid {
        let resp = self
            .client
            .post(self.url("/classes"))
            .bearer_auth(&self.key)
            .json(&serde_json::json!({"name": "CSE 3A", "department": "CSE", "year": 3, "section": "A"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Registers each person from their first two fixture photos; returns name → id
    /// once every registration job has succeeded.
    async fn register(&mut self, class_id: Uuid, people: &[&str]) -> BTreeMap<String, Uuid> {
        let labels = labels();
        let mut jobs = Vec::new();
        let mut ids = BTreeMap::new();
        for (i, person) in people.iter().enumerate() {
            let mut form = Form::new()
                .text("roll_no", format!("22CS{:03}", i + 1))
                .text("name", person.to_string())
                .text("class_id", class_id.to_string());
            for rel in labels["people"][*person].as_array().unwrap().iter().take(2) {
                let rel = rel.as_str().unwrap();
                let file = Path::new(rel).file_name().unwrap().to_string_lossy();
                form = form.part(
                    "photos",
                    Part::bytes(fixture(rel)).file_name(file.to_string()),
                );
            }
            let body = self.post_form("/students/register", form).await;
            ids.insert(
                person.to_string(),
                body["student_id"].as_str().unwrap().parse().unwrap(),
            );
            jobs.push(body["job_id"].as_str().unwrap().to_string());
        }
        for job in jobs {
            let done = self.wait_job(&job, |_| false).await;
            assert_eq!(done["status"], "succeeded", "registration job: {done}");
        }
        ids
    }

    async fn mark(&self, class_id: Uuid, photos: &[&str]) -> (String, String) {
        let mut form = Form::new()
            .text("class_id", class_id.to_string())
            .text("subject", "Compilers");
        for rel in photos {
            let file = Path::new(rel).file_name().unwrap().to_string_lossy();
            form = form.part(
                "photos",
                Part::bytes(fixture(rel)).file_name(file.to_string()),
            );
        }
        let body = self.post_form("/attendance/mark", form).await;
        (
            body["session_id"].as_str().unwrap().to_string(),
            body["job_id"].as_str().unwrap().to_string(),
        )
    }

    /// Polls `GET /jobs/{id}` until the job is finished or `stop` says so.
    async fn wait_job(&mut self, job: &str, stop: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            self.api.assert_running();
            for w in &mut self.workers {
                w.assert_running();
            }
            let body = self.get(&format!("/jobs/{job}")).await;
            let status = body["status"].as_str().unwrap();
            if status == "succeeded" || status == "failed" || stop(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} never finished: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn labels() -> Value {
    worker::fixtures::labels().unwrap()
}

/// The people `labels.json` says are in the photos.
fn expected_present(photos: &[&str]) -> BTreeSet<String> {
    let labels = labels();
    photos
        .iter()
        .flat_map(|p| labels["groups"][*p]["present"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Checks the session over the API: one record per registered student, present exactly
/// for the people in the photos, every face either one of them or unknown, never a
/// student twice, and every face's crop served from the blob store.
async fn check_session(
    system: &System,
    session_id: &str,
    students: &BTreeMap<String, Uuid>,
    photos: &[&str],
) {
    let session = system
        .get(&format!("/attendance/session/{session_id}"))
        .await;
    let records = session["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        students.len(),
        "one record per student: {session}"
    );
    // Only registered students can be recognised; anyone else in the photos is unknown.
    let expected: BTreeSet<String> = expected_present(photos)
        .into_iter()
        .filter(|name| students.contains_key(name))
        .collect();
    for record in records {
        let name = record["name"].as_str().unwrap();
        let want = if expected.contains(name) {
            "present"
        } else {
            "absent"
        };
        assert_eq!(record["status"], want, "{name}: {record}");
        assert_eq!(record["source"], "auto");
        assert_eq!(
            record["student_id"].as_str().unwrap(),
            students[name].to_string()
        );
    }

    let faces = session["faces"].as_array().unwrap();
    let labels = labels();
    let min_faces: u64 = photos
        .iter()
        .map(|p| labels["groups"][*p]["faces_min"].as_u64().unwrap())
        .sum();
    assert!(faces.len() as u64 >= min_faces, "{} faces", faces.len());
    let matched: Vec<&str> = faces
        .iter()
        .filter_map(|f| f["student_id"].as_str())
        .collect();
    let unique: BTreeSet<&str> = matched.iter().copied().collect();
    assert_eq!(unique.len(), matched.len(), "a student matched twice");
    assert_eq!(matched.len(), expected.len());
    for face in faces {
        let resp = system
            .client
            .get(system.url(&format!(
                "/faces/{}/crop",
                face["face_id"].as_str().unwrap()
            )))
            .bearer_auth(&system.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let crop = resp.bytes().await.unwrap();
        image::load_from_memory_with_format(&crop, image::ImageFormat::Jpeg)
            .expect("the crop is a JPEG");
    }
}

/// Rows for the session, read straight from the database.
async fn rows_in_database(database_url: &str, session_id: &str) -> (u64, u64) {
    let db = Database::connect(database_url).await.unwrap();
    let session: Uuid = session_id.parse().unwrap();
    let records = attendance_record::Entity::find()
        .filter(attendance_record::Column::SessionId.eq(session))
        .count(&db)
        .await
        .unwrap();
    let faces = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session))
        .count(&db)
        .await
        .unwrap();
    db.close().await.ok();
    (records, faces)
}

/// PostgreSQL, RabbitMQ and S3, each process on its own; a fresh database, queues
/// and bucket per test.
struct Production {
    _pg: PgDatabase,
    _rabbit: RabbitQueues,
    database_url: String,
    store: S3BlobStore,
}

impl Production {
    async fn new() -> Production {
        let (pg, database_url) = PgDatabase::create().await;
        let rabbit = RabbitQueues::new();
        let bucket = format!("e2e-{}", Uuid::new_v4().simple());
        let store = S3BlobStore::connect(S3Options::from_url(&s3_url(&bucket)).unwrap())
            .await
            .unwrap();
        store
            .ensure_bucket()
            .await
            .expect("the S3 server (scripts/s3-server.sh) must be running");
        Production {
            _pg: pg,
            _rabbit: rabbit,
            database_url,
            store,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("QUEUE_URL", self._rabbit.url.clone()),
            ("STORAGE_URL", s3_url(self.store.bucket())),
        ]
    }

    /// Objects in the bucket under `prefix`.
    async fn objects(&self, prefix: &str) -> usize {
        let listed = self
            .store
            .client()
            .list_objects_v2()
            .bucket(self.store.bucket())
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        listed.contents().len()
    }
}

/// The whole flow on a running system: a class, [`PEOPLE`] registered, one session over
/// [`GROUPS`] marked and checked. Returns the session id.
async fn register_and_mark(system: &mut System, mode: &str) -> String {
    let class_id = system.create_class().await;
    let students = system.register(class_id, &PEOPLE).await;

    let started = Instant::now();
    let (session_id, job) = system.mark(class_id, &GROUPS).await;
    let done = system.wait_job(&job, |_| false).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    eprintln!(
        "{mode} mode: upload → records in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    check_session(system, &session_id, &students, &GROUPS).await;
    session_id
}

#[tokio::test]
async fn production_mode_api_and_worker_processes_mark_attendance() {
    let prod = Production::new().await;
    let mut system = System::start(prod.env(), 1).await;
    let session_id = register_and_mark(&mut system, "production").await;

    let (records, faces) = rows_in_database(&prod.database_url, &session_id).await;
    assert_eq!(records, PEOPLE.len() as u64);
    assert!(faces >= 4);
    assert!(
        prod.objects("").await >= 2 * PEOPLE.len() + GROUPS.len() + faces as usize,
        "photos and face crops are in the bucket"
    );
}

// The one-process mode needs the in-process worker (the default `embedded-worker`).
#[cfg(feature = "embedded-worker")]
#[tokio::test]
async fn embedded_mode_one_process_marks_attendance() {
    let dir = TempDir::new().unwrap();
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("attendance.db").display()
    );
    let env = vec![
        ("DATABASE_URL", database_url.clone()),
        (
            "STORAGE_URL",
            format!("file://{}", dir.path().join("blobs").display()),
        ),
    ];
    let mut system = System::start(env, 0).await;
    let session_id = register_and_mark(&mut system, "embedded").await;
    let (records, _) = rows_in_database(&database_url, &session_id).await;
    assert_eq!(records, PEOPLE.len() as u64);
}

#[tokio::test]
async fn worker_killed_while_holding_a_job_finishes_it_after_restart() {
    let people = ["obama", "biden", "rose_leslie"];
    let prod = Production::new().await;
    let mut system = System::start(prod.env(), 1).await;
    let class_id = system.create_class().await;
    let students = system.register(class_id, &people).await;

    let (session_id, job) = system.mark(class_id, &GROUPS).await;
    let seen = system
        .wait_job(&job, |body| body["status"] == "running")
        .await;
    assert_eq!(
        seen["status"], "running",
        "the job finished before the worker could be killed: {seen}"
    );
    let mut killed = system.workers.remove(0);
    killed.kill();
    // Nothing was committed by the killed attempt: the job is still running, with no
    // records.
    let body = system.get(&format!("/jobs/{job}")).await;
    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(rows_in_database(&prod.database_url, &session_id).await.0, 0);

    system.start_worker();
    let done = system.wait_job(&job, |_| false).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["attempts"].as_u64().expect("attempts") >= 2, "{done}");
    check_session(&system, &session_id, &students, &GROUPS).await;
    let (records, _) = rows_in_database(&prod.database_url, &session_id).await;
    assert_eq!(
        records,
        people.len() as u64,
        "exactly one record per student"
    );
}

/// An embedded-mode system on a fresh SQLite database and blob directory, with `extra`
/// in its environment; returns it with the database URL.
#[cfg(feature = "embedded-worker")]
async fn embedded_system(dir: &TempDir, extra: &[(&'static str, &str)]) -> (System, String) {
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("attendance.db").display()
    );
    let mut env = vec![
        ("DATABASE_URL", database_url.clone()),
        (
            "STORAGE_URL",
            format!("file://{}", dir.path().join("blobs").display()),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    (System::start(env, 0).await, database_url)
}

// `FACE_MODEL=arcface-mbf cargo run -p api`: registration and attendance over HTTP
// with ArcFace (SCRFD + MobileFaceNet), the weights verified (fetched when missing) at start.
#[cfg(feature = "embedded-worker")]
#[tokio::test]
async fn embedded_mode_with_arcface_marks_attendance() {
    let dir = TempDir::new().unwrap();
    let (mut system, database_url) = embedded_system(&dir, &[("FACE_MODEL", "arcface-mbf")]).await;
    let class_id = system.create_class().await;
    let students = system.register(class_id, &PEOPLE).await;
    let (session_id, job) = system.mark(class_id, &GROUPS).await;
    let done = system.wait_job(&job, |_| false).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["model"], "arcface_w600k_mbf", "{done}");
    assert_eq!(done["result"]["unmatched"], 0, "{done}");
    check_session(&system, &session_id, &students, &GROUPS).await;
    let (records, _) = rows_in_database(&database_url, &session_id).await;
    assert_eq!(records, PEOPLE.len() as u64);
}

/// The `reembed` jobs in the database.
async fn reembed_jobs(database_url: &str) -> Vec<models::job::Model> {
    let db = Database::connect(database_url).await.unwrap();
    let jobs = models::job::Entity::find()
        .filter(models::job::Column::Kind.eq(common::JobKind::Reembed))
        .all(&db)
        .await
        .unwrap();
    db.close().await.ok();
    jobs
}

// Registered under dlib, restarted with FACE_MODEL=arcface-mbf: the in-process worker
// re-embeds everyone by itself (bulk jobs, visible at GET /jobs/{id}), then the session
// is marked with ArcFace.
#[cfg(feature = "embedded-worker")]
#[tokio::test]
async fn embedded_mode_switching_to_arcface_reembeds_at_start() {
    let dir = TempDir::new().unwrap();
    let (mut system, database_url) = embedded_system(&dir, &[]).await;
    let class_id = system.create_class().await;
    let students = system.register(class_id, &PEOPLE).await;
    assert!(reembed_jobs(&database_url).await.is_empty());

    system.restart_api(&[("FACE_MODEL", "arcface-mbf")]).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let jobs = loop {
        system.api.assert_running();
        let jobs = reembed_jobs(&database_url).await;
        if jobs.len() == PEOPLE.len() && jobs.iter().all(|j| j.status.is_terminal()) {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "re-embedding did not finish: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for job in &jobs {
        let body = system.get(&format!("/jobs/{}", job.id)).await;
        assert_eq!(body["status"], "succeeded", "{body}");
        assert_eq!(body["kind"], "reembed", "{body}");
        assert_eq!(body["lane"], "bulk", "{body}");
        assert_eq!(body["result"]["model"], "arcface_w600k_mbf", "{body}");
        assert_eq!(body["result"]["matchable"], true, "{body}");
    }
    let subjects: BTreeSet<Uuid> = jobs.iter().map(|j| j.subject_id).collect();
    assert_eq!(subjects, students.values().copied().collect());

    let (session_id, job) = system.mark(class_id, &GROUPS).await;
    let done = system.wait_job(&job, |_| false).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["model"], "arcface_w600k_mbf", "{done}");
    check_session(&system, &session_id, &students, &GROUPS).await;
}
