//! Job handlers: one type per job kind (the [`Job`] trait: its [`JobKind`], which also
//! names its lane, and `run`), one file per kind, a registry ([`handler`]) that maps a
//! kind to its handler, and the vocabulary they share.
//!
//! Adding a kind: the variant in `common::job::JobKind` (with its lane), a file here
//! with a type implementing [`Job`], and one line in [`handler`].
//!
//! A handler reads its rows, decides from plain data in a pure step (unit-tested
//! without database, storage or weights), then writes its results *and* marks the job
//! `succeeded` in one transaction ([`complete`]). The service acks the message only
//! after that commit, so a crash at any point leaves either nothing or everything, and
//! a redelivery rewrites the same rows (handlers are idempotent).
//!
//! A handler runs only under a claim on its job ([`claim`]); every state write of the
//! run ([`Progress`], [`complete`]) is conditional on it, and [`complete`] failing with
//! [`JobError::ClaimLost`] rolls the handler's transaction back, so a runner that lost
//! its claim writes no results.

pub mod attendance;
pub mod batch_completion;
pub mod bulk_registration;
pub mod claim;
pub mod crops;
pub mod reembed;
pub mod registration;
pub mod registration_batch;
pub mod retention;

use std::{future::Future, marker::PhantomData, pin::Pin, sync::Arc};

use bytes::Bytes;
use chrono::Utc;
use common::job::result::{JobResult, SkippedResult};
use common::{BlobError, BlobStore, Clock, JobKind, JobQueue};
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, sea_query::Expr,
};
use uuid::Uuid;

use crate::engine::EngineError;
use crate::engine::pipeline::FaceEngine;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a handler stopped, phrased as what to do next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A dependency is down or a transient error happened (database, blob store):
    /// run the job again later, with backoff, up to the attempt limit.
    #[error("{context}")]
    Retry {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The job's data can never succeed (e.g. an undecodable session photo): fail the
    /// job and dead-letter the message at once.
    #[error("{0}")]
    Abort(String),
    /// Another runner claimed the job (this one's lease ran out): stop, write nothing,
    /// and acknowledge the message.
    #[error("another run took over this job")]
    ClaimLost,
}

impl JobError {
    pub fn retry(context: impl Into<String>, source: impl Into<BoxError>) -> JobError {
        JobError::Retry {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub fn abort(reason: impl Into<String>) -> JobError {
        JobError::Abort(reason.into())
    }

    /// The message stored on the job row and shown to clients: what went wrong, in
    /// words a teacher can act on. The causes (SDK and database messages, storage keys,
    /// endpoints) are left out; the service logs them with the job id.
    pub fn readable(&self) -> String {
        self.to_string()
    }
}

impl From<DbErr> for JobError {
    fn from(e: DbErr) -> Self {
        JobError::retry("the database was unavailable", e)
    }
}

/// Engine failures on a given photo: a photo that does not decode never will; anything
/// else (tensor errors, I/O on model files) may be the machine's, so it is retried.
pub(crate) fn engine_error(what: &str, e: EngineError) -> JobError {
    match e.bad_input_reason() {
        Some(reason) => JobError::abort(format!("{what}: {reason}")),
        None => JobError::retry(format!("face engine failed on {what}"), e),
    }
}

/// What a handler produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T = JobResult> {
    /// Results written and the job marked `succeeded` (in the same transaction); the
    /// value is the job's `result`.
    Completed(T),
    /// The job's subject no longer exists (deleted while the job was queued): nothing
    /// to do. The service records it on the job row.
    Skipped(String),
}

impl<T: Into<JobResult>> Outcome<T> {
    fn erase(self) -> Outcome {
        match self {
            Outcome::Completed(result) => Outcome::Completed(result.into()),
            Outcome::Skipped(reason) => Outcome::Skipped(reason),
        }
    }
}

/// A kind of job. Implementations are unit types; the job's data is its row (the
/// subject id) and the rows it points at, so a redelivery always sees the current state.
pub trait Job: Send + Sync + 'static {
    /// The job's name on the wire and in `jobs.kind`; its queue is `KIND.lane()`.
    const KIND: JobKind;
    /// What a completed run produced; stored as the job's result.
    type Output: Into<JobResult> + Send;

