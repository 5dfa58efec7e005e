//! The one place where a registration batch finishes: [`finish_if_done`] runs inside
//! the transaction that settles the batch's last outcome (the last student's
//! registration, or the unpacking when no student was queued) and returns the
//! `registration.batch.completed` payload exactly once.
//!
//! Every caller first takes the batch row's lock ([`lock_batch`]) so that two students
//! finishing at the same moment on two workers are serialised: the second sees the
//! first's outcome and only one of them completes the batch.

use chrono::Utc;
use models::registration_batch::{self, BatchStatus};
use models::registration_batch_item::{self, ItemStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

/// How many of a batch's outcomes are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Students whose registration is queued or running.
    pub queued: u64,
    /// Students registered with at least one accepted photo.
    pub active: u64,
    /// Students whose photos were all unusable, or whose registration job failed.
    pub failed: u64,
    /// Entries or manifest lines refused before registration.
    pub rejected: u64,
    /// Roll numbers repeated within the batch (the repeat was ignored).
    pub duplicates: u64,
    /// Students that existed already and were updated instead of duplicated.
    pub updated: u64,
}

/// The `registration.batch.completed` event's payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchCompleted {
    pub batch_id: Uuid,
    pub class_id: Option<Uuid>,
    pub department: Option<String>,
    pub counts: BatchCounts,
    /// Path of the CSV report on the API (`GET`, same authorisation as the batch).
    pub report_url: String,
}

/// Path of a batch's CSV report.
pub fn report_url(batch_id: Uuid) -> String {
    format!("/students/batches/{batch_id}/report.csv")
}

/// Takes the batch row's write lock for the rest of the transaction (an `UPDATE`
/// locks the row on PostgreSQL; SQLite serialises writing transactions anyway).
pub async fn lock_batch(db: &impl ConnectionTrait, batch_id: Uuid) -> Result<(), DbErr> {
    registration_batch::Entity::update_many()
        .col_expr(
            registration_batch::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(registration_batch::Column::Id.eq(batch_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The counts of a batch's outcomes.
pub async fn counts(db: &impl ConnectionTrait, batch_id: Uuid) -> Result<BatchCounts, DbErr> {
    let rows: Vec<(ItemStatus, bool, i64)> = registration_batch_item::Entity::find()
        .select_only()
        .column(registration_batch_item::Column::Status)
        .column(registration_batch_item::Column::Updated)
        .column_as(registration_batch_item::Column::Id.count(), "n")
        .filter(registration_batch_item::Column::BatchId.eq(batch_id))
        .group_by(registration_batch_item::Column::Status)
        .group_by(registration_batch_item::Column::Updated)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts = BatchCounts::default();
    for (status, updated, n) in rows {
        let n = n.max(0) as u64;
        let slot = match status {
            ItemStatus::Queued => &mut counts.queued,
            ItemStatus::Active => &mut counts.active,
            ItemStatus::Failed => &mut counts.failed,
            ItemStatus::Rejected => &mut counts.rejected,
            ItemStatus::Duplicate => &mut counts.duplicates,
        };
        *slot += n;
        if updated {
            counts.updated += n;
        }
    }
    Ok(counts)
}

/// Completes the batch if it is unpacked and no student is still queued, and raises
/// `registration.batch.completed` in the same transaction; returns the completion
/// payload the first time only (the status moves to `completed` here, under the lock
/// taken by [`lock_batch`], which the caller must hold).
pub async fn finish_if_done(
    db: &impl ConnectionTrait,
    public_url: &str,
    batch_id: Uuid,
) -> Result<Option<BatchCompleted>, DbErr> {
    let Some(batch) = registration_batch::Entity::find_by_id(batch_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if batch.status != BatchStatus::Processing {
        return Ok(None);
    }
    let counts = counts(db, batch_id).await?;
    if counts.queued > 0 {
        return Ok(None);
    }
    let now = Utc::now();
    registration_batch::Entity::update_many()
        .col_expr(
            registration_batch::Column::Status,
            Expr::value(sea_orm::ActiveEnum::to_value(&BatchStatus::Completed)),
        )
        .col_expr(registration_batch::Column::FinishedAt, Expr::value(now))
        .col_expr(registration_batch::Column::UpdatedAt, Expr::value(now))
        .filter(registration_batch::Column::Id.eq(batch_id))
        .filter(registration_batch::Column::Status.eq(BatchStatus::Processing))
        .exec(db)
        .await?;
    let completed = BatchCompleted {
        batch_id,
        class_id: batch.class_id,
        department: batch.department,
        counts,
        report_url: report_url(batch_id),
    };
    crate::webhooks::events::batch_completed(db, public_url, &completed).await?;
    tracing::info!(%batch_id, counts = ?completed.counts, "registration batch completed");
    Ok(Some(completed))
}
