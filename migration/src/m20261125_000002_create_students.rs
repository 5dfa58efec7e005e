use sea_orm_migration::{prelude::*, schema::*};

use super::m20261125_000001_create_classes::Classes;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Students {
    Table,
    Id,
    ClassId,
    RollNo,
    Name,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Students::Table)
                    .if_not_exists()
                    .col(pk_uuid(Students::Id))
                    .col(uuid(Students::ClassId))
                    .col(string(Students::RollNo))
                    .col(string(Students::Name))
                    .col(string_len(Students::Status, 16))
                    .col(timestamp_with_time_zone(Students::CreatedAt))
                    .col(timestamp_with_time_zone(Students::UpdatedAt))
                    // A class with students cannot be deleted by accident.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_students_class")
                            .from(Students::Table, Students::ClassId)
                            .to(Classes::Table, Classes::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_students_class_roll")
                    .table(Students::Table)
                    .col(Students::ClassId)
                    .col(Students::RollNo)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_students_class_status")
                    .table(Students::Table)
                    .col(Students::ClassId)
                    .col(Students::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Students::Table).to_owned())
            .await
    }
}
