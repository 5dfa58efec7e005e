//! `/export/attendance`

use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi, param::Query, payload::Binary};
use uuid::Uuid;

use super::{ApiTags, parse_bound};
use crate::{auth::ApiKeyAuth, error::ApiError, services::export, state::AppState};

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// One row per student × session.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

pub struct ExportApi;

#[OpenApi(tag = "ApiTags::Export")]
impl ExportApi {
    /// Attendance of a class over a date range (`from`/`to`: RFC 3339 or YYYY-MM-DD).
    #[oai(
        path = "/export/attendance",
        method = "get",
        operation_id = "export_attendance"
    )]
    async fn attendance(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        class_id: Query<Uuid>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        /// `csv` (the default).
        format: Query<Option<String>>,
    ) -> Result<ExportResponse, ApiError> {
        let format = format.0.unwrap_or_else(|| "csv".into());
        if !format.eq_ignore_ascii_case("csv") {
            return Err(ApiError::bad_request(
                "unsupported_format",
                format!("format {format:?} is not supported; use csv"),
            ));
        }
        let from = parse_bound("from", from.0.as_deref(), false)?;
        let to = parse_bound("to", to.0.as_deref(), true)?;
        let csv = export::attendance_csv(&state.db, &auth.0.scope, class_id.0, from, to).await?;
        Ok(ExportResponse::Csv(
            Binary(csv),
            format!("attachment; filename=\"attendance-{}.csv\"", class_id.0),
        ))
    }
}
