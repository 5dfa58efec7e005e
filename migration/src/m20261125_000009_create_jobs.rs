use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Lane,
    Status,
    Progress,
    Attempts,
    Error,
    Result,
    IdempotencyKey,
    SubjectId,
    CreatedAt,
    UpdatedAt,
    PublishedAt,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(pk_uuid(Jobs::Id))
                    .col(string_len(Jobs::Kind, 32))
                    .col(string_len(Jobs::Lane, 16))
                    .col(string_len(Jobs::Status, 16))
                    .col(double(Jobs::Progress).default(0.0))
                    .col(integer(Jobs::Attempts).default(0))
                    .col(text_null(Jobs::Error))
                    .col(json_binary_null(Jobs::Result))
                    .col(string_null(Jobs::IdempotencyKey).unique_key())
                    .col(uuid(Jobs::SubjectId))
                    .col(timestamp_with_time_zone(Jobs::CreatedAt))
                    .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Jobs::PublishedAt))
                    .col(timestamp_with_time_zone_null(Jobs::StartedAt))
                    .col(timestamp_with_time_zone_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        // The outbox relay scans queued jobs by publish time.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_published")
                    .table(Jobs::Table)
                    .col(Jobs::Status)
                    .col(Jobs::PublishedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_subject")
                    .table(Jobs::Table)
                    .col(Jobs::SubjectId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}
