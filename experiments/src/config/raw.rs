//! The YAML schema as written by users: serde structs with unknown keys rejected. Values are
//! only parsed here; `check` turns them into the validated types of `super`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One run's document (the file minus `variants` and `sweep`, after overrides).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub study: StudyKind,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub data: RawData,
    pub model: RawModel,
    pub trainer: RawTrainer,
    #[serde(default)]
    pub precision: RawPrecision,
    #[serde(default)]
    pub predict: RawPredict,
    #[serde(default)]
    pub co2: Option<RawCo2>,
    #[serde(default)]
    pub mnist: Option<RawMnist>,
    #[serde(default)]
    pub uci: Option<RawUci>,
}

/// Which study a config drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyKind {
    /// Mauna Loa CO2 extrapolation (paper Fig. 2 and 3) and dropout-rate comparisons.
    Co2,
    /// Rotated-MNIST classification uncertainty (paper Fig. 4), calibration, out-of-distribution.
    MnistRotated,
    /// The UCI regression benchmark (paper Table 1, the authors' 2018 grid-search protocol).
    Uci,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// The vendored data folder (default `data`); not with `csv`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A researcher's own table instead of the vendored data.
    #[serde(default)]
    pub csv: Option<PathBuf>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub split: Option<RawSplit>,
}

/// How an own table is split: random (`test_fraction`, `count`, `seed`) or `index_files`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    #[serde(default)]
    pub test_fraction: Option<f64>,
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub index_files: Option<Vec<RawIndexPair>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndexPair {
    pub train: PathBuf,
    pub test: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawActivation {
    Relu,
    Tanh,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawInit {
    CaffeXavier,
    Torch,
    GlorotUniform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawArch {
    Mlp,
    Lenet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawPlacement {
    /// Dropout after FC 500 only ("LeNet").
    Fc,
    /// Also after each convolution ("LeNet-all").
    All,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    #[serde(default = "default_arch")]
    pub arch: RawArch,
    #[serde(default)]
    pub hidden: Option<Vec<i64>>,
    #[serde(default)]
    pub activation: Option<RawActivation>,
    #[serde(default)]
    pub placement: Option<RawPlacement>,
    /// Required except for the uci study (which grid-searches it).
    #[serde(default)]
    pub dropout: Option<f64>,
    #[serde(default)]
    pub input_dropout: f64,
    #[serde(default = "default_init")]
    pub init: RawInit,
    #[serde(default)]
    pub first_layer_slope: Option<f64>,
}

fn default_arch() -> RawArch {
    RawArch::Mlp
}

fn default_init() -> RawInit {
    RawInit::CaffeXavier
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawOptimizer {
    Sgd,
    Adam,
}

/// `batch_size: full` or a positive integer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawBatch {
    Size(i64),
    Word(String),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrainer {
    #[serde(default)]
    pub iterations: Option<i64>,
    #[serde(default)]
    pub epochs: Option<i64>,
    #[serde(default)]
    pub batch_size: Option<RawBatch>,
    pub optimizer: RawOptimizer,
    pub lr: f64,
    #[serde(default)]
    pub momentum: Option<f64>,
    #[serde(default)]
    pub beta1: Option<f64>,
    #[serde(default)]
    pub beta2: Option<f64>,
    #[serde(default)]
    pub schedule: Option<RawSchedule>,
    #[serde(default)]
    pub weight_decay: Option<f64>,
    #[serde(default)]
    pub log_every: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum RawSchedule {
    Constant,
    Inv { gamma: f64, power: f64 },
    Cosine { final_fraction: f64 },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrecision {
    #[serde(default)]
    pub length_scale: Option<f64>,
    #[serde(default)]
    pub tau: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPredict {
    /// Required by the co2 and uci studies; the mnist_rotated study has its own counts.
    #[serde(default)]
    pub samples: Option<i64>,
    #[serde(default = "default_budget")]
    pub memory_budget_mb: f64,
}

impl Default for RawPredict {
    fn default() -> Self {
        Self {
            samples: None,
            memory_budget_mb: default_budget(),
        }
    }
}

fn default_budget() -> f64 {
    256.0
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCo2 {
    /// The far point whose predictive mean and sd go in the table.
    pub x_star: f64,
    /// Passes of the Fig. 3 comparison (T small).
    #[serde(default = "default_small")]
    pub small_samples: i64,
    /// Half-width of the drawn band in sd, per activation (the paper draws TanH at 8).
    #[serde(default)]
    pub band_sd: Option<RawBandSd>,
    /// Also fit the GP baseline.
    #[serde(default = "default_true")]
    pub gp: bool,
    /// Predictive sd "near the data" is averaged over training inputs with x >= this.
    #[serde(default)]
    pub near_from: Option<f64>,
    /// Consecutive training points per window of the fit check.
    #[serde(default = "default_fit_window")]
    pub fit_window: i64,
}

fn default_fit_window() -> i64 {
    12
}

fn default_small() -> i64 {
    10
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBandSd {
    pub relu: f64,
    pub tanh: f64,
}

/// A named set of overrides (`key.path: value`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub name: String,
    #[serde(default)]
    pub set: crate::yaml::Mapping,
}

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

/// `all` or a list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawNames {
    List(Vec<String>),
    Word(String),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUci {
    /// `all` (the ten of Table 1; unvendored ones are skipped with a message) or names; not
    /// with `data.csv`.
    #[serde(default)]
    pub datasets: Option<RawNames>,
    /// Use only the first K splits of each data set (default: all).
    #[serde(default)]
    pub splits: Option<i64>,
    /// Training epochs = the data set's n_epochs.txt times this (the authors' result files are
    /// labelled 100x); vendored
    /// data only.
    #[serde(default)]
    pub epoch_multiplier: Option<f64>,
    /// Training epochs of an own table (`data.csv`).
    #[serde(default)]
    pub epochs: Option<i64>,
    /// MC passes for the validation log-likelihood of each grid point.
    #[serde(default = "default_validation_samples")]
    pub validation_samples: i64,
    /// Dropout-rate grid; default: each data set's dropout_rates.txt.
    #[serde(default)]
    pub dropout_rates: Option<Vec<f64>>,
    /// tau grid (original target units); default: each data set's tau_values.txt.
    #[serde(default)]
    pub tau_values: Option<Vec<f64>>,
    /// Splits trained together in one stacked model (each with its whole grid).
    #[serde(default = "default_splits_per_stack")]
    pub splits_per_stack: i64,
}

fn default_validation_samples() -> i64 {
    1000
}

fn default_splits_per_stack() -> i64 {
    20
}
