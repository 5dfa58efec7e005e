//! `idempotency_keys`: the stored first answer to an upload sent with an
//! `Idempotency-Key` header, per key holder.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// The API key that sent the request: keys of different holders never collide.
    #[sea_orm(primary_key, auto_increment = false)]
    pub holder_key_id: Uuid,
    /// The client's `Idempotency-Key` header.
    #[sea_orm(primary_key, auto_increment = false)]
    pub idempotency_key: String,
    /// SHA-256 (hex) of the request's method, path and body.
    pub fingerprint: String,
    /// The first answer's status; `None` while that request is still being handled.
    pub status_code: Option<i32>,
    pub content_type: Option<String>,
    pub response_body: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
