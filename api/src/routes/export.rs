//! `/export/attendance` (a class over a period) and `/export/sessions/{id}` (one
//! session), as CSV or XLSX.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi, ResponseContent,
    param::{Path, Query},
    payload::Binary,
};
use uuid::Uuid;

use super::{ApiTags, analytics::period};
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::{
        export::{self, Export},
        sheet::Format,
    },
    state::AppState,
};

/// The file, in the format asked for.
#[derive(ResponseContent)]
pub enum SheetFile {
    /// CSV with a header row.
    #[oai(content_type = "text/csv; charset=utf-8")]
    Csv(Binary<Vec<u8>>),
    /// An XLSX workbook: bold header row, frozen panes, percentages formatted `0.0%`.
    #[oai(content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    Xlsx(Binary<Vec<u8>>),
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The file, with a suggested file name.
    #[oai(status = 200)]
    File(SheetFile, #[oai(header = "Content-Disposition")] String),
}

impl From<Export> for ExportResponse {
    fn from(e: Export) -> ExportResponse {
        let disposition = format!("attachment; filename=\"{}\"", e.file_name);
        let file = match e.format {
            Format::Csv => SheetFile::Csv(Binary(e.bytes)),
            Format::Xlsx => SheetFile::Xlsx(Binary(e.bytes)),
        };
        ExportResponse::File(file, disposition)
    }
}

/// `csv` (the default) or `xlsx`; anything else is a 400.
fn parse_format(format: Option<&str>) -> Result<Format, ApiError> {
    let Some(f) = format.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Format::Csv);
    };
    Format::parse(f).ok_or_else(|| {
        ApiError::bad_request(
            "unsupported_format",
            format!("format {f:?} is not supported; use csv or xlsx"),
        )
    })
}

pub struct ExportApi;

#[OpenApi(tag = "ApiTags::Export")]
impl ExportApi {
    /// Attendance of a class over a period: one row per student (`roll_no`, `name`),
    /// one column per completed session (its local date, time and subject; `present`,
    /// `absent`, `unmatched`, or blank without a record), then `attended`, `total`
    /// (sessions decided present or absent) and `percentage`. Text that a spreadsheet
    /// would evaluate (starting with `=`, `+`, `-`, `@`, tab or CR) is prefixed with `'`.
    #[oai(
        path = "/export/attendance",
        method = "get",
        operation_id = "export_attendance"
    )]
    // poem-openapi takes one argument per query parameter.
    #[allow(clippy::too_many_arguments)]
    async fn attendance(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        class_id: Query<Uuid>,
        /// RFC 3339, or YYYY-MM-DD: that day from 00:00 in `utc_offset`.
        from: Query<Option<String>>,
        /// RFC 3339, or YYYY-MM-DD: that day until 24:00 in `utc_offset`.
        to: Query<Option<String>>,
        /// `csv` (the default) or `xlsx`.
        format: Query<Option<String>>,
        /// Time zone of dates and column headings, e.g. `+05:30` (the default) or `Z`.
        utc_offset: Query<Option<String>>,
    ) -> Result<ExportResponse, ApiError> {
        let format = parse_format(format.0.as_deref())?;
        let period = period(from.0, to.0, utc_offset.0)?;
        let export =
            export::class_attendance(&state.db, &auth.0.scope, class_id.0, period, format).await?;
        Ok(export.into())
    }

    /// One session: every student of its class with `status`, `distance` and
    /// `source`, neutralised like the class export.
    #[oai(
        path = "/export/sessions/:id",
        method = "get",
        operation_id = "export_session"
    )]
    async fn session(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// `csv` (the default) or `xlsx`.
        format: Query<Option<String>>,
    ) -> Result<ExportResponse, ApiError> {
        let format = parse_format(format.0.as_deref())?;
        let export = export::session(&state.db, &auth.0.scope, id.0, format).await?;
        Ok(export.into())
    }
}
