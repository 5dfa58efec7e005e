//! Spawning the application with its own database, blob directory and queue.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use api::{AppState, auth::Role};
use common::{
    BlobStore, Config, JobMessage, JobQueue,
    blob::{FsBlobStore, S3BlobStore, S3Options},
    queue::{EmbeddedQueue, RabbitMqOptions, RabbitMqQueue},
};
use reqwest::multipart::{Form, Part};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use tempfile::TempDir;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Where the app stores photos and crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A temporary folder (the embedded default).
    Fs,
    /// A fresh bucket of the S3 server at TEST_S3_ENDPOINT.
    S3,
}

/// An `s3://` storage URL for `bucket` on the test S3 server.
pub fn s3_url(bucket: &str) -> String {
    let endpoint =
        std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let access = std::env::var("TEST_S3_ACCESS_KEY").unwrap_or_else(|_| "attendance".into());
    let secret = std::env::var("TEST_S3_SECRET_KEY").unwrap_or_else(|_| "attendance-secret".into());
    format!(
        "s3://{bucket}?region=us-east-1&endpoint={endpoint}&access_key={access}&secret_key={secret}"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Embedded,
    RabbitMq,
    /// A RabbitMQ URL nothing listens on.
    Unreachable,
}

/// The department of the classes [`TestApp::create_class`] makes.
pub const TEST_DEPARTMENT: &str = "CSE";

pub const UNREACHABLE_AMQP: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

pub fn amqp_base() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub fn postgres_base() -> String {
    let raw = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
    let mut url = url::Url::parse(&raw).expect("TEST_DATABASE_URL is a URL");
    url.set_path("");
    url.to_string().trim_end_matches('/').to_string()
}

pub fn fixture(rel: &str) -> Vec<u8> {
    worker::fixtures::read(rel).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// A PostgreSQL database of its own, dropped when this is dropped.
pub struct PgDatabase {
    base: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> (PgDatabase, String) {
        let base = postgres_base();
        let name = format!("test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(format!("{base}/postgres"))
            .await
            .expect("PostgreSQL at TEST_DATABASE_URL must be running");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = format!("{base}/{name}");
        (PgDatabase { base, name }, url)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        // Drop is synchronous; a throwaway runtime on its own thread does the async work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = Database::connect(format!("{base}/postgres")).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// RabbitMQ queues under a unique prefix, deleted when this is dropped.
pub struct RabbitQueues {
    pub url: String,
    pub queue: Arc<RabbitMqQueue>,
}

impl RabbitQueues {
    pub fn new() -> RabbitQueues {
        let prefix = format!("test-{}", Uuid::new_v4().simple());
        let base = amqp_base();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}prefix={prefix}");
        let queue = Arc::new(RabbitMqQueue::new(
            RabbitMqOptions::from_url(&url).expect("valid amqp URL"),
        ));
        RabbitQueues { url, queue }
    }
}

impl Drop for RabbitQueues {
    fn drop(&mut self) {
        // A connection of its own: the test's runtime is blocked while this runs.
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(options) = RabbitMqOptions::from_url(&url) {
                    let queue = RabbitMqQueue::new(options);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(10), queue.delete_queues()).await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin_key: String,
    pub state: AppState,
    pub blob_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The embedded queue, when the app uses one.
    pub embedded: Option<EmbeddedQueue>,
    /// The RabbitMQ queues, when the app uses them.
    pub rabbit: Option<RabbitQueues>,
    /// The S3 store, when the app uses one (else the blobs are under `blob_dir`).
    pub s3: Option<S3BlobStore>,
    _pg: Option<PgDatabase>,
    _dir: TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn spawn_app(db: Db, queue: Queue) -> TestApp {
    spawn_app_with(db, queue, &[]).await
}

/// [`spawn_app`] with extra configuration variables (e.g. `BATCH_MAX_BYTES`).
pub async fn spawn_app_with(db: Db, queue: Queue, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(db, queue, Storage::Fs, extra).await
}

/// [`spawn_app_with`] on the given storage.
pub async fn spawn_app_on(
    db: Db,
    queue: Queue,
    storage: Storage,
    extra: &[(&str, &str)],
) -> TestApp {
    spawn_app_full(db, queue, storage, extra, common::clock::system()).await
}

/// [`spawn_app_with`] on a clock the test controls. Retention is off (no daily job is
/// scheduled, which would sit on the queue of every test) unless `extra` sets
/// `RETENTION_DAYS`.
pub async fn spawn_app_at(
    db: Db,
    queue: Queue,
    extra: &[(&str, &str)],
    clock: Arc<dyn common::Clock>,
) -> TestApp {
    spawn_app_full(db, queue, Storage::Fs, extra, clock).await
}

/// The app on the given storage and clock.
pub async fn spawn_app_full(
    db: Db,
    queue: Queue,
    storage: Storage,
    extra: &[(&str, &str)],
    clock: Arc<dyn common::Clock>,
) -> TestApp {
    common::telemetry::init("api-tests");
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let blob_dir = dir.path().join("blobs");
    let (pg, database_url) = match db {
        Db::Sqlite => (
            None,
            format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        ),
        Db::Postgres => {
            let (pg, url) = PgDatabase::create().await;
            (Some(pg), url)
        }
    };
    let (queue_url, embedded, rabbit, job_queue): (String, _, _, Arc<dyn JobQueue>) = match queue {
        Queue::Embedded => {
            let q = EmbeddedQueue::new();
            ("embedded".into(), Some(q.clone()), None, Arc::new(q))
        }
        Queue::RabbitMq => {
            let r = RabbitQueues::new();
            let q: Arc<dyn JobQueue> = r.queue.clone();
            (r.url.clone(), None, Some(r), q)
        }
        Queue::Unreachable => (
            UNREACHABLE_AMQP.into(),
            None,
            None,
            common::open_queue(UNREACHABLE_AMQP)
                .await
                .expect("a valid URL"),
        ),
    };
    let s3 = match storage {
        Storage::Fs => None,
        Storage::S3 => {
            let bucket = format!("api-{}", Uuid::new_v4().simple());
            let store = S3BlobStore::connect(S3Options::from_url(&s3_url(&bucket)).unwrap())
                .await
                .unwrap();
            store
                .ensure_bucket()
                .await
                .expect("the S3 server (scripts/s3-server.sh) must be running");
            Some(store)
        }
    };
    let storage_url = match &s3 {
        Some(store) => s3_url(store.bucket()),
        None => format!("file://{}", blob_dir.display()),
    };
    let blobs: Arc<dyn BlobStore> = match &s3 {
        Some(store) => Arc::new(store.clone()),
        None => Arc::new(FsBlobStore::open(&blob_dir).await.expect("blob dir")),
    };
    let data_dir_text = data_dir.display().to_string();
    let config = Config::from_pairs(
        [
            ("DATABASE_URL", database_url.as_str()),
            ("QUEUE_URL", queue_url.as_str()),
            ("STORAGE_URL", storage_url.as_str()),
            ("BIND", "127.0.0.1:0"),
            ("DATA_DIR", data_dir_text.as_str()),
            ("RETENTION_DAYS", "0"),
        ]
        .into_iter()
        .chain(extra.iter().copied()),
    )
    .expect("valid test config");
    let state = AppState {
        db: api::database::connect_and_migrate(&config.database_url)
            .await
            .expect("database"),
        blobs,
        queue: job_queue,
        exif_utc_offset: config.exif_utc_offset,
        clock,
        privacy: config.privacy,
    };
    // Jobs are inspected by the tests, so no in-process worker consumes them.
    let app = api::build_with(&config, state, false)
        .await
        .expect("the application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let server = tokio::spawn(async move {
        app.run_until_stopped().await.expect("server runs");
    });
    let admin_key = std::fs::read_to_string(data_dir.join("admin.key"))
        .expect("the first start writes admin.key")
        .trim()
        .to_string();
    TestApp {
        base,
        client: reqwest::Client::new(),
        admin_key,
        state,
        blob_dir,
        data_dir,
        embedded,
        rabbit,
        s3,
        _pg: pg,
        _dir: dir,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A key of `role`; a department_admin or teacher key belongs to
    /// [`TEST_DEPARTMENT`], the department of [`TestApp::create_class`]'s classes.
    pub async fn key(&self, role: Role) -> String {
        let department = (role != Role::Admin).then_some(TEST_DEPARTMENT);
        api::auth::create_key(&self.state.db, "test", role, department)
            .await
            .expect("create key")
            .key
    }

    /// A department_admin or teacher key of `department`.
    pub async fn key_in(&self, role: Role, department: &str) -> String {
        api::auth::create_key(&self.state.db, "test", role, Some(department))
            .await
            .expect("create key")
            .key
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.admin_key)
    }

    /// `GET path` with the admin key, its body as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(&self.admin_key)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.admin_key)
    }

    /// Creates a class and returns its id.
    pub async fn create_class(&self, name: &str) -> Uuid {
        let resp = self
            .post("/classes")
            .json(
                &serde_json::json!({"name": name, "department": TEST_DEPARTMENT, "year": 2, "section": "A"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let body: serde_json::Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Registers a student from fixture photos; returns the raw response.
    pub async fn register(
        &self,
        class_id: Uuid,
        roll_no: &str,
        name: &str,
        photos: Vec<(String, Vec<u8>)>,
    ) -> reqwest::Response {
        let mut form = Form::new()
            .text("roll_no", roll_no.to_string())
            .text("name", name.to_string())
            .text("class_id", class_id.to_string());
        for (file_name, bytes) in photos {
            form = form.part("photos", Part::bytes(bytes).file_name(file_name));
        }
        self.post("/students/register")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Every file under the blob directory (relative keys).
    pub fn blob_keys(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.blob_dir, &self.blob_dir, &mut out);
        // The store's own scratch files are not blobs.
        out.retain(|k| !k.starts_with('.'));
        out.sort();
        out
    }

    /// Every object of the app's store: the files under the blob directory, or the
    /// objects of the S3 bucket (listed page by page).
    pub async fn stored_objects(&self) -> Vec<String> {
        let Some(store) = &self.s3 else {
            return self.blob_keys();
        };
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = store
                .client()
                .list_objects_v2()
                .bucket(store.bucket())
                .set_continuation_token(token.take())
                .send()
                .await
                .expect("list the bucket");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        keys.sort();
        keys
    }

    /// Row counts of the tables an upload writes.
    pub async fn row_counts(&self) -> [u64; 5] {
        let db: &DatabaseConnection = &self.state.db;
        [
            models::student::Entity::find().count(db).await.unwrap(),
            models::student_photo::Entity::find()
                .count(db)
                .await
                .unwrap(),
            models::attendance_session::Entity::find()
                .count(db)
                .await
                .unwrap(),
            models::session_photo::Entity::find()
                .count(db)
                .await
                .unwrap(),
            models::job::Entity::find().count(db).await.unwrap(),
        ]
    }

    /// The next message on the app's queue (fails after 10 s).
    pub async fn next_message(&self) -> JobMessage {
        let queue: Arc<dyn JobQueue> = match (&self.embedded, &self.rabbit) {
            (Some(q), _) => Arc::new(q.clone()),
            (_, Some(r)) => r.queue.clone(),
            _ => panic!("this app's queue cannot be consumed"),
        };
        next_message_on(queue.as_ref()).await
    }
}

pub async fn next_message_on(queue: &dyn JobQueue) -> JobMessage {
    let mut consumer = queue.consume(1).await.expect("consume");
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message arrives within 10 s")
        .expect("delivery");
    let msg = delivery.message.as_ref().expect("decodable").clone();
    delivery.ack().await.expect("ack");
    msg
}

/// The JSON error body's code.
pub async fn error_code(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_string()
}

/// A stored blob's bytes.
pub async fn read_blob(app: &TestApp, key: &str) -> bytes::Bytes {
    app.state.blobs.get(key).await.expect("blob exists")
}

/// The real face engine, loaded once per test binary.
pub fn engine() -> std::sync::Arc<worker::engine::pipeline::FaceEngine> {
    static ENGINE: std::sync::OnceLock<std::sync::Arc<worker::engine::pipeline::FaceEngine>> =
        std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = std::env::var_os("MODEL_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models")
                });
            let engine = worker::engine::pipeline::FaceEngine::from_model_dir(&dir, "cpu", false)
                .unwrap_or_else(|e| {
                    panic!(
                        "face models missing in {} ({e}); run scripts/test.sh",
                        dir.display()
                    )
                });
            std::sync::Arc::new(engine)
        })
        .clone()
}

/// Runs the next queued job the way the worker service does.
pub async fn run_next_job(app: &TestApp) {
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
            engine: engine(),
            queue: None,
            public_url: "http://127.0.0.1:8080".into(),
            clock: app.state.clock.clone(),
            retention_days: None,
        },
        worker::service::WorkerOptions::from_config(&common::Config::default()),
    );
    worker.handle(delivery).await;
}

/// A photo with nothing in it: an even grey PNG.
pub fn empty_photo() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(800, 600, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}
