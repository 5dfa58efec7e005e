//! `/attendance/...` and `/faces/{id}/crop`

use chrono::{DateTime, Utc};
use common::SessionWarning;
use models::{
    attendance_session::{self, SessionStatus},
    detected_face::{self, FaceBox},
};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Multipart, Object, OpenApi, ResponseContent,
    param::{Header, Path, Query},
    payload::{Binary, Json},
    types::multipart::Upload,
};
use uuid::Uuid;

use super::{
    ApiTags,
    corrections::{AuditEntryOut, source_out, status_out},
    jobs::JobStatusOut,
    keys::KeyRefOut,
    parse_bound,
};
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::attendance::{self, NewSession, SessionFilter},
    state::AppState,
    upload,
};

#[derive(Debug, Multipart)]
pub struct MarkForm {
    pub class_id: Uuid,
    pub subject: Option<String>,
    /// When the lecture took place, RFC 3339. Default: the first photo's EXIF
    /// `DateTimeOriginal` (with its `OffsetTimeOriginal`, else the server's
    /// `EXIF_UTC_OFFSET`, default +05:30), else the upload time. A photo whose EXIF time
    /// is more than 12 hours from a given `taken_at` gives the session a warning.
    pub taken_at: Option<String>,
    /// 1–5 classroom photos (JPEG, PNG or WebP; ≤ 10 MB each).
    pub photos: Vec<Upload>,
}

#[derive(Debug, Object)]
pub struct MarkAccepted {
    pub session_id: Uuid,
    /// Poll `GET /jobs/{job_id}` for the outcome.
    pub job_id: Uuid,
}

