//! `/attendance/session/{id}/records/{student_id}` and
//! `/attendance/session/{id}/faces/{face_id}/assign`: corrections by a person.

use chrono::{DateTime, Utc};
use models::{
    attendance_audit::{self, AuditAction},
    attendance_record::{self, RecordSource, RecordStatus},
};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    attendance::{FaceOut, RecordSourceOut, RecordStatusOut},
};
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::corrections::{self, Assignment, Corrector},
    state::AppState,
};

/// What a person may set a record to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CorrectedStatus {
    Present,
    Absent,
}

#[derive(Debug, Object)]
pub struct RecordCorrection {
    pub status: CorrectedStatus,
    /// Why (kept in the session's audit log; at most 500 characters).
    pub reason: Option<String>,
}

#[derive(Debug, Object)]
pub struct FaceAssignment {
    /// The student behind the face; must be in the session's class.
    pub student_id: Uuid,
    /// Why (kept in the session's audit log; at most 500 characters).
    pub reason: Option<String>,
}

pub(crate) fn status_out(s: RecordStatus) -> RecordStatusOut {
    match s {
        RecordStatus::Present => RecordStatusOut::Present,
        RecordStatus::Absent => RecordStatusOut::Absent,
        RecordStatus::Unmatched => RecordStatusOut::Unmatched,
    }
}

pub(crate) fn source_out(s: RecordSource) -> RecordSourceOut {
    match s {
        RecordSource::Auto => RecordSourceOut::Auto,
        RecordSource::Manual => RecordSourceOut::Manual,
    }
}

/// A record as a correction left it.
#[derive(Debug, Object)]
pub struct CorrectedRecordOut {
    pub session_id: Uuid,
    pub student_id: Uuid,
    pub status: RecordStatusOut,
    /// `manual`: a re-run of the session leaves it as it is.
    pub source: RecordSourceOut,
    /// The key that corrected it.
    pub corrected_by_key_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

impl From<attendance_record::Model> for CorrectedRecordOut {
    fn from(r: attendance_record::Model) -> Self {
        CorrectedRecordOut {
            session_id: r.session_id,
            student_id: r.student_id,
            status: status_out(r.status),
            source: source_out(r.source),
            corrected_by_key_id: r.corrected_by_key_id,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct FaceAssignedOut {
    pub face: FaceOut,
    /// The records the assignment set: the student the face was matched to before
    /// (now absent, unless another face of the session is theirs), then the named
    /// student (present).
    pub records: Vec<CorrectedRecordOut>,
    /// With `enroll=true`: the student's new photo (the face's crop) whose descriptor
    /// joined their gallery.
    pub enrolled_photo_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AuditActionOut {
    /// A record set by hand: `from_status` → `to_status`.
    RecordCorrected,
    /// A face named as `student_id` (before: `previous_student_id`, null = unknown);
    /// `enrolled` when its descriptor joined the student's gallery.
    FaceAssigned,
}

/// One change a person made to the session.
#[derive(Debug, Object)]
pub struct AuditEntryOut {
    pub id: Uuid,
    pub action: AuditActionOut,
    /// The API key that made the change.
    pub key_id: Option<Uuid>,
    pub student_id: Option<Uuid>,
    pub face_id: Option<Uuid>,
    pub previous_student_id: Option<Uuid>,
    /// The record's status before; null when there was no record yet.
    pub from_status: Option<RecordStatusOut>,
    pub to_status: Option<RecordStatusOut>,
    pub enrolled: bool,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<attendance_audit::Model> for AuditEntryOut {
    fn from(a: attendance_audit::Model) -> Self {
        AuditEntryOut {
            id: a.id,
            action: match a.action {
                AuditAction::RecordCorrected => AuditActionOut::RecordCorrected,
                AuditAction::FaceAssigned => AuditActionOut::FaceAssigned,
            },
            key_id: a.key_id,
            student_id: a.student_id,
            face_id: a.face_id,
            previous_student_id: a.previous_student_id,
            from_status: a.from_status.map(status_out),
            to_status: a.to_status.map(status_out),
            enrolled: a.enrolled,
            reason: a.reason,
            created_at: a.created_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum CorrectRecordResponse {
    /// The record as corrected.
    #[oai(status = 200)]
    Ok(Json<CorrectedRecordOut>),
}

#[derive(ApiResponse)]
pub enum AssignFaceResponse {
    /// The face, and the records it set.
    #[oai(status = 200)]
    Ok(Json<FaceAssignedOut>),
}

pub struct CorrectionsApi;

#[OpenApi(tag = "ApiTags::Attendance")]
impl CorrectionsApi {
    /// Set a student's record of a session to present or absent by hand. The record
    /// becomes `manual`: processing the session again never overwrites it. The change
    /// (who, when, from what, why) is kept in the session's audit log.
    #[oai(
        path = "/attendance/session/:id/records/:student_id",
        method = "patch",
        operation_id = "correct_record"
    )]
    async fn correct_record(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        student_id: Path<Uuid>,
        body: Json<RecordCorrection>,
    ) -> Result<CorrectRecordResponse, ApiError> {
        let status = match body.0.status {
            CorrectedStatus::Present => RecordStatus::Present,
            CorrectedStatus::Absent => RecordStatus::Absent,
        };
        let record = corrections::correct_record(
            &state.db,
            &auth.0.scope,
            id.0,
            student_id.0,
            status,
            Corrector {
                key_id: auth.0.key_id,
                reason: body.0.reason,
            },
        )
        .await?;
        Ok(CorrectRecordResponse::Ok(Json(record.into())))
    }

    /// Name the student behind an unknown or wrongly matched face: the face becomes
    /// theirs and their record present; the student it was matched to before becomes
    /// absent. With `enroll=true` (admin or department admin) the face's descriptor is
    /// added to the student's gallery, so later sessions recognise them better.
    #[oai(
        path = "/attendance/session/:id/faces/:face_id/assign",
        method = "post",
        operation_id = "assign_face"
    )]
    async fn assign_face(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        face_id: Path<Uuid>,
        /// Also add the face to the student's gallery (admin or department admin).
        enroll: Query<Option<bool>>,
        body: Json<FaceAssignment>,
    ) -> Result<AssignFaceResponse, ApiError> {
        let enroll = enroll.0.unwrap_or(false);
        if enroll {
            auth.0.require(Role::DepartmentAdmin)?;
        }
        let assigned = corrections::assign_face(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            id.0,
            face_id.0,
            Assignment {
                student_id: body.0.student_id,
                enroll,
            },
            Corrector {
                key_id: auth.0.key_id,
                reason: body.0.reason,
            },
        )
        .await?;
        Ok(AssignFaceResponse::Ok(Json(FaceAssignedOut {
            face: assigned.face.into(),
            records: assigned.records.into_iter().map(Into::into).collect(),
            enrolled_photo_id: assigned.enrolled_photo_id,
        })))
    }
}
