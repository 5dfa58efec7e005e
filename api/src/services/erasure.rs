//! Erasure of a student's biometric data: every registration photo (uploaded, or a
//! session face enrolled from a correction) with its embeddings of every model, and for
//! every face of a session matched to the student the crop, the descriptor and the
//! landmarks. Used by a delete (the student stays as a tombstone, or with `purge` goes
//! with their records) and by a withdrawal of consent (the student stays, unrecognised).
//!
//! Rows change in one transaction; blobs are deleted after it commits, so a failure
//! leaves an orphaned blob (logged), never a row pointing at a missing blob.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::BlobStore;
use models::{
    attendance_record,
    consent_entry::{self, ConsentAction, ConsentSource},
    detected_face, face_embedding,
    student::{self, StudentStatus},
    student_photo,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, QueryFilter, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::{intake, optional_text, scope::Scope};
use crate::error::ServiceError;

/// Longest accepted note of a withdrawal.
pub const MAX_NOTE_CHARS: usize = 500;

/// What an erasure removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Uploaded registration photos (rows and blobs).
    pub registration_photos: u64,
    /// Session faces enrolled into the gallery from a correction (rows and blobs).
    pub enrolled_photos: u64,
    /// Embeddings of every model.
    pub embeddings: u64,
    /// Crops of the session faces matched to the student.
    pub face_crops: u64,
    /// Descriptors of those faces.
    pub face_descriptors: u64,
    /// Attendance records (only with `purge`).
    pub attendance_records: u64,
}

/// What becomes of the student row once their biometric data is gone.
#[derive(Debug, Clone)]
enum Afterwards {
    /// A tombstone (`deleted`): kept for the attendance records.
    Tombstone,
    /// Deleted with the records and the faces matched to them.
    Purge,
    /// `withdrawn`, with the consent entry.
    Withdrawn { key_id: Uuid, note: Option<String> },
}

/// Deletes a student: their biometric data is erased and the row stays as a tombstone
/// (`deleted`) holding the attendance records, or with `purge` goes with the records
/// and the session faces matched to them. A tombstone is not found again (404).
pub async fn delete_student(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    id: Uuid,
    purge: bool,
) -> Result<Erased, ServiceError> {
    let afterwards = if purge {
        Afterwards::Purge
    } else {
        Afterwards::Tombstone
    };
    erase(db, scope, blobs, id, afterwards).await
}

/// A student withdraws consent: their biometric data is erased, they stay with their
/// records as `withdrawn` (not recognised until they register again), and the
/// withdrawal is written to their consent history with the key that recorded it.
pub async fn withdraw_consent(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    id: Uuid,
    key_id: Uuid,
    note: Option<&str>,
) -> Result<Erased, ServiceError> {
    let note = optional_text("note", note, MAX_NOTE_CHARS)?;
    erase(db, scope, blobs, id, Afterwards::Withdrawn { key_id, note }).await
}

