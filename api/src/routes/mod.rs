//! HTTP routes: one file per resource. Handlers parse, authorise and call a service.

pub mod analytics;
pub mod attendance;
pub mod batches;
pub mod classes;
pub mod corrections;
pub mod export;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod student_data;
pub mod student_photos;
pub mod students;
pub mod webhooks;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Offset, Utc};
use poem::{
    Endpoint, EndpointExt, Route,
    middleware::{CatchPanic, Cors, Tracing},
};
use poem_openapi::{OpenApiService, Tags};

use common::config::ServerLimits;

use crate::{
    error, idempotency, limits, metrics, nul_bytes, response_headers,
    services::{batches::BatchLimits, webhooks::WebhookPolicy},
    state::AppState,
    upload, web_ui,
};

#[derive(Tags)]
pub enum ApiTags {
    /// Classes (groups of students).
    Classes,
    /// Student registration and management.
    Students,
    /// Attendance sessions, records and detected faces.
    Attendance,
    /// Asynchronous job status.
    Jobs,
    /// Attendance export.
    Export,
    /// Attendance figures: per class and per student.
    Analytics,
    /// Liveness and readiness.
    Health,
    /// API keys and their roles.
    Keys,
    /// Signed webhooks: subscriptions and their delivery log.
    Webhooks,
}

pub type Apis = (
    classes::ClassesApi,
    students::StudentsApi,
    attendance::AttendanceApi,
    jobs::JobsApi,
    export::ExportApi,
    analytics::AnalyticsApi,
    health::HealthApi,
    keys::KeysApi,
    corrections::CorrectionsApi,
    student_photos::StudentPhotosApi,
    student_data::StudentDataApi,
    batches::BatchesApi,
    webhooks::WebhooksApi,
);

/// The OpenAPI service (the document it generates needs no running server).
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            classes::ClassesApi,
            students::StudentsApi,
            attendance::AttendanceApi,
            jobs::JobsApi,
            export::ExportApi,
            analytics::AnalyticsApi,
            health::HealthApi,
            keys::KeysApi,
            corrections::CorrectionsApi,
            student_photos::StudentPhotosApi,
            student_data::StudentDataApi,
            batches::BatchesApi,
            webhooks::WebhooksApi,
        ),
        "Attendance API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Face-recognition attendance. Uploads are accepted with 202 and processed by \
         jobs; poll `GET /jobs/{id}`. Authenticate with `Authorization: Bearer <key>`.",
    )
}

/// The whole HTTP application with its middleware.
pub fn app(
    state: AppState,
    cors_origins: &[String],
    batches: BatchLimits,
    webhook_policy: WebhookPolicy,
    limits: ServerLimits,
) -> impl Endpoint + use<> {
    let api = openapi_service();
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let cors = Cors::new()
        .allow_origins(cors_origins.iter().map(String::as_str))
        .allow_credentials(false);
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/metrics", poem::get(health::prometheus_metrics))
        .nest("/", api)
        // The web UI at `/` and `/assets/…`, beside the API's own paths.
        .around(web_ui::serve)
        // A handler's panic is a JSON 500, never a dropped connection (and releases
        // the request's Idempotency-Key like any 5xx).
        .with(CatchPanic::new().with_handler(error::panic_response))
        .around(idempotency::idempotent_uploads)
        .around(nul_bytes::reject_nul_bytes)
        // Each `around` nests the type twice over; boxing keeps it within the compiler's
        // depth limit.
        .boxed()
        .data(state.clone())
        .data(upload::ValidationGate::new(
            limits.validation_concurrency,
            limits.validation_wait,
        ))
        .data(batches)
        .data(webhook_policy)
        .around(move |ep, req| {
            // A registration batch streams to storage and has its own, larger limit.
            let max = if req.method() == poem::http::Method::POST
                && req.uri().path() == "/students/batches"
            {
                usize::try_from(batches.max_bytes).unwrap_or(usize::MAX)
            } else {
                upload::MAX_REQUEST_BYTES
            };
            upload::limit_request_size(ep, req, max)
        })
        .around(error::json_errors)
        // Timeouts, part caps and the backlog check wrap everything that reads the body;
        // their own answers still get the security headers.
        .with(limits::Guard::new(state, limits, batches.max_bytes))
        .boxed()
        .around(response_headers::security_headers)
        .with_if(!cors_origins.is_empty(), cors)
        .with(Tracing)
        .around(metrics::track)
}

/// Parses every timestamp a client sends (`taken_at`, the `from`/`to` bounds): RFC
/// 3339, or a plain `YYYY-MM-DD` meaning the start of that day (`end_of_day = false`)
/// or its end (`true`), UTC. Anything else is a 400 `invalid_timestamp`.
pub(crate) fn parse_bound(
    field: &str,
    value: Option<&str>,
    end_of_day: bool,
) -> Result<Option<DateTime<Utc>>, error::ApiError> {
    parse_bound_in(field, value, end_of_day, Utc.fix())
}

/// [`parse_bound`] with a plain date's day taken in `offset` (reports read dates in
/// their display time zone).
pub(crate) fn parse_bound_in(
    field: &str,
    value: Option<&str>,
    end_of_day: bool,
    offset: FixedOffset,
) -> Result<Option<DateTime<Utc>>, error::ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let time = if end_of_day {
            NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("valid time")
        } else {
            NaiveTime::MIN
        };
        if let Some(t) = d.and_time(time).and_local_timezone(offset).single() {
            return Ok(Some(t.with_timezone(&Utc)));
        }
    }
    Err(error::ApiError::bad_request(
        "invalid_timestamp",
        format!("{field} must be an RFC 3339 timestamp or a YYYY-MM-DD date"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_dates_parse_and_anything_else_is_one_error() {
        let t = parse_bound("taken_at", Some("2026-11-20T09:30:00+05:30"), false).unwrap();
        assert_eq!(t.unwrap().to_rfc3339(), "2026-11-20T04:00:00+00:00");
        let end = parse_bound("to", Some("2026-11-20"), true)
            .unwrap()
            .unwrap();
        assert_eq!(end.to_rfc3339(), "2026-11-20T23:59:59.999999999+00:00");
        assert_eq!(parse_bound("from", Some("  "), false).unwrap(), None);
        for field in ["taken_at", "from", "to"] {
            let Err(error::ApiError::BadRequest(body)) =
                parse_bound(field, Some("20/11/2026"), false)
            else {
                panic!("{field}: not a 400");
            };
            assert_eq!(body.0.error.code, "invalid_timestamp");
            assert!(
                body.0.error.message.starts_with(field),
                "{}",
                body.0.error.message
            );
        }
    }
}
