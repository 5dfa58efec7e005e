//! Job status, and a stream of its changes.

use std::time::Duration;

use futures::Stream;
use models::job;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
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

/// How often [`watch`] reads the job row. Workers write status and progress to the row
/// (from any process), so reading it is what makes the stream work across processes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// The job's row now and then each time its status, progress, attempts or error change,
/// read every `interval`; ends after a terminal row (succeeded or failed), or when the
/// row is gone or cannot be read (logged; the client may reconnect).
pub fn watch(
    db: DatabaseConnection,
    current: job::Model,
    interval: Duration,
) -> impl Stream<Item = job::Model> + Send + 'static {
    struct Watch {
        db: DatabaseConnection,
        next: Option<job::Model>,
        last: Option<job::Model>,
    }
    let start = Watch {
        db,
        next: Some(current),
        last: None,
    };
    futures::stream::unfold(start, move |mut w| async move {
        if w.last.as_ref().is_some_and(|j| j.status.is_terminal()) {
            return None;
        }
        if let Some(row) = w.next.take() {
            w.last = Some(row.clone());
            return Some((row, w));
        }
        let id = w.last.as_ref()?.id;
        loop {
            tokio::time::sleep(interval).await;
            match job::Entity::find_by_id(id).one(&w.db).await {
                Ok(Some(row)) if w.last.as_ref().is_none_or(|last| changed(last, &row)) => {
                    w.last = Some(row.clone());
                    return Some((row, w));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!(job_id = %id, "job row gone; ending its event stream");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(job_id = %id, error = %e, "could not read the job; ending its event stream");
                    return None;
                }
            }
        }
    })
}

/// Whether a client would see a difference (`updated_at` alone is not one).
fn changed(last: &job::Model, now: &job::Model) -> bool {
    last.status != now.status
        || last.progress != now.progress
        || last.attempts != now.attempts
        || last.error != now.error
}
