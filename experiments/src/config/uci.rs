//! The uci study's section (`uci:`): its schema, its validated settings and their check; also
//! the training settings the authors' protocol fixes (Adam, a constant learning rate, weight
//! decay from each grid point), checked here once.

use std::path::PathBuf;

use mcd_datasets::uci::UciName;
use mcd_trainer::{LrSchedule, Optimizer};
use serde::{Deserialize, Serialize};

use super::raw::RawRun;
use super::{
    finite_in, positive, Checker, ConfigError, DataSource, Regularisation, Source, StudyConfig,
    TableSource, TrainSettings,
};

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
    /// `fused` or `libtorch`: which trainer runs MC dropout's stacks.
    #[serde(default)]
    pub stack_trainer: Option<String>,
}

fn default_validation_samples() -> i64 {
    1000
}

fn default_splits_per_stack() -> i64 {
    20
}

/// UCI benchmark settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UciConfig {
    /// Which data sets, and their training length.
    pub sets: UciSets,
    /// Only the first K splits of each data set.
    pub splits: Option<usize>,
    /// MC passes for each grid point's validation log-likelihood.
    pub validation_samples: usize,
    /// MC passes for the test metrics (`predict.samples`).
    pub test_samples: usize,
    /// Overrides each data set's dropout_rates.txt.
    pub dropout_rates: Option<Vec<f64>>,
    /// Overrides each data set's tau_values.txt (original target units).
    pub tau_values: Option<Vec<f64>>,
    /// Splits per stacked model.
    pub splits_per_stack: usize,
    /// Adam's moment decays (the study trains with Adam, at a constant learning rate).
    pub beta1: f64,
    pub beta2: f64,
    /// The prior length-scale; weight decay follows from each grid point's (p, tau).
    pub length_scale: f64,
    /// `precision.tau`: one tau instead of the grid.
    pub fixed_tau: Option<f64>,
    /// Concrete dropout's mask temperature (`model.temperature`; read only with
    /// `model.method: concrete_dropout`).
    pub temperature: f64,
    /// The trainer and MC evaluation of MC dropout's stacks.
    pub stack_trainer: StackTrainer,
}

/// How MC dropout's stacked nets are trained and evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackTrainer {
    /// `mcd_trainer::fused`: each member's step as plain loops (MC dropout with ReLU only).
    Fused,
    /// libtorch's batched ops (`mcd_trainer::stacked`); every method.
    Libtorch,
}

/// The data sets of a uci run.
#[derive(Debug, Clone, PartialEq)]
pub enum UciSets {
    /// Vendored sets in the order given (`all`: the paper's table order, Year Prediction MSD
    /// included); epochs = n_epochs.txt x `epoch_multiplier` (rounded, at least 1).
    Vendored {
        dir: PathBuf,
        datasets: Vec<UciName>,
        epoch_multiplier: f64,
    },
    /// The table of `data.csv`, cut by `split`, trained for `epochs`.
    Own {
        table: TableSource,
        split: mcd_datasets::SplitRule,
        epochs: usize,
    },
}

impl UciConfig {
    /// The vendored data sets named (none for an own table).
    pub fn vendored_datasets(&self) -> &[UciName] {
        match &self.sets {
            UciSets::Vendored { datasets, .. } => datasets,
            UciSets::Own { .. } => &[],
        }
    }
}

/// Hidden width of an own table's net when `model.hidden` is not given (the authors' 50).
pub const OWN_TABLE_HIDDEN: usize = 50;

/// Most random splits of an own table (each is a training of the whole grid).
pub const MAX_SPLITS: usize = 1000;

/// The authors' dropout-rate grid, the default for an own table.
pub const OWN_TABLE_DROPOUT_RATES: [f64; 4] = [0.005, 0.01, 0.05, 0.1];

/// What the protocol takes from the common sections, typed.
struct Training {
    beta1: f64,
    beta2: f64,
    length_scale: f64,
    fixed_tau: Option<f64>,
    temperature: f64,
}

