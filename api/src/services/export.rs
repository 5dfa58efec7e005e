//! Attendance export: one row per student × session of a class in a date range.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use models::{attendance_record, student};
use sea_orm::{ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{attendance, scope::Scope};
use crate::error::ServiceError;

/// CSV with a header row; sessions oldest first, students by roll number. A student
/// without a record in a session (registered later, or the session is still being
/// processed) gets an empty status.
pub async fn attendance_csv(
    db: &impl ConnectionTrait,
    scope: &Scope,
    class_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<u8>, ServiceError> {
    let class = scope.class(db, class_id).await?;
    let mut sessions = attendance::list(
        db,
        scope,
        &attendance::SessionFilter {
            class_id: Some(class_id),
            from,
            to,
        },
    )
    .await?;
    sessions.reverse();
    let students = student::Entity::find()
        .filter(student::Column::ClassId.eq(class_id))
        .order_by_asc(student::Column::RollNo)
        .all(db)
        .await?;
    let session_ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
    let records: HashMap<(Uuid, Uuid), attendance_record::Model> =
        attendance_record::Entity::find()
            .filter(attendance_record::Column::SessionId.is_in(session_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|r| ((r.session_id, r.student_id), r))
            .collect();

    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, row: &[&str]| {
        out.write_record(row)
            .map_err(|e| ServiceError::Internal(format!("CSV export: {e}")))
    };
    write(
        &mut out,
        &[
            "class",
            "session_id",
            "taken_at",
            "subject",
            "student_id",
            "roll_no",
            "name",
            "status",
            "distance",
            "source",
        ],
    )?;
    for s in &sessions {
        let taken_at = s.taken_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let session_id = s.id.to_string();
        for st in &students {
            let record = records.get(&(s.id, st.id));
            let status = record.map(|r| r.status.to_value());
            let distance = record.and_then(|r| r.distance).map(|d| format!("{d:.4}"));
            let source = record.map(|r| r.source.to_value());
            write(
                &mut out,
                &[
                    &class.name,
                    &session_id,
                    &taken_at,
                    s.subject.as_deref().unwrap_or(""),
                    &st.id.to_string(),
                    &st.roll_no,
                    &st.name,
                    status.as_deref().unwrap_or(""),
                    distance.as_deref().unwrap_or(""),
                    source.as_deref().unwrap_or(""),
                ],
            )?;
        }
    }
    out.into_inner()
        .map_err(|e| ServiceError::Internal(format!("CSV export: {e}")))
}
