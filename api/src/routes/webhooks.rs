//! `/webhooks`: signed event subscriptions (admins and department admins; teachers 403).

use chrono::{DateTime, Utc};
use models::webhook;
use models::webhook_attempt;
use models::webhook_delivery::DeliveryStatus;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    auth::{ApiKeyAuth, Role},
    error::ApiError,
    services::webhooks::{self, DeliveryLog, NewWebhook, WebhookPolicy},
    state::AppState,
};

#[derive(Debug, Object)]
pub struct WebhookInput {
    /// Where events are POSTed: `http` or `https`, resolving to public addresses
    /// only (unless the server sets `WEBHOOK_ALLOW_PRIVATE=true`).
    pub url: String,
    /// Any of `attendance.session.completed`, `registration.batch.completed`,
    /// `job.failed`.
    pub events: Vec<String>,
    /// The HMAC-SHA256 key of the signatures, 16–128 characters; generated if absent.
    pub secret: Option<String>,
}

#[derive(Debug, Object)]
pub struct WebhookOut {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// The department whose events it receives; absent for an admin's subscription,
    /// which receives every department's.
    pub department: Option<String>,
    /// The API key that created it.
    pub created_by_key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook::Model> for WebhookOut {
    fn from(h: webhook::Model) -> Self {
        WebhookOut {
            events: h.event_names(),
            id: h.id,
            url: h.url,
            department: h.department,
            created_by_key_id: h.created_by_key_id,
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreatedWebhookOut {
    #[oai(flatten)]
    pub details: WebhookOut,
    /// The signing secret: shown only in this answer, store it now. Each delivery
    /// carries `X-Attendance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>" with this secret>`.
    pub secret: String,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename = "WebhookDeliveryStatus", rename_all = "snake_case")]
pub enum DeliveryStatusOut {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Given up after 24 hours of failures, or the subscription was deleted.
    Failed,
}

impl From<DeliveryStatus> for DeliveryStatusOut {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Succeeded => Self::Succeeded,
            DeliveryStatus::Failed => Self::Failed,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Object)]
pub struct AttemptOut {
    /// 1 for the first.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when it did not answer.
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl From<webhook_attempt::Model> for AttemptOut {
    fn from(a: webhook_attempt::Model) -> Self {
        AttemptOut {
            attempt: a.attempt,
            at: a.at,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            error: a.error,
        }
    }
}

#[derive(Debug, Object)]
pub struct DeliveryOut {
    /// The delivery id, sent as the body's `id` and the `X-Attendance-Delivery` header.
    pub id: Uuid,
    pub event: String,
    pub status: DeliveryStatusOut,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptOut>,
}

impl From<DeliveryLog> for DeliveryOut {
    fn from(log: DeliveryLog) -> Self {
        let d = log.delivery;
        DeliveryOut {
            id: d.id,
            event: d.event,
            status: d.status.into(),
            attempts: d.attempts,
            created_at: d.created_at,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            finished_at: d.finished_at,
            last_status: d.last_status,
            last_error: d.last_error,
            attempt_log: log.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Object)]
pub struct TestDeliveryOut {
    /// The queued delivery of the `webhook.test` event.
    pub delivery_id: Uuid,
}

#[derive(ApiResponse)]
pub enum CreateWebhookResponse {
    #[oai(status = 201)]
    Created(Json<CreatedWebhookOut>),
}

#[derive(ApiResponse)]
pub enum DeleteWebhookResponse {
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum TestWebhookResponse {
    /// Queued; see `GET /webhooks/{id}/deliveries` for the outcome.
    #[oai(status = 202)]
    Accepted(Json<TestDeliveryOut>),
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Subscribe to events (admin: every department's; department admin: its own).
    #[oai(path = "/webhooks", method = "post", operation_id = "create_webhook")]
    async fn create(
        &self,
        state: Data<&AppState>,
        policy: Data<&WebhookPolicy>,
        auth: ApiKeyAuth,
        body: Json<WebhookInput>,
    ) -> Result<CreateWebhookResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let b = body.0;
        let created = webhooks::create(
            &state.db,
            &auth.0.scope,
            auth.0.key_id,
            **policy,
            NewWebhook {
                url: b.url,
                events: b.events,
                secret: b.secret,
            },
        )
        .await?;
        Ok(CreateWebhookResponse::Created(Json(CreatedWebhookOut {
            details: created.row.into(),
            secret: created.secret,
        })))
    }

    /// List subscriptions (never their secrets).
    #[oai(path = "/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
    ) -> Result<Json<Vec<WebhookOut>>, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let all = webhooks::list(&state.db, &auth.0.scope).await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Delete a subscription; its pending deliveries are given up.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<DeleteWebhookResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        webhooks::delete(&state.db, &auth.0.scope, id.0).await?;
        Ok(DeleteWebhookResponse::Deleted)
    }

    /// Send a `webhook.test` event to this subscription.
    #[oai(
        path = "/webhooks/:id/test",
        method = "post",
        operation_id = "test_webhook"
    )]
    async fn test(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
    ) -> Result<TestWebhookResponse, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let delivery_id = webhooks::send_test(&state.db, &auth.0.scope, id.0).await?;
        Ok(TestWebhookResponse::Accepted(Json(TestDeliveryOut {
            delivery_id,
        })))
    }

    /// The latest deliveries (newest first), each with every attempt.
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "list_webhook_deliveries"
    )]
    async fn deliveries(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// At most this many: 1 to 200, default 50 (outside that range: 400).
        limit: Query<Option<u64>>,
    ) -> Result<Json<Vec<DeliveryOut>>, ApiError> {
        auth.0.require(Role::DepartmentAdmin)?;
        let logs =
            webhooks::deliveries(&state.db, &auth.0.scope, id.0, limit.0.unwrap_or(50)).await?;
        Ok(Json(logs.into_iter().map(Into::into).collect()))
    }
}
