//! API keys over HTTP and the CLI: who may issue, list and revoke which keys, and the
//! names shown in the audit trail. Key material and hashing are in [`crate::auth`].

use chrono::Utc;
use common::JobKind;
use models::{
    api_key::{self, Role},
    attendance_session, job,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use uuid::Uuid;

use super::{optional_text, required_text};
use crate::{
    auth::{self, CreatedKey},
    error::ServiceError,
};

/// Who is managing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// Every key (an admin key, or the operator's CLI).
    Admin,
    /// The teacher keys of this department; other keys of the department are visible
    /// but not manageable (403), keys of other departments do not exist (404).
    Department(String),
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    /// Required for `department_admin` and `teacher`; must be absent for `admin`.
    pub department: Option<String>,
}

/// A key as named in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub id: Uuid,
    pub name: String,
}

pub async fn create(
    db: &impl ConnectionTrait,
    manager: &Manager,
    new: NewKey,
) -> Result<CreatedKey, ServiceError> {
    let name = required_text("name", &new.name, 200)?;
    let department = optional_text("department", new.department.as_deref(), 200)?;
    match (new.role, &department) {
        (Role::Admin, Some(_)) => {
            return Err(ServiceError::invalid(
                "invalid_field",
                "an admin key has no department",
            ));
        }
        (Role::DepartmentAdmin | Role::Teacher, None) => {
            return Err(ServiceError::invalid(
                "invalid_field",
                "department is required for department_admin and teacher keys",
            ));
        }
        _ => {}
    }
    if let Manager::Department(own) = manager
        && (new.role != Role::Teacher || department.as_deref() != Some(own.as_str()))
    {
        return Err(ServiceError::Forbidden(
            "a department admin may only create teacher keys of its own department".into(),
        ));
    }
    let created = auth::create_key(db, &name, new.role, department.as_deref()).await?;
    tracing::info!(key_id = %created.row.id, role = ?created.row.role, department = ?created.row.department, "created an API key");
    Ok(created)
}

/// Keys the manager may see, oldest first, revoked ones included (with `revoked_at`).
pub async fn list(
    db: &impl ConnectionTrait,
    manager: &Manager,
) -> Result<Vec<api_key::Model>, ServiceError> {
    let mut q = api_key::Entity::find();
    if let Manager::Department(d) = manager {
        q = q.filter(api_key::Column::Department.eq(d.as_str()));
    }
    Ok(q.order_by_asc(api_key::Column::CreatedAt)
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Revokes a key: from the next request on it answers 401. Revoking a revoked key
/// changes nothing. The row stays, so sessions it created still name it.
pub async fn revoke(
    db: &impl ConnectionTrait,
    manager: &Manager,
    id: Uuid,
) -> Result<api_key::Model, ServiceError> {
    let key = api_key::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("key"))?;
    if let Manager::Department(own) = manager {
        if key.department.as_deref() != Some(own.as_str()) {
            return Err(ServiceError::NotFound("key"));
        }
        if key.role != Role::Teacher {
            return Err(ServiceError::Forbidden(
                "a department admin may only revoke teacher keys".into(),
            ));
        }
    }
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    let key = active.update(db).await?;
    tracing::info!(key_id = %key.id, "revoked an API key");
    Ok(key)
}

/// The caller's own key, as it would be listed (`GET /keys/me`): any role may read it.
pub async fn own(db: &impl ConnectionTrait, key_id: Uuid) -> Result<api_key::Model, ServiceError> {
    api_key::Entity::find_by_id(key_id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("API key"))
}

/// The id and name of the key that created something, if it is known.
pub async fn key_ref(
    db: &impl ConnectionTrait,
    id: Option<Uuid>,
) -> Result<Option<KeyRef>, ServiceError> {
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(api_key::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|k| KeyRef {
            id: k.id,
            name: k.name,
        }))
}

/// The key behind a job: for attendance, the key that created the session.
/// Registrations do not record their key yet (`None`).
pub async fn job_creator(
    db: &impl ConnectionTrait,
    job: &job::Model,
) -> Result<Option<KeyRef>, ServiceError> {
    if job.kind != JobKind::Attendance {
        return Ok(None);
    }
    let key_id = attendance_session::Entity::find_by_id(job.subject_id)
        .one(db)
        .await?
        .and_then(|s| s.created_by_key_id);
    key_ref(db, key_id).await
}
