//! `webhooks`: subscriptions of an outside system to events. A department admin's
//! subscription (`department` set) receives its department's events only; an admin's
//! (`department` NULL) receives every event.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    /// The event names subscribed to (a JSON array of strings, see
    /// [`crate::webhook_events::WebhookEvent`]).
    pub events: Json,
    /// The HMAC-SHA256 key of the signature; kept in clear because signing needs it,
    /// shown to the client only when the subscription is created.
    #[serde(skip_serializing)]
    pub secret: String,
    pub department: Option<String>,
    pub created_by_key_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// False once deleted: the row stays so that its delivery log stays readable to
    /// the operator, and its pending deliveries are given up.
    pub active: bool,
}

impl Model {
    /// The subscribed event names.
    pub fn event_names(&self) -> Vec<String> {
        serde_json::from_value(self.events.clone()).unwrap_or_default()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::webhook_delivery::Entity")]
    WebhookDelivery,
}

impl Related<super::webhook_delivery::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WebhookDelivery.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
