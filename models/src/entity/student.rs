//! `students`: one registered student of a class; `(class_id, roll_no)` is unique among
//! the students that are not deleted.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Lifecycle of a student: `pending` until the registration job has embedded the
/// photos, then `active` (matched in sessions) or `failed` (no usable face);
/// `inactive` is set by an admin and excludes the student from matching.
/// `withdrawn`: the student withdrew consent; their biometric data was erased and they
/// are not recognised (recorded absent unless corrected) until they register again.
/// `deleted`: a tombstone kept for the attendance records (academic records) after the
/// student was deleted without `purge`; it holds no biometric data and is hidden from
/// every listing.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum StudentStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "inactive")]
    Inactive,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
    #[sea_orm(string_value = "deleted")]
    Deleted,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "students")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub class_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub status: StudentStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When the student's biometric data was erased (delete or consent withdrawn).
    pub erased_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::class::Entity",
        from = "Column::ClassId",
        to = "super::class::Column::Id"
    )]
    Class,
    #[sea_orm(has_many = "super::student_photo::Entity")]
    StudentPhoto,
    #[sea_orm(has_many = "super::face_embedding::Entity")]
    FaceEmbedding,
    #[sea_orm(has_many = "super::attendance_record::Entity")]
    AttendanceRecord,
    #[sea_orm(has_many = "super::consent_entry::Entity")]
    ConsentEntry,
}

impl Related<super::class::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Class.def()
    }
}

impl Related<super::student_photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StudentPhoto.def()
    }
}

impl Related<super::face_embedding::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FaceEmbedding.def()
    }
}

impl Related<super::attendance_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceRecord.def()
    }
}

impl Related<super::consent_entry::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ConsentEntry.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