/// Checks the uci study's settings, once: what the protocol fixes in the common sections (no
/// training length, Adam, a constant learning rate, tau as a grid or fixed), T and the `uci:`
/// section.
pub(crate) fn check(
    ch: &Checker,
    raw: &RawRun,
    data: &DataSource,
    trainer: &TrainSettings,
    regularisation: &Regularisation,
) -> Result<StudyConfig, ConfigError> {
    let (src, origin) = (ch.src, ch.origin);
    ch.no_length(
        &raw.trainer,
        "the uci study trains each data set for its n_epochs.txt x uci.epoch_multiplier epochs; \
         remove this key",
    )?;
    let Optimizer::Adam { beta1, beta2 } = trainer.optimizer else {
        return Err(src.error(
            "trainer.optimizer",
            "the uci study trains with adam (the authors' protocol and the stacked trainer)",
            origin("trainer.optimizer"),
        ));
    };
    if trainer.schedule != LrSchedule::Constant {
        return Err(src.error(
            "trainer.schedule",
            "the uci study uses a constant learning rate",
            origin("trainer.schedule"),
        ));
    }
    let (length_scale, fixed_tau) = match *regularisation {
        Regularisation::TauGrid { length_scale } => (length_scale, None),
        Regularisation::Tau { tau, length_scale } => (length_scale, Some(tau)),
        _ => {
            return Err(src.error(
                "precision",
                "the uci study needs precision.length_scale, and precision.tau only to fix tau",
                origin("precision"),
            ))
        }
    };
    let samples = ch.samples(raw)?;
    let Some(c) = &raw.uci else {
        return Err(src.error(
            "uci",
            "the uci study needs a `uci:` section (datasets, epoch_multiplier, ...)",
            None,
        ));
    };
    let training = Training {
        beta1,
        beta2,
        length_scale,
        fixed_tau,
        temperature: raw
            .model
            .temperature
            .unwrap_or(crate::methods::concrete_dropout::DEFAULT_TEMPERATURE),
    };
    // What the other methods do not read: concrete dropout learns p, an ensemble has no grid.
    let method = raw.model.method.as_deref().unwrap_or("mc_dropout");
    if let Some(c) = &raw.uci {
        for (key, given, refused_by, why) in [
            (
                "uci.dropout_rates",
                c.dropout_rates.is_some(),
                &["concrete_dropout", "ensemble"][..],
                "concrete dropout learns p and an ensemble has no dropout; remove this key",
            ),
            (
                "uci.tau_values",
                c.tau_values.is_some(),
                &["ensemble"][..],
                "an ensemble learns its noise (variance heads): it has no tau grid; remove this key",
            ),
            (
                "precision.tau",
                fixed_tau.is_some(),
                &["ensemble"][..],
                "an ensemble learns its noise (variance heads): it has no tau; remove this key",
            ),
        ] {
            if given && refused_by.contains(&method) {
                return Err(src.error(
                    key,
                    format!("not read with `model.method: {method}`: {why}"),
                    origin(key),
                ));
            }
        }
    }
    let relu = raw
        .model
        .activation
        .is_none_or(|a| a == super::raw::RawActivation::Relu);
    let stack_trainer = match c.stack_trainer.as_deref() {
        None if method == "mc_dropout" && relu => StackTrainer::Fused,
        None | Some("libtorch") => StackTrainer::Libtorch,
        Some("fused") if method != "mc_dropout" => {
            return Err(src.error(
                "uci.stack_trainer",
                format!(
                    "`fused` trains MC dropout only, not `model.method: {method}`; use `libtorch` \
                     or remove this key"
                ),
                origin("uci.stack_trainer"),
            ))
        }
        Some("fused") if !relu => {
            return Err(src.error(
                "uci.stack_trainer",
                "`fused` has ReLU hidden layers only (model.activation: relu); use `libtorch` \
                 or remove this key",
                origin("uci.stack_trainer"),
            ))
        }
        Some("fused") => StackTrainer::Fused,
        Some(other) => {
            return Err(src.error(
                "uci.stack_trainer",
                format!("unknown stack trainer `{other}`; allowed: fused, libtorch"),
                origin("uci.stack_trainer"),
            ))
        }
    };
    let mut config = check_uci(
        src,
        c,
        samples,
        data,
        raw.data.split.as_ref(),
        origin,
        training,
    )?;
    config.stack_trainer = stack_trainer;
    Ok(StudyConfig::Uci(config))
}