    /// Runs the job on `job.subject_id`. Must tolerate running twice, and treat a
    /// missing subject as [`Outcome::Skipped`], not as an error.
    fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<Outcome<Self::Output>, JobError>> + Send;

    /// Marks the subject of a job that failed for good (the student, the session…)
    /// as failed, in the caller's transaction alongside the job row.
    /// `public_url` is for the links of the webhook events this may raise. By default
    /// nothing: jobs whose subject keeps its state when they fail (re-embedding,
    /// retention) need no more than the failed job row.
    fn mark_subject_failed(
        _db: &DatabaseTransaction,
        _public_url: &str,
        _subject_id: Uuid,
    ) -> impl Future<Output = Result<(), DbErr>> + Send {
        async { Ok(()) }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`Job`] behind a vtable, so that the registry can hand out any kind's handler.
pub trait Handler: Send + Sync {
    fn kind(&self) -> JobKind;

    fn run<'a>(
        &self,
        ctx: &'a JobContext,
        job: &'a job::Model,
        progress: &'a Progress<'a>,
    ) -> BoxFuture<'a, Result<Outcome, JobError>>;

    fn mark_subject_failed<'a>(
        &self,
        db: &'a DatabaseTransaction,
        public_url: &'a str,
        subject_id: Uuid,
    ) -> BoxFuture<'a, Result<(), DbErr>>;
}

struct Registered<J>(PhantomData<fn() -> J>);

impl<J: Job> Handler for Registered<J> {
    fn kind(&self) -> JobKind {
        J::KIND
    }

    fn run<'a>(
        &self,
        ctx: &'a JobContext,
        job: &'a job::Model,
        progress: &'a Progress<'a>,
    ) -> BoxFuture<'a, Result<Outcome, JobError>> {
        Box::pin(async move { J::run(ctx, job, progress).await.map(Outcome::erase) })
    }

    fn mark_subject_failed<'a>(
        &self,
        db: &'a DatabaseTransaction,
        public_url: &'a str,
        subject_id: Uuid,
    ) -> BoxFuture<'a, Result<(), DbErr>> {
        Box::pin(J::mark_subject_failed(db, public_url, subject_id))
    }
}

/// The registry: the handler of each job kind (the match makes a kind without one a
/// compile error).
pub fn handler(kind: JobKind) -> &'static dyn Handler {
    match kind {
        JobKind::Registration => &Registered::<registration::Registration>(PhantomData),
        JobKind::Attendance => &Registered::<attendance::Attendance>(PhantomData),
        JobKind::Reembed => &Registered::<reembed::Reembed>(PhantomData),
        JobKind::RegistrationBatch => {
            &Registered::<registration_batch::RegistrationBatch>(PhantomData)
        }
        JobKind::BulkRegistration => {
            &Registered::<bulk_registration::BulkRegistration>(PhantomData)
        }
        JobKind::Retention => &Registered::<retention::Retention>(PhantomData),
    }
}

/// What every handler needs: the database, the photos, the engine (loaded once), and
/// the queue for jobs that fan out into further jobs.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    pub blobs: Arc<dyn BlobStore>,
    pub engine: Arc<FaceEngine>,
    /// Where fanned-out jobs are published after their rows commit; `None` leaves them
    /// to the API's outbox relay (which publishes every `queued` row it finds).
    pub queue: Option<Arc<dyn JobQueue>>,
    /// `PUBLIC_URL`, for the links in webhook payloads.
    pub public_url: String,
    /// "Now" for what depends on the date (retention); the system clock but in tests.
    pub clock: Arc<dyn Clock>,
    /// `RETENTION_DAYS` (`None`: session photos are kept for ever).
    pub retention_days: Option<u32>,
}

