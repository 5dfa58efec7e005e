//! `attendance_sessions`: one lecture's attendance, taken from 1–5 photos.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "attendance_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub class_id: Uuid,
    pub subject: Option<String>,
    /// When the lecture took place (given by the teacher, defaults to upload time).
    pub taken_at: DateTimeUtc,
    pub status: SessionStatus,
    pub created_at: DateTimeUtc,
    /// The API key that took this attendance (audit); `None` for sessions from before
    /// keys were recorded. Keys are revoked, never deleted, so the id stays resolvable.
    pub created_by_key_id: Option<Uuid>,
    /// Provenance warnings (a JSON list of `common::SessionWarning`); read them with
    /// [`Model::warnings`].
    pub warnings: Option<Json>,
    /// When retention deleted the session's photos and its unmatched face crops
    /// (`RETENTION_DAYS`); the records stay.
    pub photos_deleted_at: Option<DateTimeUtc>,
}

impl Model {
    /// The session's provenance warnings (empty when there are none).
    pub fn warnings(&self) -> Vec<common::SessionWarning> {
        common::SessionWarning::from_stored(self.warnings.as_ref())
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::class::Entity",
        from = "Column::ClassId",
        to = "super::class::Column::Id"
    )]
    Class,
    #[sea_orm(has_many = "super::session_photo::Entity")]
    SessionPhoto,
    #[sea_orm(has_many = "super::detected_face::Entity")]
    DetectedFace,
    #[sea_orm(has_many = "super::attendance_record::Entity")]
    AttendanceRecord,
}

impl Related<super::class::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Class.def()
    }
}

impl Related<super::session_photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionPhoto.def()
    }
}

impl Related<super::detected_face::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::DetectedFace.def()
    }
}

impl Related<super::attendance_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceRecord.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
