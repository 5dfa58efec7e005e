//! A run's claim on its job row: the only way a runner may start a job, and the
//! condition on every write it makes afterwards.
//!
//! A claim is one conditional `UPDATE` (`queued` → `running`, or `running` under an
//! expired lease → `running`), which also counts the run (`attempts + 1`) and sets the
//! lease. Two runners handed the same message race on that update, and the database
//! lets exactly one of them through. The claimed `attempts` value is the claim's token:
//! progress, lease renewals, retrying, failing and succeeding all carry
//! `WHERE id = ? AND status = 'running' AND attempts = ?`, so a runner whose claim was
//! taken (its lease ran out while it was stalled) changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use models::job::{self, JobStatus};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

/// What an attempt to claim a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This runner holds the job; the row as claimed (its `attempts` is the token).
    Won(job::Model),
    /// The job row is gone (deleted with its subject).
    Missing,
    /// The job already succeeded or failed.
    Finished(JobStatus),
    /// Another runner holds the job until `until`.
    Held { until: DateTime<Utc> },
    /// Every allowed run has been used and the job is still unfinished: it must be
    /// failed. `died` is true when the last run ended with its runner's death (the row
    /// was left `running` and its lease ran out).
    Exhausted { row: job::Model, died: bool },
}

/// Tries to claim `job_id` for a run of at most `lease` without renewal.
pub async fn claim(
    db: &impl ConnectionTrait,
    job_id: Uuid,
    lease: Duration,
    max_attempts: u32,
) -> Result<Claim, DbErr> {
    let now = Utc::now();
    let until = lease_end(now, lease);
    let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
    let start = || {
        job::Entity::update_many()
            .col_expr(
                job::Column::Status,
                Expr::value(JobStatus::Running.to_value()),
            )
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::Progress, Expr::value(0.0))
            .col_expr(job::Column::LeaseUntil, Expr::value(until))
            .col_expr(job::Column::StartedAt, Expr::value(now))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.eq(job_id))
            .filter(job::Column::Attempts.lt(max))
    };
    let from_queue = start()
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .exec(db)
        .await?;
    let mut won = from_queue.rows_affected == 1;
    if !won {
        // Taken over from a runner that died: its run is counted as interrupted.
        let from_dead = start()
            .col_expr(
                job::Column::InterruptedRuns,
                Expr::col(job::Column::InterruptedRuns).add(1),
            )
            .filter(job::Column::Status.eq(JobStatus::Running))
            .filter(lease_expired(now))
            .exec(db)
            .await?;
        won = from_dead.rows_affected == 1;
    }
    let Some(row) = job::Entity::find_by_id(job_id).one(db).await? else {
        return Ok(Claim::Missing);
    };
    // The lease just set keeps any other claimant out, so the row read back is ours.
    if won {
        return Ok(Claim::Won(row));
    }
    Ok(match row.status {
        JobStatus::Succeeded | JobStatus::Failed => Claim::Finished(row.status),
        JobStatus::Running if row.lease_until.is_some_and(|until| until > now) => Claim::Held {
            until: row.lease_until.unwrap_or(now),
        },
        JobStatus::Running => Claim::Exhausted { row, died: true },
        JobStatus::Queued => Claim::Exhausted { row, died: false },
    })
}

/// `lease_until` is in the past (or was never set: a row left `running` by a build
/// without leases).
fn lease_expired(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(job::Column::LeaseUntil.is_null())
        .add(job::Column::LeaseUntil.lt(now))
}

fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::days(1))
}

/// The condition every write of a run carries: the job is still `running` under the
/// claim that produced `job` (the row as claimed).
pub fn held(job: &job::Model) -> Condition {
    Condition::all()
        .add(job::Column::Id.eq(job.id))
        .add(job::Column::Status.eq(JobStatus::Running))
        .add(job::Column::Attempts.eq(job.attempts))
}

/// Extends the claim's lease to `lease` from now. `Ok(false)`: the claim was lost.
pub async fn renew(
    db: &impl ConnectionTrait,
    job: &job::Model,
    lease: Duration,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let renewed = job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(lease_end(now, lease)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(held(job))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

/// Sets the claimed job back to `queued` between attempts with the last error;
/// `published_at` is the retry's, so the outbox relay does not republish it while the
/// retry is pending. `Ok(false)`: the claim was lost and nothing was written.
pub async fn release_for_retry(
    db: &impl ConnectionTrait,
    job: &job::Model,
    error: &str,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let released = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            Expr::value(JobStatus::Queued.to_value()),
        )
        .col_expr(job::Column::Error, Expr::value(error))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::PublishedAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(held(job))
        .exec(db)
        .await?;
    Ok(released.rows_affected == 1)
}
