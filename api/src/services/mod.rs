//! Service functions: plain arguments in, models or [`ServiceError`] out, no HTTP.
//! Handlers parse and authorise, then call these; tests can call them directly.

pub mod analytics;
pub mod attendance;
pub mod attendance_table;
pub mod batches;
pub mod classes;
pub mod corrections;
pub mod export;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod provenance;
pub mod report_time;
pub mod scope;
pub mod sheet;
pub mod student_photos;
pub mod students;
pub mod webhooks;

use uuid::Uuid;

/// What an accepted upload answers: the row it created and the job working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub subject_id: Uuid,
    pub job_id: Uuid,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// Trims a required text field; empty → 422 naming the field.
pub(crate) fn required_text(
    field: &'static str,
    value: &str,
    max_len: usize,
) -> Result<String, crate::error::ServiceError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(crate::error::ServiceError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if v.chars().count() > max_len {
        return Err(crate::error::ServiceError::invalid(
            "invalid_field",
            format!("{field} is longer than {max_len} characters"),
        ));
    }
    Ok(v.to_string())
}

/// Trims an optional text field; empty means absent.
pub(crate) fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max_len: usize,
) -> Result<Option<String>, crate::error::ServiceError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => required_text(field, v, max_len).map(Some),
    }
}
