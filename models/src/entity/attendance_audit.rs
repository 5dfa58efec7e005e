//! `attendance_audit`: every change a person made to a session (a record corrected, a
//! face named), with the key that made it, when, and why. Append-only.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::attendance_record::RecordStatus;

/// What was changed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A student's record set by hand (`from_status` → `to_status`).
    #[sea_orm(string_value = "record_corrected")]
    RecordCorrected,
    /// A detected face named as `student_id` (it was `previous_student_id`, or
    /// unknown); `enrolled` when its descriptor joined the student's gallery.
    #[sea_orm(string_value = "face_assigned")]
    FaceAssigned,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "attendance_audit")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// The API key that made the change.
    pub key_id: Option<Uuid>,
    pub action: AuditAction,
    pub student_id: Option<Uuid>,
    pub face_id: Option<Uuid>,
    pub previous_student_id: Option<Uuid>,
    /// The record's status before (`None`: there was no record).
    pub from_status: Option<RecordStatus>,
    pub to_status: Option<RecordStatus>,
    pub enrolled: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
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
}

impl Related<super::attendance_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
