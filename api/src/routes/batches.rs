//! `/students/batches`: bulk registration from a ZIP.

use chrono::{DateTime, Utc};
use models::registration_batch::BatchStatus;
use models::registration_batch_item;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Multipart, Object, OpenApi,
    param::{Header, Path},
    payload::{Binary, Json},
    types::multipart::Upload,
};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::{
        batches::{self, BatchConsent, BatchCounts, BatchDetail, BatchLimits},
        consent::ConsentClaim,
    },
    state::AppState,
};

#[derive(Debug, Multipart)]
pub struct BatchForm {
    /// A ZIP with one folder per roll number holding that student's photos, and
    /// optionally `students.csv` (`roll_no,name,class[,photos][,consent,consent_note]`).
    pub file: Upload,
    /// Default class of the batch's students (`students.csv` may name others).
    pub class_id: Option<Uuid>,
}

#[derive(Debug, Object)]
pub struct BatchAccepted {
    /// `GET /students/batches/{batch_id}` for the outcomes.
    pub batch_id: Uuid,
    /// The unpacking job (`GET /jobs/{job_id}`).
    pub job_id: Uuid,
}

#[derive(ApiResponse)]
pub enum BatchUploadResponse {
    /// Stored; the unpacking job is queued on the bulk lane.
    #[oai(status = 202)]
    Accepted(Json<BatchAccepted>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum BatchStatusOut {
    /// Waiting to be unpacked.
    Queued,
    /// Unpacked; registrations running.
    Processing,
    /// Every student's registration has finished.
    Completed,
    /// The archive as a whole was refused (`error` says why).
    Failed,
}

impl From<BatchStatus> for BatchStatusOut {
    fn from(s: BatchStatus) -> Self {
        match s {
            BatchStatus::Queued => Self::Queued,
            BatchStatus::Processing => Self::Processing,
            BatchStatus::Completed => Self::Completed,
            BatchStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Object)]
pub struct BatchCountsOut {
    pub total: u64,
    /// Students whose registration is queued or running.
    pub queued: u64,
    /// Registered (at least one accepted photo).
    pub active: u64,
    /// Registration found no usable photo, or its job failed.
    pub failed: u64,
    /// Entries or manifest lines refused (path traversal, symlink, nested archive,
    /// not an image, zip bomb, unknown class…).
    pub rejected: u64,
    /// Roll numbers repeated within the batch.
    pub duplicates: u64,
    /// Students already registered, updated instead of duplicated.
    pub updated: u64,
}

impl From<BatchCounts> for BatchCountsOut {
    fn from(c: BatchCounts) -> Self {
        BatchCountsOut {
            total: c.total,
            queued: c.queued,
            active: c.active,
            failed: c.failed,
            rejected: c.rejected,
            duplicates: c.duplicates,
            updated: c.updated,
        }
    }
}

/// One student's outcome, or one refused entry.
#[derive(Debug, Object)]
pub struct BatchItemOut {
    pub roll_no: Option<String>,
    pub name: Option<String>,
    /// `queued`, `active`, `failed`, `rejected` or `duplicate`.
    pub status: String,
    pub reason: Option<String>,
    /// The ZIP entry or manifest line a refusal is about.
    pub entry: Option<String>,
    pub updated: bool,
    pub student_id: Option<Uuid>,
    pub class_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
}

impl From<registration_batch_item::Model> for BatchItemOut {
    fn from(i: registration_batch_item::Model) -> Self {
        BatchItemOut {
            roll_no: i.roll_no,
            name: i.name,
            status: batches::item_status(i.status).to_string(),
            reason: i.reason,
            entry: i.entry,
            updated: i.updated,
            student_id: i.student_id,
            class_id: i.class_id,
            job_id: i.job_id,
        }
    }
}

#[derive(Debug, Object)]
pub struct BatchOut {
    pub id: Uuid,
    pub status: BatchStatusOut,
    pub class_id: Option<Uuid>,
    pub department: Option<String>,
    /// Why the archive as a whole was refused.
    pub error: Option<String>,
    pub job_id: Uuid,
    pub size_bytes: i64,
    pub counts: BatchCountsOut,
    /// Students (by roll number), then refused entries.
    pub items: Vec<BatchItemOut>,
    pub report_url: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<BatchDetail> for BatchOut {
    fn from(d: BatchDetail) -> Self {
        let b = d.batch;
        BatchOut {
            report_url: format!("/students/batches/{}/report.csv", b.id),
            id: b.id,
            status: b.status.into(),
            class_id: b.class_id,
            department: b.department,
            error: b.error,
            job_id: b.job_id,
            size_bytes: b.size_bytes,
            counts: d.counts.into(),
            items: d.items.into_iter().map(Into::into).collect(),
            created_at: b.created_at,
            finished_at: b.finished_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum BatchReportResponse {
    /// One row per student or refused entry.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

pub struct BatchesApi;

#[OpenApi(tag = "ApiTags::Students")]
impl BatchesApi {
    /// Register many students from a ZIP (one folder of photos per roll number,
    /// optional `students.csv`). Answers 202; the batch is unpacked and registered on
    /// the bulk lane. Size limits: `BATCH_MAX_BYTES`, `BATCH_MAX_UNCOMPRESSED_BYTES`.
    #[oai(
        path = "/students/batches",
        method = "post",
        operation_id = "upload_registration_batch"
    )]
    async fn upload(
        &self,
        state: Data<&AppState>,
        limits: Data<&BatchLimits>,
        auth: ApiKeyAuth,
        /// Optional: the same key (1–255 printable ASCII) sent again within 24 hours
        /// with the same request answers the first response instead of uploading
        /// twice; with a different request it is a 422.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        form: BatchForm,
    ) -> Result<BatchUploadResponse, ApiError> {
        let consent = BatchConsent {
            uploaded_by_key_id: Some(auth.0.key_id),
            source: models::consent_entry::ConsentSource::Batch,
            required: state.privacy.require_consent,
            for_all: ConsentClaim::default(),
        };
        let mut reader = form.file.into_async_read();
        let accepted = batches::create(
            &state.db,
            &auth.0.scope,
            &state.blobs,
            Some(&state.queue),
            **limits,
            form.class_id,
            &consent,
            &mut reader,
        )
        .await?;
        Ok(BatchUploadResponse::Accepted(Json(BatchAccepted {
            batch_id: accepted.subject_id,
            job_id: accepted.job_id,
        })))
    }

    /// A batch: counts and each student's outcome with its reason.
    #[oai(
        path = "/students/batches/:id",
        method = "get",
        operation_id = "get_registration_batch"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<Json<BatchOut>, ApiError> {
        Ok(Json(
            batches::detail(&state.db, &auth.0.scope, id.0)
                .await?
                .into(),
        ))
    }

    /// The batch's outcomes as CSV.
    #[oai(
        path = "/students/batches/:id/report.csv",
        method = "get",
        operation_id = "get_registration_batch_report"
    )]
    async fn report(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<BatchReportResponse, ApiError> {
        let csv = batches::report_csv(&state.db, &auth.0.scope, id.0).await?;
        Ok(BatchReportResponse::Csv(
            Binary(csv),
            format!("attachment; filename=\"batch-{}.csv\"", id.0),
        ))
    }
}
