//! The duplicate-photo check asks for the first session that used a photo's bytes: an
//! index on `(sha256, created_at)` answers it by reading that first use. On `sha256`
//! alone every earlier use was read, joined and sorted; for a photo uploaded hundreds
//! of times (the soak's fixtures) PostgreSQL chose to scan every session instead, 4 ms
//! an upload and growing with the sessions of the whole department.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionPhotos {
    Table,
    Sha256,
    CreatedAt,
}

const SHA256_INDEX: &str = "idx_session_photos_sha256";
const FIRST_USE_INDEX: &str = "idx_session_photos_sha256_created";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(FIRST_USE_INDEX)
                    .table(SessionPhotos::Table)
                    .col(SessionPhotos::Sha256)
                    .col(SessionPhotos::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Its leading column serves every lookup the old index did.
        manager
            .drop_index(
                Index::drop()
                    .name(SHA256_INDEX)
                    .table(SessionPhotos::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(SHA256_INDEX)
                    .table(SessionPhotos::Table)
                    .col(SessionPhotos::Sha256)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(FIRST_USE_INDEX)
                    .table(SessionPhotos::Table)
                    .to_owned(),
            )
            .await
    }
}
