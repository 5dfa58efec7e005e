//! A sheet to export: a header row and rows of typed values, rendered as CSV or XLSX
//! by the writers beside this file. What goes in (which rows, which columns) is the
//! caller's; how it is written, and the neutralising of text that a spreadsheet
//! program would take for a formula, is here.

mod csv_file;
mod xlsx_file;

use std::borrow::Cow;

use crate::error::ServiceError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// Written with four decimals (distances).
    Number(f64),
    /// 0–100; CSV `66.7`, XLSX the fraction formatted `0.0%`.
    Percent(f64),
    Empty,
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn percent(p: Option<f64>) -> Value {
        p.map_or(Value::Empty, Value::Percent)
    }
}

#[derive(Debug, Clone)]
pub struct Sheet {
    /// The worksheet's name in XLSX.
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Leading columns that stay in view when scrolling sideways (XLSX).
    pub frozen_columns: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// `csv` or `xlsx`, any case.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

impl Sheet {
    pub fn render(&self, format: Format) -> Result<Vec<u8>, ServiceError> {
        match format {
            Format::Csv => csv_file::write(self),
            Format::Xlsx => xlsx_file::write(self),
        }
    }
}

/// Text that starts like a formula (`=`, `+`, `-`, `@`) or with a tab or carriage
/// return gets a leading `'`, so that a spreadsheet program shows it instead of
/// evaluating it (OWASP's advice against CSV injection). Student names and subjects
/// are typed by users; numbers are written as numbers and never pass through here.
pub fn neutralise(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_neutralised_and_other_text_is_not() {
        for s in ["=HYPERLINK(\"http://x\")", "+1", "-2", "@x", "\tx", "\rx"] {
            assert_eq!(neutralise(s), format!("'{s}"));
        }
        for s in ["Asha K", "", "1+1", "O'Neil", "x=1"] {
            assert_eq!(neutralise(s), s);
        }
    }

    #[test]
    fn formats_parse_by_name_only() {
        assert_eq!(Format::parse("CSV"), Some(Format::Csv));
        assert_eq!(Format::parse("xlsx"), Some(Format::Xlsx));
        assert_eq!(Format::parse("xls"), None);
        assert_eq!(Format::parse(""), None);
    }
}
