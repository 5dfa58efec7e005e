//! What a caller may see: every department (`admin`) or one. Each resource is resolved
//! to the class it belongs to, and a class of another department answers the same
//! [`ServiceError::NotFound`] as a missing one, so that ids of other departments are
//! not revealed. Lists are filtered with [`Scope::class_ids`].

use common::JobKind;
use models::{
    attendance_session, class, detected_face, job, registration_batch,
    student::{self, StudentStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::SelectStatement,
};
use uuid::Uuid;

use crate::error::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every department (an `admin` key, or the operator's CLI).
    All,
    /// Only classes whose `department` is exactly this.
    Department(String),
}

impl Scope {
    /// Whether a class of `department` is visible.
    pub fn sees(&self, department: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Department(d) => d == department,
        }
    }

    /// `SELECT id FROM classes WHERE department = …` for filtering lists by class id;
    /// `None` when everything is visible.
    pub fn class_ids(&self) -> Option<SelectStatement> {
        match self {
            Scope::All => None,
            Scope::Department(d) => Some(
                class::Entity::find()
                    .select_only()
                    .column(class::Column::Id)
                    .filter(class::Column::Department.eq(d.as_str()))
                    .into_query(),
            ),
        }
    }

    /// The class, if it exists and is visible.
    pub async fn class(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<class::Model, ServiceError> {
        class::Entity::find_by_id(id)
            .one(db)
            .await?
            .filter(|c| self.sees(&c.department))
            .ok_or(ServiceError::NotFound("class"))
    }

    /// Fails with `NotFound(what)` unless `class_id` is a visible class.
    async fn through_class(
        &self,
        db: &impl ConnectionTrait,
        class_id: Uuid,
        what: &'static str,
    ) -> Result<(), ServiceError> {
        match self {
            Scope::All => Ok(()),
            Scope::Department(_) => match self.class(db, class_id).await {
                Ok(_) => Ok(()),
                Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound(what)),
                Err(e) => Err(e),
            },
        }
    }

    /// A student, unless deleted: a tombstone (kept for its attendance records) is not
    /// found, to read, change or delete again.
    pub async fn student(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<student::Model, ServiceError> {
        let s = student::Entity::find_by_id(id)
            .one(db)
            .await?
            .filter(|s| s.status != StudentStatus::Deleted)
            .ok_or(ServiceError::NotFound("student"))?;
        self.through_class(db, s.class_id, "student").await?;
        Ok(s)
    }

    pub async fn session(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<attendance_session::Model, ServiceError> {
        let s = attendance_session::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound("session"))?;
        self.through_class(db, s.class_id, "session").await?;
        Ok(s)
    }

    pub async fn face(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<detected_face::Model, ServiceError> {
        let f = detected_face::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound("face"))?;
        match self.session(db, f.session_id).await {
            Ok(_) => Ok(f),
            Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound("face")),
            Err(e) => Err(e),
        }
    }

    /// A job is visible when its subject (student or session) is. A job whose subject
    /// is gone (a deleted student) is visible to admins only.
    pub async fn job(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<job::Model, ServiceError> {
        let j = job::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound("job"))?;
        if *self == Scope::All {
            return Ok(j);
        }
        let class_id = match j.kind {
            JobKind::Attendance => attendance_session::Entity::find_by_id(j.subject_id)
                .one(db)
                .await?
                .map(|s| s.class_id),
            // All about one student: visible to the student's department.
            JobKind::Registration | JobKind::Reembed | JobKind::BulkRegistration => {
                student::Entity::find_by_id(j.subject_id)
                    .one(db)
                    .await?
                    .map(|s| s.class_id)
            }
            // Concerns every department: admins only.
            JobKind::Retention => return Err(ServiceError::NotFound("job")),
            // A batch belongs to a department rather than a class.
            JobKind::RegistrationBatch => {
                let batch = registration_batch::Entity::find_by_id(j.subject_id)
                    .one(db)
                    .await?;
                let visible = batch.is_some_and(|b| b.department.is_some_and(|d| self.sees(&d)));
                return if visible {
                    Ok(j)
                } else {
                    Err(ServiceError::NotFound("job"))
                };
            }
        };
        let class_id = class_id.ok_or(ServiceError::NotFound("job"))?;
        self.through_class(db, class_id, "job").await?;
        Ok(j)
    }
}
