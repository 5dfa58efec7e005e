use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000002_create_students::Students;
use super::m20261125_000003_create_student_photos::StudentPhotos;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FaceEmbeddings {
    Table,
    Id,
    PhotoId,
    StudentId,
    Model,
    Vector,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FaceEmbeddings::Table)
                    .if_not_exists()
                    .col(pk_uuid(FaceEmbeddings::Id))
                    .col(uuid(FaceEmbeddings::PhotoId))
                    .col(uuid(FaceEmbeddings::StudentId))
                    .col(string_len(FaceEmbeddings::Model, 64))
                    .col(blob(FaceEmbeddings::Vector))
                    .col(timestamp_with_time_zone(FaceEmbeddings::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_face_embeddings_photo")
                            .from(FaceEmbeddings::Table, FaceEmbeddings::PhotoId)
                            .to(StudentPhotos::Table, StudentPhotos::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_face_embeddings_student")
                            .from(FaceEmbeddings::Table, FaceEmbeddings::StudentId)
                            .to(Students::Table, Students::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_face_embeddings_photo_model")
                    .table(FaceEmbeddings::Table)
                    .col(FaceEmbeddings::PhotoId)
                    .col(FaceEmbeddings::Model)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Gallery loads: all embeddings of a class's students for one model.
        manager
            .create_index(
                Index::create()
                    .name("idx_face_embeddings_student_model")
                    .table(FaceEmbeddings::Table)
                    .col(FaceEmbeddings::StudentId)
                    .col(FaceEmbeddings::Model)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FaceEmbeddings::Table).to_owned())
            .await
    }
}
