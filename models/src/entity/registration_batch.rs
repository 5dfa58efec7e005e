//! `registration_batches`: one bulk registration upload (a ZIP in the blob store) and
//! where its unpacking stands; per-student outcomes are `registration_batch_items`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::consent_entry::ConsentSource;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Uploaded; the unpacking job has not run yet.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Unpacked; registrations of its students are queued or running.
    #[sea_orm(string_value = "processing")]
    Processing,
    /// Every student's registration has finished (whatever its outcome).
    #[sea_orm(string_value = "completed")]
    Completed,
    /// The archive as a whole could not be used (unreadable, over the size limit).
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "registration_batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The default class of the batch's students (`students.csv` may name others).
    pub class_id: Option<Uuid>,
    /// The department the batch belongs to (the uploader's, or the default class's);
    /// `None` for an admin's batch without a default class.
    pub department: Option<String>,
    pub blob_key: String,
    pub size_bytes: i64,
    /// The uncompressed-size limit in force when it was uploaded.
    pub max_uncompressed_bytes: i64,
    pub status: BatchStatus,
    /// Why the archive as a whole was refused.
    pub error: Option<String>,
    /// The unpacking job.
    pub job_id: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// The API key that uploaded the batch; `None` for the command-line import.
    pub uploaded_by_key_id: Option<Uuid>,
    /// The source of the consent entries the batch records: `batch` or `cli`.
    pub consent_source: ConsentSource,
    /// `REQUIRE_CONSENT` when the batch was uploaded: a student without consent (in
    /// their `students.csv` line, or already in force) is refused.
    pub require_consent: bool,
    /// Consent for every student whose line does not say otherwise (the import's
    /// `--consent`).
    pub consent_for_all: bool,
    /// The note of `consent_for_all`.
    #[sea_orm(column_type = "Text", nullable)]
    pub consent_note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::registration_batch_item::Entity")]
    Item,
}

impl Related<super::registration_batch_item::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Item.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
