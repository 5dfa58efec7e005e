use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000002_create_students::Students;
use super::m20261125_000005_create_attendance_sessions::AttendanceSessions;
use super::m20261125_000006_create_session_photos::SessionPhotos;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DetectedFaces {
    Table,
    Id,
    SessionId,
    PhotoId,
    FaceIndex,
    FaceBox,
    Landmarks,
    Score,
    CropKey,
    StudentId,
    Distance,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DetectedFaces::Table)
                    .if_not_exists()
                    .col(pk_uuid(DetectedFaces::Id))
                    .col(uuid(DetectedFaces::SessionId))
                    .col(uuid(DetectedFaces::PhotoId))
                    .col(integer(DetectedFaces::FaceIndex))
                    .col(json_binary(DetectedFaces::FaceBox))
                    .col(json_binary(DetectedFaces::Landmarks))
                    .col(double(DetectedFaces::Score))
                    .col(string_null(DetectedFaces::CropKey))
                    .col(uuid_null(DetectedFaces::StudentId))
                    .col(double_null(DetectedFaces::Distance))
                    .col(timestamp_with_time_zone(DetectedFaces::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_detected_faces_session")
                            .from(DetectedFaces::Table, DetectedFaces::SessionId)
                            .to(AttendanceSessions::Table, AttendanceSessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_detected_faces_photo")
                            .from(DetectedFaces::Table, DetectedFaces::PhotoId)
                            .to(SessionPhotos::Table, SessionPhotos::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    // A deleted student's faces stay, as unknown faces.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_detected_faces_student")
                            .from(DetectedFaces::Table, DetectedFaces::StudentId)
                            .to(Students::Table, Students::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_detected_faces_photo_index")
                    .table(DetectedFaces::Table)
                    .col(DetectedFaces::PhotoId)
                    .col(DetectedFaces::FaceIndex)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_detected_faces_session")
                    .table(DetectedFaces::Table)
                    .col(DetectedFaces::SessionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_detected_faces_student")
                    .table(DetectedFaces::Table)
                    .col(DetectedFaces::StudentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DetectedFaces::Table).to_owned())
            .await
    }
}
