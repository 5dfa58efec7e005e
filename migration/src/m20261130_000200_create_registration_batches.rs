//! Bulk registration batches (`registration_batches`) and one outcome row per student
//! or rejected ZIP entry (`registration_batch_items`). No foreign key to classes: a
//! batch outlives a deleted class as a record of what was uploaded.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistrationBatches {
    Table,
    Id,
    ClassId,
    Department,
    BlobKey,
    SizeBytes,
    MaxUncompressedBytes,
    Status,
    Error,
    JobId,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum RegistrationBatchItems {
    Table,
    Id,
    BatchId,
    RollNo,
    Name,
    ClassId,
    Entry,
    StudentId,
    JobId,
    Status,
    Reason,
    Updated,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegistrationBatches::Table)
                    .if_not_exists()
                    .col(pk_uuid(RegistrationBatches::Id))
                    .col(uuid_null(RegistrationBatches::ClassId))
                    .col(string_null(RegistrationBatches::Department))
                    .col(string(RegistrationBatches::BlobKey))
                    .col(big_integer(RegistrationBatches::SizeBytes))
                    .col(big_integer(RegistrationBatches::MaxUncompressedBytes))
                    .col(string_len(RegistrationBatches::Status, 16))
                    .col(text_null(RegistrationBatches::Error))
                    .col(uuid(RegistrationBatches::JobId))
                    .col(timestamp_with_time_zone(RegistrationBatches::CreatedAt))
                    .col(timestamp_with_time_zone(RegistrationBatches::UpdatedAt))
                    .col(timestamp_with_time_zone_null(
                        RegistrationBatches::FinishedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RegistrationBatchItems::Table)
                    .if_not_exists()
                    .col(pk_uuid(RegistrationBatchItems::Id))
                    .col(uuid(RegistrationBatchItems::BatchId))
                    .col(string_null(RegistrationBatchItems::RollNo))
                    .col(string_null(RegistrationBatchItems::Name))
                    .col(uuid_null(RegistrationBatchItems::ClassId))
                    .col(text_null(RegistrationBatchItems::Entry))
                    .col(uuid_null(RegistrationBatchItems::StudentId))
                    .col(uuid_null(RegistrationBatchItems::JobId))
                    .col(string_len(RegistrationBatchItems::Status, 16))
                    .col(text_null(RegistrationBatchItems::Reason))
                    .col(boolean(RegistrationBatchItems::Updated))
                    .col(timestamp_with_time_zone(RegistrationBatchItems::CreatedAt))
                    .col(timestamp_with_time_zone(RegistrationBatchItems::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_registration_batch_items_batch")
                            .from(
                                RegistrationBatchItems::Table,
                                RegistrationBatchItems::BatchId,
                            )
                            .to(RegistrationBatches::Table, RegistrationBatches::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_registration_batch_items_batch")
                    .table(RegistrationBatchItems::Table)
                    .col(RegistrationBatchItems::BatchId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_registration_batch_items_job")
                    .table(RegistrationBatchItems::Table)
                    .col(RegistrationBatchItems::JobId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RegistrationBatchItems::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RegistrationBatches::Table).to_owned())
            .await
    }
}
