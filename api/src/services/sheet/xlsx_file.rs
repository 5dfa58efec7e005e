//! [`Sheet`] as an XLSX workbook (`rust_xlsxwriter`): a bold header row, frozen panes
//! below the header and right of the sheet's leading columns, numbers as numbers and
//! percentages as fractions formatted `0.0%`; text neutralised as in CSV.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::{Sheet, Value, neutralise};
use crate::error::ServiceError;

/// The percentage cells' number format.
pub const PERCENT_FORMAT: &str = "0.0%";

pub(super) fn write(sheet: &Sheet) -> Result<Vec<u8>, ServiceError> {
    build(sheet).map_err(|e| ServiceError::Internal(format!("XLSX export: {e}")))
}

fn build(sheet: &Sheet) -> Result<Vec<u8>, XlsxError> {
    let header = Format::new().set_bold();
    let percent = Format::new().set_num_format(PERCENT_FORMAT);
    let distance = Format::new().set_num_format("0.0000");
    let mut workbook = Workbook::new();
    let ws = workbook.add_worksheet();
    ws.set_name(&sheet.name)?;
    for (c, h) in sheet.header.iter().enumerate() {
        let c = column(c)?;
        ws.write_string_with_format(0, c, neutralise(h), &header)?;
        // Wide enough for the heading (session columns: date, time and subject).
        let width = h.chars().count().clamp(8, 40) as f64 + 2.0;
        ws.set_column_width(c, width)?;
    }
    for (r, row) in sheet.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (c, value) in row.iter().enumerate() {
            let c = column(c)?;
            match value {
                Value::Text(s) => {
                    ws.write_string(r, c, neutralise(s))?;
                }
                Value::Int(n) => {
                    ws.write_number(r, c, *n as f64)?;
                }
                Value::Number(x) => {
                    ws.write_number_with_format(r, c, *x, &distance)?;
                }
                Value::Percent(p) => {
                    ws.write_number_with_format(r, c, p / 100.0, &percent)?;
                }
                Value::Empty => {}
            }
        }
    }
    ws.set_freeze_panes(1, sheet.frozen_columns)?;
    workbook.save_to_buffer()
}

fn column(c: usize) -> Result<u16, XlsxError> {
    u16::try_from(c).map_err(|_| XlsxError::RowColumnLimitError)
}
