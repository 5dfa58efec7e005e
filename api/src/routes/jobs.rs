//! `/jobs/{id}` and its event stream `/jobs/{id}/events`

use chrono::{DateTime, Utc};
use common::job::result::JobResult;
use common::{JobKind, Lane};
use futures::{StreamExt, stream::BoxStream};
use models::job::{self, JobStatus};
use poem::web::{Data, sse::Event};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::Path,
    payload::{EventStream, Json},
    types::ToJSON,
};
use uuid::Uuid;

use super::{ApiTags, keys::KeyRefOut};
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::{jobs, keys},
    state::AppState,
};

/// Keeps idle connections (a job waiting in its queue) open through proxies.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobStatusOut {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl From<JobStatus> for JobStatusOut {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Object)]
pub struct JobOut {
    pub id: Uuid,
    pub kind: JobKind,
    /// The queue the job waits in: `interactive` (a person is waiting) or `bulk`.
    pub lane: Lane,
    pub status: JobStatusOut,
    /// 0.0 to 1.0.
    pub progress: f64,
    pub attempts: i32,
    /// Why the job failed.
    pub error: Option<String>,
    /// What the job produced, once it succeeded.
    pub result: Option<JobResult>,
    /// The student or session the job works on.
    pub subject_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The API key that started the job (attendance jobs).
    pub created_by: Option<KeyRefOut>,
}

impl From<job::Model> for JobOut {
    fn from(j: job::Model) -> Self {
        JobOut {
            result: j.result.as_ref().and_then(|stored| {
                let result = JobResult::from_stored(stored);
                if result.is_none() {
                    tracing::warn!(job_id = %j.id, "stored job result not understood; not reported");
                }
                result
            }),
            id: j.id,
            kind: j.kind,
            lane: j.lane,
            status: j.status.into(),
            progress: j.progress,
            attempts: j.attempts,
            error: j.error,
            subject_id: j.subject_id,
            created_at: j.created_at,
            updated_at: j.updated_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            created_by: None,
        }
    }
}

impl JobStatusOut {
    fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(ApiResponse)]
pub enum JobEventsResponse {
    /// Server-sent events: the job now, then once per change of status, progress,
    /// attempts or error. Each event's type is the job's status and its data the job
    /// as `GET /jobs/{id}` answers it; the stream closes after the `succeeded` or
    /// `failed` event.
    #[oai(status = 200)]
    Events(EventStream<BoxStream<'static, JobOut>>),
}

pub struct JobsApi;

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Status of an asynchronous job.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "get_job")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<Json<JobOut>, ApiError> {
        // Visible when its student or session is (404 otherwise).
        let job = auth.0.scope.job(&state.db, id.0).await?;
        let created_by = keys::job_creator(&state.db, &job).await?;
        let mut out = JobOut::from(job);
        out.created_by = created_by.map(Into::into);
        Ok(Json(out))
    }

    /// The job's status and progress as server-sent events, until it ends.
    #[oai(path = "/jobs/:id/events", method = "get", operation_id = "job_events")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<JobEventsResponse, ApiError> {
        // The same visibility as `GET /jobs/{id}`, decided once before streaming.
        let job = auth.0.scope.job(&state.db, id.0).await?;
        let created_by = keys::job_creator(&state.db, &job).await?;
        let stream = jobs::watch(state.db.clone(), job, jobs::WATCH_INTERVAL)
            .map(move |row| {
                let mut out = JobOut::from(row);
                out.created_by = created_by.clone().map(Into::into);
                out
            })
            .boxed();
        Ok(JobEventsResponse::Events(
            EventStream::new(stream)
                .keep_alive(KEEP_ALIVE)
                .to_event(|job| Event::message(job.to_json_string()).event_type(job.status.name())),
        ))
    }
}
