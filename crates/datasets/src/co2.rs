//! Mauna Loa CO2: the Gal & Ghahramani (2016) Fig. 2 series and the raw weekly record.

use std::path::Path;

use tch::Tensor;

use crate::error::{DataError, Result};
use crate::root::DataRoot;

/// Training series of the paper (x, y standardised as published).
pub const GAL_TRAIN: &str = "co2/gal2016_train.csv.gz";
/// The 1000 extrapolation inputs of the figure.
pub const GAL_TEST_X: &str = "co2/gal2016_test_x.csv.gz";
/// Raw weekly Mauna Loa record 1958-2001.
pub const WEEKLY: &str = "co2/maunaloa_weekly_1958_2001.csv.gz";

/// The paper's CO2 set-up: 272 training points and 1000 test inputs, all f32 column vectors.
#[derive(Debug)]
pub struct Co2Data {
    /// Training inputs, shape [272, 1].
    pub x_train: Tensor,
    /// Training targets, shape [272, 1].
    pub y_train: Tensor,
    /// Extrapolation inputs, shape [1000, 1].
    pub x_test: Tensor,
}

/// One week of the raw record; `co2` is `None` where the week has no measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeeklyCo2 {
    /// Date as YYYYMMDD.
    pub date: u32,
    /// CO2 in ppmv.
    pub co2: Option<f64>,
}

/// Loads the paper's training series and test inputs.
pub fn load_gal(root: &DataRoot) -> Result<Co2Data> {
    let train_path = root.path(GAL_TRAIN);
    let train = parse_csv(&root.read_text(GAL_TRAIN)?, &train_path, &["x", "y"])?;
    let (mut xs, mut ys) = (Vec::with_capacity(train.len()), Vec::new());
    for row in &train {
        xs.push(required(row, 0, &train_path)? as f32);
        ys.push(required(row, 1, &train_path)? as f32);
    }
    let test_path = root.path(GAL_TEST_X);
    let test = parse_csv(&root.read_text(GAL_TEST_X)?, &test_path, &["x"])?;
    let xt = test
        .iter()
        .map(|row| required(row, 0, &test_path).map(|v| v as f32))
        .collect::<Result<Vec<f32>>>()?;
    for (rows, path) in [(xs.len(), &train_path), (xt.len(), &test_path)] {
        if rows == 0 {
            return Err(DataError::Inconsistent {
                path: path.clone(),
                msg: "no data rows".into(),
            });
        }
    }
    Ok(Co2Data {
        x_train: column(&xs),
        y_train: column(&ys),
        x_test: column(&xt),
    })
}

/// Loads the raw weekly record (2284 weeks, some without a value).
pub fn load_weekly(root: &DataRoot) -> Result<Vec<WeeklyCo2>> {
    let path = root.path(WEEKLY);
    let text = root.read_text(WEEKLY)?;
    let rows = parse_csv(&text, &path, &["date", "co2"])?;
    // Dates are parsed separately (integers, not floats) so that they stay exact.
    let mut out = Vec::with_capacity(rows.len());
    for (row, line) in rows.iter().zip(data_lines(&text)) {
        let (line_no, raw) = line;
        let field = raw.split(',').next().unwrap_or("").trim();
        let date: u32 = field.parse().map_err(|_| DataError::Parse {
            path: path.clone(),
            line: line_no,
            column: 1,
            msg: format!("{field:?} is not a YYYYMMDD date"),
        })?;
        let (month, day) = ((date / 100) % 100, date % 100);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(DataError::Parse {
                path: path.clone(),
                line: line_no,
                column: 1,
                msg: format!("{date} is not a valid YYYYMMDD date"),
            });
        }
        out.push(WeeklyCo2 {
            date,
            co2: row.1[1],
        });
    }
    Ok(out)
}

/// One parsed CSV data row: its 1-based line number and its values (`None` = empty field).
type Row = (usize, Vec<Option<f64>>);

/// Non-blank lines after the header, with 1-based line numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// Parses a small numeric CSV whose header must be exactly `header`; empty fields become `None`.
fn parse_csv(text: &str, path: &Path, header: &[&str]) -> Result<Vec<Row>> {
    let first = text.lines().next().unwrap_or("");
    let got: Vec<&str> = first.split(',').map(str::trim).collect();
    if got != header {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            msg: format!("header is {first:?}, expected {:?}", header.join(",")),
        });
    }
    let mut rows = Vec::new();
    for (line_no, line) in data_lines(text) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                column: fields.len().min(header.len()) + 1,
                msg: format!(
                    "{} fields, expected {} ({})",
                    fields.len(),
                    header.len(),
                    header.join(",")
                ),
            });
        }
        let mut values = Vec::with_capacity(fields.len());
        for (c, f) in fields.iter().enumerate() {
            let f = f.trim();
            if f.is_empty() {
                values.push(None);
                continue;
            }
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() => values.push(Some(v)),
                _ => {
                    return Err(DataError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        column: c + 1,
                        msg: format!("{f:?} is not a finite number ({})", header[c]),
                    })
                }
            }
        }
        rows.push((line_no, values));
    }
    Ok(rows)
}

/// A value that must be present in a parsed row.
fn required(row: &Row, column: usize, path: &Path) -> Result<f64> {
    row.1[column].ok_or_else(|| DataError::Parse {
        path: path.to_path_buf(),
        line: row.0,
        column: column + 1,
        msg: "empty value".into(),
    })
}

/// An f32 column vector [n, 1].
fn column(values: &[f32]) -> Tensor {
    Tensor::from_slice(values).reshape([values.len() as i64, 1])
}
