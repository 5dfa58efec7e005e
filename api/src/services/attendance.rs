//! Attendance sessions: marking (photos → blob store, rows + job in one transaction),
//! listing, one session's records and faces, face crops.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use common::{BlobStore, JobKind, JobQueue};
use models::{
    attendance_audit, attendance_record,
    attendance_session::{self, SessionStatus},
    detected_face, job, session_photo, student,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use super::{
    Accepted, corrections, intake, jobs,
    keys::{self, KeyRef},
    optional_text, provenance,
    scope::Scope,
};
use crate::{error::ServiceError, upload::ValidatedPhoto};

/// Photos per session.
pub const MIN_PHOTOS: usize = 1;
pub const MAX_PHOTOS: usize = 5;

#[derive(Debug, Clone)]
pub struct NewSession {
    pub class_id: Uuid,
    pub subject: Option<String>,
    /// Defaults to the first photo's EXIF `DateTimeOriginal`, else now.
    pub taken_at: Option<DateTime<Utc>>,
    /// The API key taking attendance (kept for the audit trail).
    pub created_by_key_id: Option<Uuid>,
    /// The UTC offset of EXIF times that carry none (`EXIF_UTC_OFFSET`).
    pub exif_utc_offset: FixedOffset,
    /// When the upload was received (the app's clock): the session's `created_at`,
    /// from which its photos' retention counts.
    pub received_at: DateTime<Utc>,
}

/// Accepts classroom photos for a class: checks the class (404) before storing
/// anything, stores the photos, writes session, photo and job rows in one transaction,
/// then publishes the job. The session's `taken_at` and provenance warnings are decided
/// here (`services::provenance`).
pub async fn mark(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    queue: &Arc<dyn JobQueue>,
    new: NewSession,
    photos: Vec<ValidatedPhoto>,
) -> Result<Accepted, ServiceError> {
    if !(MIN_PHOTOS..=MAX_PHOTOS).contains(&photos.len()) {
        return Err(ServiceError::invalid(
            "photo_count",
            format!("expected {MIN_PHOTOS} to {MAX_PHOTOS} photos"),
        ));
    }
    let subject = optional_text("subject", new.subject.as_deref(), 200)?;
    scope.class(db, new.class_id).await?;

    let session_id = Uuid::new_v4();
    let now = new.received_at;
    let provenance = provenance::assess(
        db,
        new.class_id,
        &photos,
        new.taken_at,
        now,
        new.exif_utc_offset,
    )
    .await?;
    if !provenance.warnings.is_empty() {
        tracing::info!(
            %session_id,
            warnings = provenance.warnings.len(),
            "session accepted with provenance warnings"
        );
    }
    let placed = intake::place("sessions", session_id, photos);
    let session_row = attendance_session::ActiveModel {
        id: Set(session_id),
        class_id: Set(new.class_id),
        subject: Set(subject),
        taken_at: Set(provenance.taken_at),
        status: Set(SessionStatus::Pending),
        created_at: Set(now),
        created_by_key_id: Set(new.created_by_key_id),
        warnings: Set(common::SessionWarning::to_stored(&provenance.warnings)),
        photos_deleted_at: Set(None),
    };
    // One microsecond apart, so that ordering by `created_at` (the worker's photo
    // numbers, the session's `photos`) is the upload order; ids are random.
    let photo_rows: Vec<_> = placed
        .iter()
        .zip(0i64..)
        .map(|(p, i)| session_photo::ActiveModel {
            id: Set(p.id),
            session_id: Set(session_id),
            blob_key: Set(p.key.clone()),
            content_type: Set(p.photo.content_type().to_string()),
            width: Set(i32::try_from(p.photo.width).ok()),
            height: Set(i32::try_from(p.photo.height).ok()),
            created_at: Set(now + chrono::TimeDelta::microseconds(i)),
            sha256: Set(Some(p.photo.facts.sha256.clone())),
        })
        .collect();

    let job_id = intake::accept(
        db,
        blobs,
        queue,
        &placed,
        JobKind::Attendance,
        session_id,
        async |txn| {
            attendance_session::Entity::insert(session_row)
                .exec(txn)
                .await?;
            session_photo::Entity::insert_many(photo_rows)
                .exec(txn)
                .await?;
            Ok(())
        },
    )
    .await?;
    Ok(Accepted {
        subject_id: session_id,
        job_id,
    })
}

#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub class_id: Option<Uuid>,
    /// Inclusive lower bound on `taken_at`.
    pub from: Option<DateTime<Utc>>,
    /// Inclusive upper bound on `taken_at`.
    pub to: Option<DateTime<Utc>>,
}

