//! The worker service: consumes job messages and runs their handlers.
//!
//! Per delivery: decode (garbage → dead-letter at once) → claim the job row in one
//! conditional update ([`crate::jobs::claim`]: missing → logged no-op, acked; already
//! finished → acked; held by another live run → acked, or put back until that run's
//! lease ends if this copy may be the last) → run the handler under the claim, renewing
//! its lease, which commits its results together with `succeeded` → ack. A
//! [`JobError::Retry`] goes back through the queue's retry path with exponential backoff
//! until the job's runs (`attempts`, counted in the row, not in the message) reach the
//! limit, then the job is marked `failed` and the message dead-lettered; a
//! [`JobError::Abort`] does that at once. Runs that never finished (the worker was
//! killed or ran out of memory: the broker redelivers without counting) are counted
//! too: the next claim finds the job `running` under an expired lease, and once the
//! limit is reached the job is failed saying the photo stopped the worker.
//!
//! A worker runs up to `WORKER_CONCURRENCY` jobs at once (1 on the CPU, where the engine
//! already uses every core; 8 on a GPU, which several photos in flight keep busy); their
//! faces share one embedding stage ([`crate::engine::batch_stage`]). Prefetch keeps the
//! next message at hand. More CPU throughput = more worker processes; one per GPU.

use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use common::{
    BlobError, BlobStore, Clock, Config, Delivery, JobKind, JobMessage, JobQueue, QueueError,
    error_chain, open_blob_store, open_queue,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait, sea_query::Expr,
};
use tokio::task::JoinHandle;
use tracing::{Instrument, field::Empty};

