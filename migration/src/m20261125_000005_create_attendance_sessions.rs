use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000001_create_classes::Classes;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum AttendanceSessions {
    Table,
    Id,
    ClassId,
    Subject,
    TakenAt,
    Status,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AttendanceSessions::Table)
                    .if_not_exists()
                    .col(pk_uuid(AttendanceSessions::Id))
                    .col(uuid(AttendanceSessions::ClassId))
                    .col(string_null(AttendanceSessions::Subject))
                    .col(timestamp_with_time_zone(AttendanceSessions::TakenAt))
                    .col(string_len(AttendanceSessions::Status, 16))
                    .col(timestamp_with_time_zone(AttendanceSessions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attendance_sessions_class")
                            .from(AttendanceSessions::Table, AttendanceSessions::ClassId)
                            .to(Classes::Table, Classes::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Session lists and exports: by class within a date range.
        manager
            .create_index(
                Index::create()
                    .name("idx_attendance_sessions_class_taken")
                    .table(AttendanceSessions::Table)
                    .col(AttendanceSessions::ClassId)
                    .col(AttendanceSessions::TakenAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AttendanceSessions::Table).to_owned())
            .await
    }
}
