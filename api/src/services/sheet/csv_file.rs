//! [`Sheet`] as CSV: a header row, then one line per row; text neutralised.

use super::{Sheet, Value, neutralise};
use crate::error::ServiceError;

pub(super) fn write(sheet: &Sheet) -> Result<Vec<u8>, ServiceError> {
    let fail = |e: csv::Error| ServiceError::Internal(format!("CSV export: {e}"));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(sheet.header.iter().map(|h| neutralise(h).into_owned()))
        .map_err(fail)?;
    for row in &sheet.rows {
        out.write_record(row.iter().map(cell)).map_err(fail)?;
    }
    out.into_inner()
        .map_err(|e| ServiceError::Internal(format!("CSV export: {e}")))
}

fn cell(value: &Value) -> String {
    match value {
        Value::Text(s) => neutralise(s).into_owned(),
        Value::Int(n) => n.to_string(),
        Value::Number(x) => format!("{x:.4}"),
        Value::Percent(p) => format!("{p:.1}"),
        Value::Empty => String::new(),
    }
}
