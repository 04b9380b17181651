//! Typed errors for every metric: each names the operation and what was wrong with its input.

use thiserror::Error;

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    /// A flat buffer does not hold the number of values its declared shape needs.
    #[error(
        "{op}: buffer of length {len} does not match shape {shape:?} ({expected} values expected)"
    )]
    Shape {
        /// Operation that checked the shape.
        op: &'static str,
        /// Declared shape, outermost dimension first.
        shape: Vec<usize>,
        /// Product of the shape (`None` would overflow, reported as `usize::MAX`).
        expected: usize,
        /// Length actually supplied.
        len: usize,
    },
    /// Two per-point inputs have different lengths.
    #[error("{op}: {left} has {left_len} entries but {right} has {right_len}")]
    LengthMismatch {
        /// Operation that compared the lengths.
        op: &'static str,
        /// Name of the first input.
        left: &'static str,
        /// Its length.
        left_len: usize,
        /// Name of the second input.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// An input that must be non-empty (passes, points, classes, bins) is empty.
    #[error("{op}: {what} is empty")]
    Empty {
        /// Operation that needed the input.
        op: &'static str,
        /// Which input or dimension was empty.
        what: &'static str,
    },
    /// A scalar parameter is outside its valid range.
    #[error("{op}: {name} = {value} is invalid ({reason})")]
    InvalidParameter {
        /// Operation that took the parameter.
        op: &'static str,
        /// Parameter name.
        name: &'static str,
        /// Value supplied.
        value: f64,
        /// The range it must lie in.
        reason: &'static str,
    },
    /// A value is NaN or infinite.
    #[error("{op}: {what} has non-finite value {value} at {at}")]
    NonFinite {
        /// Operation that found the value.
        op: &'static str,
        /// Which input.
        what: &'static str,
        /// Position, e.g. "pass 2, point 7".
        at: String,
        /// The offending value.
        value: f64,
    },
    /// A class label is not below the number of classes.
    #[error("{op}: label {label} at point {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// Operation that read the label.
        op: &'static str,
        /// Point index.
        index: usize,
        /// Label value.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A probability vector has an entry outside [0, 1] or does not sum to 1.
    #[error("{op}: probabilities at {at} are not a distribution ({detail})")]
    NotDistribution {
        /// Operation that validated the probabilities.
        op: &'static str,
        /// Position, e.g. "pass 0, point 3".
        at: String,
        /// What is wrong (bad entry or bad sum).
        detail: String,
    },
    /// A ranking metric needs both positive and negative examples.
    #[error("{op}: needs at least one positive and one negative, got {positives} positives and {negatives} negatives")]
    DegenerateLabels {
        /// Operation (auroc / aupr).
        op: &'static str,
        /// Number of positives.
        positives: usize,
        /// Number of negatives.
        negatives: usize,
    },
}

/// Checks `a.len() == b.len()`.
pub(crate) fn same_len(
    op: &'static str,
    left: &'static str,
    left_len: usize,
    right: &'static str,
    right_len: usize,
) -> Result<(), EvalError> {
    if left_len == right_len {
        Ok(())
    } else {
        Err(EvalError::LengthMismatch {
            op,
            left,
            left_len,
            right,
            right_len,
        })
    }
}

/// Checks that every value of a per-point slice is finite.
pub(crate) fn all_finite<T: Copy + Into<f64>>(
    op: &'static str,
    what: &'static str,
    values: &[T],
) -> Result<(), EvalError> {
    match values
        .iter()
        .map(|&v| v.into())
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        None => Ok(()),
        Some((i, value)) => Err(EvalError::NonFinite {
            op,
            what,
            at: format!("index {i}"),
            value,
        }),
    }
}
