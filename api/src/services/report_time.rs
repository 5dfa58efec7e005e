//! The time zone reports are read in. `taken_at` is stored in UTC, but a teacher's
//! "20 November" and "week 47" are local: exports and analytics put each session on
//! its date and ISO week in a display offset, `+05:30` (India) unless the request
//! says otherwise (`utc_offset`). Plain `from`/`to` dates are days in the same offset.

use chrono::{DateTime, Datelike, FixedOffset, IsoWeek, NaiveDate, Utc};

/// India Standard Time, the colleges' own.
pub const DEFAULT_UTC_OFFSET: &str = "+05:30";

/// The default display offset.
pub fn default_offset() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("a valid offset")
}

/// `+05:30`, `-04:00`, `+0530`, `Z` or `UTC`. A leading space is read as `+`: an
/// unescaped `+` in a query string arrives as a space.
pub fn parse_utc_offset(value: &str) -> Option<FixedOffset> {
    let v = value.trim_end();
    if v.eq_ignore_ascii_case("z") || v.trim().eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match v.chars().next()? {
        '+' | ' ' => (1, &v[1..]),
        '-' => (-1, &v[1..]),
        c if c.is_ascii_digit() => (1, v),
        _ => return None,
    };
    let rest = rest.trim_start();
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "00"),
    };
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// `+05:30` for an offset (what responses echo).
pub fn format_offset(offset: FixedOffset) -> String {
    offset.to_string()
}

/// A date range in a display offset: bounds are inclusive instants (UTC).
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub offset: FixedOffset,
}

impl Period {
    /// The whole history, read in the default offset.
    pub fn all() -> Period {
        Period {
            from: None,
            to: None,
            offset: default_offset(),
        }
    }

    pub fn local(&self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.offset)
    }

    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.local(t).date_naive()
    }

    /// The ISO 8601 week (Monday to Sunday) of an instant's local date.
    pub fn iso_week(&self, t: DateTime<Utc>) -> IsoWeek {
        self.local_date(t).iso_week()
    }
}

/// `2026-W47`.
pub fn week_label(week: IsoWeek) -> String {
    format!("{}-W{:02}", week.year(), week.week())
}

/// The Monday that starts an ISO week.
pub fn week_start(week: IsoWeek) -> NaiveDate {
    NaiveDate::from_isoywd_opt(week.year(), week.week(), chrono::Weekday::Mon)
        .expect("an ISO week has a Monday")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_in_the_forms_people_type_and_bad_ones_do_not() {
        let ist = default_offset();
        for v in ["+05:30", " 05:30", "05:30", "+0530"] {
            assert_eq!(parse_utc_offset(v), Some(ist), "{v:?}");
        }
        assert_eq!(parse_utc_offset("-04:00"), FixedOffset::west_opt(4 * 3600));
        assert_eq!(parse_utc_offset("Z"), FixedOffset::east_opt(0));
        assert_eq!(parse_utc_offset("UTC"), FixedOffset::east_opt(0));
        for bad in ["", "IST", "+5:30", "+15:00", "+05:60", "+05:3x", "05:30:00"] {
            assert_eq!(parse_utc_offset(bad), None, "{bad:?}");
        }
        assert_eq!(format_offset(ist), DEFAULT_UTC_OFFSET);
    }

    #[test]
    fn a_late_evening_utc_session_falls_on_the_next_indian_day_and_week() {
        // Sunday 2026-11-22 20:00 UTC is Monday 01:30 in India: ISO week 48, not 47.
        let t = DateTime::parse_from_rfc3339("2026-11-22T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = Period::all();
        assert_eq!(p.local_date(t).to_string(), "2026-11-23");
        assert_eq!(week_label(p.iso_week(t)), "2026-W48");
        assert_eq!(week_start(p.iso_week(t)).to_string(), "2026-11-23");
        let utc = Period {
            offset: FixedOffset::east_opt(0).unwrap(),
            ..p
        };
        assert_eq!(week_label(utc.iso_week(t)), "2026-W47");
    }
}
