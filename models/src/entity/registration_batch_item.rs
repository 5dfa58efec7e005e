//! `registration_batch_items`: the outcome of one student of a batch, or of one ZIP
//! entry or manifest line that was refused (with the reason).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// The student's registration job is queued or running.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Registered: at least one photo was accepted.
    #[sea_orm(string_value = "active")]
    Active,
    /// The registration ran but no photo was usable, or the job failed.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// An entry or manifest line refused before registration (`reason` says why).
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// The roll number appeared earlier in the same batch; this occurrence was ignored.
    #[sea_orm(string_value = "duplicate")]
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "registration_batch_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub batch_id: Uuid,
    pub roll_no: Option<String>,
    pub name: Option<String>,
    pub class_id: Option<Uuid>,
    /// The ZIP entry (or manifest line) a rejection is about.
    pub entry: Option<String>,
    pub student_id: Option<Uuid>,
    /// The student's registration job (bulk lane).
    pub job_id: Option<Uuid>,
    pub status: ItemStatus,
    pub reason: Option<String>,
    /// The roll number was already registered: the student was updated, not duplicated.
    pub updated: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::registration_batch::Entity",
        from = "Column::BatchId",
        to = "super::registration_batch::Column::Id",
        on_delete = "Cascade"
    )]
    Batch,
}

impl Related<super::registration_batch::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Batch.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
