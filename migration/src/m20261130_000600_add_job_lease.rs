//! Job claims: `lease_until` (until when the runner that claimed a `running` job holds
//! it; renewed while it runs, so an expired lease means the runner died) and
//! `interrupted_runs` (runs that ended with the runner's death, not with an error: a
//! photo that kills the worker is failed after `JOB_MAX_ATTEMPTS` such runs). One column
//! per `ALTER TABLE` (SQLite).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    LeaseUntil,
    InterruptedRuns,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(integer(Jobs::InterruptedRuns).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::InterruptedRuns)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::LeaseUntil)
                    .to_owned(),
            )
            .await
    }
}
