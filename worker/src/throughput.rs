//! End-to-end throughput of the real worker on synthesised classroom photos
//! ([`crate::classroom`]): a class is seeded with the committed people (registered by
//! real registration jobs from their portraits), K attendance sessions of one photo each
//! are inserted as the API inserts them (photo blob, session row, job row, publish), and
//! the real [`Worker`] runs them. The wall time runs from the first attendance job's
//! claim to the last one's finish (both read from the job rows), so start-up and model
//! loading are not counted.
//!
//! Two modes:
//! - in-process: a temporary SQLite database, a filesystem blob store, the in-process
//!   queue, and the worker loop in this process (what the GPU device check runs);
//! - processes: a fresh PostgreSQL database of its own on the given server, RabbitMQ
//!   under a queue prefix of its own, a filesystem blob store, and P child processes
//!   `attendance-worker run` (this executable).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::blob::FsBlobStore;
use common::queue::{RabbitMqOptions, RabbitMqQueue};
use common::{BlobStore, Config, Detector, FaceModel, JobKind, JobMessage, JobQueue};
use models::prelude::*;
use models::{attendance_record, detected_face, job};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::classroom::{self, ClassroomError, Manifest};
use crate::engine::EngineError;
use crate::jobs::JobContext;
use crate::seed::{self, SeedError};
use crate::service::{ServiceError, Worker, WorkerOptions};

