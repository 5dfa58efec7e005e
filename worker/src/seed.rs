//! Rows and photos inserted the way the API inserts them (a class, `pending` students
//! with stored photos, `pending` sessions, `queued` jobs), for the throughput benchmark
//! and the job tests, which then run the worker on them as it runs on uploads.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use common::{BlobStore, JobKind};
use migration::{Migrator, MigratorTrait};
use models::prelude::*;
use models::{attendance_session, class, job, session_photo, student, student_photo};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("blob store error")]
    Blob(#[from] common::BlobError),
    #[error("could not open {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<crate::service::ServiceError>,
    },
}

/// Opens `url` and applies the migrations, as the API does at its start (the worker
/// itself never migrates).
pub async fn migrated(url: &str) -> Result<DatabaseConnection, SeedError> {
    let db = crate::service::connect_database(url)
        .await
        .map_err(|source| SeedError::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        })?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// `postgres://user@host:port[/db][?..]` → `postgres://user@host:port`: where a
/// database of one's own is created beside the others.
pub fn server_url(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_owned(),
    }
}

/// A class (CSE, year 3, section A) with the given match threshold override.
pub async fn class(
    db: &DatabaseConnection,
    name: &str,
    match_threshold: Option<f64>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::new_v4();
    Class::insert(class::ActiveModel {
        id: Set(id),
        name: Set(name.into()),
        department: Set("CSE".into()),
        year: Set(Some(3)),
        section: Set(Some("A".into())),
        match_threshold: Set(match_threshold),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(id)
}

/// A `pending` student with their photos stored, as the API registers one. Returns the
/// student id and the photo ids in upload order.
pub async fn student(
    db: &DatabaseConnection,
    blobs: &dyn BlobStore,
    class_id: Uuid,
    roll_no: &str,
    name: &str,
    photos: &[Vec<u8>],
) -> Result<(Uuid, Vec<Uuid>), SeedError> {
    let id = Uuid::new_v4();
    let now = Utc::now();
    Student::insert(student::ActiveModel {
        id: Set(id),
        class_id: Set(class_id),
        roll_no: Set(roll_no.into()),
        name: Set(name.into()),
        status: Set(student::StudentStatus::Pending),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    let mut photo_ids = Vec::with_capacity(photos.len());
    for (i, bytes) in photos.iter().enumerate() {
        let photo_id = Uuid::new_v4();
        let key = format!("students/{id}/{photo_id}");
        blobs
            .put(&key, Bytes::from(bytes.clone()), "image/jpeg")
            .await?;
        StudentPhoto::insert(student_photo::ActiveModel {
            id: Set(photo_id),
            student_id: Set(id),
            blob_key: Set(key),
            content_type: Set("image/jpeg".into()),
            verdict: Set(student_photo::PhotoVerdict::Pending),
            reason: Set(None),
            face_box: Set(None),
            detector_score: Set(None),
            // Distinct times keep the photos in upload order.
            created_at: Set(now + chrono::Duration::milliseconds(i as i64)),
            ..Default::default()
        })
        .exec_without_returning(db)
        .await?;
        photo_ids.push(photo_id);
    }
    Ok((id, photo_ids))
}

/// A `pending` session of `subject` uploaded at `now`, with its photos stored. Returns
/// the session id and the photo ids in upload order.
pub async fn session(
    db: &DatabaseConnection,
    blobs: &dyn BlobStore,
    class_id: Uuid,
    subject: &str,
    photos: &[Vec<u8>],
    now: DateTime<Utc>,
) -> Result<(Uuid, Vec<Uuid>), SeedError> {
    let id = Uuid::new_v4();
    AttendanceSession::insert(attendance_session::ActiveModel {
        id: Set(id),
        class_id: Set(class_id),
        subject: Set(Some(subject.into())),
        taken_at: Set(now),
        status: Set(attendance_session::SessionStatus::Pending),
        created_at: Set(now),
        created_by_key_id: Set(None),
        warnings: Set(None),
        photos_deleted_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    let mut photo_ids = Vec::with_capacity(photos.len());
    for (i, bytes) in photos.iter().enumerate() {
        let photo_id = Uuid::new_v4();
        let key = format!("sessions/{id}/photos/{photo_id}");
        blobs
            .put(&key, Bytes::from(bytes.clone()), "image/jpeg")
            .await?;
        SessionPhoto::insert(session_photo::ActiveModel {
            id: Set(photo_id),
            session_id: Set(id),
            blob_key: Set(key),
            content_type: Set("image/jpeg".into()),
            width: Set(None),
            height: Set(None),
            created_at: Set(now + chrono::Duration::milliseconds(i as i64)),
            sha256: Set(None),
        })
        .exec_without_returning(db)
        .await?;
        photo_ids.push(photo_id);
    }
    Ok((id, photo_ids))
}

/// A `queued` job row for `subject_id`, as the API's outbox writes it.
pub async fn job(
    db: &DatabaseConnection,
    kind: JobKind,
    subject_id: Uuid,
) -> Result<job::Model, DbErr> {
    let now = Utc::now();
    let row = job::Model {
        id: Uuid::new_v4(),
        kind,
        lane: kind.lane(),
        status: job::JobStatus::Queued,
        progress: 0.0,
        attempts: 0,
        error: None,
        result: None,
        subject_id,
        created_at: now,
        updated_at: now,
        published_at: None,
        started_at: None,
        finished_at: None,
        lease_until: None,
        interrupted_runs: 0,
    };
    Job::insert(row.clone().into_active_model().reset_all())
        .exec_without_returning(db)
        .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_lose_their_database() {
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:5432/app?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:5432"),
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}
