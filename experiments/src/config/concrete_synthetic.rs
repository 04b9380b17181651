//! The concrete_synthetic study's section (`concrete_synthetic:`): its schema, its validated
//! settings and their check.

use serde::{Deserialize, Serialize};

use super::raw::RawRun;
use super::{positive, Checker, ConfigError, StudyConfig};

/// The authors' data sizes (`Ns` in their Keras notebook).
pub const AUTHORS_SIZES: [usize; 6] = [10, 25, 50, 100, 1000, 10000];

/// The most training or held-out points one net takes (100 x the authors' largest N).
pub const MAX_POINTS: i64 = 1_000_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcreteSynthetic {
    /// Training-set sizes N, strictly increasing.
    #[serde(default)]
    pub sizes: Option<Vec<i64>>,
    /// Repetitions per N (each with its own data, weights and masks).
    #[serde(default = "default_repeats")]
    pub repeats: i64,
    /// Held-out points x ~ N(0, 1) per (N, repetition) for the sds, RMSE and log-likelihood.
    #[serde(default = "default_test_points")]
    pub test_points: i64,
}

fn default_repeats() -> i64 {
    3
}

fn default_test_points() -> i64 {
    1000
}

/// Concrete-dropout synthetic study settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcreteSyntheticConfig {
    /// Optimiser steps of every net, whatever its N (`trainer.iterations`).
    pub iterations: usize,
    /// T, the MC passes per held-out input (`predict.samples`, >= 2).
    pub samples: usize,
    /// Training-set sizes, strictly increasing, each >= 2.
    pub sizes: Vec<usize>,
    pub repeats: usize,
    pub test_points: usize,
    /// The relaxed masks' temperature (`model.temperature`, checked with the model section).
    pub temperature: f64,
}

/// Checks the concrete_synthetic study's settings, once: the training length in steps, T and
/// the `concrete_synthetic:` section (absent: every default).
pub(crate) fn check(c: &Checker, raw: &RawRun) -> Result<StudyConfig, ConfigError> {
    let (src, origin) = (c.src, c.origin);
    let iterations = c.iterations_only(
        &raw.trainer,
        "the concrete_synthetic study trains every net for the same number of steps, whatever \
         its N: give trainer.iterations instead of trainer.epochs",
    )?;
    let samples = c.samples(raw)?;
    if samples < 2 {
        return Err(src.error(
            "predict.samples",
            format!(
                "got {samples}, allowed: at least 2 (the epistemic sd is the sd over the passes)"
            ),
            origin("predict.samples"),
        ));
    }
    let s = raw
        .concrete_synthetic
        .clone()
        .unwrap_or(RawConcreteSynthetic {
            sizes: None,
            repeats: default_repeats(),
            test_points: default_test_points(),
        });
    let sizes = match &s.sizes {
        None => AUTHORS_SIZES.to_vec(),
        Some(list) => {
            let key = "concrete_synthetic.sizes";
            let bad = |why: String| Err(src.error(key, why, origin(key)));
            if list.is_empty() {
                return bad("empty: give at least one training-set size N >= 2".into());
            }
            if let Some(n) = list.iter().find(|&&n| n < 2) {
                return bad(format!(
                    "got {n}, allowed: sizes N >= 2 (a net learns a noise level from at least two \
                     points)"
                ));
            }
            if let Some(n) = list.iter().find(|&&n| n > MAX_POINTS) {
                return bad(format!("got {n}, allowed: sizes N <= {MAX_POINTS}"));
            }
            if let Some(w) = list.windows(2).find(|w| w[1] <= w[0]) {
                return bad(format!(
                    "got {} after {}, allowed: strictly increasing sizes (each N once, smallest \
                     first), e.g. [10, 25, 50, 100, 1000, 10000]",
                    w[1], w[0]
                ));
            }
            list.iter().map(|&n| n as usize).collect()
        }
    };
    Ok(StudyConfig::ConcreteSynthetic(ConcreteSyntheticConfig {
        iterations,
        samples,
        sizes,
        repeats: positive(src, "concrete_synthetic.repeats", s.repeats, origin)?,
        test_points: match positive(src, "concrete_synthetic.test_points", s.test_points, origin)? {
            t if t as i64 <= MAX_POINTS => t,
            t => {
                return Err(src.error(
                    "concrete_synthetic.test_points",
                    format!("got {t}, allowed: 1 to {MAX_POINTS}"),
                    origin("concrete_synthetic.test_points"),
                ))
            }
        },
        temperature: raw
            .model
            .temperature
            .unwrap_or(crate::methods::concrete_dropout::DEFAULT_TEMPERATURE),
    }))
}