#[derive(Debug, thiserror::Error)]
pub enum ThroughputError {
    #[error(transparent)]
    Classroom(#[from] ClassroomError),
    #[error("database error")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("blob store error")]
    Blob(#[from] common::BlobError),
    #[error("queue error")]
    Queue(#[from] common::QueueError),
    #[error("{0}")]
    Setup(String),
    #[error("could not start worker process {exe}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {done} of {total} jobs finished after {waited_s:.0} s{log}")]
    Timeout {
        what: &'static str,
        done: usize,
        total: usize,
        waited_s: f64,
        log: String,
    },
    #[error("{count} {what} job(s) failed; first: {first}")]
    JobsFailed {
        what: &'static str,
        count: usize,
        first: String,
    },
}

/// Where the worker runs.
#[derive(Debug, Clone)]
pub enum Mode {
    InProcess,
    Processes {
        count: usize,
        /// `postgres://…` of a server: a database of its own is created there.
        database_url: String,
        /// `amqp://…`: a queue prefix of its own is added unless it has one.
        queue_url: String,
        /// The `attendance-worker` executable to run.
        exe: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub photos: usize,
    pub faces: usize,
    /// Jobs a worker runs at once (`WORKER_CONCURRENCY`).
    pub concurrency: usize,
    pub model: FaceModel,
    pub detector: Option<Detector>,
    pub device: String,
    pub model_dir: PathBuf,
    pub mode: Mode,
    /// Longest wait for each phase (registration, attendance).
    pub timeout: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub processes: usize,
    pub concurrency: usize,
    pub model: String,
    pub device: String,
    pub photos: usize,
    pub faces_per_photo: usize,
    pub width: u32,
    pub height: u32,
    /// Faces the worker found, on average per photo.
    pub faces_found_per_photo: f64,
    /// From the first attendance job's claim to the last one's finish.
    pub wall_seconds: f64,
    pub photos_per_second: f64,
    pub photos_per_minute: f64,
    /// Students marked present / students seated in the photos (summed over sessions).
    pub recall: f64,
    pub present: usize,
    pub expected: usize,
    /// Students marked present who were not in the photo.
    pub false_present: usize,
}

/// Seeds, runs and measures (see the module documentation).
pub async fn run(options: &Options) -> Result<Report, ThroughputError> {
    let manifest = classroom::synthesise(options.photos, options.faces)?;
    run_on(options, &manifest).await
}

/// [`run`] on photos already synthesised.
pub async fn run_on(options: &Options, manifest: &Manifest) -> Result<Report, ThroughputError> {
    let dir = tempfile::tempdir().map_err(|e| ThroughputError::Setup(format!("temp dir: {e}")))?;
    let blob_dir = dir.path().join("blobs");
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(&blob_dir).await?);
    match &options.mode {
        Mode::InProcess => {
            let url = format!("sqlite://{}/throughput.db?mode=rwc", dir.path().display());
            let db = seed::migrated(&url).await?;
            let queue = common::open_queue(common::config::EMBEDDED_QUEUE_URL).await?;
            let config = worker_config(options);
            // The service's own loader: with WORKER_CONCURRENCY > 1 the engine gets the
            // shared embedding stage (EMBED_BATCH, EMBED_WAIT_MS).
            let engine = crate::service::load_engine(&config).await?;
            let worker_options = WorkerOptions {
                max_attempts: 3,
                ..WorkerOptions::for_device(&config, engine.device().is_cuda())
            };
            let worker = Worker::new(
                JobContext {
                    db: db.clone(),
                    blobs: blobs.clone(),
                    engine,
                    queue: Some(queue.clone()),
                    public_url: "http://127.0.0.1:8080".into(),
                    clock: common::clock::system(),
                    retention_days: None,
                },
                worker_options,
            );
            let (stop, mut stopped) = tokio::sync::watch::channel(false);
            let consumer = queue.clone();
            let running = tokio::spawn(async move {
                let until = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = worker.run_until(consumer.as_ref(), until).await {
                    tracing::error!(error = %common::error_chain(&e), "throughput worker stopped");
                }
            });
            let result = measure(
                options,
                manifest,
                &db,
                blobs.as_ref(),
                queue.as_ref(),
                String::new,
            )
            .await;
            let _ = stop.send(true);
            let _ = running.await;
            result
        }
        Mode::Processes {
            count,
            database_url,
            queue_url,
            exe,
        } => {
            let server = seed::server_url(database_url);
            let name = format!("throughput_{}", Uuid::new_v4().simple());
            create_database(&server, &name).await?;
            let url = format!("{server}/{name}");
            let result = async {
                let db = seed::migrated(&url).await?;
                let queue_url = with_prefix(queue_url);
                let queue = RabbitMqQueue::new(RabbitMqOptions::from_url(&queue_url)?);
                let log = dir.path().join("workers.log");
                let env = WorkerEnv {
                    database_url: url.clone(),
                    queue_url,
                    storage_url: format!("file://{}", blob_dir.display()),
                    options,
                };
                let mut children = ChildGuard::default();
                for _ in 0..*count {
                    children.0.push(env.spawn(exe, &log)?);
                }
                let tail = || log_tail(&log);
                let report = measure(options, manifest, &db, blobs.as_ref(), &queue, tail).await;
                drop(children);
                db.close().await.ok();
                // The run's queues go with it, as its database does.
                if let Err(e) = queue.delete_queues().await {
                    tracing::warn!(error = %e, "could not delete the run's queues");
                }
                report
            }
            .await;
            drop_database(&server, &name).await;
            result
        }
    }
}

/// The worker's configuration for this run: `EMBED_BATCH` and `EMBED_WAIT_MS` from the
/// environment (if valid), the rest from `options`.
fn worker_config(options: &Options) -> Config {
    let mut config = Config {
        model_dir: options.model_dir.clone(),
        device: options.device.clone(),
        face_model: options.model,
        detector: options.detector.unwrap_or(options.model.default_detector()),
        ..Config::default()
    };
    if let Ok(env) = Config::from_env() {
        config.worker = env.worker;
    }
    config.worker.concurrency = Some(options.concurrency.max(1));
    config
}

/// Seeds the class, registers its students, then times the attendance jobs.
async fn measure(
    options: &Options,
    manifest: &Manifest,
    db: &DatabaseConnection,
    blobs: &dyn BlobStore,
    queue: &dyn JobQueue,
    log: impl Fn() -> String,
) -> Result<Report, ThroughputError> {
    let class_id = seed::class(db, "Throughput", None).await?;
    let mut registrations = Vec::new();
    let mut student_of = HashMap::new();
    for person in &manifest.people {
        let photos = person
            .portraits
            .iter()
            .map(|p| crate::fixtures::read(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ClassroomError::from)?;
        let (student, _) =
            seed::student(db, blobs, class_id, &person.name, &person.name, &photos).await?;
        student_of.insert(student, person.name.clone());
        registrations.push(seed::job(db, JobKind::Registration, student).await?.id);
    }
    publish(db, queue, &registrations, JobKind::Registration).await?;
    wait_all(db, &registrations, "registration", options.timeout, &log).await?;

    let mut sessions = Vec::new();
    let mut attendance = Vec::new();
    for photo in &manifest.photos {
        let (session, _) = seed::session(
            db,
            blobs,
            class_id,
            "Throughput",
            std::slice::from_ref(&photo.jpeg),
            Utc::now(),
        )
        .await?;
        sessions.push(session);
        attendance.push(seed::job(db, JobKind::Attendance, session).await?.id);
    }
    publish(db, queue, &attendance, JobKind::Attendance).await?;
    let rows = wait_all(db, &attendance, "attendance", options.timeout, &log).await?;

    let first = rows.iter().filter_map(|r| r.started_at).min();
    let last = rows.iter().filter_map(|r| r.finished_at).max();
    let wall = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_seconds_f64().max(1e-6),
        _ => return Err(ThroughputError::Setup("job rows without times".into())),
    };
    let (mut present, mut expected, mut false_present) = (0, 0, 0);
    for (session, photo) in sessions.iter().zip(&manifest.photos) {
        let seated: HashSet<String> = photo.people().into_iter().collect();
        let marked = AttendanceRecord::find()
            .filter(attendance_record::Column::SessionId.eq(*session))
            .filter(attendance_record::Column::Status.eq(attendance_record::RecordStatus::Present))
            .all(db)
            .await?;
        for record in marked {
            match student_of.get(&record.student_id) {
                Some(name) if seated.contains(name) => present += 1,
                _ => false_present += 1,
            }
        }
        expected += seated.len();
    }
    let faces = DetectedFace::find()
        .filter(detected_face::Column::SessionId.is_in(sessions.clone()))
        .all(db)
        .await?
        .len();
    let n = manifest.photos.len();
    Ok(Report {
        mode: match options.mode {
            Mode::InProcess => "in-process",
            Mode::Processes { .. } => "processes",
        },
        processes: match options.mode {
            Mode::InProcess => 1,
            Mode::Processes { count, .. } => count,
        },
        concurrency: options.concurrency,
        model: options.model.to_string(),
        device: options.device.clone(),
        photos: n,
        faces_per_photo: options.faces,
        width: manifest.width,
        height: manifest.height,
        faces_found_per_photo: faces as f64 / n.max(1) as f64,
        wall_seconds: wall,
        photos_per_second: n as f64 / wall,
        photos_per_minute: n as f64 * 60.0 / wall,
        recall: present as f64 / expected.max(1) as f64,
        present,
        expected,
        false_present,
    })
}

/// Publishes committed jobs and records `published_at`, as the API's outbox does.
async fn publish(
    db: &DatabaseConnection,
    queue: &dyn JobQueue,
    jobs: &[Uuid],
    kind: JobKind,
) -> Result<(), ThroughputError> {
    for &id in jobs {
        queue
            .publish(kind.lane(), &JobMessage::new(id, kind))
            .await?;
        job::Entity::update_many()
            .col_expr(
                job::Column::PublishedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(job::Column::Id.eq(id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Waits until every job is `succeeded` or `failed`; any failed one is an error.
async fn wait_all(
    db: &DatabaseConnection,
    ids: &[Uuid],
    what: &'static str,
    timeout: Duration,
    log: &impl Fn() -> String,
) -> Result<Vec<job::Model>, ThroughputError> {
    let start = Instant::now();
    loop {
        let rows = job::Entity::find()
            .filter(job::Column::Id.is_in(ids.to_vec()))
            .all(db)
            .await?;
        let done = rows.iter().filter(|r| r.status.is_terminal()).count();
        if done == ids.len() {
            let failed: Vec<&job::Model> = rows
                .iter()
                .filter(|r| r.status == job::JobStatus::Failed)
                .collect();
            if let Some(first) = failed.first() {
                return Err(ThroughputError::JobsFailed {
                    what,
                    count: failed.len(),
                    first: first.error.clone().unwrap_or_default(),
                });
            }
            return Ok(rows);
        }
        if start.elapsed() > timeout {
            return Err(ThroughputError::Timeout {
                what,
                done,
                total: ids.len(),
                waited_s: start.elapsed().as_secs_f64(),
                log: log(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_database(server: &str, name: &str) -> Result<(), ThroughputError> {
    let admin = sea_orm::Database::connect(format!("{server}/postgres")).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await.ok();
    Ok(())
}

async fn drop_database(server: &str, name: &str) {
    if let Ok(admin) = sea_orm::Database::connect(format!("{server}/postgres")).await {
        if let Err(e) = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
        {
            tracing::warn!(error = %e, database = name, "could not drop the throughput database");
        }
        admin.close().await.ok();
    }
}

/// The queue URL with a prefix of its own (unless it names one), so that the run's
/// queues are apart from everyone else's on a shared broker.
pub fn with_prefix(url: &str) -> String {
    if url.contains("prefix=") {
        return url.to_owned();
    }
    let prefix = format!("throughput{}", &Uuid::new_v4().simple().to_string()[..8]);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}prefix={prefix}")
}

/// The environment of a child `attendance-worker run`.
struct WorkerEnv<'a> {
    database_url: String,
    queue_url: String,
    storage_url: String,
    options: &'a Options,
}

impl WorkerEnv<'_> {
    fn spawn(&self, exe: &Path, log: &Path) -> Result<Child, ThroughputError> {
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| ThroughputError::Spawn {
                    exe: exe.to_path_buf(),
                    source,
                })
        };
        let mut command = Command::new(exe);
        command
            .arg("run")
            .env("DATABASE_URL", &self.database_url)
            .env("QUEUE_URL", &self.queue_url)
            .env("STORAGE_URL", &self.storage_url)
            .env("MODEL_DIR", &self.options.model_dir)
            .env("DEVICE", &self.options.device)
            .env("FACE_MODEL", self.options.model.to_string())
            .env("WORKER_CONCURRENCY", self.options.concurrency.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?);
        match self.options.detector {
            Some(d) => command.env("DETECTOR", d.to_string()),
            None => command.env_remove("DETECTOR"),
        };
        command.spawn().map_err(|source| ThroughputError::Spawn {
            exe: exe.to_path_buf(),
            source,
        })
    }
}

/// Child processes, killed when dropped (all their jobs are finished by then, or the
/// run failed).
#[derive(Default)]
struct ChildGuard(Vec<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        tail
    } else {
        format!("\nworker log:\n{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_added_once() {
        let url = with_prefix("amqp://guest:guest@127.0.0.1:5672/%2f");
        assert!(url.contains("?prefix=throughput"), "{url}");
        assert_eq!(with_prefix(&url), url);
        assert!(with_prefix("amqp://h/%2f?heartbeat=10").contains("&prefix="));
    }
}
