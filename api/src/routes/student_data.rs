//! `/students/{id}/data`: everything held about a student, as a ZIP for them.

use poem::{Body, web::Data};
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Binary};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::student_data,
    state::AppState,
};

#[derive(ApiResponse)]
pub enum StudentDataResponse {
    /// `profile.json`, `photos.json` with `photos/`, `matches.json` with `crops/`,
    /// `records.csv`, `consent.json` and a `README.txt` saying what each is.
    #[oai(status = 200, content_type = "application/zip")]
    Zip(
        Binary<Body>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Length")] u64,
    ),
}

pub struct StudentDataApi;

#[OpenApi(tag = "ApiTags::Students")]
impl StudentDataApi {
    /// Everything held about a student, as a ZIP (admin or department admin): the
    /// profile, registration photos with their verdicts, the crops of session faces
    /// matched to them, their attendance records and every consent entry. A photo or
    /// crop missing from storage is listed as missing.
    #[oai(
        path = "/students/:id/data",
        method = "get",
        operation_id = "get_student_data"
    )]
    async fn data(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<StudentDataResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let archive = student_data::archive(&state.db, &auth.0.scope, &state.blobs, id.0).await?;
        let body = Body::from_async_read(tokio::fs::File::from_std(archive.file));
        Ok(StudentDataResponse::Zip(
            Binary(body),
            format!(
                "attachment; filename={}",
                student_data::file_name(&archive.roll_no)
            ),
            archive.size,
        ))
    }
}
