//! The events the worker raises, queued with [`models::webhook_events::enqueue_event`]
//! inside the transaction that finishes the job.

use chrono::{DateTime, Utc};
use common::JobKind;
use common::job::result::AttendanceResult;
use models::webhook_events::{WebhookEvent, enqueue_event};
use models::{attendance_session, class, job, registration_batch, student};

use crate::jobs::batch_completion::BatchCompleted;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use serde_json::json;
use uuid::Uuid;

/// What `attendance.session.completed` says about the session besides the counts.
pub struct CompletedSession<'a> {
    pub session_id: Uuid,
    pub job_id: Uuid,
    pub class: Option<&'a class::Model>,
    pub subject: Option<&'a str>,
    pub taken_at: DateTime<Utc>,
    /// Provenance warnings (a photo used before, `taken_at` far from the EXIF time).
    pub warnings: Vec<common::SessionWarning>,
}

/// `attendance.session.completed`, to the subscriptions of the class's department and
/// the admins'. One per attendance job (a re-mark is a new job, so a new event).
pub async fn session_completed(
    db: &impl ConnectionTrait,
    public_url: &str,
    session: CompletedSession<'_>,
    result: &AttendanceResult,
) -> Result<(), DbErr> {
    let data = json!({
        "session_id": session.session_id,
        "job_id": session.job_id,
        "class": session.class.map(|c| json!({
            "id": c.id,
            "name": c.name,
            "department": c.department,
        })),
        "subject": session.subject,
        "taken_at": session.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "present": result.present,
        "absent": result.absent,
        "unknown": result.unknown,
        "unmatched": result.unmatched,
        "warnings": session.warnings,
        "url": format!("{public_url}/attendance/session/{}", session.session_id),
    });
    enqueue_event(
        db,
        WebhookEvent::AttendanceSessionCompleted,
        session.class.map(|c| c.department.as_str()),
        &format!("job:{}", session.job_id),
        &data,
    )
    .await?;
    Ok(())
}

/// `registration.batch.completed`, to the subscriptions of the batch's department and
/// the admins'. One per batch: it completes once.
pub async fn batch_completed(
    db: &impl ConnectionTrait,
    public_url: &str,
    batch: &BatchCompleted,
) -> Result<(), DbErr> {
    let department = match (&batch.department, batch.class_id) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(class_id)) => class::Entity::find_by_id(class_id)
            .one(db)
            .await?
            .map(|c| c.department),
        (None, None) => None,
    };
    let data = json!({
        "batch_id": batch.batch_id,
        "class_id": batch.class_id,
        "department": department,
        "counts": batch.counts,
        "url": format!("{public_url}/students/batches/{}", batch.batch_id),
        "report_url": format!("{public_url}{}", batch.report_url),
    });
    enqueue_event(
        db,
        WebhookEvent::RegistrationBatchCompleted,
        department.as_deref(),
        &format!("batch:{}", batch.batch_id),
        &data,
    )
    .await?;
    Ok(())
}

/// `job.failed`, to the subscriptions of the department of the job's subject (the
/// session's or student's class) and the admins'; a job whose subject is gone goes to
/// the admins' only.
pub async fn job_failed(
    db: &impl ConnectionTrait,
    public_url: &str,
    job: &job::Model,
    error: &str,
) -> Result<(), DbErr> {
    let department = job_department(db, job.kind, job.subject_id).await?;
    let data = json!({
        "job_id": job.id,
        "kind": job.kind.to_string(),
        "subject_id": job.subject_id,
        "error": error,
        "failed_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "url": format!("{public_url}/jobs/{}", job.id),
    });
    enqueue_event(
        db,
        WebhookEvent::JobFailed,
        department.as_deref(),
        &format!("job:{}", job.id),
        &data,
    )
    .await?;
    Ok(())
}

/// The department a job belongs to: its subject's class's.
pub async fn job_department(
    db: &impl ConnectionTrait,
    kind: JobKind,
    subject_id: Uuid,
) -> Result<Option<String>, DbErr> {
    let class_id = match kind {
        JobKind::Attendance => attendance_session::Entity::find_by_id(subject_id)
            .one(db)
            .await?
            .map(|s| s.class_id),
        JobKind::Registration | JobKind::Reembed | JobKind::BulkRegistration => {
            student::Entity::find_by_id(subject_id)
                .one(db)
                .await?
                .map(|s| s.class_id)
        }
        JobKind::RegistrationBatch => {
            let Some(batch) = registration_batch::Entity::find_by_id(subject_id)
                .one(db)
                .await?
            else {
                return Ok(None);
            };
            if batch.department.is_some() {
                return Ok(batch.department);
            }
            batch.class_id
        }
        // Concerns every department: the admins' subscriptions only.
        JobKind::Retention => return Ok(None),
    };
    let Some(class_id) = class_id else {
        return Ok(None);
    };
    Ok(class::Entity::find_by_id(class_id)
        .one(db)
        .await?
        .map(|c| c.department))
}
