//! `/analytics/classes/{id}` and `/analytics/students/{id}`: attendance percentages.
//! Figures count as the exports do (see the README's API section).

use chrono::{DateTime, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{ApiTags, attendance::RecordSourceOut, attendance::RecordStatusOut, parse_bound_in};
use crate::{
    auth::ApiKeyAuth,
    error::ApiError,
    services::{
        analytics::{self, DEFAULT_THRESHOLD, GroupFigure, WeekFigure},
        attendance_table::Tally,
        report_time::{self, Period},
    },
    state::AppState,
};
use models::attendance_record::{RecordSource, RecordStatus};

/// The period of a report from its query parameters: `utc_offset` (default `+05:30`),
/// then `from`/`to` with plain dates read in that offset. Bad values and `from` after
/// `to` are 400s.
pub(crate) fn period(
    from: Option<String>,
    to: Option<String>,
    utc_offset: Option<String>,
) -> Result<Period, ApiError> {
    let offset = match utc_offset.as_deref().filter(|v| !v.trim().is_empty()) {
        None => report_time::default_offset(),
        Some(v) => report_time::parse_utc_offset(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_utc_offset",
                format!("utc_offset must look like +05:30, -04:00 or Z, not {v:?}"),
            )
        })?,
    };
    let from = parse_bound_in("from", from.as_deref(), false, offset)?;
    let to = parse_bound_in("to", to.as_deref(), true, offset)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request(
            "invalid_range",
            "from must not be after to",
        ));
    }
    Ok(Period { from, to, offset })
}

#[derive(Debug, Object)]
pub struct PeriodOut {
    /// Inclusive bounds on `taken_at`; absent: unbounded.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The time zone of dates and weeks, e.g. `+05:30`.
    pub utc_offset: String,
}

impl From<Period> for PeriodOut {
    fn from(p: Period) -> Self {
        PeriodOut {
            from: p.from,
            to: p.to,
            utc_offset: report_time::format_offset(p.offset),
        }
    }
}

#[derive(Debug, Object)]
pub struct StudentFigureOut {
    pub student_id: Uuid,
    pub roll_no: String,
    pub name: String,
    /// Sessions marked present.
    pub attended: u32,
    /// Sessions decided present or absent.
    pub total: u32,
    /// Sessions with an `unmatched` record (not counted in `total`).
    pub unmatched: u32,
    /// attended ÷ total × 100; absent when total is 0.
    pub percentage: Option<f64>,
    pub below_threshold: bool,
}

#[derive(Debug, Object)]
pub struct SubjectFigureOut {
    /// Absent for sessions taken without a subject.
    pub subject: Option<String>,
    pub sessions: u32,
    /// Present records in those sessions.
    pub attended: u32,
    /// Decided (present or absent) records in those sessions.
    pub total: u32,
    pub percentage: Option<f64>,
}

#[derive(Debug, Object)]
pub struct WeekFigureOut {
    /// ISO 8601 week of the sessions' local dates, e.g. `2026-W47`.
    pub week: String,
    /// Its Monday.
    pub starts: NaiveDate,
    pub sessions: u32,
    pub attended: u32,
    pub total: u32,
    pub percentage: Option<f64>,
}

#[derive(Debug, Object)]
pub struct ClassAnalyticsOut {
    pub class_id: Uuid,
    pub class_name: String,
    pub period: PeriodOut,
    /// Percentage under which a student is listed in `below_threshold`.
    pub threshold: f64,
    /// Completed sessions in the period.
    pub sessions_held: u32,
    /// Present records ÷ decided records over all sessions, × 100.
    pub average_percentage: Option<f64>,
    /// Present records ÷ sessions held (the average head count).
    pub average_present: Option<f64>,
    /// Every student of the class, by roll number.
    pub students: Vec<StudentFigureOut>,
    /// Students decided at least once whose percentage is under `threshold`.
    pub below_threshold: Vec<StudentFigureOut>,
    pub subjects: Vec<SubjectFigureOut>,
    /// One entry per ISO week with sessions, oldest first.
    pub weekly: Vec<WeekFigureOut>,
}

#[derive(Debug, Object)]
pub struct HistoryEntryOut {
    pub session_id: Uuid,
    pub class_id: Uuid,
    pub taken_at: DateTime<Utc>,
    /// `taken_at`'s date in `utc_offset`.
    pub date: NaiveDate,
    pub subject: Option<String>,
    pub status: RecordStatusOut,
    pub source: RecordSourceOut,
    pub distance: Option<f64>,
}

#[derive(Debug, Object)]
pub struct StudentAnalyticsOut {
    pub student_id: Uuid,
    pub class_id: Uuid,
    pub roll_no: String,
    pub name: String,
    pub period: PeriodOut,
    pub attended: u32,
    pub total: u32,
    pub unmatched: u32,
    pub percentage: Option<f64>,
    pub subjects: Vec<SubjectFigureOut>,
    pub weekly: Vec<WeekFigureOut>,
    /// The student's records in completed sessions, oldest first.
    pub history: Vec<HistoryEntryOut>,
}

#[derive(ApiResponse)]
pub enum ClassAnalyticsResponse {
    #[oai(status = 200)]
    Ok(Json<ClassAnalyticsOut>),
}

#[derive(ApiResponse)]
pub enum StudentAnalyticsResponse {
    #[oai(status = 200)]
    Ok(Json<StudentAnalyticsOut>),
}

