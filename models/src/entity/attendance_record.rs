//! `attendance_records`: present/absent/unmatched for each student of a session;
//! `(session_id, student_id)` is unique.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    #[sea_orm(string_value = "present")]
    Present,
    #[sea_orm(string_value = "absent")]
    Absent,
    /// Could not be decided: the student has no embedding of the face model in use yet
    /// (re-embedding after a model switch is pending, or no registration photo suits
    /// that model). Neither present nor absent until a person or a re-run decides.
    #[sea_orm(string_value = "unmatched")]
    Unmatched,
}

/// Who decided the status: the matcher (`auto`) or a person (`manual`). A re-run
/// job must not overwrite `manual` records.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    #[sea_orm(string_value = "auto")]
    Auto,
    #[sea_orm(string_value = "manual")]
    Manual,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "attendance_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub student_id: Uuid,
    pub status: RecordStatus,
    pub distance: Option<f64>,
    pub source: RecordSource,
    pub updated_at: DateTimeUtc,
    /// The API key that last corrected the record by hand (`source = manual`); the
    /// whole history is in `attendance_audit`.
    pub corrected_by_key_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::attendance_session::Entity",
        from = "Column::SessionId",
        to = "super::attendance_session::Column::Id",
        on_delete = "Cascade"
    )]
    AttendanceSession,
    #[sea_orm(
        belongs_to = "super::student::Entity",
        from = "Column::StudentId",
        to = "super::student::Column::Id",
        on_delete = "Cascade"
    )]
    Student,
}

impl Related<super::attendance_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceSession.def()
    }
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
