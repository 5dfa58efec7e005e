//! A registered student's photos over time: more photos (judged by a registration job
//! that looks at all of them again), and the removal of one with its embeddings. A
//! student none of whose photos is accepted or still pending "needs photos".

use std::sync::Arc;

use chrono::Utc;
use common::{BlobStore, JobKind, JobQueue};
use models::{
    consent_entry, face_embedding,
    student::{self, StudentStatus},
    student_photo::{self, PhotoVerdict},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
    sea_query::SelectStatement,
};
use uuid::Uuid;

use super::{consent::Consent, intake, scope::Scope, students};
use crate::{error::ServiceError, upload::ValidatedPhoto};

/// What adding photos answers.
#[derive(Debug, Clone)]
pub struct PhotosAdded {
    pub student_id: Uuid,
    /// The registration job that judges them (and looks at the older photos again).
    pub job_id: Uuid,
    pub photo_ids: Vec<Uuid>,
}

/// Adds 1–10 photos to a registered student: checks consent (see
/// [`Consent::check_existing`]), stores the photos, writes the rows (`pending`), the
/// consent given and a registration job in one transaction, then publishes the job.
/// The job judges every photo of the student as a registration does; the student keeps
/// being matched with the photos accepted so far meanwhile. A student who withdrew
/// consent and gives it again is `pending` until the job decides.
pub async fn add(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    queue: &Arc<dyn JobQueue>,
    student_id: Uuid,
    photos: Vec<ValidatedPhoto>,
    consent: &Consent,
) -> Result<PhotosAdded, ServiceError> {
    if !(students::MIN_PHOTOS..=students::MAX_PHOTOS).contains(&photos.len()) {
        return Err(ServiceError::invalid(
            "photo_count",
            format!(
                "expected {} to {} photos",
                students::MIN_PHOTOS,
                students::MAX_PHOTOS
            ),
        ));
    }
    let student = scope.student(db, student_id).await?;
    // Checked before anything is stored, and again under the transaction in case the
    // consent changed meanwhile.
    consent.check_existing(
        student.status,
        consent_entry::in_force(db, student_id).await?.as_ref(),
    )?;
    let placed = intake::place("students", student_id, photos);
    let now = Utc::now();
    let rows: Vec<_> = placed
        .iter()
        .map(|p| {
            student_photo::ActiveModel::pending(
                p.id,
                student_id,
                p.key.clone(),
                p.photo.content_type(),
                now,
            )
        })
        .collect();
    let consent_row = consent.entry(student_id, now);
    let mut refused = None;
    let job_id = intake::accept(
        db,
        blobs,
        queue,
        &placed,
        JobKind::Registration,
        student_id,
        async |txn| {
            // The student may have been deleted since the check: no rows for nobody (nor
            // for a tombstone).
            let Some(current) = student::Entity::find_by_id(student_id)
                .one(txn)
                .await?
                .filter(|s| s.status != StudentStatus::Deleted)
            else {
                return Err(sea_orm::DbErr::RecordNotFound("student".into()));
            };
            let in_force = consent_entry::in_force(txn, student_id).await?;
            if let Err(e) = consent.check_existing(current.status, in_force.as_ref()) {
                refused = Some(e);
                return Err(sea_orm::DbErr::Custom("consent refused".into()));
            }
            if let Some(row) = consent_row {
                consent_entry::Entity::insert(row)
                    .exec_without_returning(txn)
                    .await?;
            }
            // Consent given again after a withdrawal: registered again from these
            // photos (the job makes the student active or failed).
            if current.status == StudentStatus::Withdrawn {
                let mut row = current.into_active_model();
                row.status = Set(StudentStatus::Pending);
                row.updated_at = Set(now);
                row.update(txn).await?;
            }
            student_photo::Entity::insert_many(rows).exec(txn).await?;
            Ok(())
        },
    )
    .await
    .map_err(|e| match e {
        ServiceError::Database(sea_orm::DbErr::RecordNotFound(_)) => {
            ServiceError::NotFound("student")
        }
        e => e,
    });
    if let Some(e) = refused {
        return Err(e);
    }
    let job_id = job_id?;
    tracing::info!(%student_id, photos = placed.len(), %job_id, "photos added");
    Ok(PhotosAdded {
        student_id,
        job_id,
        photo_ids: placed.iter().map(|p| p.id).collect(),
    })
}

/// Removes one photo of a student with its embeddings (every model's), then its blob.
/// A student left with no accepted and no pending photo can no longer be matched, so
/// an `active` one becomes `failed` (what a registration job would decide).
pub async fn delete(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    student_id: Uuid,
    photo_id: Uuid,
) -> Result<(), ServiceError> {
    let txn = db.begin().await?;
    let student = scope.student(&txn, student_id).await?;
    let photo = student_photo::Entity::find_by_id(photo_id)
        .filter(student_photo::Column::StudentId.eq(student_id))
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound("photo"))?;
    // Explicitly, not by cascade: SQLite enforces foreign keys only when asked to.
    face_embedding::Entity::delete_many()
        .filter(face_embedding::Column::PhotoId.eq(photo_id))
        .exec(&txn)
        .await?;
    student_photo::Entity::delete_by_id(photo_id)
        .exec(&txn)
        .await?;
    let usable = student_photo::Entity::find()
        .filter(student_photo::Column::StudentId.eq(student_id))
        .filter(
            student_photo::Column::Verdict.is_in([PhotoVerdict::Accepted, PhotoVerdict::Pending]),
        )
        .one(&txn)
        .await?
        .is_some();
    if !usable && student.status == StudentStatus::Active {
        let mut row = student.into_active_model();
        row.status = Set(StudentStatus::Failed);
        row.updated_at = Set(Utc::now());
        row.update(&txn).await?;
    }
    txn.commit().await?;
    // After commit: a failure here leaves an orphaned blob (logged), never a row that
    // points at a missing photo.
    intake::discard(blobs, std::slice::from_ref(&photo.blob_key)).await;
    tracing::info!(%student_id, %photo_id, "photo deleted");
    Ok(())
}

/// `SELECT student_id FROM student_photos WHERE verdict IN ('accepted', 'pending')`:
/// the students that do not need photos.
pub fn with_usable_photos() -> SelectStatement {
    student_photo::Entity::find()
        .select_only()
        .column(student_photo::Column::StudentId)
        .filter(
            student_photo::Column::Verdict.is_in([PhotoVerdict::Accepted, PhotoVerdict::Pending]),
        )
        .into_query()
}

/// Of `ids`, the students that need photos: none of theirs is accepted or pending
/// (all rejected, or none left).
pub async fn needing_photos(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, ServiceError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let usable: std::collections::HashSet<Uuid> = student_photo::Entity::find()
        .select_only()
        .column(student_photo::Column::StudentId)
        .filter(student_photo::Column::StudentId.is_in(ids.iter().copied()))
        .filter(
            student_photo::Column::Verdict.is_in([PhotoVerdict::Accepted, PhotoVerdict::Pending]),
        )
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !usable.contains(id))
        .collect())
}
