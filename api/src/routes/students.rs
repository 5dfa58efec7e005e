//! `/students`

use chrono::{DateTime, Utc};
use models::student::{self, StudentStatus};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Multipart, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::multipart::Upload,
};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::students::{self, NewStudent, StudentChanges, StudentFilter},
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
}

impl From<StudentStatus> for StudentStatusOut {
    fn from(s: StudentStatus) -> Self {
        match s {
            StudentStatus::Pending => Self::Pending,
            StudentStatus::Active => Self::Active,
            StudentStatus::Failed => Self::Failed,
            StudentStatus::Inactive => Self::Inactive,
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
}

impl From<student::Model> for StudentOut {
    fn from(m: student::Model) -> Self {
        StudentOut {
            id: m.id,
            class_id: m.class_id,
            roll_no: m.roll_no,
            name: m.name,
            status: m.status.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
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

#[derive(ApiResponse)]
pub enum DeleteStudentResponse {
    #[oai(status = 204)]
    Deleted,
}

pub struct StudentsApi;

#[OpenApi(tag = "ApiTags::Students")]
impl StudentsApi {
    /// Register a student with 1–10 photos. Answers 202; a job embeds the faces.
    #[oai(
        path = "/students/register",
        method = "post",
        operation_id = "register_student"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        form: RegisterForm,
    ) -> Result<RegisterResponse, ApiError> {
        let photos =
            upload::validate_uploads(form.photos, students::MIN_PHOTOS, students::MAX_PHOTOS)
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
        )
        .await?;
        Ok(RegisterResponse::Accepted(Json(RegisterAccepted {
            student_id: accepted.subject_id,
            job_id: accepted.job_id,
        })))
    }

    /// List students, optionally of one class and matching `q` (name or roll number).
    #[oai(path = "/students", method = "get", operation_id = "list_students")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        class_id: Query<Option<Uuid>>,
        q: Query<Option<String>>,
        /// 1-based page number.
        page: Query<Option<u64>>,
        /// Items per page (default 50, at most 200).
        per_page: Query<Option<u64>>,
    ) -> Result<Json<StudentPage>, ApiError> {
        let page = students::list(
            &state.db,
            &auth.0.scope,
            StudentFilter {
                class_id: class_id.0,
                q: q.0,
                page: page.0,
                per_page: per_page.0,
            },
        )
        .await?;
        Ok(Json(StudentPage {
            items: page.items.into_iter().map(Into::into).collect(),
            page: page.page,
            per_page: page.per_page,
            total: page.total,
        }))
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
        Ok(Json(updated.into()))
    }

    /// Delete a student with their photos, embeddings and records (admin or department
    /// admin).
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
    ) -> Result<DeleteStudentResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        students::delete(&state.db, &auth.0.scope, &state.blobs, id.0).await?;
        Ok(DeleteStudentResponse::Deleted)
    }
}