use crate::engine::EngineError;
use crate::engine::batch_stage::BatchOptions;
use crate::engine::pipeline::{FaceEngine, PhotoLimits};
use crate::jobs::claim::{self, Claim};
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
    /// Jobs handled at once.
    pub concurrency: usize,
    /// Unsettled deliveries per lane.
    pub prefetch: u16,
    /// Runs of a job before it is failed and dead-lettered.
    pub max_attempts: u32,
    /// A run's hold on its job, renewed every third of it while the handler works.
    pub lease: Duration,
    /// Backoff before retry `n` is `base × 2^(n-1)`, at most `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl WorkerOptions {
    /// The options for a worker on the CPU (see [`Self::for_device`]).
    pub fn from_config(config: &Config) -> Self {
        Self::for_device(config, false)
    }

    /// The options for a worker on a CUDA device (`cuda`) or the CPU: unset counts are
    /// that device's defaults.
    pub fn for_device(config: &Config, cuda: bool) -> Self {
        let concurrency = config.worker.concurrency_on(cuda);
        WorkerOptions {
            concurrency,
            // One message waiting beyond those being run.
            prefetch: u16::try_from(concurrency + 1).unwrap_or(u16::MAX).max(2),
            max_attempts: config.max_attempts,
            lease: config.job_lease,
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
        let concurrency = self.options.concurrency.max(1);
        tracing::info!(
            concurrency,
            prefetch = self.options.prefetch,
            max_attempts = self.options.max_attempts,
            model = self.ctx.engine.model_name(),
            "worker consuming jobs"
        );
        tokio::pin!(shutdown);
        let mut running = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(()) = running.next(), if !running.is_empty() => {}
                next = consumer.next(), if running.len() < concurrency => match next {
                    Ok(delivery) => running.push(self.handle(delivery)),
                    Err(e) => {
                        // The RabbitMQ consumer reconnects by itself; this is a pause,
                        // not an exit (the jobs in progress go on in their threads).
                        tracing::warn!(error = %e, "could not receive a job; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
        if !running.is_empty() {
            tracing::info!(jobs = running.len(), "finishing the jobs in progress");
            while running.next().await.is_some() {}
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
            run = Empty,
            student_id = Empty,
            session_id = Empty,
        );
        self.handle_message(message, delivery)
            .instrument(span)
            .await;
    }

    async fn handle_message(&self, message: JobMessage, delivery: Delivery) {
        let db = &self.ctx.db;
        let claimed = claim::claim(
            db,
            message.job_id,
            self.options.lease,
            self.options.max_attempts,
        )
        .await;
        let row = match claimed {
            Ok(Claim::Won(row)) => row,
            Ok(Claim::Missing) => {
                // The row is written before any publish, so this job was deleted.
                tracing::warn!("job row not found; nothing to do");
                settle(delivery.ack().await, "ack");
                return;
            }
            Ok(Claim::Finished(status)) => {
                // A duplicate publish or a redelivery after the commit: already done.
                tracing::info!(?status, "job already finished; acknowledging");
                settle(delivery.ack().await, "ack");
                return;
            }
            Ok(Claim::Held { until }) => return self.held_elsewhere(delivery, until).await,
            Ok(Claim::Exhausted { row, died }) => {
                return self.exhausted(&message, row, died, delivery).await;
            }
            Err(e) => {
                // Without a claim nothing may be written: try the delivery again later.
                let wait = self.options.backoff(delivery.attempt);
                tracing::warn!(error = %error_chain(&e), retry_in_s = wait.as_secs_f64(), "could not claim the job; will retry");
                settle(delivery.retry(wait).await, "retry");
                return;
            }
        };
        tracing::Span::current().record("run", row.attempts);
        if row.kind != message.kind {
            let error = JobError::abort(format!(
                "job row is of kind {} but the message says {}",
                row.kind, message.kind
            ));
            return self.failed(&message, &row, delivery, error).await;
        }

        let started = std::time::Instant::now();
        let progress = Progress::new(db, &row);
        // The lease is renewed while the handler works; a renewal that finds the claim
        // taken stops the handler (dropping it rolls back its open transaction).
        let outcome = tokio::select! {
            outcome = jobs::run(message.kind, &self.ctx, &row, &progress) => outcome,
            lost = self.keep_lease(&row) => Err(lost),
        };
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
                Err(e) => self.failed(&message, &row, delivery, e).await,
            },
            Err(error) => self.failed(&message, &row, delivery, error).await,
        }
    }

    /// Renews the claim's lease every third of its length; returns only when the claim
    /// is found lost.
    async fn keep_lease(&self, row: &job::Model) -> JobError {
        let every = (self.options.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match claim::renew(&self.ctx.db, row, self.options.lease).await {
                Ok(true) => {}
                Ok(false) => return JobError::ClaimLost,
                // The database may be back before the lease runs out.
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "could not renew the job's lease")
                }
            }
        }
    }

    /// Another runner holds the job. A fresh message is a duplicate of the one that
    /// runner holds: acknowledged. A redelivered or retried one may be the only copy
    /// left of a runner that died (its lease not yet run out): it is put back to come
    /// again when the lease ends.
    async fn held_elsewhere(&self, delivery: Delivery, until: chrono::DateTime<Utc>) {
        if delivery.redelivered || delivery.attempt > 1 {
            let left = (until - Utc::now()).to_std().unwrap_or_default();
            let wait = left + Duration::from_millis(500);
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "job held by another run; trying again when its lease ends"
            );
            settle(delivery.retry(wait).await, "retry");
        } else {
            tracing::info!("job held by another run; acknowledging this duplicate");
            settle(delivery.ack().await, "ack");
        }
    }

    /// Every allowed run of the job was used up and it is still unfinished: the last
    /// runs died (or the last failure could not be recorded). Fails it for good.
    async fn exhausted(
        &self,
        message: &JobMessage,
        row: job::Model,
        died: bool,
        delivery: Delivery,
    ) {
        let interrupted = row.interrupted_runs + i32::from(died);
        let reason = exhausted_reason(row.kind, row.attempts, interrupted, row.error.as_deref());
        tracing::error!(
            attempts = row.attempts,
            interrupted,
            error = %reason,
            "job used up its runs; failing it"
        );
        let guard = Guard::Unchanged {
            status: row.status,
            attempts: row.attempts,
        };
        match mark_failed(&self.ctx, message, &row, guard, &reason, interrupted).await {
            Ok(true) => settle(delivery.dead_letter(&reason).await, "dead-letter"),
            Ok(false) => {
                tracing::info!("job changed meanwhile; acknowledging");
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                let wait = self.options.backoff(delivery.attempt);
                tracing::warn!(error = %error_chain(&e), "could not mark the job failed; will retry");
                settle(delivery.retry(wait).await, "retry");
            }
        }
    }

    /// Settles a failed run: retry later, or fail the job and dead-letter it. `row` is
    /// the row as claimed; its `attempts` counts this run.
    async fn failed(
        &self,
        message: &JobMessage,
        row: &job::Model,
        delivery: Delivery,
        error: JobError,
    ) {
        // The whole chain (SDK and database messages, keys) goes to the log only.
        let chain = error_chain(&error);
        let readable = error.readable();
        let attempt = u32::try_from(row.attempts).unwrap_or(0);
        let give_up = match &error {
            JobError::ClaimLost => {
                tracing::warn!("another run took over the job; stopping without writing");
                settle(delivery.ack().await, "ack");
                return;
            }
            JobError::Abort(_) => true,
            JobError::Retry { .. } => attempt >= self.options.max_attempts,
        };
        if !give_up {
            let wait = self.options.backoff(attempt);
            tracing::warn!(error = %chain, retry_in_s = wait.as_secs_f64(), "job failed; will retry");
            let shown = format!("attempt {attempt} failed: {readable}");
            match claim::release_for_retry(&self.ctx.db, row, &shown).await {
                Ok(true) => settle(delivery.retry(wait).await, "retry"),
                Ok(false) => {
                    tracing::warn!("another run took over the job; acknowledging");
                    settle(delivery.ack().await, "ack");
                }
                Err(e) => {
                    // Still ours until the lease runs out; the retried message waits
                    // for that and claims it again.
                    tracing::warn!(error = %error_chain(&e), "could not record the failed attempt");
                    settle(delivery.retry(wait).await, "retry");
                }
            }
            return;
        }
        let error_text = match &error {
            JobError::Retry { .. } if row.interrupted_runs > 0 => format!(
                "{readable} (gave up after {attempt} attempts; {} of them stopped the worker)",
                row.interrupted_runs
            ),
            JobError::Retry { .. } => format!("{readable} (gave up after {attempt} attempts)"),
            _ => readable,
        };
        tracing::error!(error = %chain, shown = %error_text, "job failed");
        let guard = Guard::Claimed;
        match mark_failed(
            &self.ctx,
            message,
            row,
            guard,
            &error_text,
            row.interrupted_runs,
        )
        .await
        {
            Ok(true) => settle(delivery.dead_letter(&error_text).await, "dead-letter"),
            Ok(false) => {
                tracing::warn!("another run took over the job; acknowledging");
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                // The failure could not be recorded (database down): the retried
                // message comes back when the lease ends and finds the runs used up.
                tracing::warn!(error = %error_chain(&e), "could not mark the job failed; will retry");
                settle(delivery.retry(self.options.backoff(attempt)).await, "retry");
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

/// The reason shown for a job whose runs were used up, telling runs that stopped the
/// worker (killed, out of memory) from runs that returned an error.
fn exhausted_reason(
    kind: JobKind,
    attempts: i32,
    interrupted: i32,
    last_error: Option<&str>,
) -> String {
    let what = match kind {
        JobKind::Attendance => "this session's photos",
        JobKind::Registration | JobKind::BulkRegistration => "this student's photos",
        JobKind::Reembed => "this student's photos for the new face model",
        JobKind::RegistrationBatch => "this batch",
        JobKind::Retention => "the retention of old session photos",
    };
    let times = |n: i32| {
        if n == 1 {
            "once".to_string()
        } else {
            format!("{n} times")
        }
    };
    if interrupted >= attempts {
        format!(
            "processing {what} stopped the worker {}",
            times(interrupted)
        )
    } else if interrupted > 0 {
        let last = last_error.map(|e| format!("; {e}")).unwrap_or_default();
        format!(
            "processing {what} failed {} ({interrupted} of them stopped the worker){last}",
            times(attempts)
        )
    } else {
        let last = last_error.map(|e| format!(": {e}")).unwrap_or_default();
        format!("gave up after {attempts} attempts{last}")
    }
}

/// Under what condition [`mark_failed`] may write.
#[derive(Debug, Clone, Copy)]
enum Guard {
    /// The job is still held by the claim that produced the row.
    Claimed,
    /// The job is still as it was read (no run holds it; its runs are used up).
    Unchanged { status: JobStatus, attempts: i32 },
}

/// Marks the job (and its student or session) `failed` and raises `job.failed`, in one
/// transaction, if `guard` still holds. `Ok(false)`: it did not, and nothing changed.
async fn mark_failed(
    ctx: &JobContext,
    message: &JobMessage,
    row: &job::Model,
    guard: Guard,
    error: &str,
    interrupted_runs: i32,
) -> Result<bool, DbErr> {
    let txn = ctx.db.begin().await?;
    let now = Utc::now();
    let condition = match guard {
        Guard::Claimed => claim::held(row),
        Guard::Unchanged { status, attempts } => Condition::all()
            .add(job::Column::Id.eq(row.id))
            .add(job::Column::Status.eq(status))
            .add(job::Column::Attempts.eq(attempts)),
    };
    let failed = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            Expr::value(JobStatus::Failed.to_value()),
        )
        .col_expr(job::Column::Error, Expr::value(error))
        .col_expr(job::Column::InterruptedRuns, Expr::value(interrupted_runs))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(job::Column::FinishedAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(condition)
        .exec(&txn)
        .await?;
    if failed.rows_affected == 0 {
        return Ok(false);
    }
    crate::webhooks::events::job_failed(&txn, &ctx.public_url, row, error).await?;
    jobs::mark_subject_failed(message.kind, &txn, &ctx.public_url, row.subject_id).await?;
    txn.commit().await?;
    Ok(true)
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
    let settings = config.worker;
    let span = tracing::Span::current();
    let engine = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let engine =
                FaceEngine::open(&model_dir, model, detector, &device, true)?.with_limits(limits);
            let cuda = engine.device().is_cuda();
            // Several jobs at once share one embedding stage; one job needs none.
            if settings.concurrency_on(cuda) > 1 {
                engine.with_shared_batching(BatchOptions {
                    max_items: settings.embed_batch_on(cuda),
                    wait: settings.embed_wait,
                })
            } else {
                Ok(engine)
            }
        })
    })
    .await
    .map_err(|e| ServiceError::EngineTask(e.to_string()))??;
    tracing::info!(
        model = engine.model_name(),
        detector = engine.detector().name(),
        device = ?engine.device(),
        shared_embedding = engine.embed_stage_counts().is_some(),
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
    let options = WorkerOptions::for_device(&config, engine.device().is_cuda());
    let worker = Worker::new(
        JobContext {
            db,
            blobs,
            engine,
            queue: Some(Arc::clone(&queue)),
            public_url: config.public_url.clone(),
            clock: common::clock::system(),
            retention_days: config.privacy.retention_days,
        },
        options,
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
/// the handle to stop. `clock` is the API process's (what its scheduler uses too).
pub fn spawn_in_process(
    config: &Config,
    db: DatabaseConnection,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
) -> Result<JoinHandle<()>, ServiceError> {
    let config = config.clone();
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
                let options = WorkerOptions::for_device(&config, engine.device().is_cuda());
                let worker = Worker::new(
                    JobContext {
                        db: db.clone(),
                        blobs,
                        engine,
                        queue: Some(Arc::clone(&queue)),
                        public_url: config.public_url.clone(),
                        clock,
                        retention_days: config.privacy.retention_days,
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
    fn a_job_s_used_up_runs_are_told_apart_by_how_they_ended() {
        assert_eq!(
            exhausted_reason(JobKind::Attendance, 5, 5, None),
            "processing this session's photos stopped the worker 5 times"
        );
        assert_eq!(
            exhausted_reason(JobKind::Registration, 1, 1, None),
            "processing this student's photos stopped the worker once"
        );
        assert_eq!(
            exhausted_reason(
                JobKind::Attendance,
                3,
                1,
                Some("attempt 2 failed: the database was unavailable")
            ),
            "processing this session's photos failed 3 times (1 of them stopped the worker); \
             attempt 2 failed: the database was unavailable"
        );
        assert_eq!(
            exhausted_reason(JobKind::RegistrationBatch, 3, 0, None),
            "gave up after 3 attempts"
        );
    }

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
