//! `/students`

use chrono::{DateTime, Utc};
use common::job::result::{PossibleDuplicate, Rejection};
use models::consent_entry::{self, ConsentAction, ConsentSource};
use models::student::{self, StudentStatus};
use models::student_photo::PhotoVerdict;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Multipart, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::multipart::Upload,
};
use uuid::Uuid;

use super::{ApiTags, jobs::JobStatusOut};
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::{
        consent::{Consent, ConsentClaim},
        erasure::{self, Erased},
        student_photos,
        students::{self, NewStudent, PhotoDetail, StudentChanges, StudentDetail, StudentFilter},
    },
    state::AppState,
    upload,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StudentStatusOut {
    /// Registered; photos not processed yet.
    Pending,
    /// Has usable embeddings; matched in sessions.
    Active,
    /// No usable face in the photos.
    Failed,
    /// Excluded from matching by an admin.
    Inactive,
    /// Withdrew consent: their face data was erased; not recognised (recorded absent
    /// unless corrected) until they register again with consent.
    Withdrawn,
    /// Deleted: kept only for their attendance records; never listed.
    Deleted,
}

impl From<StudentStatus> for StudentStatusOut {
    fn from(s: StudentStatus) -> Self {
        match s {
            StudentStatus::Pending => Self::Pending,
            StudentStatus::Active => Self::Active,
            StudentStatus::Failed => Self::Failed,
            StudentStatus::Inactive => Self::Inactive,
            StudentStatus::Withdrawn => Self::Withdrawn,
            StudentStatus::Deleted => Self::Deleted,
        }
    }
}

impl From<StudentStatusOut> for StudentStatus {
    fn from(s: StudentStatusOut) -> Self {
        match s {
            StudentStatusOut::Pending => Self::Pending,
            StudentStatusOut::Active => Self::Active,
            StudentStatusOut::Failed => Self::Failed,
            StudentStatusOut::Inactive => Self::Inactive,
            StudentStatusOut::Withdrawn => Self::Withdrawn,
            StudentStatusOut::Deleted => Self::Deleted,
        }
    }
}

#[derive(Debug, Object)]
pub struct StudentOut {
    pub id: Uuid,
    pub class_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub status: StudentStatusOut,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// None of the student's photos is accepted or still pending (all rejected, or
    /// none left): ask the student for better photos (`POST /students/{id}/photos`).
    pub needs_photos: bool,
}

