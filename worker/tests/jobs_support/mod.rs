//! Shared setup of the job tests: a fresh database (SQLite file or a PostgreSQL
//! database of its own), a filesystem blob store, the real engine loaded once, and rows
//! inserted the way the API inserts them.
//!
//! Tests fail (never skip) when PostgreSQL, RabbitMQ or the model files are missing:
//! `scripts/test.sh` starts the services and fetches the models.

#![allow(dead_code)] // each test binary uses part of this module

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use common::blob::FsBlobStore;
use common::{BlobStore, JobKind};
use migration::{Migrator, MigratorTrait};
use models::job;
use models::prelude::*;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Statement,
};
use uuid::Uuid;
use worker::engine::pipeline::FaceEngine;
use worker::jobs::JobContext;
use worker::seed::{self, server_url};
use worker::service::connect_database;

pub fn fixture(relative: &str) -> Vec<u8> {
    worker::fixtures::read(relative).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// A plain grey PNG the size of a classroom photo: certainly no face in it.
pub fn plain_photo() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(800, 600, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

pub fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

/// The real engine, loaded once per test binary (as the service does once per process).
pub fn engine() -> Arc<FaceEngine> {
    static ENGINE: OnceLock<Arc<FaceEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let device = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into());
            let engine =
                FaceEngine::from_model_dir(&model_dir(), &device, false).unwrap_or_else(|e| {
                    panic!(
                        "face models missing in {} ({e}); run scripts/test.sh",
                        model_dir().display()
                    )
                });
            Arc::new(engine)
        })
        .clone()
}

/// The ArcFace engine (`FACE_MODEL=arcface-mbf`, its SCRFD detector), loaded once per
/// test binary: the model a deployment switches to.
pub fn arcface_engine() -> Arc<FaceEngine> {
    static ENGINE: OnceLock<Arc<FaceEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let device = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into());
            let model = common::FaceModel::ArcfaceMbf;
            let engine = FaceEngine::open(
                &model_dir(),
                model,
                model.default_detector(),
                &device,
                false,
            )
            .unwrap_or_else(|e| {
                panic!(
                    "ArcFace model files missing in {} ({e}); run scripts/test.sh",
                    model_dir().display()
                )
            });
            Arc::new(engine)
        })
        .clone()
}

/// A database for one test: deleted when the test is done (PostgreSQL) or with its
/// temporary directory (SQLite).
pub struct TestDb {
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
        let db = migrated(&url).await;
        TestDb {
            db,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new database `test_<uuid>` on the server at `TEST_DATABASE_URL`, migrated.
    pub async fn postgres() -> TestDb {
        let empty = TestDb::postgres_empty().await;
        Migrator::up(&empty.db, None)
            .await
            .expect("migrations apply");
        empty
    }

    /// A new, empty database `test_<uuid>` (no migrations applied).
    pub async fn postgres_empty() -> TestDb {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let server = server_url(&server);
        let admin = sea_orm::Database::connect(format!("{server}/postgres"))
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {server} is not reachable ({e}); run scripts/test.sh")
            });
        let name = format!("test_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let db = connect_database(&format!("{server}/{name}"))
            .await
            .expect("open the PostgreSQL test database");
        TestDb {
            db,
            _dir: None,
            postgres: Some((server, name)),
        }
    }

    /// The URL of the PostgreSQL test database.
    pub fn postgres_url(&self) -> Option<String> {
        self.postgres
            .as_ref()
            .map(|(server, name)| format!("{server}/{name}"))
    }

    /// Drops a PostgreSQL test database (call at the end of a passing test).
    pub async fn cleanup(self) {
        let TestDb { db, postgres, .. } = self;
        db.close().await.ok();
        if let Some((server, name)) = postgres
            && let Ok(admin) = sea_orm::Database::connect(format!("{server}/postgres")).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin.close().await.ok();
        }
    }
}

