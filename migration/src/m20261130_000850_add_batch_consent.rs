//! Consent in registration batches: what the worker needs to record each student's
//! consent when it unpacks the batch, fixed when the batch was uploaded.
//! - `uploaded_by_key_id`: the API key that uploaded it (`None` for the command-line
//!   import), recorded as who gave each consent entry.
//! - `consent_source`: `batch` (`POST /students/batches`) or `cli` (`attendance-api
//!   import`), the entries' source.
//! - `require_consent`: `REQUIRE_CONSENT` when it was uploaded: a student without
//!   consent is refused.
//! - `consent_for_all`, `consent_note`: consent for every student whose line does not
//!   say otherwise (the import's `--consent`), with its note.
//!
//! One column per `ALTER TABLE` (SQLite).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistrationBatches {
    Table,
    UploadedByKeyId,
    ConsentSource,
    RequireConsent,
    ConsentForAll,
    ConsentNote,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            uuid_null(RegistrationBatches::UploadedByKeyId),
            string_len(RegistrationBatches::ConsentSource, 16)
                .default("batch")
                .to_owned(),
            boolean(RegistrationBatches::RequireConsent)
                .default(false)
                .to_owned(),
            boolean(RegistrationBatches::ConsentForAll)
                .default(false)
                .to_owned(),
            text_null(RegistrationBatches::ConsentNote),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RegistrationBatches::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            RegistrationBatches::ConsentNote,
            RegistrationBatches::ConsentForAll,
            RegistrationBatches::RequireConsent,
            RegistrationBatches::ConsentSource,
            RegistrationBatches::UploadedByKeyId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RegistrationBatches::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
