//! `consent_entries`: every consent to the processing of a student's face data given or
//! withdrawn, with who recorded it and when. The latest entry is in force.

use sea_orm::{QueryOrder, entity::prelude::*};
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    #[sea_orm(string_value = "given")]
    Given,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
}

/// Where the entry came from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// A registration or withdrawal through the HTTP API.
    #[sea_orm(string_value = "api")]
    Api,
    /// A line of a registration batch's `students.csv`.
    #[sea_orm(string_value = "batch")]
    Batch,
    /// The command-line import (`attendance-api import`).
    #[sea_orm(string_value = "cli")]
    Cli,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "consent_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub student_id: Uuid,
    pub action: ConsentAction,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    /// The API key that recorded it; `None` for the command-line import.
    pub recorded_by_key_id: Option<Uuid>,
    pub source: ConsentSource,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::student::Entity",
        from = "Column::StudentId",
        to = "super::student::Column::Id",
        on_delete = "Cascade"
    )]
    Student,
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// The longest note kept with an entry, in characters.
pub const NOTE_MAX_CHARS: usize = 500;

/// The student's latest entry, which is the consent in force (`None`: never recorded).
pub async fn in_force<C: ConnectionTrait>(
    db: &C,
    student_id: Uuid,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::StudentId.eq(student_id))
        .order_by_desc(Column::CreatedAt)
        .one(db)
        .await
}

/// Every entry of the student, oldest first.
pub async fn history<C: ConnectionTrait>(db: &C, student_id: Uuid) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::StudentId.eq(student_id))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}
