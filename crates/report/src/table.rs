//! Tables written as CSV, Parquet (through polars) and Markdown.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvWriter, DataFrame, ParquetWriter, SerWriter};

use crate::error::{ReportError, Result};

/// The values of one column; all entries share one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Floating-point values (NaN allowed, shown as "—" in Markdown).
    F64(Vec<f64>),
    /// Integer values.
    I64(Vec<i64>),
    /// Text values.
    Str(Vec<String>),
}

impl Values {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::Str(v) => v.len(),
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the column is numeric (right-aligned in Markdown).
    fn is_numeric(&self) -> bool {
        !matches!(self, Values::Str(_))
    }

    /// Markdown text of entry `i` (caller guarantees `i < len`).
    fn cell(&self, i: usize) -> String {
        match self {
            Values::F64(v) => format_sig4(v[i]),
            Values::I64(v) => v[i].to_string(),
            // A raw pipe would split the cell; newlines would end the row.
            Values::Str(v) => v[i].replace('|', "\\|").replace(['\n', '\r'], " "),
        }
    }
}

impl From<Vec<f64>> for Values {
    fn from(v: Vec<f64>) -> Self {
        Values::F64(v)
    }
}

impl From<Vec<i64>> for Values {
    fn from(v: Vec<i64>) -> Self {
        Values::I64(v)
    }
}

impl From<Vec<String>> for Values {
    fn from(v: Vec<String>) -> Self {
        Values::Str(v)
    }
}

impl From<Vec<&str>> for Values {
    fn from(v: Vec<&str>) -> Self {
        Values::Str(v.into_iter().map(str::to_owned).collect())
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header text.
    pub name: String,
    /// Entries.
    pub values: Values,
}

impl Column {
    /// Column from a name and anything convertible to [`Values`].
    pub fn new(name: impl Into<String>, values: impl Into<Values>) -> Self {
        Self {
            name: name.into(),
            values: values.into(),
        }
    }

    /// Float column.
    pub fn f64(name: impl Into<String>, values: Vec<f64>) -> Self {
        Self::new(name, Values::F64(values))
    }

    /// Integer column.
    pub fn i64(name: impl Into<String>, values: Vec<i64>) -> Self {
        Self::new(name, Values::I64(values))
    }

    /// Text column.
    pub fn str<S: Into<String>>(name: impl Into<String>, values: Vec<S>) -> Self {
        Self::new(
            name,
            Values::Str(values.into_iter().map(Into::into).collect()),
        )
    }
}

/// A titled table of equally long, uniquely named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title (Markdown heading).
    pub title: String,
    /// Columns, left to right.
    pub columns: Vec<Column>,
}

