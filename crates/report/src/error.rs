//! Error type for every fallible operation of the crate.

use std::path::PathBuf;

/// Result alias used throughout `mcd-report`.
pub type Result<T> = std::result::Result<T, ReportError>;

/// Failures while building tables or writing tables and figures.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file-system operation (create, write) failed.
    #[error("{op} '{}': {source}", path.display())]
    Io {
        /// What was being done, e.g. "write CSV".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Polars failed to build or serialise a data frame.
    #[error("{op} '{}': {source}", path.display())]
    Polars {
        /// What was being done, e.g. "write Parquet".
        op: &'static str,
        /// The output file involved.
        path: PathBuf,
        /// The underlying polars error.
        #[source]
        source: polars::error::PolarsError,
    },
    /// Plotters failed while drawing or encoding a figure.
    #[error("{op} '{}': {message}", path.display())]
    Render {
        /// What was being done, e.g. "draw PNG".
        op: &'static str,
        /// The output file involved.
        path: PathBuf,
        /// The plotters error, rendered as text (its type is backend-generic).
        message: String,
    },
    /// There was nothing finite to plot.
    #[error("no data to plot for '{}': {what}", path.display())]
    EmptyData {
        /// The figure stem that would have been written.
        path: PathBuf,
        /// Which input was empty.
        what: String,
    },
    /// Inputs are inconsistent (mismatched lengths, bad parameters).
    #[error("invalid input for '{}': {message}", path.display())]
    InvalidInput {
        /// The output stem or file the input was meant for.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A table column does not have as many values as the table has rows.
    #[error("table '{table}': column '{column}' has {len} values, expected {expected}")]
    ColumnLength {
        /// Table title.
        table: String,
        /// Offending column.
        column: String,
        /// Its length.
        len: usize,
        /// Length of the first column.
        expected: usize,
    },
    /// Two columns of a table share a name (CSV/Parquet need unique headers).
    #[error("table '{table}': duplicate column name '{column}'")]
    DuplicateColumn {
        /// Table title.
        table: String,
        /// The repeated name.
        column: String,
    },
    /// The embedded font could not be parsed or registered with plotters.
    #[error("register embedded font: {0}")]
    Font(String),
}
