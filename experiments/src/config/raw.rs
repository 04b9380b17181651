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
    // The studies' own sections (`config/<study>.rs`), one field each.
    #[serde(default)]
    pub co2: Option<super::co2::RawCo2>,
    #[serde(default)]
    pub mnist: Option<super::mnist::RawMnist>,
    #[serde(default)]
    pub uci: Option<super::uci::RawUci>,
    #[serde(default)]
    pub concrete_synthetic: Option<super::concrete_synthetic::RawConcreteSynthetic>,
    #[serde(default)]
    pub active_learning: Option<super::active_learning::RawActiveLearning>,
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
    /// Concrete dropout's synthetic study (Gal, Hron & Kendall 2017): learnt drop rates and
    /// the aleatoric / epistemic sd against the data size N.
    ConcreteSynthetic,
    /// Active learning on MNIST (Gal, Islam & Ghahramani 2017): BALD, max entropy, variation
    /// ratios and mean STD against random acquisition.
    ActiveLearning,
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
    /// The active-learning CNN (conv 32@4x4 x 2, pool, dense 128).
    Cnn,
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
    /// A name from `crate::methods::ALL` (checked in `check_run`); default `mc_dropout`.
    #[serde(default)]
    pub method: Option<String>,
    /// Members of a deep ensemble (`method: ensemble` only; checked in `check_run`); default 5.
    #[serde(default)]
    pub members: Option<i64>,
    /// Concrete dropout's mask temperature (`method: concrete_dropout` only); default 0.1.
    #[serde(default)]
    pub temperature: Option<f64>,
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
    #[serde(default)]
    pub dropout_warmup: Option<f64>,
    #[serde(default)]
    pub adversarial: Option<f64>,
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

/// A default of `true` for boolean keys.
pub(super) fn default_true() -> bool {
    true
}

/// A named set of overrides (`key.path: value`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub name: String,
    #[serde(default)]
    pub set: crate::yaml::Mapping,
}
