//! `student_photos`: a registration photo kept in the blob store under `blob_key`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Outcome of checking a registration photo: `pending` until the registration job
/// ran, then `accepted` (exactly one usable face, embedded) or `rejected` (see `reason`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum PhotoVerdict {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "student_photos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub student_id: Uuid,
    pub blob_key: String,
    pub content_type: String,
    pub verdict: PhotoVerdict,
    /// Why the photo was rejected (no face, several faces, too small...).
    pub reason: Option<String>,
    /// Detected face, a [`super::detected_face::FaceBox`] as JSON.
    pub face_box: Option<Json>,
    pub detector_score: Option<f64>,
    pub created_at: DateTimeUtc,
    /// Set when the photo is the crop of a session's detected face enrolled by hand
    /// (`POST /attendance/session/{id}/faces/{face_id}/assign?enroll=true`); its
    /// embedding was copied from the face, and registration jobs leave it alone.
    pub source_face_id: Option<Uuid>,
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
    #[sea_orm(has_many = "super::face_embedding::Entity")]
    FaceEmbedding,
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl Related<super::face_embedding::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FaceEmbedding.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl ActiveModel {
    /// A newly uploaded photo, not yet judged (its registration job decides).
    pub fn pending(
        id: Uuid,
        student_id: Uuid,
        blob_key: String,
        content_type: &str,
        created_at: DateTimeUtc,
    ) -> ActiveModel {
        use sea_orm::ActiveValue::Set;
        ActiveModel {
            id: Set(id),
            student_id: Set(student_id),
            blob_key: Set(blob_key),
            content_type: Set(content_type.to_string()),
            verdict: Set(PhotoVerdict::Pending),
            reason: Set(None),
            face_box: Set(None),
            detector_score: Set(None),
            created_at: Set(created_at),
            source_face_id: Set(None),
        }
    }
}
