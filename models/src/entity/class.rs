//! `classes`: a group of students that attendance is taken for.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "classes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub department: String,
    pub year: Option<i32>,
    pub section: Option<String>,
    /// Per-class override of the match distance threshold; `None` = engine default.
    pub match_threshold: Option<f64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::student::Entity")]
    Student,
    #[sea_orm(has_many = "super::attendance_session::Entity")]
    AttendanceSession,
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl Related<super::attendance_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
