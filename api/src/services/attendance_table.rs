//! The attendance of one class over a period as a table: a column per session, a row
//! per student, a [`Mark`] in each cell. Exports render it, analytics aggregate it.
//!
//! What counts (the same everywhere):
//! - Columns are the class's **completed** sessions in the period, oldest first. A
//!   session still being processed (`pending`) or whose job `failed` has no decided
//!   records and is left out.
//! - A student's **total** is the number of those sessions in which they were decided:
//!   a `present` or `absent` record (automatic or a manual correction). `unmatched`
//!   (no embedding of the active face model yet) is shown but counts neither way until
//!   the session is re-marked or corrected; no record at all (registered after the
//!   session) is blank and does not count.
//! - **attended** counts `present`; the percentage is attended ÷ total × 100, none
//!   when the total is 0.
//! - A deleted student (a tombstone, see `services::erasure`) keeps a row only where
//!   they have records: their past attendance is an academic record.

use models::{
    attendance_record::{self, RecordStatus},
    attendance_session::{self, SessionStatus},
    class,
    student::{self, StudentStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Select,
};
use std::collections::HashMap;
use uuid::Uuid;

use super::{report_time::Period, scope::Scope};
use crate::error::ServiceError;

/// One cell: what the student's record in that session says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Present,
    Absent,
    /// Undecided: the student had no embedding of the face model in use.
    Unmatched,
    /// No record: the student was not in the class's gallery for that session.
    NoRecord,
}

impl Mark {
    pub fn label(self) -> &'static str {
        match self {
            Mark::Present => "present",
            Mark::Absent => "absent",
            Mark::Unmatched => "unmatched",
            Mark::NoRecord => "",
        }
    }
}

impl From<RecordStatus> for Mark {
    fn from(s: RecordStatus) -> Mark {
        match s {
            RecordStatus::Present => Mark::Present,
            RecordStatus::Absent => Mark::Absent,
            RecordStatus::Unmatched => Mark::Unmatched,
        }
    }
}

/// Attended and decided sessions, and the undecided ones beside them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub attended: u32,
    pub total: u32,
    pub unmatched: u32,
}

impl Tally {
    pub fn add(&mut self, mark: Mark) {
        match mark {
            Mark::Present => {
                self.attended += 1;
                self.total += 1;
            }
            Mark::Absent => self.total += 1,
            Mark::Unmatched => self.unmatched += 1,
            Mark::NoRecord => {}
        }
    }

    /// attended ÷ total × 100; `None` with nothing decided.
    pub fn percentage(&self) -> Option<f64> {
        (self.total > 0).then(|| f64::from(self.attended) * 100.0 / f64::from(self.total))
    }
}

#[derive(Debug, Clone)]
pub struct StudentRow {
    pub student: student::Model,
    /// One per [`AttendanceTable::sessions`], in the same order.
    pub marks: Vec<Mark>,
    pub tally: Tally,
}

#[derive(Debug, Clone)]
pub struct AttendanceTable {
    pub class: class::Model,
    pub period: Period,
    /// Completed sessions, oldest first.
    pub sessions: Vec<attendance_session::Model>,
    /// Every student of the class, by roll number; a deleted student only when they
    /// have a record in one of the sessions.
    pub rows: Vec<StudentRow>,
}

/// The class's completed sessions in the period (as a query, for reuse as a subquery).
fn completed_sessions(class_id: Uuid, period: &Period) -> Select<attendance_session::Entity> {
    let mut q = attendance_session::Entity::find()
        .filter(attendance_session::Column::ClassId.eq(class_id))
        .filter(attendance_session::Column::Status.eq(SessionStatus::Completed));
    if let Some(from) = period.from {
        q = q.filter(attendance_session::Column::TakenAt.gte(from));
    }
    if let Some(to) = period.to {
        q = q.filter(attendance_session::Column::TakenAt.lte(to));
    }
    q
}

/// Loads the table in four queries (class, sessions, students, records), whatever the
/// numbers of students and sessions. Another department's class is `NotFound`.
pub async fn load(
    db: &impl ConnectionTrait,
    scope: &Scope,
    class_id: Uuid,
    period: Period,
) -> Result<AttendanceTable, ServiceError> {
    let class = scope.class(db, class_id).await?;
    let sessions = completed_sessions(class_id, &period)
        .order_by_asc(attendance_session::Column::TakenAt)
        .order_by_asc(attendance_session::Column::CreatedAt)
        .all(db)
        .await?;
    let students = student::Entity::find()
        .filter(student::Column::ClassId.eq(class_id))
        .order_by_asc(student::Column::RollNo)
        .all(db)
        .await?;
    let session_ids = completed_sessions(class_id, &period)
        .select_only()
        .column(attendance_session::Column::Id)
        .into_query();
    let records: HashMap<(Uuid, Uuid), RecordStatus> = attendance_record::Entity::find()
        .select_only()
        .column(attendance_record::Column::SessionId)
        .column(attendance_record::Column::StudentId)
        .column(attendance_record::Column::Status)
        .filter(attendance_record::Column::SessionId.in_subquery(session_ids))
        .into_tuple::<(Uuid, Uuid, RecordStatus)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(session, student, status)| ((session, student), status))
        .collect();

    let rows = students
        .into_iter()
        .map(|student| {
            let mut tally = Tally::default();
            let marks = sessions
                .iter()
                .map(|s| {
                    let mark = records
                        .get(&(s.id, student.id))
                        .map_or(Mark::NoRecord, |&status| status.into());
                    tally.add(mark);
                    mark
                })
                .collect();
            StudentRow {
                student,
                marks,
                tally,
            }
        })
        // A deleted student's row stays only for the records it holds.
        .filter(|row| {
            row.student.status != StudentStatus::Deleted
                || row.marks.iter().any(|m| *m != Mark::NoRecord)
        })
        .collect();
    Ok(AttendanceTable {
        class,
        period,
        sessions,
        rows,
    })
}

impl AttendanceTable {
    /// A session's column heading: its local date and time, and its subject.
    pub fn heading(&self, session: &attendance_session::Model) -> String {
        let when = self.period.local(session.taken_at).format("%Y-%m-%d %H:%M");
        match &session.subject {
            Some(subject) => format!("{when} {subject}"),
            None => when.to_string(),
        }
    }

    /// Every cell with its session, column by column (for aggregating by session).
    pub fn cells(&self) -> impl Iterator<Item = (&attendance_session::Model, Mark)> + '_ {
        self.sessions
            .iter()
            .enumerate()
            .flat_map(move |(i, s)| self.rows.iter().map(move |r| (s, r.marks[i])))
    }
}
