use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000005_create_attendance_sessions::AttendanceSessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum SessionPhotos {
    Table,
    Id,
    SessionId,
    BlobKey,
    ContentType,
    Width,
    Height,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionPhotos::Table)
                    .if_not_exists()
                    .col(pk_uuid(SessionPhotos::Id))
                    .col(uuid(SessionPhotos::SessionId))
                    .col(string(SessionPhotos::BlobKey))
                    .col(string_len(SessionPhotos::ContentType, 64))
                    .col(integer_null(SessionPhotos::Width))
                    .col(integer_null(SessionPhotos::Height))
                    .col(timestamp_with_time_zone(SessionPhotos::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_session_photos_session")
                            .from(SessionPhotos::Table, SessionPhotos::SessionId)
                            .to(AttendanceSessions::Table, AttendanceSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_photos_session")
                    .table(SessionPhotos::Table)
                    .col(SessionPhotos::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SessionPhotos::Table).to_owned())
            .await
    }
}
