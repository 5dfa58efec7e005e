//! Transactional outbox: job rows are written with the rows they concern; messages are
//! published after commit; a relay republishes what stayed `queued`.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use common::{JobKind, JobMessage, JobQueue};
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
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
        .col_expr(
            job::Column::PublishedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
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
    /// A job `running` with no progress for this long is published again: its worker
    /// is gone and its message with it (RabbitMQ redelivers when a worker dies, so this
    /// only covers a message lost by the broker). Handlers are idempotent, so a worker
    /// that was merely slow costs a duplicate run, never duplicate rows.
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
            stale_running_after: Duration::from_secs(1800),
            batch: 100,
        }
    }
}

/// One relay pass: publishes the queued jobs that are due, oldest first, then the
/// running jobs that stalled, and returns how many the queue took. Stops at the first
/// failure (the queue is likely down).
pub async fn relay_once(
    db: &impl ConnectionTrait,
    queue: &dyn JobQueue,
    options: &RelayOptions,
) -> Result<usize, DbErr> {
    let now = Utc::now();
    let grace = chrono::Duration::from_std(options.unpublished_grace).unwrap_or_default();
    let stale = chrono::Duration::from_std(options.republish_after).unwrap_or_default();
    // Only kinds this build knows: a row of a newer kind would not decode.
    let due = job::Entity::find()
        .filter(job::Column::Kind.is_in(JobKind::ALL))
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(job::Column::PublishedAt.is_null())
                        .add(job::Column::CreatedAt.lte(now - grace)),
                )
                .add(job::Column::PublishedAt.lte(now - stale)),
        )
        .order_by_asc(job::Column::CreatedAt)
        .limit(options.batch)
        .all(db)
        .await?;
    let stalled = chrono::Duration::from_std(options.stale_running_after).unwrap_or_default();
    let stuck = job::Entity::find()
        .filter(job::Column::Kind.is_in(JobKind::ALL))
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::UpdatedAt.lte(now - stalled))
        .order_by_asc(job::Column::UpdatedAt)
        .limit(options.batch)
        .all(db)
        .await?;
    let mut published = 0;
    for row in due.iter().chain(&stuck) {
        let kind = row.kind;
        if !publish(db, queue, row.id, kind, "relay").await {
            break;
        }
        if row.status == JobStatus::Running {
            tracing::warn!(job_id = %row.id, since = %row.updated_at, "job stalled while running; published again");
            // A fresh lease: not published again before another full interval.
            job::Entity::update_many()
                .col_expr(
                    job::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(Utc::now()),
                )
                .filter(job::Column::Id.eq(row.id))
                .exec(db)
                .await?;
        }
        published += 1;
    }
    if published > 0 {
        tracing::info!(published, "outbox relay published queued jobs");
    }
    Ok(published)
}

/// Embedded mode only, at start-up: the in-process queue and its worker died with the
/// previous process, so every unfinished job (queued, or caught `running`) is set back
/// to `queued` and published again now. Never call this where another process may be
/// running jobs (RabbitMQ redelivers those itself). Returns how many were published.
pub async fn recover_in_process_jobs(
    db: &impl ConnectionTrait,
    queue: &dyn JobQueue,
) -> Result<usize, DbErr> {
    let reset = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            sea_orm::sea_query::Expr::value(JobStatus::Queued.to_value()),
        )
        .col_expr(
            job::Column::PublishedAt,
            sea_orm::sea_query::Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(job::Column::Status.is_in([JobStatus::Queued, JobStatus::Running]))
        .exec(db)
        .await?
        .rows_affected;
    if reset == 0 {
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
        reset,
        published,
        "jobs left unfinished by the previous run queued again"
    );
    Ok(published)
}

/// Runs [`relay_once`] every `options.interval` until the task is aborted.
pub fn spawn_relay<C>(db: C, queue: Arc<dyn JobQueue>, options: RelayOptions) -> JoinHandle<()>
where
    C: ConnectionTrait + Send + Sync + 'static,
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
