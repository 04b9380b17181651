//! The mnist_rotated study's section (`mnist:`): its schema, its validated settings and their
//! check.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use mcd_models::lenet::LeNetDropout;

use super::raw::{default_true, RawPlacement, RawRun};
use super::{positive, Checker, ConfigError, DataSource, StudyConfig, TrainLength};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMnist {
    /// Index in the MNIST test set of the digit to rotate (a "1").
    pub digit_index: i64,
    /// Rotation angles in degrees (counter-clockwise).
    pub angles: Vec<f64>,
    /// Passes per rotated image.
    #[serde(default = "default_rotation_samples")]
    pub rotation_samples: i64,
    /// Passes per test image for the test-set metrics.
    #[serde(default = "default_test_samples")]
    pub test_samples: i64,
    /// Fashion-MNIST vs MNIST out-of-distribution metrics.
    #[serde(default = "default_true")]
    pub ood: bool,
    /// Use only the first N training images (tiny runs and tests).
    #[serde(default)]
    pub train_limit: Option<i64>,
    /// Use only the first N test images (tiny runs and tests).
    #[serde(default)]
    pub test_limit: Option<i64>,
    /// Test images used for the accuracy logged after every epoch.
    #[serde(default = "default_monitor")]
    pub monitor_images: i64,
}

fn default_rotation_samples() -> i64 {
    100
}

fn default_test_samples() -> i64 {
    50
}

fn default_monitor() -> i64 {
    2000
}

/// Rotated-MNIST study settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MnistConfig {
    /// The vendored data folder (the study reads MNIST and Fashion-MNIST from it).
    pub dir: PathBuf,
    /// `trainer.iterations` or `trainer.epochs`.
    pub length: TrainLength,
    /// Where LeNet drops units (`model.placement`).
    pub placement: LeNetDropout,
    pub digit_index: usize,
    pub angles: Vec<f64>,
    pub rotation_samples: usize,
    pub test_samples: usize,
    pub ood: bool,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub monitor_images: usize,
}

/// Checks the mnist_rotated study's settings, once: the training length, the vendored data and
/// the `mnist:` section.
pub(crate) fn check(
    c: &Checker,
    raw: &RawRun,
    data: &DataSource,
) -> Result<StudyConfig, ConfigError> {
    let (src, origin) = (c.src, c.origin);
    let length = c.length(&raw.trainer)?;
    let Some(s) = &raw.mnist else {
        return Err(src.error(
            "mnist",
            "the mnist_rotated study needs a `mnist:` section (digit_index, angles, ...)",
            None,
        ));
    };
    if s.angles.is_empty() || s.angles.iter().any(|a| !a.is_finite()) {
        return Err(src.error(
            "mnist.angles",
            "give a non-empty list of finite angles in degrees",
            origin("mnist.angles"),
        ));
    }
    let digit_index = usize::try_from(s.digit_index).map_err(|_| {
        src.error(
            "mnist.digit_index",
            format!("got {}, must be an index >= 0", s.digit_index),
            origin("mnist.digit_index"),
        )
    })?;
    let limit = |key: &str, v: Option<i64>| v.map(|v| positive(src, key, v, origin)).transpose();
    let DataSource::Vendored(dir) = data else {
        return Err(src.error(
            "data.csv",
            "the mnist_rotated study reads the vendored MNIST, not data.csv; remove it",
            origin("data.csv"),
        ));
    };
    Ok(StudyConfig::MnistRotated(MnistConfig {
        dir: dir.clone(),
        length,
        placement: match raw.model.placement {
            Some(RawPlacement::All) => LeNetDropout::All,
            Some(RawPlacement::Fc) | None => LeNetDropout::Fc,
        },
        digit_index,
        angles: s.angles.clone(),
        rotation_samples: positive(src, "mnist.rotation_samples", s.rotation_samples, origin)?,
        test_samples: positive(src, "mnist.test_samples", s.test_samples, origin)?,
        ood: s.ood,
        train_limit: limit("mnist.train_limit", s.train_limit)?,
        test_limit: limit("mnist.test_limit", s.test_limit)?,
        monitor_images: positive(src, "mnist.monitor_images", s.monitor_images, origin)?,
    }))
}
