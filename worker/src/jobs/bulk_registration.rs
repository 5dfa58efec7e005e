//! One student of a registration batch: the registration job's work, on the bulk lane
//! (so that a batch of thousands never delays a teacher's session or single
//! registration), with the student's batch outcome written in the same transaction and
//! the batch completed there when this was its last student.

use chrono::Utc;
use common::JobKind;
use common::job::result::{RegisteredStatus, RegistrationResult};
use models::job;
use models::registration_batch_item::{self, ItemStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::batch_completion::{finish_if_done, lock_batch};
use super::{Job, JobContext, JobError, Outcome, Progress, registration};

/// The bulk-lane registration job (subject: the student).
pub struct BulkRegistration;

impl Job for BulkRegistration {
    const KIND: JobKind = JobKind::BulkRegistration;
    type Output = RegistrationResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<RegistrationResult>, JobError> {
        let prepared = registration::prepare(ctx, job, progress).await?;
        let txn = ctx.db.begin().await?;
        let outcome = match prepared {
            Some(prepared) => {
                let result = registration::write(&txn, job, prepared).await?;
                let (status, reason) = match result.status {
                    RegisteredStatus::Active | RegisteredStatus::Inactive => {
                        (ItemStatus::Active, None)
                    }
                    RegisteredStatus::Failed => (
                        ItemStatus::Failed,
                        Some(format!(
                            "no usable photo ({} rejected: {})",
                            result.rejected,
                            rejection_summary(&result)
                        )),
                    ),
                };
                settle(&txn, &ctx.public_url, job.id, status, reason).await?;
                Outcome::Completed(result)
            }
            None => {
                settle(
                    &txn,
                    &ctx.public_url,
                    job.id,
                    ItemStatus::Failed,
                    Some(
                        "the student was deleted (or withdrew consent) before registration".into(),
                    ),
                )
                .await?;
                Outcome::Skipped(format!(
                    "student {} no longer exists or their face data was erased",
                    job.subject_id
                ))
            }
        };
        txn.commit().await?;
        Ok(outcome)
    }

    async fn mark_subject_failed(
        db: &DatabaseTransaction,
        public_url: &str,
        student_id: Uuid,
    ) -> Result<(), DbErr> {
        registration::mark_failed(db, student_id).await?;
        // The job id is not passed here: the student's queued outcome is the one.
        let item = registration_batch_item::Entity::find()
            .filter(registration_batch_item::Column::StudentId.eq(student_id))
            .filter(registration_batch_item::Column::Status.eq(ItemStatus::Queued))
            .one(db)
            .await?;
        if let Some(item) = item
            && let Some(job_id) = item.job_id
        {
            settle(
                db,
                public_url,
                job_id,
                ItemStatus::Failed,
                Some("the registration job failed (see its job for the error)".into()),
            )
            .await?;
        }
        Ok(())
    }
}

/// Records the outcome of the student whose registration job is `job_id` and completes
/// the batch if it was the last one, in the caller's transaction.
async fn settle(
    db: &impl ConnectionTrait,
    public_url: &str,
    job_id: Uuid,
    status: ItemStatus,
    reason: Option<String>,
) -> Result<(), DbErr> {
    let Some(item) = registration_batch_item::Entity::find()
        .filter(registration_batch_item::Column::JobId.eq(job_id))
        .one(db)
        .await?
    else {
        tracing::warn!(%job_id, "bulk registration without a batch outcome row");
        return Ok(());
    };
    lock_batch(db, item.batch_id).await?;
    registration_batch_item::Entity::update_many()
        .col_expr(
            registration_batch_item::Column::Status,
            Expr::value(sea_orm::ActiveEnum::to_value(&status)),
        )
        .col_expr(registration_batch_item::Column::Reason, Expr::value(reason))
        .col_expr(
            registration_batch_item::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(registration_batch_item::Column::Id.eq(item.id))
        .exec(db)
        .await?;
    finish_if_done(db, public_url, item.batch_id).await?;
    Ok(())
}

/// "no face found ×2, several faces ×1": why a student's photos were all refused.
fn rejection_summary(result: &RegistrationResult) -> String {
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for photo in &result.photos {
        let Some(note) = photo
            .reason
            .map(|r| r.describe(None))
            .or_else(|| photo.note.clone())
        else {
            continue;
        };
        match reasons.iter_mut().find(|(n, _)| *n == note) {
            Some((_, count)) => *count += 1,
            None => reasons.push((note, 1)),
        }
    }
    reasons
        .into_iter()
        .map(|(note, n)| format!("{note} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
