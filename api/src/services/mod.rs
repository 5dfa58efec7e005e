//! Service functions: plain arguments in, models or [`ServiceError`] out, no HTTP.
//! Handlers parse and authorise, then call these; tests can call them directly.

pub mod analytics;
pub mod attendance;
pub mod attendance_table;
pub mod batches;
pub mod classes;
pub mod consent;
pub mod corrections;
pub mod erasure;
pub mod export;
pub mod idempotency;
pub mod intake;
pub mod jobs;
pub mod keys;
pub mod provenance;
pub mod report_time;
pub mod scope;
pub mod sheet;
pub mod student_data;
pub mod student_photos;
pub mod students;
pub mod webhooks;

use uuid::Uuid;

use crate::error::ServiceError;

/// What an accepted upload answers: the row it created and the job working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub subject_id: Uuid,
    pub job_id: Uuid,
}

/// A listing's validated `page` (1-based) and `per_page`, and the row offset they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub per_page: u64,
    pub offset: u64,
}

impl Paging {
    /// Out of range (`page` 0, `per_page` outside 1..=`max`, an offset past what the
    /// database takes) is a 400 naming the parameter, not a clamp nor an overflow.
    pub fn new(
        page: Option<u64>,
        per_page: Option<u64>,
        default_per_page: u64,
        max_per_page: u64,
    ) -> Result<Paging, ServiceError> {
        let page = page.unwrap_or(1);
        if page == 0 {
            return Err(ServiceError::bad_request(
                "invalid_page",
                "page must be at least 1",
            ));
        }
        let per_page = per_page.unwrap_or(default_per_page);
        if !(1..=max_per_page).contains(&per_page) {
            return Err(ServiceError::bad_request(
                "invalid_per_page",
                format!("per_page must be between 1 and {max_per_page}"),
            ));
        }
        // SQL offsets are signed 64-bit.
        let offset = (page - 1)
            .checked_mul(per_page)
            .filter(|o| i64::try_from(*o).is_ok())
            .ok_or_else(|| ServiceError::bad_request("invalid_page", "page is too large"))?;
        Ok(Paging {
            page,
            per_page,
            offset,
        })
    }
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
    // PostgreSQL refuses NUL in text; a multipart field can carry one.
    if v.contains('\0') {
        return Err(crate::error::ServiceError::bad_request(
            "nul_byte",
            format!("{field} must not contain a NUL character"),
        ));
    }
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