fn check_split(
    src: &Source,
    s: &super::raw::RawSplit,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<mcd_datasets::SplitRule, ConfigError> {
    use mcd_datasets::SplitRule;
    let err = |key: &str, msg: String| src.error(key, msg, origin(key));
    if let Some(pairs) = &s.index_files {
        if let Some(key) = [
            ("data.split.test_fraction", s.test_fraction.is_some()),
            ("data.split.count", s.count.is_some()),
            ("data.split.seed", s.seed.is_some()),
        ]
        .iter()
        .find_map(|(k, given)| given.then_some(*k))
        {
            return Err(err(
                key,
                "not with data.split.index_files (the files fix the splits)".into(),
            ));
        }
        if pairs.is_empty() {
            return Err(err(
                "data.split.index_files",
                "give at least one {train: FILE, test: FILE}".into(),
            ));
        }
        for (i, p) in pairs.iter().enumerate() {
            for (part, path) in [("train", &p.train), ("test", &p.test)] {
                if !path.is_file() {
                    return Err(err(
                        &format!("data.split.index_files[{i}].{part}"),
                        format!("`{}` is not a file", path.display()),
                    ));
                }
            }
        }
        return Ok(SplitRule::IndexFiles(
            pairs
                .iter()
                .map(|p| (p.train.clone(), p.test.clone()))
                .collect(),
        ));
    }
    let Some(f) = s.test_fraction else {
        return Err(err(
            "data.split.test_fraction",
            "missing: the share of rows held out for testing in each split, in (0, 1) (or \
             give data.split.index_files)"
                .into(),
        ));
    };
    let test_fraction = finite_in(
        src,
        "data.split.test_fraction",
        f,
        f > 0.0 && f < 1.0,
        "a fraction in (0, 1)",
        origin,
    )?;
    let count = positive(src, "data.split.count", s.count.unwrap_or(1), origin)?;
    if count > MAX_SPLITS {
        return Err(err(
            "data.split.count",
            format!("got {count}, allowed: 1 to {MAX_SPLITS} splits"),
        ));
    }
    Ok(SplitRule::Random {
        count,
        test_fraction,
        seed: s.seed.unwrap_or(0),
    })
}

fn check_uci(
    src: &Source,
    c: &RawUci,
    test_samples: usize,
    data: &DataSource,
    split: Option<&super::raw::RawSplit>,
    origin: &dyn Fn(&str) -> Option<String>,
    training: Training,
) -> Result<UciConfig, ConfigError> {
    use std::str::FromStr as _;
    let refuse = |key: &str, why: &str| Err(src.error(key, why.to_string(), origin(key)));
    let dir = match data {
        DataSource::Table(table) => {
            for (key, given, why) in [
                (
                    "uci.datasets",
                    c.datasets.is_some(),
                    "the data come from data.csv: remove uci.datasets",
                ),
                (
                    "uci.epoch_multiplier",
                    c.epoch_multiplier.is_some(),
                    "an own table has no n_epochs.txt to multiply: give uci.epochs instead",
                ),
            ] {
                if given {
                    return refuse(key, why);
                }
            }
            if c.tau_values.is_none() {
                return refuse(
                    "uci.tau_values",
                    "missing: an own table needs its grid of tau (model precision, in the \
                     target's units: about 1 / the noise variance you expect)",
                );
            }
            let Some(epochs) = c.epochs else {
                return refuse(
                    "uci.epochs",
                    "missing: the training epochs for data.csv (a positive integer)",
                );
            };
            let dropout_rates = match &c.dropout_rates {
                None => Some(OWN_TABLE_DROPOUT_RATES.to_vec()),
                given => given.clone(),
            };
            let Some(split) = split else {
                return refuse(
                    "data.split",
                    "missing: {test_fraction, count, seed} or {index_files: [{train, test}, ...]}",
                );
            };
            let sets = UciSets::Own {
                table: table.clone(),
                split: check_split(src, split, origin)?,
                epochs: positive(src, "uci.epochs", epochs, origin)?,
            };
            return finish_uci(src, c, sets, dropout_rates, test_samples, origin, training);
        }
        DataSource::Vendored(dir) => dir.clone(),
        DataSource::Generated => unreachable!("validation: the uci study reads data"),
    };
    if c.epochs.is_some() {
        return refuse(
            "uci.epochs",
            "vendored data train for n_epochs.txt x uci.epoch_multiplier: remove uci.epochs",
        );
    }
    let Some(names) = &c.datasets else {
        return refuse(
            "uci.datasets",
            "missing: `all` or a list of data set names (or data.csv for your own table)",
        );
    };
    let datasets = match names {
        RawNames::Word(w) if w == "all" => UciName::ALL.to_vec(),
        RawNames::Word(w) => vec![UciName::from_str(w).map_err(|e| {
            src.error(
                "uci.datasets",
                format!("{e} (or `all`)"),
                origin("uci.datasets"),
            )
        })?],
        RawNames::List(names) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let key = format!("uci.datasets[{i}]");
                let name = UciName::from_str(n)
                    .map_err(|e| src.error(&key, e.to_string(), origin("uci.datasets")))?;
                if out.contains(&name) {
                    return Err(src.error(
                        &key,
                        format!("{name} is listed twice"),
                        origin("uci.datasets"),
                    ));
                }
                out.push(name);
            }
            if out.is_empty() {
                return Err(src.error(
                    "uci.datasets",
                    "give at least one data set (or `all`)",
                    origin("uci.datasets"),
                ));
            }
            out
        }
    };
    let Some(multiplier) = c.epoch_multiplier else {
        return refuse(
            "uci.epoch_multiplier",
            "missing: epochs are n_epochs.txt x this (a positive number; the authors' result \
             files are labelled 100x)",
        );
    };
    let epoch_multiplier = finite_in(
        src,
        "uci.epoch_multiplier",
        multiplier,
        multiplier > 0.0,
        "a positive number (the authors' result files are labelled 100x)",
        origin,
    )?;
    finish_uci(
        src,
        c,
        UciSets::Vendored {
            dir,
            datasets,
            epoch_multiplier,
        },
        c.dropout_rates.clone(),
        test_samples,
        origin,
        training,
    )
}

