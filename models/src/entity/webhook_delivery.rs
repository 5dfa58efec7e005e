//! `webhook_deliveries`: one event for one subscription, delivered (and retried) by the
//! worker's dispatcher. Rows, not in-memory timers, so that pending deliveries survive
//! restarts; the id is the delivery id sent to the receiver.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet delivered; due at `next_attempt_at`.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The receiver answered 2xx; never sent again.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Given up (24 hours of failures, or the subscription was deleted).
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event name, e.g. `attendance.session.completed`.
    pub event: String,
    /// What the event is about (`job:<id>`, `test:<id>`): unique per subscription, so
    /// that an event raised twice is delivered once.
    pub event_key: String,
    /// The JSON body, byte for byte what is sent and signed on every attempt.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// The dispatcher that holds the delivery while it sends it, until `locked_until`.
    pub claim_id: Option<Uuid>,
    pub locked_until: Option<DateTimeUtc>,
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::webhook::Entity",
        from = "Column::WebhookId",
        to = "super::webhook::Column::Id"
    )]
    Webhook,
    #[sea_orm(has_many = "super::webhook_attempt::Entity")]
    WebhookAttempt,
}

impl Related<super::webhook::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Webhook.def()
    }
}

impl Related<super::webhook_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WebhookAttempt.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
