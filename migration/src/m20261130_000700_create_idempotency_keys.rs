//! `idempotency_keys`: the first answer to an upload sent with an `Idempotency-Key`
//! header, per key holder (the API key that sent it), so that a retried upload gets
//! the same answer instead of a second session, student or batch.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    HolderKeyId,
    IdempotencyKey,
    Fingerprint,
    StatusCode,
    ContentType,
    ResponseBody,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(uuid(IdempotencyKeys::HolderKeyId))
                    .col(string_len(IdempotencyKeys::IdempotencyKey, 255))
                    // SHA-256 (hex) of method, path and body (multipart: its parts).
                    .col(string_len(IdempotencyKeys::Fingerprint, 64))
                    // NULL while the first request is still being handled.
                    .col(integer_null(IdempotencyKeys::StatusCode))
                    .col(string_len_null(IdempotencyKeys::ContentType, 128))
                    .col(text_null(IdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    // One row per holder and key: the reservation that makes a second,
                    // concurrent request with the same key wait instead of running.
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::HolderKeyId)
                            .col(IdempotencyKeys::IdempotencyKey),
                    )
                    .to_owned(),
            )
            .await?;
        // Expired keys are purged by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_keys_created_at")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }
}
