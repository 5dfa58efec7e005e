//! `/healthz`, `/readyz`, `/metrics` (no key needed).

use std::time::Duration;

use poem::handler;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::{metrics, state::AppState};

/// How long a readiness probe waits on one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Object)]
pub struct Checks {
    /// `ok` or `unavailable`.
    pub database: String,
    pub queue: String,
    pub storage: String,
}

#[derive(Debug, Object)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Checks,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// At least one dependency is down; `checks` says which.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

pub struct HealthApi;

async fn probe<E: std::fmt::Display>(
    what: &str,
    check: impl Future<Output = Result<(), E>>,
) -> bool {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(dependency = what, error = %e, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(dependency = what, "readiness check timed out");
            false
        }
    }
}

fn word(ok: bool) -> String {
    if ok { "ok" } else { "unavailable" }.to_string()
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness: database, queue and storage all answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: poem::web::Data<&AppState>) -> ReadyResponse {
        let (db, queue, storage) = tokio::join!(
            probe("database", state.db.ping()),
            probe("queue", state.queue.check()),
            probe("storage", state.blobs.check()),
        );
        let body = Readiness {
            ready: db && queue && storage,
            checks: Checks {
                database: word(db),
                queue: word(queue),
                storage: word(storage),
            },
        };
        if body.ready {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}

/// Prometheus text exposition.
#[handler]
pub async fn prometheus_metrics() -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render())
}
