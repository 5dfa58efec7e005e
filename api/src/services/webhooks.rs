//! Webhook subscriptions: create, list, delete, send a test event, read the delivery
//! log. Admins and department admins manage them; a department admin's subscriptions
//! belong to its department and receive only its events, an admin's receive every
//! department's. Another department's subscription does not exist (404). The
//! delivering is the worker's (`worker::webhooks`).

use chrono::Utc;
use common::webhook_address::{self, AddressError};
use models::webhook;
use models::webhook_attempt;
use models::webhook_delivery::{self, DeliveryStatus};
use models::webhook_events::{self, WebhookEvent};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::scope::Scope;
use crate::error::ServiceError;

/// The longest URL accepted.
const MAX_URL_LEN: usize = 2000;
/// Bounds of a secret the client chooses.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=128;
/// The most deliveries one listing returns.
pub const MAX_DELIVERIES: u64 = 200;

/// Whether subscriptions may point at private, loopback and link-local addresses
/// (`WEBHOOK_ALLOW_PRIVATE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    pub allow_private: bool,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    /// Generated when absent.
    pub secret: Option<String>,
}

/// A subscription just created, with its secret (returned this once).
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    pub row: webhook::Model,
    pub secret: String,
}

/// A delivery and its attempts, oldest attempt first.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    pub delivery: webhook_delivery::Model,
    pub attempts: Vec<webhook_attempt::Model>,
}

pub async fn create(
    db: &impl ConnectionTrait,
    scope: &Scope,
    created_by: Uuid,
    policy: WebhookPolicy,
    new: NewWebhook,
) -> Result<CreatedWebhook, ServiceError> {
    let raw = new.url.trim();
    if raw.chars().count() > MAX_URL_LEN {
        return Err(ServiceError::invalid(
            "invalid_url",
            format!("url is longer than {MAX_URL_LEN} characters"),
        ));
    }
    let url = webhook_address::parse(raw).map_err(address_error)?;
    webhook_address::resolve(&url, policy.allow_private)
        .await
        .map_err(address_error)?;
    let events = event_names(&new.events)?;
    let secret = match new.secret.as_deref().map(str::trim) {
        None | Some("") => generate_secret(),
        Some(s) if SECRET_LEN.contains(&s.chars().count()) => s.to_string(),
        Some(_) => {
            return Err(ServiceError::invalid(
                "invalid_secret",
                format!(
                    "secret must be {} to {} characters, or left out to have one generated",
                    SECRET_LEN.start(),
                    SECRET_LEN.end()
                ),
            ));
        }
    };
    let department = match scope {
        Scope::All => None,
        Scope::Department(d) => Some(d.clone()),
    };
    let row = webhook::ActiveModel {
        id: Set(Uuid::new_v4()),
        url: Set(url.to_string()),
        events: Set(json!(events)),
        secret: Set(secret.clone()),
        department: Set(department),
        created_by_key_id: Set(Some(created_by)),
        created_at: Set(Utc::now()),
        active: Set(true),
    }
    .insert(db)
    .await?;
    tracing::info!(webhook_id = %row.id, url = %row.url, department = ?row.department, "webhook subscription created");
    Ok(CreatedWebhook { row, secret })
}

/// The visible active subscriptions, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &Scope,
) -> Result<Vec<webhook::Model>, ServiceError> {
    let mut q = webhook::Entity::find().filter(webhook::Column::Active.eq(true));
    if let Scope::Department(d) = scope {
        q = q.filter(webhook::Column::Department.eq(d.as_str()));
    }
    Ok(q.order_by_asc(webhook::Column::CreatedAt)
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?)
}

/// An active subscription the caller may see: a department admin its department's,
/// an admin every one.
pub async fn find(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<webhook::Model, ServiceError> {
    webhook::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|h| h.active)
        .filter(|h| match (scope, &h.department) {
            (Scope::All, _) => true,
            (Scope::Department(d), Some(own)) => d == own,
            (Scope::Department(_), None) => false,
        })
        .ok_or(ServiceError::NotFound("webhook"))
}

/// Deletes a subscription: nothing more is sent to it, and its pending deliveries are
/// given up. The row and its log stay for the operator, out of the API's sight.
pub async fn delete(db: &DatabaseConnection, scope: &Scope, id: Uuid) -> Result<(), ServiceError> {
    let hook = find(db, scope, id).await?;
    let txn = db.begin().await?;
    let mut active: webhook::ActiveModel = hook.into();
    active.active = Set(false);
    active.update(&txn).await?;
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value("the subscription was deleted"),
        )
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(Utc::now()),
        )
        .filter(webhook_delivery::Column::WebhookId.eq(id))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(webhook_id = %id, "webhook subscription deleted");
    Ok(())
}

/// Queues a `webhook.test` event to this subscription only; returns the delivery id.
pub async fn send_test(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
) -> Result<Uuid, ServiceError> {
    let hook = find(db, scope, id).await?;
    let data = json!({
        "webhook_id": hook.id,
        "message": "a test event, sent on request",
    });
    webhook_events::insert_delivery(
        db,
        hook.id,
        WebhookEvent::Test,
        &format!("test:{}", Uuid::new_v4()),
        &data,
    )
    .await?
    .ok_or_else(|| ServiceError::Internal("a fresh test event key was taken".into()))
}

/// The subscription's latest deliveries (newest first) with every attempt.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    scope: &Scope,
    id: Uuid,
    limit: u64,
) -> Result<Vec<DeliveryLog>, ServiceError> {
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        return Err(ServiceError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_DELIVERIES}"),
        ));
    }
    let hook = find(db, scope, id).await?;
    let deliveries = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(hook.id))
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let mut attempts = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Attempt)
        .all(db)
        .await?;
    Ok(deliveries
        .into_iter()
        .map(|delivery| {
            let (mine, rest) = std::mem::take(&mut attempts)
                .into_iter()
                .partition(|a| a.delivery_id == delivery.id);
            attempts = rest;
            DeliveryLog {
                delivery,
                attempts: mine,
            }
        })
        .collect())
}

/// Known, deduplicated event names, at least one.
fn event_names(names: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim();
        if WebhookEvent::subscribable(name).is_none() {
            let known: Vec<&str> = WebhookEvent::SUBSCRIBABLE
                .iter()
                .map(|e| e.name())
                .collect();
            return Err(ServiceError::invalid(
                "unknown_event",
                format!("unknown event {name:?}; known events: {}", known.join(", ")),
            ));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err(ServiceError::invalid(
            "invalid_field",
            "events must name at least one event",
        ));
    }
    Ok(out)
}

fn address_error(e: AddressError) -> ServiceError {
    let code = match &e {
        AddressError::Invalid(_) => "invalid_url",
        AddressError::Unresolvable { .. } => "unresolvable_url",
        AddressError::Private { .. } => "private_address",
    };
    ServiceError::invalid(code, e.to_string())
}

/// 256 random bits, hex, with a recognisable prefix.
fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_must_be_known_and_are_deduplicated() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            event_names(&names(&[
                "job.failed",
                " job.failed",
                "attendance.session.completed"
            ]))
            .unwrap(),
            ["job.failed", "attendance.session.completed"]
        );
        for bad in [&[][..], &["job.exploded"][..], &["webhook.test"][..]] {
            assert!(matches!(
                event_names(&names(bad)),
                Err(ServiceError::Invalid { .. })
            ));
        }
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(a.len(), "whsec_".len() + 64);
        assert_ne!(a, b);
    }
}