impl Table {
    /// Empty table with a title.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            columns: Vec::new(),
        }
    }

    /// Table from columns, checking lengths and names.
    pub fn from_columns(title: impl Into<String>, columns: Vec<Column>) -> Result<Self> {
        let table = Self {
            title: title.into(),
            columns,
        };
        table.validate()?;
        Ok(table)
    }

    /// Appends a column, failing if its length or name clashes with the table.
    pub fn push_column(&mut self, column: Column) -> Result<()> {
        if let Some(first) = self.columns.first() {
            if first.values.len() != column.values.len() {
                return Err(ReportError::ColumnLength {
                    table: self.title.clone(),
                    column: column.name,
                    len: column.values.len(),
                    expected: first.values.len(),
                });
            }
        }
        if self.columns.iter().any(|c| c.name == column.name) {
            return Err(ReportError::DuplicateColumn {
                table: self.title.clone(),
                column: column.name,
            });
        }
        self.columns.push(column);
        Ok(())
    }

    /// Builder form of [`Table::push_column`].
    pub fn with_column(
        mut self,
        name: impl Into<String>,
        values: impl Into<Values>,
    ) -> Result<Self> {
        self.push_column(Column::new(name, values))?;
        Ok(self)
    }

    /// Number of rows (0 for a table without columns).
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Checks equal column lengths and unique names (fields are public, so writers re-check).
    pub fn validate(&self) -> Result<()> {
        let expected = self.n_rows();
        let mut seen = HashSet::new();
        for c in &self.columns {
            if c.values.len() != expected {
                return Err(ReportError::ColumnLength {
                    table: self.title.clone(),
                    column: c.name.clone(),
                    len: c.values.len(),
                    expected,
                });
            }
            if !seen.insert(c.name.as_str()) {
                return Err(ReportError::DuplicateColumn {
                    table: self.title.clone(),
                    column: c.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Markdown rendering: a `###` title, then a pipe table with aligned columns.
    ///
    /// Floats use 4 significant digits and NaN prints as "—". Does not validate;
    /// missing cells of a ragged table print empty.
    pub fn to_markdown(&self) -> String {
        let n_rows = self
            .columns
            .iter()
            .map(|c| c.values.len())
            .max()
            .unwrap_or(0);
        let header: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.name.replace('|', "\\|"))
            .collect();
        let cells: Vec<Vec<String>> = self
            .columns
            .iter()
            .map(|c| {
                (0..n_rows)
                    .map(|i| {
                        if i < c.values.len() {
                            c.values.cell(i)
                        } else {
                            String::new()
                        }
                    })
                    .collect()
            })
            .collect();
        // Widths in chars, not bytes: "—" and "±" are multi-byte.
        let widths: Vec<usize> = header
            .iter()
            .zip(&cells)
            .map(|(h, col)| {
                col.iter()
                    .map(|s| s.chars().count())
                    .chain(std::iter::once(h.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let numeric: Vec<bool> = self.columns.iter().map(|c| c.values.is_numeric()).collect();

        let mut out = String::new();
        if !self.title.is_empty() {
            out.push_str("### ");
            out.push_str(&self.title);
            out.push_str("\n\n");
        }
        if self.columns.is_empty() {
            return out;
        }
        let row = |items: &mut dyn Iterator<Item = String>| -> String {
            let mut line = String::from("|");
            for s in items {
                line.push(' ');
                line.push_str(&s);
                line.push_str(" |");
            }
            line.push('\n');
            line
        };
        out.push_str(&row(&mut header
            .iter()
            .zip(&widths)
            .map(|(h, &w)| pad(h, w, false))));
        out.push_str(&row(&mut widths.iter().zip(&numeric).map(|(&w, &num)| {
            if num {
                format!("{}:", "-".repeat(w - 1))
            } else {
                "-".repeat(w)
            }
        })));
        for i in 0..n_rows {
            out.push_str(&row(&mut cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((col, &w), &num)| pad(&col[i], w, num))));
        }
        out
    }

    /// Polars data frame with one series per column.
    fn to_dataframe(&self, path: &Path, op: &'static str) -> Result<DataFrame> {
        self.validate()?;
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let name = c.name.as_str().into();
                match &c.values {
                    Values::F64(v) => polars::prelude::Column::new(name, v.as_slice()),
                    Values::I64(v) => polars::prelude::Column::new(name, v.as_slice()),
                    Values::Str(v) => polars::prelude::Column::new(name, v.as_slice()),
                }
            })
            .collect();
        DataFrame::new(self.n_rows(), columns).map_err(|source| ReportError::Polars {
            op,
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the table as CSV with a header row.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut df = self.to_dataframe(path, "build data frame for CSV")?;
        let mut file = create(path, "create CSV")?;
        CsvWriter::new(&mut file)
            .include_header(true)
            .finish(&mut df)
            .map_err(|source| ReportError::Polars {
                op: "write CSV",
                path: path.to_path_buf(),
                source,
            })
    }

    /// Writes the table as Parquet.
    pub fn write_parquet(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut df = self.to_dataframe(path, "build data frame for Parquet")?;
        let file = create(path, "create Parquet")?;
        ParquetWriter::new(file)
            .finish(&mut df)
            .map(|_| ())
            .map_err(|source| ReportError::Polars {
                op: "write Parquet",
                path: path.to_path_buf(),
                source,
            })
    }

    /// Writes the Markdown rendering to a file.
    pub fn write_markdown(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.validate()?;
        std::fs::write(path, self.to_markdown()).map_err(|source| ReportError::Io {
            op: "write Markdown",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `dir/stem.csv`, `dir/stem.parquet` and `dir/stem.md`; returns the paths in that order.
    pub fn write_all(&self, dir: impl AsRef<Path>, stem: &str) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        self.validate()?;
        let csv = dir.join(format!("{stem}.csv"));
        let parquet = dir.join(format!("{stem}.parquet"));
        let md = dir.join(format!("{stem}.md"));
        self.write_csv(&csv)?;
        self.write_parquet(&parquet)?;
        self.write_markdown(&md)?;
        Ok(vec![csv, parquet, md])
    }
}

fn create(path: &Path, op: &'static str) -> Result<File> {
    File::create(path).map_err(|source| ReportError::Io {
        op,
        path: path.to_path_buf(),
        source,
    })
}

/// Pads `s` to `width` chars, right-aligned for numbers.
fn pad(s: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.chars().count()));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// Formats a float with 4 significant digits: fixed notation for 1e-3 <= |x| < 1e4, else scientific.
pub fn format_sig4(x: f64) -> String {
    if x.is_nan() {
        return "—".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    // Let the scientific formatter do the rounding, so 9.99996 becomes 1.000e1 and
    // the exponent (hence the number of decimals) reflects the rounded value.
    let sci = format!("{x:.3e}");
    let exp: i32 = sci
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-3..=3).contains(&exp) {
        let decimals = (3 - exp) as usize;
        format!("{x:.decimals$}")
    } else {
        sci
    }
}

#[cfg(test)]
mod tests {
    use super::format_sig4;

    #[test]
    fn sig4_formats_hand_checked_values() {
        assert_eq!(format_sig4(0.123456), "0.1235");
        assert_eq!(format_sig4(1.0), "1.000");
        assert_eq!(format_sig4(-12.3456), "-12.35");
        assert_eq!(format_sig4(1234.56), "1235");
        assert_eq!(format_sig4(9.99996), "10.00");
        assert_eq!(format_sig4(0.00123456), "0.001235");
        assert_eq!(format_sig4(12346.0), "1.235e4");
        assert_eq!(format_sig4(0.0001), "1.000e-4");
        assert_eq!(format_sig4(f64::NAN), "—");
        assert_eq!(format_sig4(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_sig4(0.0), "0");
    }
}
