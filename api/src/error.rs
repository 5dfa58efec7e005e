//! Errors: [`ServiceError`] is what service functions return; [`ApiError`] is its HTTP
//! form, `{"error": {"code", "message"}}` with the right status. Internal details of a
//! 5xx are logged, never sent.

use common::{BlobError, QueueError};
use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};
use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `duplicate_roll_no`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        })
    }
}

/// What a service function can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// What was asked for existed but was deleted on purpose (e.g. by the retention
    /// policy) and will not come back (410).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// A parameter is out of range or malformed (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The request is well-formed but its content is not acceptable (422).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The caller's key may not do this (403); only for requests that reveal nothing
    /// the caller cannot see (what is out of scope is [`ServiceError::NotFound`]).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A bounded resource (upload validation, a lane's backlog) is saturated: 503,
    /// with `Retry-After` (see `limits::retry_after`).
    #[error("{0}")]
    Busy(String),
    /// A bug or an impossible state; the message is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("blob store error")]
    Blob(#[from] BlobError),
    #[error("job queue error")]
    Queue(#[from] QueueError),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn gone(code: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Gone {
            code,
            message: message.into(),
        }
    }
}

/// True for a foreign-key violation. sea-orm recognises PostgreSQL's and SQLite's
/// primary code (787), but SQLite reports a parent row deleted under a child as 1811
/// (SQLITE_CONSTRAINT_TRIGGER) with the same message.
fn foreign_key_violation(err: &DbErr) -> bool {
    if matches!(
        err.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    ) {
        return true;
    }
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(&**e, sea_orm::sqlx::Error::Database(db)
                if db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some()
                    && db.message().contains("FOREIGN KEY constraint failed"))
        }
        _ => false,
    }
}

/// True when a database error means "the database is not reachable" (→ 503) rather
/// than a bug (→ 500).
fn db_unavailable(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx::Error as Sqlx};
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        // A pooled connection the server closed (a PostgreSQL restart) fails the query
        // it carries; a retry gets a fresh one.
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                // SQLSTATE class 08 (connection exception) and 57P01–57P03 (the server
                // is shutting down or starting).
                Sqlx::Database(db) => db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, unknown or revoked API key.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The key's role may not do this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with existing data (e.g. roll number taken).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Deleted on purpose (e.g. a face crop past the retention period); it will not
    /// come back.
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// A file or the whole request is too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Not a JPEG, PNG or WebP image.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Well-formed but unacceptable content (undecodable image, wrong photo count...).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, storage, queue) is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized(ErrorBody::new("unauthorized", message))
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(ErrorBody::new("forbidden", message))
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(ErrorBody::new(code, message))
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable(ErrorBody::new(code, message))
    }

    fn unavailable(what: &str) -> ApiError {
        ApiError::Unavailable(ErrorBody::new(
            "unavailable",
            format!("{what} is unavailable, try again later"),
        ))
    }

    fn internal() -> ApiError {
        ApiError::Internal(ErrorBody::new("internal", "internal server error"))
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> ApiError {
        match err {
            ServiceError::NotFound(what) => {
                ApiError::NotFound(ErrorBody::new("not_found", format!("{what} not found")))
            }
            ServiceError::Conflict { code, message } => {
                ApiError::Conflict(ErrorBody::new(code, message))
            }
            ServiceError::Gone { code, message } => ApiError::Gone(ErrorBody::new(code, message)),
            ServiceError::BadRequest { code, message } => ApiError::bad_request(code, message),
            ServiceError::Invalid { code, message } => {
                ApiError::Unprocessable(ErrorBody::new(code, message))
            }
            ServiceError::Forbidden(message) => ApiError::forbidden(message),
            ServiceError::PayloadTooLarge(message) => {
                ApiError::PayloadTooLarge(ErrorBody::new("payload_too_large", message))
            }
            ServiceError::UnsupportedMediaType(message) => {
                ApiError::UnsupportedMediaType(ErrorBody::new("unsupported_media_type", message))
            }
            ServiceError::Busy(message) => ApiError::Unavailable(ErrorBody::new("busy", message)),
            ServiceError::Internal(message) => {
                tracing::error!(message, "internal error");
                ApiError::internal()
            }
            ServiceError::Database(e) => match e.sql_err() {
                // A race that slipped past the service's own checks.
                Some(SqlErr::UniqueConstraintViolation(_)) => {
                    ApiError::Conflict(ErrorBody::new("conflict", "conflicts with existing data"))
                }
                // A row this one refers to was deleted meanwhile (e.g. the class), or
                // a row being deleted is still referred to.
                _ if foreign_key_violation(&e) => {
                    tracing::info!(error = %e, "foreign-key violation answered as 409");
                    ApiError::Conflict(ErrorBody::new(
                        "conflict",
                        "a record this request refers to was changed or removed meanwhile; \
                         reload and try again",
                    ))
                }
                _ if db_unavailable(&e) => {
                    tracing::warn!(error = %e, "database unavailable");
                    ApiError::unavailable("the database")
                }
                _ => {
                    tracing::error!(error = %e, "database error");
                    ApiError::internal()
                }
            },
            ServiceError::Blob(BlobError::NotFound(key)) => {
                tracing::warn!(key, "blob referenced by a row is missing");
                ApiError::NotFound(ErrorBody::new("not_found", "file not found"))
            }
            ServiceError::Blob(e @ BlobError::Unavailable { .. }) => {
                tracing::warn!(error = %e, "blob store unavailable");
                ApiError::unavailable("storage")
            }
            ServiceError::Blob(e) => {
                tracing::error!(error = %e, "blob store error");
                ApiError::internal()
            }
            ServiceError::Queue(e) if e.is_transient() => {
                tracing::warn!(error = %e, "queue unavailable");
                ApiError::unavailable("the job queue")
            }
            ServiceError::Queue(e) => {
                tracing::error!(error = %e, "queue error");
                ApiError::internal()
            }
        }
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Middleware: every error that did not come from an [`ApiError`] (poem's own 404/405,
/// poem-openapi's parse and auth errors) gets the same JSON error body.
pub async fn json_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    Ok(match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    })
}

/// What a handler's panic answers (`CatchPanic`): a JSON 500; the panic is logged.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    ApiError::internal().into_response()
}

/// The JSON error answer for a poem error (see [`json_errors`]).
pub fn error_response(err: poem::Error) -> Response {
    let message = err.to_string();
    let resp = err.into_response();
    if is_json(&resp) {
        return resp;
    }
    let status = resp.status();
    let message = if status.is_server_error() {
        tracing::error!(%status, error = %message, "unhandled error");
        "internal server error".to_string()
    } else {
        message
    };
    ErrorBody::new(code_for(status), message)
        .with_status(status)
        .into_response()
}

#[cfg(test)]
mod tests {
    use poem::{EndpointExt, Route, handler, http::Uri, middleware::CatchPanic};

    use super::*;

    #[handler]
    fn boom() -> &'static str {
        panic!("a bug")
    }

    /// The application wraps its routes the same way (`routes::app`).
    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500_not_a_dropped_connection() {
        let app = Route::new()
            .at("/", poem::get(boom))
            .with(CatchPanic::new().with_handler(panic_response));
        let resp = app
            .call(Request::builder().uri(Uri::from_static("/")).finish())
            .await
            .expect("an answer")
            .into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(is_json(&resp));
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal server error");
    }
}