impl StudentOut {
    pub fn new(m: student::Model, needs_photos: bool) -> Self {
        StudentOut {
            id: m.id,
            class_id: m.class_id,
            roll_no: m.roll_no,
            name: m.name,
            status: m.status.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            needs_photos,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PhotoVerdictOut {
    /// Not checked yet (the registration job has not run).
    Pending,
    /// The face is used for matching.
    Accepted,
    /// Not used; `note` says why.
    Rejected,
}

impl From<PhotoVerdict> for PhotoVerdictOut {
    fn from(v: PhotoVerdict) -> Self {
        match v {
            PhotoVerdict::Pending => Self::Pending,
            PhotoVerdict::Accepted => Self::Accepted,
            PhotoVerdict::Rejected => Self::Rejected,
        }
    }
}

/// A registration photo and its verdict.
#[derive(Debug, Object)]
pub struct StudentPhotoOut {
    pub id: Uuid,
    pub verdict: PhotoVerdictOut,
    /// Why it was rejected, as a code.
    pub reason: Option<Rejection>,
    /// What a teacher reads: why the photo was rejected ("no face found", "2 faces —
    /// use a photo with only the student"…), or for an accepted photo the other student
    /// it looks like ("same person as roll 21CS004 (…)").
    pub note: Option<String>,
    /// Faces found in the photo.
    pub faces: Option<u32>,
    /// Another active student of the class with a very similar face.
    pub same_as: Option<PossibleDuplicate>,
    pub created_at: DateTime<Utc>,
}

impl From<PhotoDetail> for StudentPhotoOut {
    fn from(p: PhotoDetail) -> Self {
        StudentPhotoOut {
            id: p.photo.id,
            verdict: p.photo.verdict.into(),
            reason: p.reason,
            note: p.note,
            faces: p.faces,
            same_as: p.same_as,
            created_at: p.photo.created_at,
        }
    }
}

/// Where the student's latest registration job stands.
#[derive(Debug, Object)]
pub struct RegistrationJobOut {
    /// Details at `GET /jobs/{job_id}`.
    pub job_id: Uuid,
    pub status: JobStatusOut,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Why the job failed.
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ConsentActionOut {
    /// Consent to the processing of the student's face data was given.
    Given,
    /// It was withdrawn: the student's face data was erased.
    Withdrawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ConsentSourceOut {
    /// A request to the API (registration, photos, withdrawal).
    Api,
    /// A line of a registration batch's `students.csv`.
    Batch,
    /// The command-line import (`attendance-api import`).
    Cli,
}

/// A consent given or withdrawn, with who recorded it and when.
#[derive(Debug, Object)]
pub struct ConsentOut {
    pub action: ConsentActionOut,
    pub recorded_at: DateTime<Utc>,
    /// The API key that recorded it; null for the command-line import.
    pub recorded_by_key_id: Option<Uuid>,
    pub source: ConsentSourceOut,
    pub note: Option<String>,
}

impl From<consent_entry::Model> for ConsentOut {
    fn from(e: consent_entry::Model) -> Self {
        ConsentOut {
            action: match e.action {
                ConsentAction::Given => ConsentActionOut::Given,
                ConsentAction::Withdrawn => ConsentActionOut::Withdrawn,
            },
            recorded_at: e.created_at,
            recorded_by_key_id: e.recorded_by_key_id,
            source: match e.source {
                ConsentSource::Api => ConsentSourceOut::Api,
                ConsentSource::Batch => ConsentSourceOut::Batch,
                ConsentSource::Cli => ConsentSourceOut::Cli,
            },
            note: e.note,
        }
    }
}

/// A student with each registration photo's verdict.
#[derive(Debug, Object)]
pub struct StudentDetailOut {
    #[oai(flatten)]
    pub student: StudentOut,
    /// Oldest first.
    pub photos: Vec<StudentPhotoOut>,
    pub registration_job: Option<RegistrationJobOut>,
    /// The consent in force (the latest given or withdrawn); null when none was
    /// recorded.
    pub consent: Option<ConsentOut>,
}

impl From<StudentDetail> for StudentDetailOut {
    fn from(d: StudentDetail) -> Self {
        StudentDetailOut {
            student: StudentOut::new(d.student, d.needs_photos),
            photos: d.photos.into_iter().map(Into::into).collect(),
            registration_job: d.registration_job.map(|j| RegistrationJobOut {
                job_id: j.id,
                status: j.status.into(),
                progress: j.progress,
                error: j.error,
                finished_at: j.finished_at,
            }),
            consent: d.consent.map(Into::into),
        }
    }
}

#[derive(Debug, Object)]
pub struct StudentPage {
    pub items: Vec<StudentOut>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

#[derive(Debug, Multipart)]
pub struct RegisterForm {
    pub roll_no: String,
    pub name: String,
    pub class_id: Uuid,
    /// 1–10 photos of the student's face (JPEG, PNG or WebP; ≤ 10 MB each).
    pub photos: Vec<Upload>,
    /// `true` records the student's consent to the processing of their face data, with
    /// this key and the time; absent or `false`: no consent. Required when the server
    /// runs with `REQUIRE_CONSENT=true` (else 422 `consent_required`).
    pub consent: Option<bool>,
    /// A note kept with the consent (e.g. where the signed form is), up to 500
    /// characters; only with `consent=true`.
    pub consent_note: Option<String>,
}

#[derive(Debug, Object)]
pub struct RegisterAccepted {
    pub student_id: Uuid,
    /// Poll `GET /jobs/{job_id}` for the outcome.
    pub job_id: Uuid,
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Photos stored; the registration job is queued.
    #[oai(status = 202)]
    Accepted(Json<RegisterAccepted>),
}

#[derive(Debug, Object)]
pub struct StudentUpdate {
    pub name: Option<String>,
    pub roll_no: Option<String>,
    pub class_id: Option<Uuid>,
    /// `active` or `inactive`.
    pub status: Option<StudentStatusOut>,
}

/// What an erasure removed (a delete, or a withdrawal of consent).
#[derive(Debug, Object)]
pub struct ErasedOut {
    /// Uploaded registration photos deleted (rows and stored files).
    pub registration_photos: u64,
    /// Faces from sessions enrolled into the gallery by a correction, deleted.
    pub enrolled_photos: u64,
    /// Face embeddings deleted, of every face model.
    pub embeddings: u64,
    /// Crops of the student's faces in attendance sessions, deleted.
    pub face_crops: u64,
    /// Descriptors of those faces, cleared.
    pub face_descriptors: u64,
    /// Attendance records deleted (only with `purge=true`; otherwise they stay).
    pub attendance_records: u64,
}

impl From<Erased> for ErasedOut {
    fn from(e: Erased) -> Self {
        ErasedOut {
            registration_photos: e.registration_photos,
            enrolled_photos: e.enrolled_photos,
            embeddings: e.embeddings,
            face_crops: e.face_crops,
            face_descriptors: e.face_descriptors,
            attendance_records: e.attendance_records,
        }
    }
}

#[derive(ApiResponse)]
pub enum DeleteStudentResponse {
    /// The student's biometric data is erased; what was removed.
    #[oai(status = 200)]
    Deleted(Json<ErasedOut>),
}

#[derive(ApiResponse)]
pub enum WithdrawConsentResponse {
    /// The student's biometric data is erased and the withdrawal recorded.
    #[oai(status = 200)]
    Withdrawn(Json<ErasedOut>),
}

pub struct StudentsApi;

#[OpenApi(tag = "ApiTags::Students")]
impl StudentsApi {
    /// Register a student with 1–10 photos, and their consent. Answers 202; a job embeds
    /// the faces.
    #[oai(
        path = "/students/register",
        method = "post",
        operation_id = "register_student"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        gate: Data<&upload::ValidationGate>,
        auth: ApiKeyAuth,
        /// Optional: the same key (1–255 printable ASCII) sent again within 24 hours
        /// with the same request answers the first response instead of uploading
        /// twice; with a different request it is a 422.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        form: RegisterForm,
    ) -> Result<RegisterResponse, ApiError> {
        let consent = Consent {
            claim: ConsentClaim::from_form(form.consent, form.consent_note.as_deref())?,
            recorded_by_key_id: Some(auth.0.key_id),
            source: ConsentSource::Api,
            required: state.privacy.require_consent,
        };
        // Before the photos are decoded: a refusal costs nothing.
        consent.check_new()?;
        let photos = upload::validate_uploads(
            &gate,
            form.photos,
            students::MIN_PHOTOS,
            students::MAX_PHOTOS,
        )
        .await?;
        let accepted = students::register(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            &state.queue,
            NewStudent {
                class_id: form.class_id,
                roll_no: form.roll_no,
                name: form.name,
            },
            photos,
            &consent,
        )
        .await?;
        Ok(RegisterResponse::Accepted(Json(RegisterAccepted {
            student_id: accepted.subject_id,
            job_id: accepted.job_id,
        })))
    }

    /// List students, optionally of one class, matching `q` (name or roll number), or
    /// needing photos (`needs_photos=true`).
    #[oai(path = "/students", method = "get", operation_id = "list_students")]
    // poem-openapi takes each query parameter as an argument of its own.
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        class_id: Query<Option<Uuid>>,
        q: Query<Option<String>>,
        /// Only students that need photos (`true`), or only those that do not (`false`).
        needs_photos: Query<Option<bool>>,
        /// 1-based page number (0, or a page past any possible offset: 400).
        page: Query<Option<u64>>,
        /// Items per page: 1 to 200, default 50 (outside that range: 400).
        per_page: Query<Option<u64>>,
    ) -> Result<Json<StudentPage>, ApiError> {
        let page = students::list(
            &state.db,
            &auth.0.scope,
            StudentFilter {
                class_id: class_id.0,
                q: q.0,
                needs_photos: needs_photos.0,
                page: page.0,
                per_page: per_page.0,
            },
        )
        .await?;
        let ids: Vec<Uuid> = page.items.iter().map(|s| s.id).collect();
        let needing = student_photos::needing_photos(&state.db, &ids).await?;
        Ok(Json(StudentPage {
            items: page
                .items
                .into_iter()
                .map(|s| {
                    let needs = needing.contains(&s.id);
                    StudentOut::new(s, needs)
                })
                .collect(),
            page: page.page,
            per_page: page.per_page,
            total: page.total,
        }))
    }

    /// One student with each registration photo's verdict and the reason a teacher can
    /// read, and the status of the latest registration job.
    #[oai(path = "/students/:id", method = "get", operation_id = "get_student")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<Json<StudentDetailOut>, ApiError> {
        Ok(Json(
            students::detail(&state.db, &auth.0.scope, id.0)
                .await?
                .into(),
        ))
    }

    /// Edit a student's name, roll number, class or status.
    #[oai(
        path = "/students/:id",
        method = "put",
        operation_id = "update_student"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        body: Json<StudentUpdate>,
    ) -> Result<Json<StudentOut>, ApiError> {
        let b = body.0;
        let updated = students::update(
            &state.db,
            &auth.0.scope,
            id.0,
            StudentChanges {
                name: b.name,
                roll_no: b.roll_no,
                class_id: b.class_id,
                status: b.status.map(Into::into),
            },
        )
        .await?;
        let needs = student_photos::needing_photos(&state.db, &[updated.id])
            .await?
            .contains(&updated.id);
        Ok(Json(StudentOut::new(updated, needs)))
    }

    /// Delete a student (admin or department admin): every biometric trace goes, their
    /// registration photos, embeddings of every model, faces enrolled from corrections,
    /// and the crops and descriptors of their faces in sessions. Their attendance records
    /// stay (academic records, shown with their name and roll number) unless
    /// `purge=true`, which deletes them and the student entirely. Answers what was
    /// removed. The student is not found afterwards, and their roll number is free.
    #[oai(
        path = "/students/:id",
        method = "delete",
        operation_id = "delete_student"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// Also delete the student's attendance records.
        purge: Query<Option<bool>>,
    ) -> Result<DeleteStudentResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let erased = erasure::delete_student(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            id.0,
            purge.0.unwrap_or(false),
        )
        .await?;
        Ok(DeleteStudentResponse::Deleted(Json(erased.into())))
    }

    /// Withdraw a student's consent (admin or department admin): their biometric data is
    /// erased as by a delete, they stay with their attendance records as `withdrawn`,
    /// and the withdrawal is kept in their consent history with the key that recorded
    /// it. Not recognised in sessions (on the roll, recorded `unmatched` unless marked
    /// by hand) until they register again.
    #[oai(
        path = "/students/:id/consent",
        method = "delete",
        operation_id = "withdraw_consent"
    )]
    async fn withdraw_consent(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// Why, or on whose request (kept in the consent history; at most 500
        /// characters).
        note: Query<Option<String>>,
    ) -> Result<WithdrawConsentResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let erased = erasure::withdraw_consent(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            id.0,
            auth.0.key_id,
            note.0.as_deref(),
        )
        .await?;
        Ok(WithdrawConsentResponse::Withdrawn(Json(erased.into())))
    }
}
