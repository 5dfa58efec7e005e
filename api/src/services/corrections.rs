//! Corrections of a session by a person: a record set present or absent, and a detected
//! face named as a student (optionally enrolled into the student's gallery). Each
//! correction is written with its audit entries in one transaction; corrected records
//! become `manual`, which the attendance job never overwrites, and named faces keep
//! their student when the session is processed again.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use common::BlobStore;
use models::{
    attendance_audit::{self, AuditAction},
    attendance_record::{self, RecordSource, RecordStatus},
    attendance_session, detected_face, face_embedding,
    student::{self, StudentStatus},
    student_photo::{self, PhotoVerdict},
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::{intake, optional_text, scope::Scope};
use crate::error::ServiceError;

/// Longest accepted reason.
pub const MAX_REASON_CHARS: usize = 500;

/// Who corrects, and why.
#[derive(Debug, Clone)]
pub struct Corrector {
    /// The API key making the change (kept in the audit log).
    pub key_id: Uuid,
    pub reason: Option<String>,
}

/// Sets a student's record of a session by hand. The student must belong to the
/// session's class (422 otherwise); the record is created when the job has not
/// written it yet.
pub async fn correct_record(
    db: &DatabaseConnection,
    scope: &Scope,
    session_id: Uuid,
    student_id: Uuid,
    status: RecordStatus,
    by: Corrector,
) -> Result<attendance_record::Model, ServiceError> {
    if status == RecordStatus::Unmatched {
        return Err(ServiceError::invalid(
            "invalid_field",
            "status can only be set to present or absent",
        ));
    }
    let reason = optional_text("reason", by.reason.as_deref(), MAX_REASON_CHARS)?;
    let session = scope.session(db, session_id).await?;
    let student = class_student(db, scope, &session, student_id).await?;
    let txn = db.begin().await?;
    let now = Utc::now();
    let record = set_record(
        &txn,
        session_id,
        student.id,
        status,
        by.key_id,
        reason.as_deref(),
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(%session_id, student_id = %student.id, ?status, "record corrected");
    Ok(record)
}

/// What naming a face asks for.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub student_id: Uuid,
    /// Also add the face's descriptor to the student's gallery (the caller checked
    /// that the key may).
    pub enroll: bool,
}

/// What naming a face changed.
#[derive(Debug, Clone)]
pub struct Assigned {
    pub face: detected_face::Model,
    /// The records it set, the named student's last.
    pub records: Vec<attendance_record::Model>,
    /// The registration photo (the face's crop) that now holds the enrolled descriptor.
    pub enrolled_photo_id: Option<Uuid>,
}

/// Names the student behind a detected face of the session: the face is theirs (a
/// face of the session that was matched to them before becomes unknown: one face per
/// student), their record becomes present, and a student the face was matched to
/// before becomes absent unless another face of the session is still theirs. With
/// `enroll`, the face's descriptor is added to the student's gallery under its model,
/// with its crop as the photo, so that later sessions recognise them better.
pub async fn assign_face(
    db: &DatabaseConnection,
    scope: &Scope,
    blobs: &Arc<dyn BlobStore>,
    session_id: Uuid,
    face_id: Uuid,
    assignment: Assignment,
    by: Corrector,
) -> Result<Assigned, ServiceError> {
    let reason = optional_text("reason", by.reason.as_deref(), MAX_REASON_CHARS)?;
    let session = scope.session(db, session_id).await?;
    let face = detected_face::Entity::find_by_id(face_id)
        .filter(detected_face::Column::SessionId.eq(session_id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("face"))?;
    let student = class_student(db, scope, &session, assignment.student_id).await?;
    if assignment.enroll && student.status == StudentStatus::Withdrawn {
        return Err(ServiceError::conflict(
            "consent_withdrawn",
            format!(
                "{} ({}) withdrew consent: no face can be enrolled for them until they \
                 register again",
                student.roll_no, student.name
            ),
        ));
    }

    // The crop goes into the blob store before the transaction, and is removed again
    // if the transaction does not commit.
    let enrolment = if assignment.enroll {
        Some(store_crop(db, blobs, &face, student.id, session.photos_deleted_at).await?)
    } else {
        None
    };
    let written = write_assignment(
        db,
        &face,
        &student,
        enrolment.as_ref(),
        by.key_id,
        reason.as_deref(),
    )
    .await;
    let (assigned, superseded) = match written {
        Ok(w) => w,
        Err(e) => {
            if let Some(p) = &enrolment {
                intake::discard(blobs, std::slice::from_ref(&p.key)).await;
            }
            return Err(e);
        }
    };
    // An enrolment this face had for another student (named wrongly before), and a
    // repeated enrolment's spare copy of the crop.
    let mut orphaned = superseded;
    if let Some(p) = &enrolment
        && assigned.enrolled_photo_id != Some(p.photo_id)
    {
        orphaned.push(p.key.clone());
    }
    intake::discard(blobs, &orphaned).await;
    tracing::info!(
        %session_id,
        %face_id,
        student_id = %student.id,
        enrolled = assignment.enroll,
        "face named"
    );
    Ok(assigned)
}

/// The session's audit log, oldest first.
pub async fn audit_log(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Vec<attendance_audit::Model>, ServiceError> {
    Ok(attendance_audit::Entity::find()
        .filter(attendance_audit::Column::SessionId.eq(session_id))
        .order_by_asc(attendance_audit::Column::CreatedAt)
        .order_by_asc(attendance_audit::Column::Id)
        .all(db)
        .await?)
}

/// A visible student of the session's class: 404 when unknown or out of scope, 422
/// when of another class.
async fn class_student(
    db: &impl ConnectionTrait,
    scope: &Scope,
    session: &attendance_session::Model,
    student_id: Uuid,
) -> Result<student::Model, ServiceError> {
    let student = scope.student(db, student_id).await?;
    if student.class_id != session.class_id {
        return Err(ServiceError::invalid(
            "student_not_in_class",
            format!(
                "student {} ({}) is not in the class of this session",
                student.roll_no, student.name
            ),
        ));
    }
    Ok(student)
}

/// A face's crop copied to the student's photos, ready to be enrolled.
struct StoredCrop {
    photo_id: Uuid,
    key: String,
    descriptor: Vec<u8>,
    model: String,
}

async fn store_crop(
    db: &impl ConnectionTrait,
    blobs: &Arc<dyn BlobStore>,
    face: &detected_face::Model,
    student_id: Uuid,
    photos_deleted_at: Option<DateTime<Utc>>,
) -> Result<StoredCrop, ServiceError> {
    let (Some(descriptor), Some(model), Some(crop_key)) =
        (&face.descriptor, &face.model, &face.crop_key)
    else {
        if let Some(at) = photos_deleted_at {
            return Err(ServiceError::conflict(
                "face_not_enrollable",
                format!(
                    "this face's crop and descriptor were deleted on {} under the retention \
                     policy (RETENTION_DAYS); it can still be assigned without enrol",
                    at.format("%Y-%m-%d")
                ),
            ));
        }
        return Err(ServiceError::conflict(
            "face_not_enrollable",
            "this face was stored without its descriptor or crop; process the session \
             again to enrol it",
        ));
    };
    // Already enrolled for this student: nothing to copy (the caller keeps the row).
    if let Some(existing) = enrolled_photo(db, face.id).await?
        && existing.student_id == student_id
    {
        return Ok(StoredCrop {
            photo_id: existing.id,
            key: existing.blob_key,
            descriptor: descriptor.clone(),
            model: model.clone(),
        });
    }
    let crop: Bytes = blobs.get(crop_key).await?;
    let photo_id = Uuid::new_v4();
    let key = format!("students/{student_id}/{photo_id}.jpg");
    blobs.put(&key, crop, "image/jpeg").await?;
    Ok(StoredCrop {
        photo_id,
        key,
        descriptor: descriptor.clone(),
        model: model.clone(),
    })
}

async fn enrolled_photo(
    db: &impl ConnectionTrait,
    face_id: Uuid,
) -> Result<Option<student_photo::Model>, ServiceError> {
    Ok(student_photo::Entity::find()
        .filter(student_photo::Column::SourceFaceId.eq(face_id))
        .one(db)
        .await?)
}

/// The assignment's rows, in one transaction. Returns what changed and the blob keys of
/// enrolments (and of a crop) it removed, to delete after commit.
async fn write_assignment(
    db: &DatabaseConnection,
    face: &detected_face::Model,
    student: &student::Model,
    enrolment: Option<&StoredCrop>,
    key_id: Uuid,
    reason: Option<&str>,
) -> Result<(Assigned, Vec<String>), ServiceError> {
    let session_id = face.session_id;
    let now = Utc::now();
    let txn = db.begin().await?;
    let previous = face.student_id.filter(|&p| p != student.id);

    // One face per student: another face of the session named as them is unknown now.
    detected_face::Entity::update_many()
        .col_expr(
            detected_face::Column::StudentId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            detected_face::Column::Distance,
            Expr::value(Option::<f64>::None),
        )
        .col_expr(detected_face::Column::AssignedByKeyId, Expr::value(key_id))
        .filter(detected_face::Column::SessionId.eq(session_id))
        .filter(detected_face::Column::StudentId.eq(student.id))
        .filter(detected_face::Column::Id.ne(face.id))
        .exec(&txn)
        .await?;
    let mut row = face.clone().into_active_model();
    row.student_id = Set(Some(student.id));
    row.distance = Set(None);
    row.assigned_by_key_id = Set(Some(key_id));
    // A student who withdrew consent keeps no face data: the face named as theirs loses
    // its crop, descriptor and landmarks (the crop's blob goes after commit).
    let mut erased_crop = None;
    if student.status == StudentStatus::Withdrawn {
        erased_crop = face.crop_key.clone();
        row.crop_key = Set(None);
        row.descriptor = Set(None);
        row.model = Set(None);
        row.landmarks = Set(serde_json::Value::Null);
    }
    let face_row = row.update(&txn).await?;

    let mut records = Vec::new();
    if let Some(previous) = previous {
        let still_seen = detected_face::Entity::find()
            .filter(detected_face::Column::SessionId.eq(session_id))
            .filter(detected_face::Column::StudentId.eq(previous))
            .one(&txn)
            .await?
            .is_some();
        if !still_seen
            && student::Entity::find_by_id(previous)
                .one(&txn)
                .await?
                .is_some()
        {
            records.push(
                set_record(
                    &txn,
                    session_id,
                    previous,
                    RecordStatus::Absent,
                    key_id,
                    reason,
                    now,
                )
                .await?,
            );
        }
    }
    records.push(
        set_record(
            &txn,
            session_id,
            student.id,
            RecordStatus::Present,
            key_id,
            reason,
            now,
        )
        .await?,
    );

    // An enrolment of this face for someone else was a mistake: it leaves their gallery.
    let superseded: Vec<student_photo::Model> = student_photo::Entity::find()
        .filter(student_photo::Column::SourceFaceId.eq(face.id))
        .filter(student_photo::Column::StudentId.ne(student.id))
        .all(&txn)
        .await?;
    for p in &superseded {
        face_embedding::Entity::delete_many()
            .filter(face_embedding::Column::PhotoId.eq(p.id))
            .exec(&txn)
            .await?;
        student_photo::Entity::delete_by_id(p.id).exec(&txn).await?;
    }
    let enrolled_photo_id = match enrolment {
        Some(crop) => Some(enrol(&txn, face, student, crop, now).await?),
        None => None,
    };

    attendance_audit::Entity::insert(attendance_audit::ActiveModel {
        id: Set(Uuid::new_v4()),
        session_id: Set(session_id),
        key_id: Set(Some(key_id)),
        action: Set(AuditAction::FaceAssigned),
        student_id: Set(Some(student.id)),
        face_id: Set(Some(face.id)),
        previous_student_id: Set(face.student_id),
        from_status: Set(None),
        to_status: Set(None),
        enrolled: Set(enrolment.is_some()),
        reason: Set(reason.map(str::to_string)),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok((
        Assigned {
            face: face_row,
            records,
            enrolled_photo_id,
        },
        superseded
            .into_iter()
            .map(|p| p.blob_key)
            .chain(erased_crop)
            .collect(),
    ))
}

/// Adds the face's crop and descriptor to the student's photos and gallery (once per
/// face); a student whose photos all failed becomes matchable again.
async fn enrol(
    txn: &DatabaseTransaction,
    face: &detected_face::Model,
    student: &student::Model,
    crop: &StoredCrop,
    now: DateTime<Utc>,
) -> Result<Uuid, ServiceError> {
    let existing: Option<Uuid> = student_photo::Entity::find()
        .select_only()
        .column(student_photo::Column::Id)
        .filter(student_photo::Column::SourceFaceId.eq(face.id))
        .filter(student_photo::Column::StudentId.eq(student.id))
        .into_tuple()
        .one(txn)
        .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    student_photo::Entity::insert(student_photo::ActiveModel {
        id: Set(crop.photo_id),
        student_id: Set(student.id),
        blob_key: Set(crop.key.clone()),
        content_type: Set("image/jpeg".to_string()),
        verdict: Set(PhotoVerdict::Accepted),
        reason: Set(None),
        face_box: Set(Some(face.face_box.clone())),
        detector_score: Set(Some(face.score)),
        created_at: Set(now),
        source_face_id: Set(Some(face.id)),
    })
    .exec_without_returning(txn)
    .await?;
    face_embedding::Entity::insert(face_embedding::ActiveModel {
        id: Set(Uuid::new_v4()),
        photo_id: Set(crop.photo_id),
        student_id: Set(student.id),
        model: Set(crop.model.clone()),
        vector: Set(crop.descriptor.clone()),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    if student.status == StudentStatus::Failed {
        let mut row = student.clone().into_active_model();
        row.status = Set(StudentStatus::Active);
        row.updated_at = Set(now);
        row.update(txn).await?;
    }
    Ok(crop.photo_id)
}

/// Sets one record by hand (creating it if the job has not yet) and logs the change.
async fn set_record(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    student_id: Uuid,
    status: RecordStatus,
    key_id: Uuid,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<attendance_record::Model, ServiceError> {
    let current = attendance_record::Entity::find()
        .filter(attendance_record::Column::SessionId.eq(session_id))
        .filter(attendance_record::Column::StudentId.eq(student_id))
        .one(txn)
        .await?;
    let from_status = current.as_ref().map(|r| r.status);
    let record = match current {
        Some(r) => {
            let mut row = r.into_active_model();
            row.status = Set(status);
            // The distance described the matcher's decision, which no longer stands.
            row.distance = Set(None);
            row.source = Set(RecordSource::Manual);
            row.corrected_by_key_id = Set(Some(key_id));
            row.updated_at = Set(now);
            row.update(txn).await?
        }
        None => {
            attendance_record::ActiveModel {
                id: Set(Uuid::new_v4()),
                session_id: Set(session_id),
                student_id: Set(student_id),
                status: Set(status),
                distance: Set(None),
                source: Set(RecordSource::Manual),
                updated_at: Set(now),
                corrected_by_key_id: Set(Some(key_id)),
            }
            .insert(txn)
            .await?
        }
    };
    attendance_audit::Entity::insert(attendance_audit::ActiveModel {
        id: Set(Uuid::new_v4()),
        session_id: Set(session_id),
        key_id: Set(Some(key_id)),
        action: Set(AuditAction::RecordCorrected),
        student_id: Set(Some(student_id)),
        face_id: Set(None),
        previous_student_id: Set(None),
        from_status: Set(from_status),
        to_status: Set(Some(status)),
        enrolled: Set(false),
        reason: Set(reason.map(str::to_string)),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(record)
}
