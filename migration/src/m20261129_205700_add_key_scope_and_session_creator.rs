//! Keys confined to a department (`department`), a cheap `last_used_at`, and the key
//! that created each attendance session (`created_by_key_id`, for the audit trail).
//! One column per `ALTER TABLE`: SQLite accepts only one change per statement. No
//! foreign key on `created_by_key_id` (SQLite cannot add one to an existing table);
//! keys are revoked, never deleted, so the id stays resolvable.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Department,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AttendanceSessions {
    Table,
    CreatedByKeyId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(string_null(ApiKeys::Department))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .add_column(uuid_null(AttendanceSessions::CreatedByKeyId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .drop_column(AttendanceSessions::CreatedByKeyId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::LastUsedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::Department)
                    .to_owned(),
            )
            .await
    }
}