/// Opens `url` and applies the migrations, as the API does at its start (the worker
/// itself never migrates).
async fn migrated(url: &str) -> DatabaseConnection {
    seed::migrated(url)
        .await
        .unwrap_or_else(|e| panic!("{}", common::error_chain(&e)))
}

pub async fn blob_store() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    (Arc::new(store), dir)
}

pub fn context(db: &DatabaseConnection, blobs: &Arc<dyn BlobStore>) -> JobContext {
    JobContext {
        db: db.clone(),
        blobs: blobs.clone(),
        engine: engine(),
        queue: None,
        public_url: "http://127.0.0.1:8080".into(),
        clock: common::clock::system(),
        retention_days: None,
    }
}

/// A context with the given engine (e.g. after a `FACE_MODEL` switch).
pub fn context_with(
    db: &DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    engine: Arc<FaceEngine>,
) -> JobContext {
    JobContext {
        db: db.clone(),
        blobs: blobs.clone(),
        engine,
        queue: None,
        public_url: "http://127.0.0.1:8080".into(),
        clock: common::clock::system(),
        retention_days: None,
    }
}

pub async fn insert_class(db: &DatabaseConnection, match_threshold: Option<f64>) -> Uuid {
    seed::class(db, "CSE 3A", match_threshold).await.unwrap()
}

/// A `pending` student with photos (bytes stored in the blob store), as the API
/// registers one. Returns the student id and the photo ids in order.
pub async fn insert_student(
    db: &DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    class_id: Uuid,
    roll_no: &str,
    photos: &[Vec<u8>],
) -> (Uuid, Vec<Uuid>) {
    let name = format!("Student {roll_no}");
    seed::student(db, blobs.as_ref(), class_id, roll_no, &name, photos)
        .await
        .unwrap()
}

/// A `pending` session with its photos. Returns the session id and photo ids.
pub async fn insert_session(
    db: &DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    class_id: Uuid,
    photos: &[Vec<u8>],
) -> (Uuid, Vec<Uuid>) {
    insert_session_at(db, blobs, class_id, photos, Utc::now()).await
}

/// [`insert_session`] uploaded at `now` (a test clock's time).
pub async fn insert_session_at(
    db: &DatabaseConnection,
    blobs: &Arc<dyn BlobStore>,
    class_id: Uuid,
    photos: &[Vec<u8>],
    now: chrono::DateTime<Utc>,
) -> (Uuid, Vec<Uuid>) {
    seed::session(
        db,
        blobs.as_ref(),
        class_id,
        "Operating Systems",
        photos,
        now,
    )
    .await
    .unwrap()
}

/// A `queued` job row for `subject_id`.
pub async fn insert_job(db: &DatabaseConnection, kind: JobKind, subject_id: Uuid) -> job::Model {
    seed::job(db, kind, subject_id).await.unwrap()
}

/// Claims a queued job the way the service does before running its handler, and
/// returns the row as claimed (what the handler is given).
pub async fn claimed(db: &DatabaseConnection, id: Uuid) -> job::Model {
    match worker::jobs::claim::claim(db, id, Duration::from_secs(60), 5)
        .await
        .unwrap()
    {
        worker::jobs::claim::Claim::Won(row) => row,
        other => panic!("job {id} could not be claimed: {other:?}"),
    }
}

/// Puts a finished job back to `queued`, so that it can be claimed and run again (a
/// re-run: handlers must tolerate running twice).
pub async fn requeue(db: &DatabaseConnection, id: Uuid) {
    let mut row = job_row(db, id).await.into_active_model();
    row.status = Set(job::JobStatus::Queued);
    Job::update(row).exec(db).await.unwrap();
}

pub async fn job_row(db: &DatabaseConnection, id: Uuid) -> job::Model {
    Job::find_by_id(id).one(db).await.unwrap().expect("job row")
}

/// Waits until the job is `succeeded` or `failed`.
pub async fn wait_finished(db: &DatabaseConnection, id: Uuid) -> job::Model {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let row = job_row(db, id).await;
        if row.status.is_terminal() {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not finish: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Number of rows of a table (to check that nothing was duplicated).
pub async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}
