use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Classes {
    Table,
    Id,
    Name,
    Department,
    Year,
    Section,
    MatchThreshold,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Classes::Table)
                    .if_not_exists()
                    .col(pk_uuid(Classes::Id))
                    .col(string(Classes::Name))
                    .col(string(Classes::Department))
                    .col(integer_null(Classes::Year))
                    .col(string_null(Classes::Section))
                    .col(double_null(Classes::MatchThreshold))
                    .col(timestamp_with_time_zone(Classes::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_classes_name")
                    .table(Classes::Table)
                    .col(Classes::Name)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Classes::Table).to_owned())
            .await
    }
}
