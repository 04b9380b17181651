//! Metrics for MC-dropout predictions: regression predictive moments and log-likelihood,
//! classification uncertainty scores, calibration and out-of-distribution ranking.
//!
//! Pure math on slices (no tch). Sample buffers are pass-major: `[T, N]` for regression,
//! `[T, N, C]` for classification; see [`samples`].

pub mod classification;
pub mod error;
pub mod fit;
pub mod regression;
pub mod samples;

pub use error::EvalError;
pub use samples::{LogitSamples, ProbSamples, SampleMatrix};
