//! Job status.

use models::job;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::error::ServiceError;

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<job::Model, ServiceError> {
    job::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound("job"))
}

/// The newest job working on a student or session.
pub async fn latest_for_subject(
    db: &impl ConnectionTrait,
    subject_id: Uuid,
) -> Result<Option<job::Model>, ServiceError> {
    Ok(job::Entity::find()
        .filter(job::Column::SubjectId.eq(subject_id))
        .order_by_desc(job::Column::CreatedAt)
        .one(db)
        .await?)
}