/// Sessions, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &Scope,
    filter: &SessionFilter,
) -> Result<Vec<attendance_session::Model>, ServiceError> {
    let mut q = attendance_session::Entity::find();
    if let Some(visible) = scope.class_ids() {
        q = q.filter(attendance_session::Column::ClassId.in_subquery(visible));
    }
    if let Some(c) = filter.class_id {
        q = q.filter(attendance_session::Column::ClassId.eq(c));
    }
    if let Some(from) = filter.from {
        q = q.filter(attendance_session::Column::TakenAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(attendance_session::Column::TakenAt.lte(to));
    }
    Ok(q.order_by_desc(attendance_session::Column::TakenAt)
        .all(db)
        .await?)
}

/// One session with everything a reviewer needs.
#[derive(Debug, Clone)]
pub struct SessionDetail {
    pub session: attendance_session::Model,
    pub job: Option<job::Model>,
    /// The key that took this attendance.
    pub created_by: Option<KeyRef>,
    /// Each record with its student, by roll number.
    pub records: Vec<(attendance_record::Model, student::Model)>,
    /// The session's photos in upload order (the order the worker numbers them).
    pub photos: Vec<session_photo::Model>,
    /// Every detected face (`student_id == None`: unknown), by photo and index.
    pub faces: Vec<detected_face::Model>,
    /// Every change a person made to the session, oldest first.
    pub audit: Vec<attendance_audit::Model>,
}

pub async fn get(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<SessionDetail, ServiceError> {
    let session = scope.session(db, id).await?;
    let records = attendance_record::Entity::find()
        .filter(attendance_record::Column::SessionId.eq(id))
        .find_also_related(student::Entity)
        .order_by_asc(student::Column::RollNo)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(r, s)| s.map(|s| (r, s)))
        .collect();
    let faces = detected_face::Entity::find()
        .filter(detected_face::Column::SessionId.eq(id))
        .order_by_asc(detected_face::Column::PhotoId)
        .order_by_asc(detected_face::Column::FaceIndex)
        .all(db)
        .await?;
    let photos = session_photo::Entity::find()
        .filter(session_photo::Column::SessionId.eq(id))
        .order_by_asc(session_photo::Column::CreatedAt)
        .order_by_asc(session_photo::Column::Id)
        .all(db)
        .await?;
    let job = jobs::latest_for_subject(db, id).await?;
    let created_by = keys::key_ref(db, session.created_by_key_id).await?;
    let audit = corrections::audit_log(db, id).await?;
    Ok(SessionDetail {
        audit,
        session,
        job,
        created_by,
        records,
        photos,
        faces,
    })
}

/// One of a session's photos, as uploaded, with its content type; [`ServiceError::Gone`]
/// once the retention policy deleted the session's photos.
pub async fn session_photo(
    db: &impl ConnectionTrait,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    session_id: Uuid,
    photo_id: Uuid,
) -> Result<(Bytes, String), ServiceError> {
    let session = scope.session(db, session_id).await?;
    let photo = session_photo::Entity::find_by_id(photo_id)
        .filter(session_photo::Column::SessionId.eq(session_id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("session photo"))?;
    if let Some(at) = session.photos_deleted_at {
        return Err(ServiceError::gone(
            "deleted_by_retention",
            format!(
                "the session's photos were deleted on {} under the retention policy \
                 (RETENTION_DAYS); its records are kept",
                at.format("%Y-%m-%d")
            ),
        ));
    }
    Ok((blobs.get(&photo.blob_key).await?, photo.content_type))
}

/// The stored crop of a detected face; [`ServiceError::Gone`] when the retention
/// policy deleted it.
pub async fn face_crop(
    db: &impl ConnectionTrait,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    face_id: Uuid,
) -> Result<Bytes, ServiceError> {
    let face = scope.face(db, face_id).await?;
    let Some(key) = &face.crop_key else {
        // Retention clears the crop of a face that matched nobody, then marks the session.
        let session = attendance_session::Entity::find_by_id(face.session_id)
            .one(db)
            .await?;
        return Err(match session.and_then(|s| s.photos_deleted_at) {
            Some(at) if face.student_id.is_none() => crop_deleted_by_retention(at),
            _ => ServiceError::NotFound("face crop"),
        });
    };
    Ok(blobs.get(key).await?)
}

fn crop_deleted_by_retention(at: DateTime<Utc>) -> ServiceError {
    ServiceError::gone(
        "deleted_by_retention",
        format!(
            "this face matched no student and its crop was deleted on {} under the \
             retention policy (RETENTION_DAYS), with the session's photos",
            at.format("%Y-%m-%d")
        ),
    )
}
