//! Retention (`RETENTION_DAYS`): once a day, the photos of every session uploaded more
//! than the retention period ago are deleted, with the crops and descriptors of its
//! faces that matched nobody; the session, its records, its `session_photos` rows
//! (whose `sha256` still serves the re-used-photo warning) and its matched faces with
//! their crops stay. `photos_deleted_at` records when.
//!
//! Per session, in three steps, so that a crash at any point leaves the session to the
//! next run (retry, or the next day's job) rather than an undeleted blob no row points
//! at:
//! 1. one transaction clears `crop_key` and `descriptor` of the unmatched faces;
//! 2. the blobs go: the photos, and the crop of every face that has none recorded
//!    (crop keys are derived from the face id, so a crop cleared by a run that died
//!    before deleting it is found again);
//! 3. one transaction sets `photos_deleted_at`, unless a face became unknown meanwhile
//!    (a person unassigned it), in which case the session goes round again.
//!
//! Between 1 and 3 the photo rows point at deleted blobs; readers tolerate that (a
//! missing photo fails an attendance re-run with a readable error, a missing crop is a
//! 404), and the window ends when the run (or its retry) reaches step 3.
//!
//! Idempotent (a second run finds nothing due, and a run over a half-done session
//! finishes it) and bounded: sessions are read in pages, oldest first.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use common::JobKind;
use common::job::result::RetentionResult;
use models::attendance_session;
use models::detected_face;
use models::job;
use models::session_photo;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::{Job, JobContext, JobError, Outcome, Progress, claim, crops};

/// Sessions read at a time.
const PAGE: u64 = 100;
/// Rounds of a session whose faces keep changing under the run before it is left to
/// the next run.
const MAX_ROUNDS: usize = 3;

/// The retention job.
pub struct Retention;

impl Job for Retention {
    const KIND: JobKind = JobKind::Retention;
    type Output = RetentionResult;

    async fn run(
        ctx: &JobContext,
        job: &job::Model,
        progress: &Progress<'_>,
    ) -> Result<Outcome<RetentionResult>, JobError> {
        run(ctx, job, progress).await
    }
}

async fn run(
    ctx: &JobContext,
    job: &job::Model,
    progress: &Progress<'_>,
) -> Result<Outcome<RetentionResult>, JobError> {
    let Some(days) = ctx.retention_days else {
        return Ok(Outcome::Skipped(
            "RETENTION_DAYS is 0: session photos are kept for ever".into(),
        ));
    };
    let now = ctx.clock.now();
    let Some(cutoff) = common::retention::cutoff(now, days) else {
        return Ok(Outcome::Skipped(format!(
            "RETENTION_DAYS={days} reaches before any stored date: nothing is that old"
        )));
    };
    let due = || {
        attendance_session::Entity::find()
            .filter(attendance_session::Column::PhotosDeletedAt.is_null())
            .filter(attendance_session::Column::CreatedAt.lt(cutoff))
    };
    let total = due().count(&ctx.db).await?;
    tracing::info!(days, %cutoff, sessions = total, "retention: deleting old session photos");

    let mut result = RetentionResult {
        retention_days: days,
        cutoff,
        sessions: 0,
        photos_deleted: 0,
        crops_deleted: 0,
        left_for_next_run: 0,
    };
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    let mut seen = 0u64;
    loop {
        // A run whose claim was taken over stops here rather than doing the work twice.
        if job::Entity::find()
            .filter(claim::held(job))
            .one(&ctx.db)
            .await?
            .is_none()
        {
            return Err(JobError::ClaimLost);
        }
        let mut page = due();
        if let Some((created_at, id)) = after {
            // Keyset paging: a session left for the next run is not read again.
            page = page.filter(
                Condition::any()
                    .add(attendance_session::Column::CreatedAt.gt(created_at))
                    .add(
                        Condition::all()
                            .add(attendance_session::Column::CreatedAt.eq(created_at))
                            .add(attendance_session::Column::Id.gt(id)),
                    ),
            );
        }
        let sessions = page
            .order_by_asc(attendance_session::Column::CreatedAt)
            .order_by_asc(attendance_session::Column::Id)
            .limit(PAGE)
            .all(&ctx.db)
            .await?;
        for session in &sessions {
            match purge(ctx, session.id, now).await? {
                Purge::Done { photos, crops } => {
                    result.sessions += 1;
                    result.photos_deleted += photos;
                    result.crops_deleted += crops;
                }
                Purge::Elsewhere => {}
                Purge::Unsettled => result.left_for_next_run += 1,
            }
            seen += 1;
            progress
                .set(seen as f64 / (total.max(seen) + 1) as f64)
                .await;
        }
        match sessions.last() {
            Some(last) if sessions.len() as u64 == PAGE => after = Some((last.created_at, last.id)),
            _ => break,
        }
    }

    let txn = ctx.db.begin().await?;
    super::complete(&txn, job, &result.clone().into()).await?;
    txn.commit().await?;
    tracing::info!(
        sessions = result.sessions,
        photos = result.photos_deleted,
        crops = result.crops_deleted,
        left = result.left_for_next_run,
        "retention done"
    );
    Ok(Outcome::Completed(result))
}

