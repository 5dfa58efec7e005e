//! Photo provenance: each session photo's SHA-256 (indexed, to find the same bytes in
//! an earlier session of the class) and the session's warnings (JSON list, see
//! `common::session_warning`). Both nullable: rows from before carry neither. One column
//! per `ALTER TABLE` (SQLite).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionPhotos {
    Table,
    Sha256,
}

#[derive(DeriveIden)]
enum AttendanceSessions {
    Table,
    Warnings,
}

const SHA256_INDEX: &str = "idx_session_photos_sha256";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SessionPhotos::Table)
                    .add_column(string_len_null(SessionPhotos::Sha256, 64))
                    .to_owned(),
            )
            .await?;
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
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .add_column(json_null(AttendanceSessions::Warnings))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .drop_column(AttendanceSessions::Warnings)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(SHA256_INDEX)
                    .table(SessionPhotos::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SessionPhotos::Table)
                    .drop_column(SessionPhotos::Sha256)
                    .to_owned(),
            )
            .await
    }
}
