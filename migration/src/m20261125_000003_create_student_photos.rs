use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000002_create_students::Students;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum StudentPhotos {
    Table,
    Id,
    StudentId,
    BlobKey,
    ContentType,
    Verdict,
    Reason,
    FaceBox,
    DetectorScore,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StudentPhotos::Table)
                    .if_not_exists()
                    .col(pk_uuid(StudentPhotos::Id))
                    .col(uuid(StudentPhotos::StudentId))
                    .col(string(StudentPhotos::BlobKey))
                    .col(string_len(StudentPhotos::ContentType, 64))
                    .col(string_len(StudentPhotos::Verdict, 16))
                    .col(text_null(StudentPhotos::Reason))
                    .col(json_binary_null(StudentPhotos::FaceBox))
                    .col(double_null(StudentPhotos::DetectorScore))
                    .col(timestamp_with_time_zone(StudentPhotos::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_student_photos_student")
                            .from(StudentPhotos::Table, StudentPhotos::StudentId)
                            .to(Students::Table, Students::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_student_photos_student")
                    .table(StudentPhotos::Table)
                    .col(StudentPhotos::StudentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StudentPhotos::Table).to_owned())
            .await
    }
}
