use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000002_create_students::Students;
use super::m20261125_000005_create_attendance_sessions::AttendanceSessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AttendanceRecords {
    Table,
    Id,
    SessionId,
    StudentId,
    Status,
    Distance,
    Source,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AttendanceRecords::Table)
                    .if_not_exists()
                    .col(pk_uuid(AttendanceRecords::Id))
                    .col(uuid(AttendanceRecords::SessionId))
                    .col(uuid(AttendanceRecords::StudentId))
                    .col(string_len(AttendanceRecords::Status, 16))
                    .col(double_null(AttendanceRecords::Distance))
                    .col(string_len(AttendanceRecords::Source, 16))
                    .col(timestamp_with_time_zone(AttendanceRecords::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attendance_records_session")
                            .from(AttendanceRecords::Table, AttendanceRecords::SessionId)
                            .to(AttendanceSessions::Table, AttendanceSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attendance_records_student")
                            .from(AttendanceRecords::Table, AttendanceRecords::StudentId)
                            .to(Students::Table, Students::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_attendance_records_session_student")
                    .table(AttendanceRecords::Table)
                    .col(AttendanceRecords::SessionId)
                    .col(AttendanceRecords::StudentId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Per-student history (analytics, student deletion).
        manager
            .create_index(
                Index::create()
                    .name("idx_attendance_records_student")
                    .table(AttendanceRecords::Table)
                    .col(AttendanceRecords::StudentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AttendanceRecords::Table).to_owned())
            .await
    }
}
