//! `face_embeddings`: the descriptor of one registration photo for one model.
//! `(photo_id, model)` is unique so that re-running a registration job replaces,
//! never duplicates, a photo's embedding.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "face_embeddings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub photo_id: Uuid,
    pub student_id: Uuid,
    /// Name of the embedding model; a gallery only compares one model's vectors.
    pub model: String,
    /// f32 little endian, see [`crate::vector`].
    #[sea_orm(column_type = "Blob")]
    pub vector: Vec<u8>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::student_photo::Entity",
        from = "Column::PhotoId",
        to = "super::student_photo::Column::Id",
        on_delete = "Cascade"
    )]
    StudentPhoto,
    #[sea_orm(
        belongs_to = "super::student::Entity",
        from = "Column::StudentId",
        to = "super::student::Column::Id",
        on_delete = "Cascade"
    )]
    Student,
}

impl Related<super::student_photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StudentPhoto.def()
    }
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