#[derive(ApiResponse)]
pub enum MarkResponse {
    /// Photos stored; the attendance job is queued.
    #[oai(status = 202)]
    Accepted(Json<MarkAccepted>),
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionStatusOut {
    Pending,
    Completed,
    Failed,
}

impl From<SessionStatus> for SessionStatusOut {
    fn from(s: SessionStatus) -> Self {
        match s {
            SessionStatus::Pending => Self::Pending,
            SessionStatus::Completed => Self::Completed,
            SessionStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RecordStatusOut {
    Present,
    Absent,
    /// Not decided: the student had no embedding of the active face model when the
    /// session was processed (re-embedding after a model switch pending, or no
    /// registration photo usable by it). The job's result says why.
    Unmatched,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RecordSourceOut {
    /// Decided by face matching.
    Auto,
    /// Corrected by a person.
    Manual,
}

#[derive(Debug, Object)]
pub struct SessionOut {
    pub id: Uuid,
    pub class_id: Uuid,
    pub subject: Option<String>,
    pub taken_at: DateTime<Utc>,
    pub status: SessionStatusOut,
    pub created_at: DateTime<Utc>,
    /// Provenance warnings: a photo already used in another session of the class, a
    /// `taken_at` far from a photo's EXIF time. The session is processed regardless.
    pub warnings: Vec<SessionWarning>,
    /// When the retention policy (`RETENTION_DAYS`) deleted the session's photos and
    /// the crops of its unknown faces; null while they are kept. Records stay.
    pub photos_deleted_at: Option<DateTime<Utc>>,
}

impl From<attendance_session::Model> for SessionOut {
    fn from(m: attendance_session::Model) -> Self {
        let warnings = m.warnings();
        SessionOut {
            id: m.id,
            class_id: m.class_id,
            subject: m.subject,
            taken_at: m.taken_at,
            warnings,
            status: m.status.into(),
            created_at: m.created_at,
            photos_deleted_at: m.photos_deleted_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct RecordOut {
    pub student_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub status: RecordStatusOut,
    /// Descriptor distance of the matched face (present, auto).
    pub distance: Option<f64>,
    pub source: RecordSourceOut,
    pub updated_at: DateTime<Utc>,
    /// The key that last corrected the record by hand (`manual`).
    pub corrected_by_key_id: Option<Uuid>,
}

#[derive(Debug, Object)]
pub struct BoxOut {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

#[derive(Debug, Object)]
pub struct FaceOut {
    pub face_id: Uuid,
    pub photo_id: Uuid,
    pub face_index: i32,
    /// Face box in the photo's pixels.
    #[oai(rename = "box")]
    pub face_box: Option<BoxOut>,
    /// Detector confidence.
    pub score: f64,
    /// The matched student; null for an unknown face.
    pub student_id: Option<Uuid>,
    pub distance: Option<f64>,
    /// `GET` this for the face crop (JPEG); null when no crop was stored.
    pub crop_url: Option<String>,
    /// The key that named the student behind this face by hand; such a face keeps its
    /// student when the session is processed again.
    pub assigned_by_key_id: Option<Uuid>,
}

impl From<detected_face::Model> for FaceOut {
    fn from(f: detected_face::Model) -> Self {
        let face_box = match serde_json::from_value::<FaceBox>(f.face_box) {
            Ok(b) => Some(BoxOut {
                x1: b.x1,
                y1: b.y1,
                x2: b.x2,
                y2: b.y2,
            }),
            Err(e) => {
                tracing::warn!(face_id = %f.id, error = %e, "stored face box is malformed");
                None
            }
        };
        FaceOut {
            face_id: f.id,
            photo_id: f.photo_id,
            face_index: f.face_index,
            face_box,
            score: f.score,
            student_id: f.student_id,
            distance: f.distance,
            crop_url: f.crop_key.map(|_| format!("/faces/{}/crop", f.id)),
            assigned_by_key_id: f.assigned_by_key_id,
        }
    }
}

/// A classroom photo of a session.
#[derive(Debug, Object)]
pub struct SessionPhotoOut {
    pub id: Uuid,
    /// 1-based, in upload order (as warnings and job errors number photos).
    pub number: u32,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// `GET` this for the photo as uploaded (404 once retention has removed it).
    pub url: String,
}

#[derive(Debug, Object)]
pub struct SessionDetailOut {
    #[oai(flatten)]
    pub session: SessionOut,
    /// The API key that took this attendance.
    pub created_by: Option<KeyRefOut>,
    /// The job that processes (or processed) this session.
    pub job_id: Option<Uuid>,
    pub job_status: Option<JobStatusOut>,
    /// One record per student of the class, by roll number (empty until processed).
    pub records: Vec<RecordOut>,
    /// The session's photos, in upload order; faces name theirs by `photo_id`.
    pub photos: Vec<SessionPhotoOut>,
    /// Every detected face; `student_id` null marks an unknown face.
    pub faces: Vec<FaceOut>,
    /// Every change a person made (records corrected, faces named), oldest first.
    pub audit: Vec<AuditEntryOut>,
}

/// A session photo in the format it was uploaded in.
#[derive(ResponseContent)]
pub enum PhotoFile {
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>),
    #[oai(content_type = "image/png")]
    Png(Binary<Vec<u8>>),
    #[oai(content_type = "image/webp")]
    Webp(Binary<Vec<u8>>),
}

#[derive(ApiResponse)]
pub enum SessionPhotoResponse {
    #[oai(status = 200)]
    Photo(PhotoFile),
}

#[derive(ApiResponse)]
pub enum CropResponse {
    #[oai(status = 200, content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>),
}

pub struct AttendanceApi;

#[OpenApi(tag = "ApiTags::Attendance")]
impl AttendanceApi {
    /// Take attendance from 1–5 classroom photos. Answers 202; a job finds and matches
    /// the faces.
    #[oai(
        path = "/attendance/mark",
        method = "post",
        operation_id = "mark_attendance"
    )]
    async fn mark(
        &self,
        state: Data<&AppState>,
        gate: Data<&upload::ValidationGate>,
        auth: ApiKeyAuth,
        /// Optional: the same key (1–255 printable ASCII) sent again within 24 hours
        /// with the same request answers the first response instead of uploading
        /// twice; with a different request it is a 422.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        form: MarkForm,
    ) -> Result<MarkResponse, ApiError> {
        let taken_at = parse_taken_at(form.taken_at.as_deref())?;
        let photos = upload::validate_uploads(
            &gate,
            form.photos,
            attendance::MIN_PHOTOS,
            attendance::MAX_PHOTOS,
        )
        .await?;
        let accepted = attendance::mark(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            &state.queue,
            NewSession {
                class_id: form.class_id,
                subject: form.subject,
                taken_at,
                created_by_key_id: Some(auth.0.key_id),
                exif_utc_offset: state.exif_utc_offset,
                received_at: state.clock.now(),
            },
            photos,
        )
        .await?;
        Ok(MarkResponse::Accepted(Json(MarkAccepted {
            session_id: accepted.subject_id,
            job_id: accepted.job_id,
        })))
    }

    /// List sessions, newest first; `from`/`to` bound `taken_at` (RFC 3339 or YYYY-MM-DD).
    #[oai(
        path = "/attendance/sessions",
        method = "get",
        operation_id = "list_sessions"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        class_id: Query<Option<Uuid>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
    ) -> Result<Json<Vec<SessionOut>>, ApiError> {
        let filter = SessionFilter {
            class_id: class_id.0,
            from: parse_bound("from", from.0.as_deref(), false)?,
            to: parse_bound("to", to.0.as_deref(), true)?,
        };
        let sessions = attendance::list(&state.db, &auth.0.scope, &filter).await?;
        Ok(Json(sessions.into_iter().map(Into::into).collect()))
    }

    /// One session: attendance records and detected faces.
    #[oai(
        path = "/attendance/session/:id",
        method = "get",
        operation_id = "get_session"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<Json<SessionDetailOut>, ApiError> {
        let d = attendance::get(&state.db, &auth.0.scope, id.0).await?;
        Ok(Json(SessionDetailOut {
            session: d.session.into(),
            created_by: d.created_by.map(Into::into),
            job_id: d.job.as_ref().map(|j| j.id),
            job_status: d.job.as_ref().map(|j| j.status.into()),
            records: d
                .records
                .into_iter()
                .map(|(r, s)| RecordOut {
                    student_id: s.id,
                    roll_no: s.roll_no,
                    name: s.name,
                    status: status_out(r.status),
                    distance: r.distance,
                    source: source_out(r.source),
                    updated_at: r.updated_at,
                    corrected_by_key_id: r.corrected_by_key_id,
                })
                .collect(),
            photos: d
                .photos
                .into_iter()
                .zip(1u32..)
                .map(|(p, number)| SessionPhotoOut {
                    url: format!("/attendance/session/{}/photos/{}", p.session_id, p.id),
                    id: p.id,
                    number,
                    width: p.width,
                    height: p.height,
                })
                .collect(),
            faces: d.faces.into_iter().map(Into::into).collect(),
            audit: d.audit.into_iter().map(Into::into).collect(),
        }))
    }

    /// One classroom photo of a session, as uploaded. 410 once the retention policy
    /// deleted the session's photos.
    #[oai(
        path = "/attendance/session/:id/photos/:photo_id",
        method = "get",
        operation_id = "get_session_photo"
    )]
    async fn photo(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        photo_id: Path<Uuid>,
    ) -> Result<SessionPhotoResponse, ApiError> {
        let (bytes, content_type) =
            attendance::session_photo(&state.db, &auth.0.scope, &state.blobs, id.0, photo_id.0)
                .await?;
        let bytes = Binary(bytes.to_vec());
        // Uploads are validated as one of these three (`upload::validate_uploads`).
        Ok(SessionPhotoResponse::Photo(match content_type.as_str() {
            "image/png" => PhotoFile::Png(bytes),
            "image/webp" => PhotoFile::Webp(bytes),
            _ => PhotoFile::Jpeg(bytes),
        }))
    }

    /// The cropped image of a detected face. 410 when the retention policy deleted it
    /// (the face matched nobody and the session's photos are past `RETENTION_DAYS`).
    #[oai(
        path = "/faces/:id/crop",
        method = "get",
        operation_id = "get_face_crop"
    )]
    async fn crop(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<CropResponse, ApiError> {
        let bytes = attendance::face_crop(&state.db, &auth.0.scope, &state.blobs, id.0).await?;
        Ok(CropResponse::Jpeg(Binary(bytes.to_vec())))
    }
}

fn parse_taken_at(value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    parse_bound("taken_at", value, false)
}
