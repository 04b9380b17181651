//! The active_learning study's section (`active_learning:`): its schema, its validated settings
//! and their check (Gal, Islam & Ghahramani 2017, "Deep Bayesian Active Learning with Image
//! Data").

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::raw::RawRun;
use super::{finite_in, positive, Checker, ConfigError, DataSource, StudyConfig};

/// Images in the MNIST training set (initial set, validation set and pool are drawn from it).
pub const MNIST_TRAIN: usize = 60_000;
/// Images in the MNIST test set.
pub const MNIST_TEST: usize = 10_000;
/// The fewest training images of one class in MNIST (digit 5): a balanced initial set takes at
/// most this many per class.
pub const FEWEST_PER_CLASS: usize = 5_421;
/// Classes of MNIST.
pub const CLASSES: usize = 10;

/// An acquisition function: how the pool images are scored (the highest scores are acquired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acquisition {
    /// Predictive entropy of the mean of the passes' softmax outputs.
    MaxEntropy,
    /// Mutual information between the prediction and the weights.
    Bald,
    /// 1 - the modal class's share of the passes' argmaxes.
    VariationRatios,
    /// The per-class sd of the passes' probabilities, averaged over the classes.
    MeanStd,
    /// Uniformly at random (no passes).
    Random,
}

impl Acquisition {
    /// Every function, in the paper's order.
    pub const ALL: [Acquisition; 5] = [
        Acquisition::Bald,
        Acquisition::VariationRatios,
        Acquisition::MaxEntropy,
        Acquisition::MeanStd,
        Acquisition::Random,
    ];

    /// The config's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Acquisition::MaxEntropy => "max_entropy",
            Acquisition::Bald => "bald",
            Acquisition::VariationRatios => "variation_ratios",
            Acquisition::MeanStd => "mean_std",
            Acquisition::Random => "random",
        }
    }

    fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawActiveLearning {
    /// Acquisition functions, each run separately.
    #[serde(default)]
    pub functions: Option<Vec<String>>,
    #[serde(default = "default_repeats")]
    pub repeats: i64,
    #[serde(default = "default_rounds")]
    pub rounds: i64,
    #[serde(default = "default_acquire")]
    pub acquire: i64,
    #[serde(default = "default_initial")]
    pub initial: i64,
    #[serde(default = "default_validation")]
    pub validation: i64,
    #[serde(default = "default_pool_subset")]
    pub pool_subset: i64,
    #[serde(default = "default_test_images")]
    pub test_images: i64,
    #[serde(default = "default_dense_l2")]
    pub dense_l2: f64,
    #[serde(default = "default_conv_dropout")]
    pub conv_dropout: f64,
}

fn default_repeats() -> i64 {
    3
}
fn default_rounds() -> i64 {
    100
}
fn default_acquire() -> i64 {
    10
}
fn default_initial() -> i64 {
    20
}
fn default_validation() -> i64 {
    100
}
fn default_pool_subset() -> i64 {
    2000
}
fn default_test_images() -> i64 {
    MNIST_TEST as i64
}
fn default_dense_l2() -> f64 {
    2.5
}
fn default_conv_dropout() -> f64 {
    0.25
}

/// Active-learning study settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveLearningConfig {
    /// The vendored data folder.
    pub dir: PathBuf,
    /// Training epochs of every round (`trainer.epochs`).
    pub epochs: usize,
    /// T, the MC passes per scored pool image (`predict.samples`).
    pub samples: usize,
    pub functions: Vec<Acquisition>,
    pub repeats: usize,
    pub rounds: usize,
    /// Images acquired per round.
    pub acquire: usize,
    /// Size of the initial training set (a multiple of the 10 classes).
    pub initial: usize,
    /// Training images held out as a validation set (never acquired).
    pub validation: usize,
    /// Pool images scored per round, drawn at random from the pool.
    pub pool_subset: usize,
    /// The first N of the 10,000 test images.
    pub test_images: usize,
    /// c of the L2 penalty (c / N) ||W||^2 on the hidden dense layer's weights (Keras' l2).
    pub dense_l2: f64,
    /// Drop rate after the pooling (`model.dropout` is the dense layer's).
    pub conv_dropout: f64,
}

