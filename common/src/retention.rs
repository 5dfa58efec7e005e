//! Retention of session photos and of the crops of faces that matched nobody
//! (`RETENTION_DAYS`): what counts as old, and the one retention job of a day.
//!
//! Age is counted from a session's `created_at`, when its photos were uploaded and
//! stored, not from its `taken_at`: the latter is given by the teacher (or read from
//! EXIF) and may lie far in the past (an old photo uploaded today would be deleted
//! before anyone reviewed it) or in the future (kept for ever).

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// Namespace of the daily job ids (UUID v5 of `retention:<UTC date>`).
const DAILY_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x3b9e_51c4_7a0d_4f62_8c15_e2a4_96d7_0b18);

/// The instant before which a session's photos are due for deletion, `days` days
/// before `now`; `None` when that instant is before any time chrono can represent
/// (nothing can be that old).
pub fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(TimeDelta::try_days(i64::from(days))?)
}

/// Whether photos stored at `created_at` are due for deletion at `now` under a
/// retention of `days` (`None`: kept for ever). A session exactly `days` old is kept
/// until the next run.
pub fn is_due(created_at: DateTime<Utc>, now: DateTime<Utc>, days: Option<u32>) -> bool {
    days.and_then(|d| cutoff(now, d))
        .is_some_and(|cutoff| created_at < cutoff)
}

/// The id of the retention job of `now`'s UTC day: every scheduler (API replicas,
/// restarts) derives the same one, so the day's job row is inserted exactly once.
pub fn daily_job_id(now: DateTime<Utc>) -> Uuid {
    let name = format!("retention:{}", now.date_naive().format("%Y-%m-%d"));
    Uuid::new_v5(&DAILY_JOB_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_cutoff_is_whole_days_before_now() {
        let now = at("2026-11-30T03:00:00Z");
        assert_eq!(cutoff(now, 180), Some(at("2026-06-03T03:00:00Z")));
        assert_eq!(cutoff(now, 1), Some(at("2026-11-29T03:00:00Z")));
        // Across a leap day: days, not months.
        assert_eq!(
            cutoff(at("2028-03-01T00:00:00Z"), 2),
            Some(at("2028-02-28T00:00:00Z"))
        );
        // Further back than any date: nothing is that old.
        assert_eq!(cutoff(now, u32::MAX), None);
    }

    #[test]
    fn only_photos_older_than_the_period_are_due() {
        let now = at("2026-11-30T03:00:00Z");
        let days = Some(180);
        assert!(is_due(at("2026-06-03T02:59:59Z"), now, days));
        assert!(
            !is_due(at("2026-06-03T03:00:00Z"), now, days),
            "exactly 180 days"
        );
        assert!(!is_due(at("2026-11-29T03:00:00Z"), now, days));
        // A session uploaded "later" than now (a clock moved back) is not due.
        assert!(!is_due(at("2027-01-01T00:00:00Z"), now, days));
        // 0 keeps for ever.
        assert!(!is_due(at("2000-01-01T00:00:00Z"), now, None));
        assert!(!is_due(at("2000-01-01T00:00:00Z"), now, Some(u32::MAX)));
    }

    #[test]
    fn one_job_id_per_utc_day() {
        let morning = daily_job_id(at("2026-11-30T00:00:00Z"));
        assert_eq!(morning, daily_job_id(at("2026-11-30T23:59:59Z")));
        // 05:30 in India on 1 December is still 30 November in UTC.
        assert_eq!(morning, daily_job_id(at("2026-12-01T05:29:00+05:30")));
        assert_ne!(morning, daily_job_id(at("2026-12-01T00:00:00Z")));
        assert_eq!(morning.get_version_num(), 5);
    }
}
