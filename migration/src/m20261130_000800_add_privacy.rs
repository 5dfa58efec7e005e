//! Privacy of biometric data:
//! - `students.erased_at`: when the student's biometric data (photos, embeddings, face
//!   crops and descriptors) was erased, by a delete or a withdrawal of consent. A
//!   deleted student stays as a tombstone (`status = 'deleted'`) while their attendance
//!   records are kept as academic records, so the roll number is unique only among the
//!   students that are not deleted (a partial index, which SQLite and PostgreSQL share).
//! - `consent_entries`: every consent given or withdrawn, with who recorded it and when.
//! - `attendance_sessions.photos_deleted_at`: when retention deleted the session's
//!   photos (and its unmatched face crops).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Students {
    Table,
    Id,
    ErasedAt,
}

#[derive(DeriveIden)]
enum AttendanceSessions {
    Table,
    PhotosDeletedAt,
}

#[derive(DeriveIden)]
pub enum ConsentEntries {
    Table,
    Id,
    StudentId,
    /// `given` or `withdrawn`.
    Action,
    Note,
    /// The API key that recorded it; `None` for the command-line import.
    RecordedByKeyId,
    /// `api`, `batch` or `cli`.
    Source,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Students::Table)
                    .add_column(timestamp_with_time_zone_null(Students::ErasedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .add_column(timestamp_with_time_zone_null(
                        AttendanceSessions::PhotosDeletedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsentEntries::Table)
                    .if_not_exists()
                    .col(pk_uuid(ConsentEntries::Id))
                    .col(uuid(ConsentEntries::StudentId))
                    .col(string_len(ConsentEntries::Action, 16))
                    .col(text_null(ConsentEntries::Note))
                    .col(uuid_null(ConsentEntries::RecordedByKeyId))
                    .col(string_len(ConsentEntries::Source, 16))
                    .col(timestamp_with_time_zone(ConsentEntries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_consent_entries_student")
                            .from(ConsentEntries::Table, ConsentEntries::StudentId)
                            .to(Students::Table, Students::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_consent_entries_student")
                    .table(ConsentEntries::Table)
                    .col(ConsentEntries::StudentId)
                    .col(ConsentEntries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // A deleted student's roll number can be registered again; both databases
        // accept this statement as written.
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_students_class_roll")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_students_class_roll ON students (class_id, roll_no) \
             WHERE status <> 'deleted'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM students WHERE status = 'deleted'")
            .await?;
        db.execute_unprepared("DROP INDEX uq_students_class_roll")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_students_class_roll ON students (class_id, roll_no)",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(ConsentEntries::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AttendanceSessions::Table)
                    .drop_column(AttendanceSessions::PhotosDeletedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Students::Table)
                    .drop_column(Students::ErasedAt)
                    .to_owned(),
            )
            .await
    }
}
