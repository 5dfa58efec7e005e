//! Transactional outbox: job rows are written with the rows they concern; messages are
//! published after commit; a relay republishes what stayed `queued`.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use common::{JobKind, JobMessage, JobQueue};
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveEnum,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::metrics;

/// A new job row (status `queued`) for `subject_id`, to insert in the caller's transaction.
pub fn new_job(id: Uuid, kind: JobKind, subject_id: Uuid) -> job::ActiveModel {
    let now = Utc::now();
    job::ActiveModel {
        id: Set(id),
        kind: Set(kind),
        lane: Set(kind.lane()),
        status: Set(JobStatus::Queued),
        progress: Set(0.0),
        attempts: Set(0),
        error: Set(None),
        result: Set(None),
        subject_id: Set(subject_id),
        created_at: Set(now),
        updated_at: Set(now),
        published_at: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        lease_until: Set(None),
        interrupted_runs: Set(0),
    }
}

/// Publishes a committed job and records `published_at`. Returns whether the queue
/// took it; a failure is logged and left to the relay (the job row stays `queued`).
pub async fn publish(
    db: &impl ConnectionTrait,
    queue: &dyn JobQueue,
    job_id: Uuid,
    kind: JobKind,
    via: &str,
) -> bool {
    let msg = JobMessage::new(job_id, kind);
    match queue.publish(kind.lane(), &msg).await {
        Ok(()) => {
            metrics::job_published(kind.as_str(), via);
            if let Err(e) = mark_published(db, job_id).await {
                // Only costs a duplicate publish by the relay later (handlers are idempotent).
                tracing::warn!(%job_id, error = %e, "job published but published_at not recorded");
            }
            true
        }
        Err(e) => {
            metrics::job_publish_failed(kind.as_str(), via);
            tracing::warn!(%job_id, error = %e, "job not published; the outbox relay will retry");
            false
        }
    }
}

async fn mark_published(db: &impl ConnectionTrait, job_id: Uuid) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::PublishedAt, Expr::value(Utc::now()))
        .filter(job::Column::Id.eq(job_id))
        .exec(db)
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Time between scans.
    pub interval: Duration,
    /// A never-published job younger than this is left to the request that made it.
    pub unpublished_grace: Duration,
    /// A job published this long ago and still `queued` is published again (the
    /// message may have been lost with an in-process queue or a broker failure).
    pub republish_after: Duration,
    /// A job `running` whose lease ran out this long ago without another run claiming
    /// it is published again (once; again only after `republish_after`): its worker is
    /// gone and so is its message. RabbitMQ redelivers a dead worker's message itself,
    /// and the worker that gets it waits for the lease, so this only covers a message
    /// the broker lost. Rows without a lease (left by an older build) count from their
    /// last update.
    pub stale_running_after: Duration,
    /// Most jobs handled per scan.
    pub batch: u64,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            interval: Duration::from_secs(5),
            unpublished_grace: Duration::from_secs(10),
            republish_after: Duration::from_secs(600),
            stale_running_after: Duration::from_secs(60),
            batch: 100,
        }
    }
}