/// How one session's purge ended.
enum Purge {
    /// Its photos and unknown faces' crops are deleted and `photos_deleted_at` set.
    Done { photos: u32, crops: u32 },
    /// The session was deleted, or another run marked it, meanwhile.
    Elsewhere,
    /// Its faces kept changing under the run: left for the next run.
    Unsettled,
}

/// Deletes one session's photos and unmatched crops (steps 1–3 above).
async fn purge(ctx: &JobContext, session_id: Uuid, now: DateTime<Utc>) -> Result<Purge, JobError> {
    let mut crops_cleared = 0u32;
    for _ in 0..MAX_ROUNDS {
        // 1. The unmatched faces lose their crop and descriptor.
        let txn = ctx.db.begin().await?;
        let unmatched = unmatched_with_data(session_id).all(&txn).await?;
        let mut keys: BTreeSet<String> = unmatched
            .iter()
            .filter_map(|f| f.crop_key.clone())
            .collect();
        if !unmatched.is_empty() {
            let cleared = detected_face::Entity::update_many()
                .col_expr(
                    detected_face::Column::CropKey,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    detected_face::Column::Descriptor,
                    Expr::value(Option::<Vec<u8>>::None),
                )
                .col_expr(
                    detected_face::Column::Model,
                    Expr::value(Option::<String>::None),
                )
                .filter(detected_face::Column::Id.is_in(unmatched.iter().map(|f| f.id)))
                .filter(detected_face::Column::StudentId.is_null())
                .exec(&txn)
                .await?;
            crops_cleared += u32::try_from(cleared.rows_affected).unwrap_or(u32::MAX);
        }
        txn.commit().await?;

        // 2. The blobs: the photos, and every crop no row records any more.
        let photos = session_photo::Entity::find()
            .filter(session_photo::Column::SessionId.eq(session_id))
            .all(&ctx.db)
            .await?;
        let cropless = detected_face::Entity::find()
            .filter(detected_face::Column::SessionId.eq(session_id))
            .filter(detected_face::Column::CropKey.is_null())
            .all(&ctx.db)
            .await?;
        keys.extend(photos.iter().map(|p| p.blob_key.clone()));
        keys.extend(cropless.iter().map(|f| crops::crop_key(session_id, f.id)));
        for key in &keys {
            ctx.blobs.delete(key).await.map_err(|e| {
                tracing::warn!(%session_id, key, error = %common::error_chain(&e), "retention: a blob could not be deleted");
                JobError::retry("a photo could not be deleted from storage; it will be tried again", e)
            })?;
        }

        // 3. Done, unless a face became unknown (with its crop) meanwhile.
        let marked = attendance_session::Entity::update_many()
            .col_expr(
                attendance_session::Column::PhotosDeletedAt,
                Expr::value(now),
            )
            .filter(attendance_session::Column::Id.eq(session_id))
            .filter(attendance_session::Column::PhotosDeletedAt.is_null())
            .filter(
                attendance_session::Column::Id.not_in_subquery(
                    unmatched_with_data(session_id)
                        .select_only()
                        .column(detected_face::Column::SessionId)
                        .into_query(),
                ),
            )
            .exec(&ctx.db)
            .await?;
        if marked.rows_affected == 1 {
            tracing::info!(%session_id, photos = photos.len(), crops = crops_cleared, "retention: session photos deleted");
            return Ok(Purge::Done {
                photos: u32::try_from(photos.len()).unwrap_or(u32::MAX),
                crops: crops_cleared,
            });
        }
        let still_due = attendance_session::Entity::find_by_id(session_id)
            .filter(attendance_session::Column::PhotosDeletedAt.is_null())
            .one(&ctx.db)
            .await?;
        if still_due.is_none() {
            return Ok(Purge::Elsewhere);
        }
    }
    tracing::warn!(%session_id, "retention: the session's faces kept changing; left for the next run");
    Ok(Purge::Unsettled)
}

/// The session's unknown faces that still hold a crop or a descriptor.
fn unmatched_with_data(session_id: Uuid) -> sea_orm::Select<detected_face::Entity> {
    detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(session_id))
        .filter(detected_face::Column::StudentId.is_null())
        .filter(
            Condition::any()
                .add(detected_face::Column::CropKey.is_not_null())
                .add(detected_face::Column::Descriptor.is_not_null()),
        )
}