/// Reports a job's progress (0..=1) on its row while it runs, under the run's claim
/// (`job` is the row as claimed). Best effort: a failed update is logged, never fails
/// the job; one that finds the claim lost changes nothing (the run's final commit
/// then fails with [`JobError::ClaimLost`]).
pub struct Progress<'a> {
    db: &'a DatabaseConnection,
    job: &'a job::Model,
}

impl<'a> Progress<'a> {
    pub fn new(db: &'a DatabaseConnection, job: &'a job::Model) -> Self {
        Self { db, job }
    }

    pub async fn set(&self, fraction: f64) {
        let result = job::Entity::update_many()
            .col_expr(job::Column::Progress, Expr::value(fraction.clamp(0.0, 1.0)))
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(claim::held(self.job))
            .exec(self.db)
            .await;
        match result {
            Ok(r) if r.rows_affected == 0 => {
                tracing::warn!("job progress not recorded: another run holds the job");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not record job progress"),
        }
    }
}

/// Runs the handler of `kind` on `job`.
pub async fn run(
    kind: JobKind,
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome, JobError> {
    handler(kind).run(ctx, job, progress).await
}

/// Marks the subject of a failed job (the student or the session) as failed, in the
/// caller's transaction alongside the job row.
pub async fn mark_subject_failed(
    kind: JobKind,
    db: &DatabaseTransaction,
    public_url: &str,
    subject_id: Uuid,
) -> Result<(), DbErr> {
    handler(kind)
        .mark_subject_failed(db, public_url, subject_id)
        .await
}

/// Marks a job `succeeded` with its result; call inside the transaction that writes the
/// job's results, with `job` the row as claimed. Fails with [`JobError::ClaimLost`]
/// when another run holds the job: the caller's `?` then drops its transaction, which
/// rolls the results back.
pub async fn complete(
    db: &impl ConnectionTrait,
    job: &job::Model,
    result: &JobResult,
) -> Result<(), JobError> {
    let now = Utc::now();
    let done = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            Expr::value(JobStatus::Succeeded.to_value()),
        )
        .col_expr(job::Column::Progress, Expr::value(1.0))
        .col_expr(job::Column::Result, Expr::value(result.to_stored()))
        .col_expr(job::Column::Error, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(job::Column::FinishedAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(claim::held(job))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(JobError::ClaimLost);
    }
    Ok(())
}

/// Marks a job whose subject is gone `succeeded`, saying why nothing was done.
pub async fn complete_skipped(
    db: &impl ConnectionTrait,
    job: &job::Model,
    reason: String,
) -> Result<(), JobError> {
    complete(db, job, &JobResult::Skipped(SkippedResult { reason })).await
}

/// Reads a photo from the blob store. A missing object stays missing (`Ok(None)`);
/// other failures may pass and are retried.
pub(crate) async fn fetch_photo(
    blobs: &dyn BlobStore,
    key: &str,
) -> Result<Option<Bytes>, JobError> {
    match blobs.get(key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => {
            // The key and the store's message are for the log, not for the job row.
            tracing::warn!(key, error = %common::error_chain(&e), "photo could not be read from storage");
            Err(JobError::retry(
                "a photo could not be read from storage; it will be tried again",
                e,
            ))
        }
    }
}

/// Runs CPU-heavy work (decoding, the face engine, JPEG encoding) on a blocking thread,
/// inside the caller's tracing span, so the async runtime keeps serving.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, JobError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        // A panic in the engine on this input would panic again.
        .map_err(|e| {
            tracing::error!(error = %e, "face engine task failed");
            JobError::abort("the photo could not be processed (the face engine stopped on it)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_handler() {
        for kind in JobKind::ALL {
            assert_eq!(handler(kind).kind(), kind);
        }
    }
}
