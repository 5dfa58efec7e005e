//! `session_photos`: a classroom photo of a session, kept in the blob store.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "session_photos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub blob_key: String,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: DateTimeUtc,
    /// SHA-256 of the photo's bytes (hex); `None` for photos from before it was kept.
    pub sha256: Option<String>,
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
    #[sea_orm(has_many = "super::detected_face::Entity")]
    DetectedFace,
}

impl Related<super::attendance_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceSession.def()
    }
}

impl Related<super::detected_face::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::DetectedFace.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
