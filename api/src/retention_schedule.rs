//! The daily retention job (`RETENTION_DAYS`): the API process checks at start and
//! every hour whether today's job exists, and inserts it if not.
//!
//! Every API process does this (one in the embedded default, several replicas in
//! production); the job's id is derived from the UTC date
//! ([`common::retention::daily_job_id`]), so concurrent inserts collide on the primary
//! key and exactly one row exists per day. The row is then published like any other
//! job (and left to the outbox relay if the queue is down).

use std::{sync::Arc, time::Duration};

use common::{Clock, JobKind, JobQueue};
use models::job;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, TransactionTrait, sea_query::OnConflict};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::outbox;

/// How often a process checks that the day's job exists.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Inserts and publishes the retention job of the clock's UTC day, unless it exists.
/// Returns its id when this call created it; `None` when it existed already or when
/// retention is off (`retention_days` `None`: nothing is scheduled).
pub async fn schedule_today<C>(
    db: &C,
    queue: &dyn JobQueue,
    clock: &dyn Clock,
    retention_days: Option<u32>,
) -> Result<Option<Uuid>, DbErr>
where
    C: ConnectionTrait,
{
    if retention_days.is_none() {
        return Ok(None);
    }
    let id = common::retention::daily_job_id(clock.now());
    // The job is its own subject: it concerns no one student or session.
    let inserted = job::Entity::insert(outbox::new_job(id, JobKind::Retention, id))
        .on_conflict(OnConflict::column(job::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    tracing::info!(job_id = %id, "today's retention job queued");
    outbox::publish(db, queue, id, JobKind::Retention, "schedule").await;
    Ok(Some(id))
}

/// Runs [`schedule_today`] now and every `every` until the task is aborted; `None` when
/// retention is off.
pub fn spawn<C>(
    db: C,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    retention_days: Option<u32>,
    every: Duration,
) -> Option<JoinHandle<()>>
where
    C: ConnectionTrait + TransactionTrait + Send + Sync + 'static,
{
    retention_days?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) =
                schedule_today(&db, queue.as_ref(), clock.as_ref(), retention_days).await
            {
                tracing::warn!(error = %e, "could not schedule today's retention job; trying again later");
            }
        }
    }))
}
