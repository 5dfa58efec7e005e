//! `detected_faces`: every face found in a session photo, matched or not.
//! `(photo_id, face_index)` is unique so that a re-run job rewrites the same rows.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// JSON shape of `face_box` (here and in `student_photos.face_box`): corners in
/// image pixels, `x1 < x2`, `y1 < y2`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// JSON shape of `landmarks`: five `[x, y]` points in image pixels, in MTCNN order
/// (left eye, right eye, nose, left mouth corner, right mouth corner).
pub type Landmarks = [[f32; 2]; 5];

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "detected_faces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub photo_id: Uuid,
    /// Position of the face in the detector's output for this photo.
    pub face_index: i32,
    /// A [`FaceBox`] as JSON.
    pub face_box: Json,
    /// [`Landmarks`] as JSON.
    pub landmarks: Json,
    pub score: f64,
    /// Blob key of the cropped face, served by `GET /faces/{id}/crop`.
    pub crop_key: Option<String>,
    /// The matched student; `None` = unknown face.
    pub student_id: Option<Uuid>,
    /// Descriptor distance to the matched student (or to the nearest one if unknown).
    pub distance: Option<f64>,
    pub created_at: DateTimeUtc,
    /// The face's descriptor (f32 little endian, see [`crate::vector`]), so that a
    /// face named by hand can be enrolled into the student's gallery; `None` for faces
    /// detected before descriptors were kept.
    #[sea_orm(column_type = "Blob", nullable)]
    pub descriptor: Option<Vec<u8>>,
    /// The embedding model of `descriptor`.
    pub model: Option<String>,
    /// The API key that named the student behind this face by hand; such a face keeps
    /// its `student_id` when the session is processed again.
    pub assigned_by_key_id: Option<Uuid>,
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
        belongs_to = "super::session_photo::Entity",
        from = "Column::PhotoId",
        to = "super::session_photo::Column::Id",
        on_delete = "Cascade"
    )]
    SessionPhoto,
    #[sea_orm(
        belongs_to = "super::student::Entity",
        from = "Column::StudentId",
        to = "super::student::Column::Id",
        on_delete = "SetNull"
    )]
    Student,
}

impl Related<super::attendance_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AttendanceSession.def()
    }
}

impl Related<super::session_photo::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionPhoto.def()
    }
}

impl Related<super::student::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
