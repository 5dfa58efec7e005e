//! Attendance figures. A class: sessions held, the average, each student's percentage,
//! those under a threshold, per subject and per ISO week. A student: the same figures
//! over their own records, and the history behind them. Everything counts as
//! [`super::attendance_table`] says; dates and weeks are local to the period's offset.

use std::collections::BTreeMap;

use chrono::{IsoWeek, NaiveDate};
use models::{
    attendance_record::{self, RecordSource, RecordStatus},
    attendance_session::{self, SessionStatus},
    student::{self, StudentStatus},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{
    attendance_table::{self, Mark, Tally},
    report_time::{Period, week_label, week_start},
    scope::Scope,
};
use crate::error::ServiceError;

/// Students under this percentage are listed, unless the request says otherwise.
pub const DEFAULT_THRESHOLD: f64 = 75.0;

/// A threshold must be a percentage.
pub fn check_threshold(threshold: f64) -> Result<f64, ServiceError> {
    if threshold.is_finite() && (0.0..=100.0).contains(&threshold) {
        Ok(threshold)
    } else {
        Err(ServiceError::invalid(
            "invalid_threshold",
            format!("threshold must be a percentage from 0 to 100, not {threshold}"),
        ))
    }
}

#[derive(Debug, Clone)]
pub struct StudentFigure {
    pub student: student::Model,
    pub tally: Tally,
    /// Decided at least once and under the threshold.
    pub below_threshold: bool,
}

/// Sessions of one subject (or one week) and the records decided in them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFigure {
    pub sessions: u32,
    /// Present and decided records, over every student.
    pub tally: Tally,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeekFigure {
    /// `2026-W47`.
    pub week: String,
    /// Its Monday.
    pub starts: NaiveDate,
    pub figure: GroupFigure,
}

#[derive(Debug, Clone)]
pub struct ClassAnalytics {
    pub class_id: Uuid,
    pub class_name: String,
    pub period: Period,
    pub threshold: f64,
    pub sessions_held: u32,
    /// Present records ÷ decided records over all sessions, × 100.
    pub average_percentage: Option<f64>,
    /// Present records ÷ sessions held: the average head count.
    pub average_present: Option<f64>,
    /// Every student, by roll number.
    pub students: Vec<StudentFigure>,
    /// By subject name; `None` (sessions without a subject) first.
    pub subjects: Vec<(Option<String>, GroupFigure)>,
    pub weeks: Vec<WeekFigure>,
}

pub async fn class(
    db: &impl ConnectionTrait,
    scope: &Scope,
    class_id: Uuid,
    period: Period,
    threshold: f64,
) -> Result<ClassAnalytics, ServiceError> {
    let threshold = check_threshold(threshold)?;
    let table = attendance_table::load(db, scope, class_id, period).await?;

    let mut overall = Tally::default();
    let mut subjects: BTreeMap<Option<String>, GroupFigure> = BTreeMap::new();
    let mut weeks: BTreeMap<IsoWeek, GroupFigure> = BTreeMap::new();
    for s in &table.sessions {
        subjects.entry(s.subject.clone()).or_default().sessions += 1;
        weeks
            .entry(period.iso_week(s.taken_at))
            .or_default()
            .sessions += 1;
    }
    for (s, mark) in table.cells() {
        overall.add(mark);
        if let Some(g) = subjects.get_mut(&s.subject) {
            g.tally.add(mark);
        }
        if let Some(g) = weeks.get_mut(&period.iso_week(s.taken_at)) {
            g.tally.add(mark);
        }
    }
    let sessions_held = u32::try_from(table.sessions.len()).unwrap_or(u32::MAX);
    // A deleted student's records count in the class's figures above, but they are no
    // longer one of its students (nor under the threshold).
    let students = table
        .rows
        .into_iter()
        .filter(|row| row.student.status != StudentStatus::Deleted)
        .map(|row| StudentFigure {
            below_threshold: row.tally.percentage().is_some_and(|p| p < threshold),
            student: row.student,
            tally: row.tally,
        })
        .collect();
    Ok(ClassAnalytics {
        class_id,
        class_name: table.class.name,
        period,
        threshold,
        sessions_held,
        average_percentage: overall.percentage(),
        average_present: (sessions_held > 0)
            .then(|| f64::from(overall.attended) / f64::from(sessions_held)),
        students,
        subjects: subjects.into_iter().collect(),
        weeks: weeks_out(weeks),
    })
}

fn weeks_out(weeks: BTreeMap<IsoWeek, GroupFigure>) -> Vec<WeekFigure> {
    weeks
        .into_iter()
        .map(|(w, figure)| WeekFigure {
            week: week_label(w),
            starts: week_start(w),
            figure,
        })
        .collect()
}

/// One session in a student's history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub session: attendance_session::Model,
    pub status: RecordStatus,
    pub source: RecordSource,
    pub distance: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct StudentAnalytics {
    pub student: student::Model,
    pub period: Period,
    pub tally: Tally,
    pub subjects: Vec<(Option<String>, GroupFigure)>,
    pub weeks: Vec<WeekFigure>,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
}

/// A student's records in completed sessions of the period (of whichever class the
/// session was for), in one query; another department's student is `NotFound`.
pub async fn student(
    db: &impl ConnectionTrait,
    scope: &Scope,
    student_id: Uuid,
    period: Period,
) -> Result<StudentAnalytics, ServiceError> {
    let student = scope.student(db, student_id).await?;
    let mut q = attendance_record::Entity::find()
        .find_also_related(attendance_session::Entity)
        .filter(attendance_record::Column::StudentId.eq(student_id))
        .filter(attendance_session::Column::Status.eq(SessionStatus::Completed));
    if let Some(from) = period.from {
        q = q.filter(attendance_session::Column::TakenAt.gte(from));
    }
    if let Some(to) = period.to {
        q = q.filter(attendance_session::Column::TakenAt.lte(to));
    }
    let history: Vec<HistoryEntry> = q
        .order_by_asc(attendance_session::Column::TakenAt)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(r, s)| {
            s.map(|session| HistoryEntry {
                session,
                status: r.status,
                source: r.source,
                distance: r.distance,
            })
        })
        .collect();

    let mut tally = Tally::default();
    let mut subjects: BTreeMap<Option<String>, GroupFigure> = BTreeMap::new();
    let mut weeks: BTreeMap<IsoWeek, GroupFigure> = BTreeMap::new();
    for h in &history {
        let mark = Mark::from(h.status);
        tally.add(mark);
        for g in [
            subjects.entry(h.session.subject.clone()).or_default(),
            weeks
                .entry(period.iso_week(h.session.taken_at))
                .or_default(),
        ] {
            g.sessions += 1;
            g.tally.add(mark);
        }
    }
    Ok(StudentAnalytics {
        student,
        period,
        tally,
        subjects: subjects.into_iter().collect(),
        weeks: weeks_out(weeks),
        history,
    })
}