/// The settings both kinds of uci data share.
fn finish_uci(
    src: &Source,
    c: &RawUci,
    sets: UciSets,
    dropout_rates: Option<Vec<f64>>,
    test_samples: usize,
    origin: &dyn Fn(&str) -> Option<String>,
    training: Training,
) -> Result<UciConfig, ConfigError> {
    let grid = |key: &str,
                v: &Option<Vec<f64>>,
                ok: fn(f64) -> bool,
                allowed: &str|
     -> Result<Option<Vec<f64>>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if v.is_empty() => Err(src.error(
                key,
                "give at least one value (or remove the key for the data set's own grid)",
                origin(key),
            )),
            Some(v) => {
                for (i, &x) in v.iter().enumerate() {
                    finite_in(src, &format!("{key}[{i}]"), x, ok(x), allowed, origin)?;
                }
                Ok(Some(v.clone()))
            }
        }
    };
    Ok(UciConfig {
        sets,
        splits: c
            .splits
            .map(|k| positive(src, "uci.splits", k, origin))
            .transpose()?,
        validation_samples: positive(src, "uci.validation_samples", c.validation_samples, origin)?,
        test_samples,
        dropout_rates: grid(
            "uci.dropout_rates",
            &dropout_rates,
            |p| (0.0..1.0).contains(&p),
            "drop probabilities in [0, 1)",
        )?,
        tau_values: grid(
            "uci.tau_values",
            &c.tau_values,
            |t| t > 0.0,
            "precisions > 0",
        )?,
        splits_per_stack: positive(src, "uci.splits_per_stack", c.splits_per_stack, origin)?,
        beta1: training.beta1,
        beta2: training.beta2,
        length_scale: training.length_scale,
        fixed_tau: training.fixed_tau,
        temperature: training.temperature,
        // Set by `check`, which knows the method and activation.
        stack_trainer: StackTrainer::Libtorch,
    })
}