/// Checks the active_learning study's settings, once: the training length in epochs, T, the
/// vendored data and the `active_learning:` section (absent: every default).
pub(crate) fn check(
    c: &Checker,
    raw: &RawRun,
    data: &DataSource,
) -> Result<StudyConfig, ConfigError> {
    let (src, origin) = (c.src, c.origin);
    let epochs = match (raw.trainer.iterations, raw.trainer.epochs) {
        (None, Some(e)) => positive(src, "trainer.epochs", e, origin)?,
        (Some(_), _) => {
            return Err(src.error(
                "trainer.iterations",
                "the active_learning study trains every round for a number of epochs over its \
                 growing training set (the authors' 50): give trainer.epochs instead",
                origin("trainer.iterations"),
            ))
        }
        (None, None) => {
            return Err(src.error(
                "trainer.epochs",
                "missing: the training epochs of every round (the authors' 50)",
                origin("trainer"),
            ))
        }
    };
    let samples = c.samples(raw)?;
    let DataSource::Vendored(dir) = data else {
        return Err(src.error(
            "data.csv",
            "the active_learning study reads the vendored MNIST, not data.csv; remove it",
            origin("data.csv"),
        ));
    };
    let s = raw.active_learning.clone().unwrap_or(RawActiveLearning {
        functions: None,
        repeats: default_repeats(),
        rounds: default_rounds(),
        acquire: default_acquire(),
        initial: default_initial(),
        validation: default_validation(),
        pool_subset: default_pool_subset(),
        test_images: default_test_images(),
        dense_l2: default_dense_l2(),
        conv_dropout: default_conv_dropout(),
    });
    let err = |key: &str, msg: String| src.error(key, msg, origin(key));
    let functions = match &s.functions {
        None => Acquisition::ALL.to_vec(),
        Some(list) => {
            let key = "active_learning.functions";
            if list.is_empty() {
                return Err(err(
                    key,
                    "empty: give at least one acquisition function".into(),
                ));
            }
            let mut out = Vec::new();
            for name in list {
                let Some(a) = Acquisition::by_name(name) else {
                    return Err(err(
                        key,
                        format!(
                            "got `{name}`, allowed: {}",
                            Acquisition::ALL.map(Acquisition::name).join(", ")
                        ),
                    ));
                };
                if out.contains(&a) {
                    return Err(err(
                        key,
                        format!("got `{name}` twice; give each function once"),
                    ));
                }
                out.push(a);
            }
            out
        }
    };
    let repeats = positive(src, "active_learning.repeats", s.repeats, origin)?;
    let rounds = positive(src, "active_learning.rounds", s.rounds, origin)?;
    let acquire = positive(src, "active_learning.acquire", s.acquire, origin)?;
    let initial = positive(src, "active_learning.initial", s.initial, origin)?;
    if !initial.is_multiple_of(CLASSES) || initial / CLASSES > FEWEST_PER_CLASS {
        return Err(err(
            "active_learning.initial",
            format!(
                "got {initial}, which cannot be balanced over the {CLASSES} classes: allowed a \
                 multiple of {CLASSES} from {CLASSES} to {} (the paper: 20, 2 per class)",
                CLASSES * FEWEST_PER_CLASS
            ),
        ));
    }
    let validation = usize::try_from(s.validation)
        .ok()
        .filter(|&v| v <= MNIST_TRAIN)
        .ok_or_else(|| {
            err(
                "active_learning.validation",
                format!("got {}, allowed: 0 to {MNIST_TRAIN}", s.validation),
            )
        })?;
    let pool = MNIST_TRAIN.saturating_sub(initial + validation);
    if rounds.saturating_mul(acquire) > pool {
        return Err(err(
            "active_learning.rounds",
            format!(
                "got {rounds} rounds of {acquire} images, but the pool holds {pool} (60,000 \
                 training images less {initial} initial and {validation} validation)"
            ),
        ));
    }
    // The pool before the last round's scoring.
    let last_pool = pool - (rounds - 1) * acquire;
    let pool_subset = positive(src, "active_learning.pool_subset", s.pool_subset, origin)?;
    if pool_subset > last_pool || pool_subset < acquire {
        return Err(err(
            "active_learning.pool_subset",
            format!(
                "got {pool_subset}, allowed: {acquire} (active_learning.acquire) to {last_pool} \
                 (the pool left at the last round: 60,000 less {initial} initial, {validation} \
                 validation and {} acquired before it)",
                (rounds - 1) * acquire
            ),
        ));
    }
    let test_images = positive(src, "active_learning.test_images", s.test_images, origin)?;
    if test_images > MNIST_TEST {
        return Err(err(
            "active_learning.test_images",
            format!("got {test_images}, allowed: 1 to {MNIST_TEST}"),
        ));
    }
    let dense_l2 = finite_in(
        src,
        "active_learning.dense_l2",
        s.dense_l2,
        s.dense_l2 >= 0.0,
        "a value >= 0",
        origin,
    )?;
    let conv_dropout = finite_in(
        src,
        "active_learning.conv_dropout",
        s.conv_dropout,
        (0.0..1.0).contains(&s.conv_dropout),
        "a drop probability in [0, 1)",
        origin,
    )?;
    Ok(StudyConfig::ActiveLearning(ActiveLearningConfig {
        dir: dir.clone(),
        epochs,
        samples,
        functions,
        repeats,
        rounds,
        acquire,
        initial,
        validation,
        pool_subset,
        test_images,
        dense_l2,
        conv_dropout,
    }))
}