async fn erase(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    id: Uuid,
    afterwards: Afterwards,
) -> Result<Erased, ServiceError> {
    let txn = db.begin().await?;
    let student = scope.student(&txn, id).await?;
    if matches!(afterwards, Afterwards::Withdrawn { .. })
        && student.status == StudentStatus::Withdrawn
    {
        return Err(ServiceError::conflict(
            "consent_withdrawn",
            format!(
                "{} ({}) has already withdrawn consent; their face data is erased",
                student.roll_no, student.name
            ),
        ));
    }
    let now = Utc::now();
    let (mut erased, keys) = erase_rows(&txn, id).await?;
    match afterwards {
        Afterwards::Tombstone => set_erased(&txn, student, StudentStatus::Deleted, now).await?,
        Afterwards::Purge => erased.attendance_records = purge(&txn, id).await?,
        Afterwards::Withdrawn { key_id, note } => {
            set_erased(&txn, student, StudentStatus::Withdrawn, now).await?;
            consent_entry::Entity::insert(consent_entry::ActiveModel {
                id: Set(Uuid::new_v4()),
                student_id: Set(id),
                action: Set(ConsentAction::Withdrawn),
                note: Set(note),
                recorded_by_key_id: Set(Some(key_id)),
                source: Set(ConsentSource::Api),
                created_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
        }
    }
    txn.commit().await?;
    // After commit: a failure here leaves orphaned blobs (logged by `discard`), never
    // rows that point at missing ones.
    intake::discard(blobs, &keys).await;
    tracing::info!(
        student_id = %id,
        registration_photos = erased.registration_photos,
        enrolled_photos = erased.enrolled_photos,
        embeddings = erased.embeddings,
        face_crops = erased.face_crops,
        face_descriptors = erased.face_descriptors,
        attendance_records = erased.attendance_records,
        "student's biometric data erased"
    );
    Ok(erased)
}

/// The rows of the erasure; returns the counts and the blob keys to delete after commit.
async fn erase_rows(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> Result<(Erased, Vec<String>), ServiceError> {
    // Embeddings first (they point at the photos); explicitly, not by cascade: SQLite
    // enforces foreign keys only when asked to.
    let embeddings = face_embedding::Entity::delete_many()
        .filter(face_embedding::Column::StudentId.eq(id))
        .exec(txn)
        .await?
        .rows_affected;
    let mut erased = Erased {
        embeddings,
        ..Erased::default()
    };
    // RETURNING: the keys of exactly the rows deleted, even of a photo added meanwhile.
    let photos = student_photo::Entity::delete_many()
        .filter(student_photo::Column::StudentId.eq(id))
        .exec_with_returning(txn)
        .await?;
    let mut keys: Vec<String> = Vec::with_capacity(photos.len());
    for p in photos {
        if p.source_face_id.is_some() {
            erased.enrolled_photos += 1;
        } else {
            erased.registration_photos += 1;
        }
        keys.push(p.blob_key);
    }

    let faces = detected_face::Entity::find()
        .filter(detected_face::Column::StudentId.eq(id))
        .all(txn)
        .await?;
    erased.face_descriptors = faces.iter().filter(|f| f.descriptor.is_some()).count() as u64;
    erased.face_crops = faces.iter().filter(|f| f.crop_key.is_some()).count() as u64;
    keys.extend(faces.iter().filter_map(|f| f.crop_key.clone()));
    if !faces.is_empty() {
        // The face keeps its place in the session (who it was, where in the photo),
        // not what identifies the person: crop, descriptor and landmarks go.
        detected_face::Entity::update_many()
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
            .col_expr(
                detected_face::Column::Landmarks,
                Expr::value(serde_json::Value::Null),
            )
            .filter(detected_face::Column::Id.is_in(faces.iter().map(|f| f.id)))
            .exec(txn)
            .await?;
    }
    Ok((erased, keys))
}

async fn set_erased(
    txn: &DatabaseTransaction,
    student: student::Model,
    status: StudentStatus,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let mut row = student.into_active_model();
    row.status = Set(status);
    row.erased_at = Set(Some(now));
    row.updated_at = Set(now);
    student::Entity::update(row).exec(txn).await?;
    Ok(())
}

/// The student row with their records and the session faces matched to them (which
/// would otherwise stay as unknown faces); the consent history goes by cascade.
async fn purge(txn: &DatabaseTransaction, id: Uuid) -> Result<u64, ServiceError> {
    let records = attendance_record::Entity::delete_many()
        .filter(attendance_record::Column::StudentId.eq(id))
        .exec(txn)
        .await?
        .rows_affected;
    detected_face::Entity::delete_many()
        .filter(detected_face::Column::StudentId.eq(id))
        .exec(txn)
        .await?;
    consent_entry::Entity::delete_many()
        .filter(consent_entry::Column::StudentId.eq(id))
        .exec(txn)
        .await?;
    student::Entity::delete_by_id(id).exec(txn).await?;
    Ok(records)
}
