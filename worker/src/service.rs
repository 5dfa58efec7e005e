//! The worker service: consumes job messages and runs their handlers.
//!
//! Per delivery: decode (garbage → dead-letter at once) → load the job row (missing →
//! logged no-op, acked; already finished → acked) → mark it `running` → run the handler,
//! which commits its results together with `succeeded` → ack. A [`JobError::Retry`] goes
//! back through the queue's retry path with exponential backoff until the attempt limit,
//! then the job is marked `failed` and the message dead-lettered; a [`JobError::Abort`]
//! does that at once.
//!
//! Jobs run one at a time per process (the engine already uses every core); prefetch
//! keeps the next message at hand. More throughput = more worker processes.

use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use common::{
    BlobError, BlobStore, Config, Delivery, JobMessage, JobQueue, QueueError, error_chain,
    open_blob_store, open_queue,
};
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, TransactionTrait,
};
use tokio::task::JoinHandle;
use tracing::{Instrument, field::Empty};

use crate::engine::EngineError;
use crate::engine::pipeline::{FaceEngine, PhotoLimits};
use crate::jobs::{self, JobContext, JobError, Outcome, Progress};
use crate::schema::{SchemaError, SchemaWait};
use crate::webhooks::{Dispatcher, DispatcherOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("could not open the database")]
    Database(#[source] DbErr),
    #[error("the database schema is not ready")]
    Schema(#[from] SchemaError),
    #[error("could not open the blob store")]
    Blob(#[from] BlobError),
    #[error("could not open the job queue")]
    Queue(#[from] QueueError),
    #[error("could not load the face engine")]
    Engine(#[from] EngineError),
    #[error("the face engine loader stopped unexpectedly: {0}")]
    EngineTask(String),
}

/// How the consumer loop behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Unsettled deliveries per lane.
    pub prefetch: u16,
    /// Deliveries of a job before it is failed and dead-lettered.
    pub max_attempts: u32,
    /// Backoff before retry `n` is `base × 2^(n-1)`, at most `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl WorkerOptions {
    pub fn from_config(config: &Config) -> Self {
        WorkerOptions {
            prefetch: 2,
            max_attempts: config.max_attempts,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(120),
        }
    }

    /// The wait before re-running a job whose `attempt`-th delivery failed.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The consumer loop around a [`JobContext`].
pub struct Worker {
    ctx: JobContext,
    options: WorkerOptions,
}

impl Worker {
    pub fn new(ctx: JobContext, options: WorkerOptions) -> Self {
        Self { ctx, options }
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Consumes both lanes until `shutdown` completes; the job in progress is finished
    /// (and settled) first.
    pub async fn run_until(
        &self,
        queue: &dyn JobQueue,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServiceError> {
        let mut consumer = queue.consume(self.options.prefetch).await?;
        tracing::info!(
            prefetch = self.options.prefetch,
            max_attempts = self.options.max_attempts,
            model = self.ctx.engine.model_name(),
            "worker consuming jobs"
        );
        tokio::pin!(shutdown);
        loop {
            let delivery = tokio::select! {
                biased;
                () = &mut shutdown => break,
                next = consumer.next() => next,
            };
            match delivery {
                Ok(delivery) => self.handle(delivery).await,
                Err(e) => {
                    // The RabbitMQ consumer reconnects by itself; this is a pause, not an exit.
                    tracing::warn!(error = %e, "could not receive a job; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }

    /// Handles one delivery from start to settlement.
    pub async fn handle(&self, delivery: Delivery) {
        let message = match &delivery.message {
            Ok(message) => message.clone(),
            Err(e) => {
                let reason = format!("undecodable job message: {e}");
                tracing::error!(lane = %delivery.lane, %reason, "dead-lettering");
                settle(delivery.dead_letter(&reason).await, "dead-letter");
                return;
            }
        };
        let span = tracing::info_span!(
            "job",
            job_id = %message.job_id,
            kind = %message.kind,
            attempt = delivery.attempt,
            student_id = Empty,
            session_id = Empty,
        );
        self.handle_message(message, delivery)
            .instrument(span)
            .await;
    }

    async fn handle_message(&self, message: JobMessage, delivery: Delivery) {
        let db = &self.ctx.db;
        let row = match job::Entity::find_by_id(message.job_id).one(db).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                // The row is written before any publish, so this job was deleted.
                tracing::warn!("job row not found; nothing to do");
                settle(delivery.ack().await, "ack");
                return;
            }
            Err(e) => {
                return self
                    .failed(&message, None, delivery, JobError::from(e))
                    .await;
            }
        };
        if row.status.is_terminal() {
            // A duplicate publish or a redelivery after the commit: already done.
            tracing::info!(status = ?row.status, "job already finished; acknowledging");
            settle(delivery.ack().await, "ack");
            return;
        }
        if row.kind != message.kind {
            let error = JobError::abort(format!(
                "job row is of kind {} but the message says {}",
                row.kind, message.kind
            ));
            return self.failed(&message, Some(&row), delivery, error).await;
        }
        let row = match mark_running(db, row).await {
            Ok(row) => row,
            Err(e) => {
                return self
                    .failed(&message, None, delivery, JobError::from(e))
                    .await;
            }
        };

        let started = std::time::Instant::now();
        let progress = Progress::new(db, row.id);
        let outcome = jobs::run(message.kind, &self.ctx, &row, &progress).await;
        match outcome {
            Ok(Outcome::Completed(_)) => {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "job succeeded"
                );
                settle(delivery.ack().await, "ack");
            }
            Ok(Outcome::Skipped(reason)) => match jobs::complete_skipped(db, &row, reason).await {
                Ok(()) => settle(delivery.ack().await, "ack"),
                Err(e) => self.failed(&message, Some(&row), delivery, e.into()).await,
            },
            Err(error) => self.failed(&message, Some(&row), delivery, error).await,
        }
    }

    /// Settles a failed delivery: retry later, or fail the job and dead-letter it.
    async fn failed(
        &self,
        message: &JobMessage,
        row: Option<&job::Model>,
        delivery: Delivery,
        error: JobError,
    ) {
        let readable = error.readable();
        let attempt = delivery.attempt;
        let give_up = match &error {
            JobError::Abort(_) => true,
            JobError::Retry { .. } => attempt >= self.options.max_attempts,
        };
        if !give_up {
            let wait = self.options.backoff(attempt);
            tracing::warn!(error = %readable, retry_in_s = wait.as_secs_f64(), "job failed; will retry");
            if let Some(row) = row
                && let Err(e) = mark_retrying(&self.ctx.db, row, &readable, attempt).await
            {
                tracing::warn!(error = %e, "could not record the failed attempt");
            }
            settle(delivery.retry(wait).await, "retry");
            return;
        }
        let error_text = match &error {
            JobError::Abort(_) => readable,
            JobError::Retry { .. } => format!("{readable} (gave up after {attempt} attempts)"),
        };
        tracing::error!(error = %error_text, "job failed");
        match mark_failed(&self.ctx, message, &error_text).await {
            Ok(()) => settle(delivery.dead_letter(&error_text).await, "dead-letter"),
            Err(e) if attempt < self.options.max_attempts => {
                // The failure could not be recorded (database down): try the whole job
                // again later rather than park it with its row still `running`.
                tracing::warn!(error = %e, "could not mark the job failed; will retry");
                settle(delivery.retry(self.options.backoff(attempt)).await, "retry");
            }
            Err(e) => {
                tracing::error!(error = %e, "could not mark the job failed; dead-lettering anyway");
                settle(delivery.dead_letter(&error_text).await, "dead-letter");
            }
        }
    }
}

/// Logs a settlement that did not go through: the broker redelivers the message, and
/// the finished job row makes that a no-op.
fn settle(result: Result<(), QueueError>, what: &str) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not {what} the job message; it will be redelivered");
    }
}

async fn mark_running(db: &DatabaseConnection, row: job::Model) -> Result<job::Model, DbErr> {
    let now = Utc::now();
    let attempts = row.attempts + 1;
    let mut active = row.into_active_model();
    active.status = Set(JobStatus::Running);
    active.attempts = Set(attempts);
    active.progress = Set(0.0);
    active.started_at = Set(Some(now));
    active.updated_at = Set(now);
    job::Entity::update(active).exec(db).await
}

/// Between attempts the job is `queued` again with the last error; `published_at` is the
/// retry's, so the outbox relay does not republish it while the retry is pending.
async fn mark_retrying(
    db: &DatabaseConnection,
    row: &job::Model,
    error: &str,
    attempt: u32,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut active = row.clone().into_active_model();
    active.status = Set(JobStatus::Queued);
    active.error = Set(Some(format!("attempt {attempt} failed: {error}")));
    active.published_at = Set(Some(now));
    active.updated_at = Set(now);
    job::Entity::update(active).exec(db).await?;
    Ok(())
}

/// Marks the job (and its student or session) `failed` and raises `job.failed`, in one
/// transaction.
async fn mark_failed(ctx: &JobContext, message: &JobMessage, error: &str) -> Result<(), DbErr> {
    let txn = ctx.db.begin().await?;
    let Some(row) = job::Entity::find_by_id(message.job_id).one(&txn).await? else {
        return Ok(());
    };
    let now = Utc::now();
    let subject_id = row.subject_id;
    crate::webhooks::events::job_failed(&txn, &ctx.public_url, &row, error).await?;
    let mut active = row.into_active_model();
    active.status = Set(JobStatus::Failed);
    active.error = Set(Some(error.to_string()));
    active.finished_at = Set(Some(now));
    active.updated_at = Set(now);
    job::Entity::update(active).exec(&txn).await?;
    jobs::mark_subject_failed(message.kind, &txn, &ctx.public_url, subject_id).await?;
    txn.commit().await
}

/// Connects to the database (creating a SQLite file's directory). Applies no
/// migrations: the API does ([`crate::schema`]).
pub async fn connect_database(url: &str) -> Result<DatabaseConnection, ServiceError> {
    migration::connect(url)
        .await
        .map_err(ServiceError::Database)
}

/// Loads the face engine on a blocking thread, fetching missing weights.
pub async fn load_engine(config: &Config) -> Result<Arc<FaceEngine>, ServiceError> {
    let model_dir = config.model_dir.clone();
    let device = config.device.clone();
    let (model, detector) = (config.face_model, config.detector);
    let limits = PhotoLimits::from_config(config);
    let span = tracing::Span::current();
    let engine = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            FaceEngine::open(&model_dir, model, detector, &device, true)
                .map(|e| e.with_limits(limits))
        })
    })
    .await
    .map_err(|e| ServiceError::EngineTask(e.to_string()))??;
    tracing::info!(
        model = engine.model_name(),
        detector = engine.detector().name(),
        device = ?engine.device(),
        "face engine loaded"
    );
    Ok(Arc::new(engine))
}

/// The worker process: opens everything from `config`, loads the engine once, and
/// consumes jobs until SIGTERM or Ctrl-C (finishing the job in progress). Waits first
/// (up to `schema_wait`) for the API to have migrated the database.
pub async fn run(config: Config, schema_wait: SchemaWait) -> Result<(), ServiceError> {
    let db = connect_database(&config.database_url).await?;
    crate::schema::wait_until_current(&db, schema_wait).await?;
    let blobs = open_blob_store(&config.storage_url).await?;
    let queue = open_queue(&config.queue_url).await?;
    if config.embedded_queue() {
        tracing::warn!(
            "QUEUE_URL=embedded: a separate worker process cannot see the API's in-process \
             queue; set QUEUE_URL to RabbitMQ or let the API run the worker itself"
        );
    }
    let engine = load_engine(&config).await?;
    schedule_reembedding(&db, queue.as_ref(), engine.model_name()).await;
    let dispatcher = Dispatcher::new(db.clone(), DispatcherOptions::from_config(&config));
    let worker = Worker::new(
        JobContext {
            db,
            blobs,
            engine,
            queue: Some(Arc::clone(&queue)),
            public_url: config.public_url.clone(),
        },
        WorkerOptions::from_config(&config),
    );
    // One signal stops both loops; each finishes what it is sending first.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let signal = async {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let (_, result, ()) = tokio::join!(
        signal,
        worker.run_until(queue.as_ref(), until_stopped()),
        dispatcher.run_until(until_stopped()),
    );
    result
}

/// The same loop inside the API process (embedded mode). Returns at once: the engine is
/// loaded in the background (retried every minute if its weights cannot be had), and
/// messages wait in the queue meanwhile. Must be called within a Tokio runtime; abort
/// the handle to stop.
pub fn spawn_in_process(
    config: &Config,
    db: DatabaseConnection,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn JobQueue>,
) -> Result<JoinHandle<()>, ServiceError> {
    let config = config.clone();
    let options = WorkerOptions::from_config(&config);
    let dispatcher = Dispatcher::new(db.clone(), DispatcherOptions::from_config(&config));
    let span = tracing::info_span!("in_process_worker");
    // Webhooks are sent while the engine loads; both run in this one task, so that
    // aborting the handle stops both.
    Ok(tokio::spawn(
        async move {
            let jobs = async {
                let engine = loop {
                    match load_engine(&config).await {
                        Ok(engine) => break engine,
                        Err(e) => {
                            tracing::error!(
                                error = %error_chain(&e),
                                "face engine not available; jobs wait in the queue; retrying in 60 s"
                            );
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                };
                schedule_reembedding(&db, queue.as_ref(), engine.model_name()).await;
                let worker = Worker::new(
                    JobContext {
                        db: db.clone(),
                        blobs,
                        engine,
                        queue: Some(Arc::clone(&queue)),
                        public_url: config.public_url.clone(),
                    },
                    options,
                );
                if let Err(e) = worker
                    .run_until(queue.as_ref(), std::future::pending())
                    .await
                {
                    tracing::error!(error = %error_chain(&e), "in-process worker stopped");
                }
            };
            tokio::join!(dispatcher.run_until(std::future::pending()), jobs);
        }
        .instrument(span),
    ))
}

/// At start-up with a model: queues the re-embedding of every student registered with
/// another model only. A failure is logged, not fatal: the students are reported
/// `unmatched` meanwhile, and the next start (or `attendance-worker reembed`) tries again.
async fn schedule_reembedding(db: &DatabaseConnection, queue: &dyn JobQueue, model: &str) {
    match crate::reembedding::schedule(db, Some(queue), model).await {
        Ok(scheduled) if !scheduled.created.is_empty() => tracing::info!(
            model,
            jobs = scheduled.created.len(),
            published = scheduled.published,
            "students registered with another face model are being re-embedded"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(
            model,
            error = %error_chain(&e),
            "could not schedule the re-embedding; run `attendance-worker reembed`"
        ),
    }
}

async fn shutdown_signal() {
    common::shutdown::signal().await;
    tracing::info!("shutdown requested; finishing the current job");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let options = WorkerOptions::from_config(&Config::default());
        assert_eq!(options.backoff(1), Duration::from_secs(2));
        assert_eq!(options.backoff(2), Duration::from_secs(4));
        assert_eq!(options.backoff(4), Duration::from_secs(16));
        assert_eq!(options.backoff(10), Duration::from_secs(120));
        assert_eq!(options.backoff(u32::MAX), Duration::from_secs(120));
    }
}
