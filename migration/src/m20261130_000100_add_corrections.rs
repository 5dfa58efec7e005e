//! Corrections of a session by a person: who last corrected a record, each detected
//! face's descriptor (so that a face named by hand can be enrolled into the student's
//! gallery), faces named by hand (kept across re-runs), registration photos that came
//! from a session's face, and the audit log of every change.
//!
//! One column per `ALTER TABLE` (SQLite takes one change per statement); the new
//! columns carry no foreign keys (SQLite cannot add one to an existing table). The
//! audit log is a new table, so its session key is a real foreign key.

use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000005_create_attendance_sessions::AttendanceSessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AttendanceRecords {
    Table,
    CorrectedByKeyId,
}

#[derive(DeriveIden)]
enum DetectedFaces {
    Table,
    Descriptor,
    Model,
    AssignedByKeyId,
}

#[derive(DeriveIden)]
enum StudentPhotos {
    Table,
    SourceFaceId,
}

#[derive(DeriveIden)]
enum AttendanceAudit {
    Table,
    Id,
    SessionId,
    KeyId,
    Action,
    StudentId,
    FaceId,
    PreviousStudentId,
    FromStatus,
    ToStatus,
    Enrolled,
    Reason,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns: [(DynIden, ColumnDef); 5] = [
            (
                AttendanceRecords::Table.into_iden(),
                uuid_null(AttendanceRecords::CorrectedByKeyId),
            ),
            (
                DetectedFaces::Table.into_iden(),
                blob_null(DetectedFaces::Descriptor),
            ),
            (
                DetectedFaces::Table.into_iden(),
                string_null(DetectedFaces::Model),
            ),
            (
                DetectedFaces::Table.into_iden(),
                uuid_null(DetectedFaces::AssignedByKeyId),
            ),
            (
                StudentPhotos::Table.into_iden(),
                uuid_null(StudentPhotos::SourceFaceId),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AttendanceAudit::Table)
                    .if_not_exists()
                    .col(pk_uuid(AttendanceAudit::Id))
                    .col(uuid(AttendanceAudit::SessionId))
                    .col(uuid_null(AttendanceAudit::KeyId))
                    .col(string_len(AttendanceAudit::Action, 32))
                    .col(uuid_null(AttendanceAudit::StudentId))
                    .col(uuid_null(AttendanceAudit::FaceId))
                    .col(uuid_null(AttendanceAudit::PreviousStudentId))
                    .col(string_len_null(AttendanceAudit::FromStatus, 16))
                    .col(string_len_null(AttendanceAudit::ToStatus, 16))
                    .col(boolean(AttendanceAudit::Enrolled).default(false))
                    .col(text_null(AttendanceAudit::Reason))
                    .col(timestamp_with_time_zone(AttendanceAudit::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attendance_audit_session")
                            .from(AttendanceAudit::Table, AttendanceAudit::SessionId)
                            .to(AttendanceSessions::Table, AttendanceSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attendance_audit_session")
                    .table(AttendanceAudit::Table)
                    .col(AttendanceAudit::SessionId)
                    .col(AttendanceAudit::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AttendanceAudit::Table).to_owned())
            .await?;
        let columns: [(DynIden, DynIden); 5] = [
            (
                StudentPhotos::Table.into_iden(),
                StudentPhotos::SourceFaceId.into_iden(),
            ),
            (
                DetectedFaces::Table.into_iden(),
                DetectedFaces::AssignedByKeyId.into_iden(),
            ),
            (
                DetectedFaces::Table.into_iden(),
                DetectedFaces::Model.into_iden(),
            ),
            (
                DetectedFaces::Table.into_iden(),
                DetectedFaces::Descriptor.into_iden(),
            ),
            (
                AttendanceRecords::Table.into_iden(),
                AttendanceRecords::CorrectedByKeyId.into_iden(),
            ),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
