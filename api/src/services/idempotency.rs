//! Stored answers for `Idempotency-Key`: a request reserves its (holder, key) with a
//! pending row before it runs, so that a concurrent or later request with the same key
//! waits for, or replays, the first answer instead of making a second session.
//!
//! Which answers are kept: 2xx and 4xx (a retry of the same body would get the same
//! 4xx anyway); a 5xx releases the key, so that a retry after an outage can succeed.

use chrono::{DateTime, Duration, Utc};
use models::idempotency_key::{self, Entity as IdempotencyKeys};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

/// How long a key's answer is kept and replayed.
pub const KEY_LIFETIME: Duration = Duration::hours(24);
/// A pending reservation older than this belongs to a request whose process died; a
/// new request with the key may take it over. Longer than any upload takes.
pub const PENDING_LEASE: Duration = Duration::minutes(15);

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// What a request with an `Idempotency-Key` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is this request's: run it, then [`complete`] or [`release`].
    Reserved,
    /// The key already has an answer for the same request: send it again.
    Replay(StoredResponse),
    /// Another request with the key is still being handled.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Reserves `key` for `holder`, or says why not. Expired keys are purged first, so an
/// old key is ignored and its row does not accumulate.
pub async fn reserve(
    db: &impl ConnectionTrait,
    holder: Uuid,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Reservation, DbErr> {
    IdempotencyKeys::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(now - KEY_LIFETIME))
        .exec(db)
        .await?;
    let row = idempotency_key::ActiveModel {
        holder_key_id: Set(holder),
        idempotency_key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        status_code: Set(None),
        content_type: Set(None),
        response_body: Set(None),
        created_at: Set(now),
    };
    let inserted = IdempotencyKeys::insert(row)
        .on_conflict(
            OnConflict::columns([
                idempotency_key::Column::HolderKeyId,
                idempotency_key::Column::IdempotencyKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if inserted == 1 {
        return Ok(Reservation::Reserved);
    }
    let Some(existing) = IdempotencyKeys::find_by_id((holder, key.to_owned()))
        .one(db)
        .await?
    else {
        // Released (a 5xx) between our insert and this read: the caller tries again.
        return Ok(Reservation::InProgress);
    };
    if existing.fingerprint != fingerprint {
        return Ok(Reservation::Mismatch);
    }
    if let (Some(status), Some(body)) = (existing.status_code, existing.response_body) {
        return Ok(Reservation::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            content_type: existing.content_type,
            body,
        }));
    }
    if existing.created_at < now - PENDING_LEASE {
        // The conditional update lets exactly one of several waiting requests take over.
        let taken = IdempotencyKeys::update_many()
            .col_expr(idempotency_key::Column::CreatedAt, Expr::value(now))
            .filter(idempotency_key::Column::HolderKeyId.eq(holder))
            .filter(idempotency_key::Column::IdempotencyKey.eq(key))
            .filter(idempotency_key::Column::StatusCode.is_null())
            .filter(idempotency_key::Column::CreatedAt.eq(existing.created_at))
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            tracing::warn!(%holder, "taking over an abandoned Idempotency-Key reservation");
            return Ok(Reservation::Reserved);
        }
    }
    Ok(Reservation::InProgress)
}

/// Stores the answer to a reserved key.
pub async fn complete(
    db: &impl ConnectionTrait,
    holder: Uuid,
    key: &str,
    response: &StoredResponse,
) -> Result<(), DbErr> {
    IdempotencyKeys::update_many()
        .col_expr(
            idempotency_key::Column::StatusCode,
            Expr::value(i32::from(response.status)),
        )
        .col_expr(
            idempotency_key::Column::ContentType,
            Expr::value(response.content_type.clone()),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(response.body.clone()),
        )
        .filter(idempotency_key::Column::HolderKeyId.eq(holder))
        .filter(idempotency_key::Column::IdempotencyKey.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives a reserved key up (the request failed with a 5xx): a retry runs afresh.
pub async fn release(db: &impl ConnectionTrait, holder: Uuid, key: &str) -> Result<(), DbErr> {
    IdempotencyKeys::delete_many()
        .filter(idempotency_key::Column::HolderKeyId.eq(holder))
        .filter(idempotency_key::Column::IdempotencyKey.eq(key))
        .filter(idempotency_key::Column::StatusCode.is_null())
        .exec(db)
        .await?;
    Ok(())
}