/// One relay pass: publishes the queued jobs that are due, oldest first, then the
/// running jobs whose lease ran out unclaimed, and returns how many the queue took.
/// Stops at the first failure (the queue is likely down).
///
/// The rows are claimed in a transaction with `FOR UPDATE SKIP LOCKED` (PostgreSQL;
/// SQLite has one writer anyway) and their `published_at` is set in it, so relays of
/// several API replicas never publish the same job twice: a replica skips the rows
/// another is publishing, and finds them no longer due once that one commits.
pub async fn relay_once<C>(
    db: &C,
    queue: &dyn JobQueue,
    options: &RelayOptions,
) -> Result<usize, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let grace = chrono::Duration::from_std(options.unpublished_grace).unwrap_or_default();
    let stale = chrono::Duration::from_std(options.republish_after).unwrap_or_default();
    let stalled = chrono::Duration::from_std(options.stale_running_after).unwrap_or_default();
    let txn = db.begin().await?;
    // Only kinds this build knows: a row of a newer kind would not decode.
    let due = job::Entity::find()
        .filter(job::Column::Kind.is_in(JobKind::ALL))
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq(JobStatus::Queued))
                        .add(
                            Condition::any()
                                .add(
                                    Condition::all()
                                        .add(job::Column::PublishedAt.is_null())
                                        .add(job::Column::CreatedAt.lte(now - grace)),
                                )
                                .add(job::Column::PublishedAt.lte(now - stale)),
                        ),
                )
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq(JobStatus::Running))
                        .add(
                            Condition::any()
                                .add(
                                    Condition::all()
                                        .add(job::Column::LeaseUntil.lte(now - stalled))
                                        .add(not_published_since(
                                            job::Column::LeaseUntil,
                                            now - stale,
                                        )),
                                )
                                .add(
                                    Condition::all()
                                        .add(job::Column::LeaseUntil.is_null())
                                        .add(job::Column::UpdatedAt.lte(now - stalled))
                                        .add(not_published_since(
                                            job::Column::UpdatedAt,
                                            now - stale,
                                        )),
                                ),
                        ),
                ),
        )
        .order_by_asc(job::Column::CreatedAt)
        .limit(options.batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&txn)
        .await?;
    let mut published = 0;
    for row in &due {
        let kind = row.kind;
        if !publish(&txn, queue, row.id, kind, "relay").await {
            break;
        }
        if row.status == JobStatus::Running {
            tracing::warn!(job_id = %row.id, lease_until = ?row.lease_until, "job's lease ran out with no run taking it over; published again");
        }
        published += 1;
    }
    // What was published is recorded on commit; were the commit lost, the rows are
    // published again on a later scan (handlers tolerate a duplicate message).
    txn.commit().await?;
    if published > 0 {
        tracing::info!(published, "outbox relay published queued jobs");
    }
    Ok(published)
}

/// The row was not published since `column` (when its run went stale), or not for
/// `republish_after` (the republished message may have been lost too).
fn not_published_since(column: job::Column, long_ago: chrono::DateTime<Utc>) -> Condition {
    Condition::any()
        .add(job::Column::PublishedAt.is_null())
        .add(Expr::col(job::Column::PublishedAt).lte(Expr::col(column)))
        .add(job::Column::PublishedAt.lte(long_ago))
}

/// Embedded mode only, at start-up: the in-process queue and its worker died with the
/// previous process, so every unfinished job (queued, or caught `running`) is set back
/// to `queued` and published again now. A job caught `running` had its run cut short
/// by the process's death (perhaps caused by it: out of memory), which counts towards
/// `JOB_MAX_ATTEMPTS` like a killed worker's run. Never call this where another process
/// may be running jobs (RabbitMQ redelivers those itself). Returns how many were
/// published.
pub async fn recover_in_process_jobs<C>(db: &C, queue: &dyn JobQueue) -> Result<usize, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let interrupted = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            Expr::value(JobStatus::Queued.to_value()),
        )
        .col_expr(
            job::Column::InterruptedRuns,
            Expr::col(job::Column::InterruptedRuns).add(1),
        )
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(job::Column::Status.eq(JobStatus::Running))
        .exec(db)
        .await?
        .rows_affected;
    let queued = job::Entity::update_many()
        .col_expr(
            job::Column::PublishedAt,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .exec(db)
        .await?
        .rows_affected;
    if queued == 0 {
        return Ok(0);
    }
    let options = RelayOptions {
        unpublished_grace: Duration::ZERO,
        ..RelayOptions::default()
    };
    let mut published = 0;
    loop {
        let n = relay_once(db, queue, &options).await?;
        published += n;
        if n < options.batch as usize {
            break;
        }
    }
    tracing::info!(
        interrupted,
        queued,
        published,
        "jobs left unfinished by the previous run queued again"
    );
    Ok(published)
}

/// Runs [`relay_once`] every `options.interval` until the task is aborted.
pub fn spawn_relay<C>(db: C, queue: Arc<dyn JobQueue>, options: RelayOptions) -> JoinHandle<()>
where
    C: ConnectionTrait + TransactionTrait + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = relay_once(&db, queue.as_ref(), &options).await {
                tracing::warn!(error = %e, "outbox relay scan failed");
            }
        }
    })
}
