//! Attendance exports as CSV or XLSX: a class over a period (one row per student, one
//! column per session, then attended, total and percentage; see
//! [`super::attendance_table`] for what counts) and one session (one row per student).

use models::attendance_record::{self, RecordSource};
use models::student::{self, StudentStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use std::collections::HashMap;
use uuid::Uuid;

use super::{
    attendance_table::{self, Mark},
    report_time::Period,
    scope::Scope,
    sheet::{Format, Sheet, Value},
};
use crate::error::ServiceError;

/// A rendered file.
#[derive(Debug, Clone)]
pub struct Export {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub file_name: String,
}

/// The class attendance sheet: `roll_no`, `name`, one column per completed session
/// (headed by its local date, time and subject; cells `present`, `absent`,
/// `unmatched` or blank), then `attended`, `total`, `percentage`.
pub async fn class_attendance(
    db: &impl ConnectionTrait,
    scope: &Scope,
    class_id: Uuid,
    period: Period,
    format: Format,
) -> Result<Export, ServiceError> {
    let table = attendance_table::load(db, scope, class_id, period).await?;
    let mut header = vec!["roll_no".to_string(), "name".to_string()];
    header.extend(table.sessions.iter().map(|s| table.heading(s)));
    header.extend(["attended", "total", "percentage"].map(String::from));
    let rows = table
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                Value::text(&row.student.roll_no),
                Value::text(&row.student.name),
            ];
            cells.extend(row.marks.iter().map(|&m| match m {
                Mark::NoRecord => Value::Empty,
                m => Value::text(m.label()),
            }));
            cells.push(Value::Int(row.tally.attended.into()));
            cells.push(Value::Int(row.tally.total.into()));
            cells.push(Value::percent(row.tally.percentage()));
            cells
        })
        .collect();
    let sheet = Sheet {
        name: "Attendance".into(),
        header,
        rows,
        frozen_columns: 2,
    };
    Ok(Export {
        bytes: sheet.render(format)?,
        format,
        file_name: format!("attendance-{class_id}.{}", format.extension()),
    })
}

/// One session: every student of its class by roll number with `status` (blank
/// without a record), `distance` and `source` (`auto`/`manual`).
pub async fn session(
    db: &impl ConnectionTrait,
    scope: &Scope,
    session_id: Uuid,
    format: Format,
) -> Result<Export, ServiceError> {
    let session = scope.session(db, session_id).await?;
    let students = student::Entity::find()
        .filter(student::Column::ClassId.eq(session.class_id))
        .order_by_asc(student::Column::RollNo)
        .all(db)
        .await?;
    let records: HashMap<Uuid, attendance_record::Model> = attendance_record::Entity::find()
        .filter(attendance_record::Column::SessionId.eq(session_id))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.student_id, r))
        .collect();
    // A deleted student is listed only where they have a record (an academic record).
    let rows = students
        .iter()
        .filter(|s| s.status != StudentStatus::Deleted || records.contains_key(&s.id))
        .map(|s| {
            let record = records.get(&s.id);
            vec![
                Value::text(&s.roll_no),
                Value::text(&s.name),
                record.map_or(Value::Empty, |r| Value::text(Mark::from(r.status).label())),
                record
                    .and_then(|r| r.distance)
                    .map_or(Value::Empty, Value::Number),
                record.map_or(Value::Empty, |r| {
                    Value::text(match r.source {
                        RecordSource::Auto => "auto",
                        RecordSource::Manual => "manual",
                    })
                }),
            ]
        })
        .collect();
    let sheet = Sheet {
        name: "Session".into(),
        header: ["roll_no", "name", "status", "distance", "source"]
            .map(String::from)
            .to_vec(),
        rows,
        frozen_columns: 2,
    };
    Ok(Export {
        bytes: sheet.render(format)?,
        format,
        file_name: format!("session-{session_id}.{}", format.extension()),
    })
}
