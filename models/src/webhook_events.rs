//! Webhook fan-out: an event becomes one `webhook_deliveries` row per matching active
//! subscription. Call [`enqueue_event`] inside the transaction that makes the event
//! true (the job's completion), so that an event is neither lost (a crash before the
//! commit leaves no event and no completion) nor duplicated (each subscription gets
//! one delivery per `event_key`, enforced by a unique index). The worker's dispatcher
//! sends the rows.
//!
//! The body of every delivery is
//! `{"id": <delivery id>, "event": <name>, "created_at": <RFC 3339>, "data": <data>}`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::OnConflict,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::webhook;
use crate::webhook_delivery::{self, DeliveryStatus};

/// The events a subscription can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// An attendance job recorded a session. `data`: `session_id`, `job_id`, `class`
    /// (`id`, `name`, `department`), `subject`, `taken_at`, `present`, `absent`,
    /// `unknown` (faces matched to nobody), `unmatched` (students without an
    /// embedding of the model), `warnings` (photo provenance), `url` (the session in
    /// the API).
    AttendanceSessionCompleted,
    /// A registration batch finished. `data`: `batch_id`, `class_id`, `department`,
    /// `counts` (an object of outcome → number), `url` (the batch in the API) and
    /// `report_url` (its CSV report).
    RegistrationBatchCompleted,
    /// A job failed for good. `data`: `job_id`, `kind`, `subject_id`, `error`,
    /// `failed_at`, `url` (`GET /jobs/{id}`).
    JobFailed,
    /// Sent by `POST /webhooks/{id}/test` to that one subscription; not subscribable.
    Test,
}

impl WebhookEvent {
    /// The events a subscription may list.
    pub const SUBSCRIBABLE: [WebhookEvent; 3] = [
        WebhookEvent::AttendanceSessionCompleted,
        WebhookEvent::RegistrationBatchCompleted,
        WebhookEvent::JobFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::AttendanceSessionCompleted => "attendance.session.completed",
            WebhookEvent::RegistrationBatchCompleted => "registration.batch.completed",
            WebhookEvent::JobFailed => "job.failed",
            WebhookEvent::Test => "webhook.test",
        }
    }

    /// The subscribable event of this name.
    pub fn subscribable(name: &str) -> Option<WebhookEvent> {
        Self::SUBSCRIBABLE.into_iter().find(|e| e.name() == name)
    }
}

/// The exact JSON body of a delivery.
pub fn delivery_body(id: Uuid, event: WebhookEvent, at: DateTime<Utc>, data: &Value) -> String {
    json!({
        "id": id,
        "event": event.name(),
        "created_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// Queues `event` for every active subscription to it that may see `department`
/// (subscriptions of that department and the admins' ones; with `department` `None`,
/// an event of no known department, the admins' ones only). `event_key` names what
/// the event is about (e.g. `job:<job id>`): raising the same event with the same key
/// again queues nothing new. Returns the ids of the deliveries queued now.
pub async fn enqueue_event(
    db: &impl ConnectionTrait,
    event: WebhookEvent,
    department: Option<&str>,
    event_key: &str,
    data: &Value,
) -> Result<Vec<Uuid>, DbErr> {
    let mut scope = Condition::any().add(webhook::Column::Department.is_null());
    if let Some(d) = department {
        scope = scope.add(webhook::Column::Department.eq(d));
    }
    let subscriptions = webhook::Entity::find()
        .filter(webhook::Column::Active.eq(true))
        .filter(scope)
        .all(db)
        .await?;
    let mut queued = Vec::new();
    for hook in subscriptions
        .iter()
        .filter(|h| h.event_names().iter().any(|n| n == event.name()))
    {
        if let Some(id) = insert_delivery(db, hook.id, event, event_key, data).await? {
            queued.push(id);
        }
    }
    if !queued.is_empty() {
        tracing::info!(
            event = event.name(),
            event_key,
            subscriptions = queued.len(),
            "webhook deliveries queued"
        );
    }
    Ok(queued)
}

/// Queues one delivery of `event` to one subscription (the test event); its id, or
/// `None` when that subscription already has a delivery for `event_key`.
pub async fn insert_delivery(
    db: &impl ConnectionTrait,
    webhook_id: Uuid,
    event: WebhookEvent,
    event_key: &str,
    data: &Value,
) -> Result<Option<Uuid>, DbErr> {
    let id = Uuid::new_v4();
    let now = Utc::now();
    let inserted = webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
        id: Set(id),
        webhook_id: Set(webhook_id),
        event: Set(event.name().to_string()),
        event_key: Set(event_key.to_string()),
        body: Set(delivery_body(id, event, now, data)),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claim_id: Set(None),
        locked_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    })
    // DO NOTHING rather than an error: an error would abort the caller's PostgreSQL
    // transaction, which is completing a job.
    .on_conflict(
        OnConflict::columns([
            webhook_delivery::Column::WebhookId,
            webhook_delivery::Column::EventKey,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok((inserted == 1).then_some(id))
}