fn subject_out((subject, g): (Option<String>, GroupFigure)) -> SubjectFigureOut {
    SubjectFigureOut {
        subject,
        sessions: g.sessions,
        attended: g.tally.attended,
        total: g.tally.total,
        percentage: g.tally.percentage(),
    }
}

fn week_out(w: WeekFigure) -> WeekFigureOut {
    WeekFigureOut {
        week: w.week,
        starts: w.starts,
        sessions: w.figure.sessions,
        attended: w.figure.tally.attended,
        total: w.figure.tally.total,
        percentage: w.figure.tally.percentage(),
    }
}

fn student_figure_out(f: &analytics::StudentFigure) -> StudentFigureOut {
    let Tally {
        attended,
        total,
        unmatched,
    } = f.tally;
    StudentFigureOut {
        student_id: f.student.id,
        roll_no: f.student.roll_no.clone(),
        name: f.student.name.clone(),
        attended,
        total,
        unmatched,
        percentage: f.tally.percentage(),
        below_threshold: f.below_threshold,
    }
}

pub struct AnalyticsApi;

#[OpenApi(tag = "ApiTags::Analytics")]
impl AnalyticsApi {
    /// A class over a period: sessions held, average attendance, each student's
    /// percentage, the students under `threshold`, per subject and per ISO week.
    #[oai(
        path = "/analytics/classes/:id",
        method = "get",
        operation_id = "class_analytics"
    )]
    // poem-openapi takes one argument per query parameter.
    #[allow(clippy::too_many_arguments)]
    async fn class(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// RFC 3339, or YYYY-MM-DD: that day from 00:00 in `utc_offset`.
        from: Query<Option<String>>,
        /// RFC 3339, or YYYY-MM-DD: that day until 24:00 in `utc_offset`.
        to: Query<Option<String>>,
        /// Percentage, 0–100 (default 75); students under it are listed.
        threshold: Query<Option<f64>>,
        /// Time zone of dates and weeks, e.g. `+05:30` (the default) or `Z`.
        utc_offset: Query<Option<String>>,
    ) -> Result<ClassAnalyticsResponse, ApiError> {
        let period = period(from.0, to.0, utc_offset.0)?;
        let threshold = threshold.0.unwrap_or(DEFAULT_THRESHOLD);
        let a = analytics::class(&state.db, &auth.0.scope, id.0, period, threshold).await?;
        let students: Vec<StudentFigureOut> = a.students.iter().map(student_figure_out).collect();
        let below_threshold = a
            .students
            .iter()
            .filter(|f| f.below_threshold)
            .map(student_figure_out)
            .collect();
        Ok(ClassAnalyticsResponse::Ok(Json(ClassAnalyticsOut {
            class_id: a.class_id,
            class_name: a.class_name,
            period: a.period.into(),
            threshold: a.threshold,
            sessions_held: a.sessions_held,
            average_percentage: a.average_percentage,
            average_present: a.average_present,
            students,
            below_threshold,
            subjects: a.subjects.into_iter().map(subject_out).collect(),
            weekly: a.weeks.into_iter().map(week_out).collect(),
        })))
    }

    /// A student's attendance over a period and the history behind it.
    #[oai(
        path = "/analytics/students/:id",
        method = "get",
        operation_id = "student_analytics"
    )]
    async fn student(
        &self,
        state: Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<Uuid>,
        /// RFC 3339, or YYYY-MM-DD: that day from 00:00 in `utc_offset`.
        from: Query<Option<String>>,
        /// RFC 3339, or YYYY-MM-DD: that day until 24:00 in `utc_offset`.
        to: Query<Option<String>>,
        /// Time zone of dates and weeks, e.g. `+05:30` (the default) or `Z`.
        utc_offset: Query<Option<String>>,
    ) -> Result<StudentAnalyticsResponse, ApiError> {
        let period = period(from.0, to.0, utc_offset.0)?;
        let a = analytics::student(&state.db, &auth.0.scope, id.0, period).await?;
        let history = a
            .history
            .into_iter()
            .map(|h| HistoryEntryOut {
                session_id: h.session.id,
                class_id: h.session.class_id,
                taken_at: h.session.taken_at,
                date: period.local_date(h.session.taken_at),
                subject: h.session.subject,
                status: match h.status {
                    RecordStatus::Present => RecordStatusOut::Present,
                    RecordStatus::Absent => RecordStatusOut::Absent,
                    RecordStatus::Unmatched => RecordStatusOut::Unmatched,
                },
                source: match h.source {
                    RecordSource::Auto => RecordSourceOut::Auto,
                    RecordSource::Manual => RecordSourceOut::Manual,
                },
                distance: h.distance,
            })
            .collect();
        Ok(StudentAnalyticsResponse::Ok(Json(StudentAnalyticsOut {
            student_id: a.student.id,
            class_id: a.student.class_id,
            roll_no: a.student.roll_no,
            name: a.student.name,
            period: a.period.into(),
            attended: a.tally.attended,
            total: a.tally.total,
            unmatched: a.tally.unmatched,
            percentage: a.tally.percentage(),
            subjects: a.subjects.into_iter().map(subject_out).collect(),
            weekly: a.weeks.into_iter().map(week_out).collect(),
            history,
        })))
    }
}
