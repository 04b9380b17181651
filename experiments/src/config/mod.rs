//! Experiment configs: YAML text -> raw serde structs (unknown keys rejected) -> `check()` into
//! validated types. Nothing downstream re-validates.
//!
//! A file describes one *base* run, optional `variants` (named override sets) and an optional
//! `sweep` (key path -> list of values). Each run's document is resolved in this order:
//! base -> variant -> sweep point -> `--set` overrides from the command line.

// A config error is built once per process, on the way out: its size does not matter.
#![allow(clippy::result_large_err)]

pub mod active_learning;
pub mod co2;
pub mod concrete_synthetic;
mod locate;
pub mod mnist;
pub mod raw;
pub mod reference;
pub mod uci;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::{Mapping, Value};
use mcd_models::lenet::LeNetDropout;
use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
use mcd_trainer::{LrSchedule, Optimizer, TrainSpec};

pub use active_learning::ActiveLearningConfig;
pub use co2::{Co2Config, Co2Report};
pub use concrete_synthetic::ConcreteSyntheticConfig;
pub use mnist::MnistConfig;
pub use raw::StudyKind;
use raw::{RawBatch, RawRun, RawSchedule, RawVariant};
pub use uci::{
    StackTrainer, UciConfig, UciSets, MAX_SPLITS, OWN_TABLE_DROPOUT_RATES, OWN_TABLE_HIDDEN,
};

/// One config error: where (file, line, column), which key, what was wrong and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `model.dropout` (empty for whole-file problems).
    pub key: String,
    pub message: String,
    /// Set when the value came from a `--set` override or a variant / sweep rather than the file.
    pub origin: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(origin) = &self.origin {
            write!(f, " (value from {origin})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A validated experiment: every run fully resolved.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Results go to `results/<name>/`.
    pub name: String,
    pub study: StudyKind,
    pub source: PathBuf,
    pub runs: Vec<RunConfig>,
    /// Keys that a sweep varies (for tables), in file order.
    pub sweep_keys: Vec<String>,
}

impl Experiment {
    /// Every run's resolved document, by run name: `config.resolved.yaml`, and what a task's
    /// output depends on (`tasks::config_hash`).
    pub fn resolved_yaml(&self) -> Result<String, crate::yaml::Error> {
        let mut runs = Mapping::new();
        for r in &self.runs {
            runs.insert(Value::String(r.name.clone()), r.resolved.clone());
        }
        crate::yaml::to_string(&Value::Mapping(runs))
    }
}

/// Network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Fully connected (`hidden`, `activation`, `input_dropout` apply).
    Mlp,
    /// Caffe LeNet with the given dropout placement.
    LeNet(LeNetDropout),
    /// The active-learning CNN (`mcd_models::cnn`); its layers are fixed.
    Cnn,
}

/// Model part of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    /// MLP hidden widths (empty for LeNet).
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub dropout: f64,
    pub input_dropout: f64,
    pub init: InitScheme,
    /// Slope of a [`mcd_models::mlp::SpreadFirstLayer`] first layer (the study supplies the
    /// centres' range from its training inputs); `None`: `init` for every layer.
    pub first_layer_slope: Option<f64>,
    /// The predictive method (`model.method`), one the study can use.
    pub method: crate::methods::MethodRef,
}

impl ModelConfig {
    /// The network spec for given input and output sizes.
    pub fn mlp_spec(&self, input_dim: usize, output_dim: usize) -> MlpSpec {
        MlpSpec {
            input_dim,
            hidden: self.hidden.clone(),
            output_dim,
            activation: self.activation,
            dropout: self.dropout,
            input_dropout: self.input_dropout,
            init: self.init,
            first_layer: None,
        }
    }
}

/// How weight decay and the model precision tau are tied (see `mcd_trainer` for the loss
/// convention): tau = (1 - p) l^2 / (2 N wd).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularisation {
    /// Weight decay given, tau derived from the length-scale.
    WeightDecay {
        weight_decay: f64,
        length_scale: f64,
    },
    /// tau given, weight decay derived from the length-scale.
    Tau { tau: f64, length_scale: f64 },
    /// Both given independently (no prior length-scale).
    Explicit { weight_decay: f64, tau: f64 },
    /// Classification: only a weight decay (no observation noise).
    DecayOnly { weight_decay: f64 },
    /// UCI: tau is grid-searched per data set; weight decay follows from each (p, tau).
    TauGrid { length_scale: f64 },
}

impl Regularisation {
    /// (weight decay, tau) for `n` training points and drop rate `p`, with the authors' mapping
    /// `wd = (1 - p) l^2 / (2 N tau)` ([`DecayConvention::Paper`] applied to the optimiser's
    /// decay; see `mcd_trainer` for why).
    pub fn resolve(&self, n: usize, p: f64) -> Result<(f64, f64), mcd_evaluation::EvalError> {
        use mcd_evaluation::regression::{
            tau_from_weight_decay, weight_decay_from_tau, DecayConvention,
        };
        const CONVENTION: DecayConvention = DecayConvention::Paper;
        Ok(match *self {
            Regularisation::WeightDecay {
                weight_decay,
                length_scale,
            } => (
                weight_decay,
                tau_from_weight_decay(length_scale, p, n, weight_decay, CONVENTION)?,
            ),
            Regularisation::Tau { tau, length_scale } => (
                weight_decay_from_tau(length_scale, p, n, tau, CONVENTION)?,
                tau,
            ),
            Regularisation::Explicit { weight_decay, tau } => (weight_decay, tau),
            Regularisation::DecayOnly { weight_decay } => (weight_decay, f64::INFINITY),
            Regularisation::TauGrid { .. } => {
                return Err(mcd_evaluation::EvalError::InvalidParameter {
                    op: "Regularisation::resolve",
                    name: "tau",
                    value: f64::NAN,
                    reason: "is grid-searched: resolve each (p, tau) grid point instead",
                })
            }
        })
    }
}

/// Prediction settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictConfig {
    pub memory_budget_bytes: usize,
}

/// Where a run's data come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// The vendored, checksummed data folder.
    Vendored(PathBuf),
    /// A researcher's own CSV file.
    Table(TableSource),
    /// None: the study draws its data from the run seed (`data` is not read).
    Generated,
}

/// A CSV table named in the config (`data.csv`, `data.target`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSource {
    pub csv: PathBuf,
    pub target: String,
    /// None: every column but the target.
    pub features: Option<Vec<String>>,
}

/// One fully resolved and validated run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Unique within the experiment (variant name and sweep values).
    pub name: String,
    pub seed: u64,
    pub data: DataSource,
    pub model: ModelConfig,
    /// The training settings every study shares; the length and the weight decay come with
    /// the data ([`RunConfig::train_spec`]).
    pub trainer: TrainSettings,
    pub regularisation: Regularisation,
    pub predict: PredictConfig,
    /// The study and its own section, validated by the study ([`crate::studies::Study`]).
    pub study: StudyConfig,
    /// The resolved document, saved next to the results.
    pub resolved: Value,
}

impl RunConfig {
    /// The complete training spec for `n` training rows, and tau: the one place where the
    /// length (steps, or epochs of mini-batches) and the weight decay ([`Regularisation`], with
    /// the model's drop rate) are resolved against the data.
    pub fn train_spec(
        &self,
        length: TrainLength,
        n: usize,
    ) -> Result<(TrainSpec, f64), mcd_evaluation::EvalError> {
        let (weight_decay, tau) = self.regularisation.resolve(n, self.model.dropout)?;
        let t = &self.trainer;
        let spec = TrainSpec {
            iterations: length.iterations(n, t.batch_size),
            batch_size: t.batch_size,
            lr: t.lr,
            schedule: t.schedule,
            optimizer: t.optimizer,
            weight_decay,
            seed: t.seed,
            log_every: t.log_every,
        };
        Ok((spec, tau))
    }
}

/// A study's validated section: which study a run drives, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum StudyConfig {
    Co2(Co2Config),
    MnistRotated(MnistConfig),
    Uci(UciConfig),
    ConcreteSynthetic(ConcreteSyntheticConfig),
    ActiveLearning(ActiveLearningConfig),
}

impl StudyConfig {
    /// Which study.
    pub fn kind(&self) -> StudyKind {
        match self {
            StudyConfig::Co2(_) => StudyKind::Co2,
            StudyConfig::MnistRotated(_) => StudyKind::MnistRotated,
            StudyConfig::Uci(_) => StudyKind::Uci,
            StudyConfig::ConcreteSynthetic(_) => StudyKind::ConcreteSynthetic,
            StudyConfig::ActiveLearning(_) => StudyKind::ActiveLearning,
        }
    }
}

/// The `trainer:` settings that do not depend on the data (all of [`TrainSpec`] but the length
/// and the weight decay).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// None: full batch.
    pub batch_size: Option<usize>,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub optimizer: Optimizer,
    /// Seeds mini-batch shuffling (the run seed).
    pub seed: u64,
    pub log_every: usize,
    /// Fraction of the steps over which the drop rates rise from 0 to the configured ones
    /// (`trainer.dropout_warmup`; 0: none).
    pub dropout_warmup: f64,
    /// Adversarial training's step as a fraction of each input's range (`trainer.adversarial`;
    /// 0: none; deep ensembles only).
    pub adversarial: f64,
}

impl TrainSettings {
    /// The warm-up's length in steps for a run of `iterations` steps.
    pub fn dropout_warmup_steps(&self, iterations: usize) -> usize {
        (self.dropout_warmup * iterations as f64).round() as usize
    }
}

/// How long to train: optimiser steps, or epochs, which become steps once the data size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainLength {
    Iterations(usize),
    Epochs(usize),
}

impl TrainLength {
    /// Optimiser steps for `n` training rows in batches of `batch` (None: full batch): an epoch
    /// is ceil(n / batch) steps.
    pub fn iterations(self, n: usize, batch: Option<usize>) -> usize {
        match self {
            TrainLength::Iterations(i) => i,
            TrainLength::Epochs(e) => e * batch.map_or(1, |b| n.div_ceil(b.min(n))),
        }
    }
}

/// What a study fixes about the common `model` and `precision` sections; validation applies it
/// (the study's own section and the rest are the study's `check`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The network family the study builds.
    pub arch: raw::RawArch,
    /// `model.hidden` may be absent (the study has a default width).
    pub default_hidden: bool,
    /// The study searches the drop rate itself: `model.dropout` is refused with this message.
    pub searched_dropout: Option<&'static str>,
    /// The study sets the input drop rate itself: `model.input_dropout` is refused with this.
    pub fixed_input_dropout: Option<&'static str>,
    /// Which forms of `trainer.weight_decay` / `precision` it takes.
    pub regularisation: RegularisationRule,
    /// What it asks of a method (`model.method` must serve it).
    pub uses: crate::methods::Use,
    /// The study draws its own data from the seed: `data` is not read, and no data folder is
    /// needed ([`DataSource::Generated`]).
    pub generated_data: bool,
}

/// The forms of regularisation a study takes (see [`Regularisation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegularisationRule {
    /// Two of weight decay, tau and length-scale.
    Regression,
    /// Also a weight decay alone (no observation noise).
    Classification,
    /// A length-scale, tau grid-searched or fixed; no weight decay.
    TauGrid,
    /// A length-scale and tau (default 1), no weight decay: the study resolves the
    /// regularisation for each of its data sizes ([`Regularisation::Tau`]).
    Prior,
}

/// What a study's `check` gets to build its section's errors: the file and where each value
/// came from.
pub struct Checker<'a> {
    src: &'a Source<'a>,
    origin: &'a dyn Fn(&str) -> Option<String>,
    /// The experiment has a sweep.
    swept: bool,
}

/// Parses `--set key.path=value`.
pub fn parse_override(s: &str) -> Result<(String, Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--set `{s}`: expected KEY=VALUE, e.g. model.dropout=0.2"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!(
            "--set `{s}`: the key `{key}` is not a dotted key path like model.dropout"
        ));
    }
    let value: Value = crate::yaml::parse(value)
        .map_err(|e| format!("--set `{s}`: the value is not valid YAML: {e}"))?;
    Ok((key.to_string(), value))
}

/// Whether a base-document value replaced by variants or sweep points would be valid in place.
enum BaseVerdict {
    /// Some run accepts it in place of its replacement.
    Accepted,
    /// The run checked rejected it, at its own key.
    Rejected(ConfigError),
}

/// Line (1-based) of the `---` or `...` marker that ends the first YAML document, if any.
fn second_document(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t.starts_with("---") || t.starts_with("...") {
            if content || t.starts_with("...") {
                return Some(i + 1);
            }
        } else if !t.trim().is_empty() && !t.trim_start().starts_with('#') {
            content = true;
        }
    }
    None
}

/// Whether key path `inner` is `outer` or lies inside it (`model.hidden[1]` in `model`).
fn nested(inner: &str, outer: &str) -> bool {
    !outer.is_empty()
        && inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The value at dotted `path` in a YAML mapping, if every section on the way exists.
fn get_path<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |node, part| match node {
        Value::Mapping(m) => m.get(part),
        _ => None,
    })
}

/// Sets `value` at dotted `path` in a YAML mapping, creating sections as needed.
fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            Value::Null => {
                *node = Value::Mapping(Mapping::new());
                match node {
                    Value::Mapping(m) => m,
                    _ => unreachable!("just assigned a mapping"),
                }
            }
            _ => {
                return Err(format!(
                    "`{}` is not a section, so `{path}` cannot be set",
                    parts[..i].join(".")
                ))
            }
        };
        let key = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(key, value);
            return Ok(());
        }
        if !map.contains_key(&key) {
            map.insert(key.clone(), Value::Mapping(Mapping::new()));
        }
        node = map.get_mut(&key).expect("inserted above");
    }
    Ok(())
}

fn key_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        // As typed in a --set: [a, b]
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(value_label).collect::<Vec<_>>().join(", ")
        ),
        other => crate::yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .replace('\n', " "),
    }
}

/// Loader context: the file, its text, and a helper to build located errors.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, key: &str, message: impl Into<String>, origin: Option<String>) -> ConfigError {
        let (line, column) = match locate::find_key(self.text, key) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            origin,
        }
    }
}

/// Loads, resolves and validates a config file with command-line overrides.
pub fn load(file: &Path, overrides: &[(String, Value)]) -> Result<Experiment, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: None,
        column: None,
        key: String::new(),
        message: format!("cannot read the config file: {e}"),
        origin: None,
    })?;
    load_str(file, &text, overrides)
}

/// Like [`load`], from text already read (`file` is used in messages and for the default name).
pub fn load_str(
    file: &Path,
    text: &str,
    overrides: &[(String, Value)],
) -> Result<Experiment, ConfigError> {
    let src = Source { file, text };
    let mut doc: Value = crate::yaml::parse(text).map_err(|e| {
        let (line, column) = match e.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            // The parser gives no place for a second document: point at its separator.
            None => (
                second_document(text).or((!text.is_empty()).then_some(1)),
                None,
            ),
        };
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key: String::new(),
            message: format!("not valid YAML: {e}"),
            origin: None,
        }
    })?;
    let Value::Mapping(map) = &mut doc else {
        // Point at the first line with content (line 1 of a file with none).
        let first = text
            .lines()
            .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let message = if first.is_none() {
            "the file has no settings: it must be a YAML mapping of sections (study, model, \
             trainer, ...)"
        } else {
            "the file must be a YAML mapping of sections (study, model, trainer, ...)"
        };
        return Err(ConfigError {
            line: Some(first.map_or(1, |i| i + 1)),
            ..src.error("", message, None)
        });
    };
    let variants = take_variants(&src, map.remove("variants"))?;
    let sweep = take_sweep(&src, map.remove("sweep"))?;
    let sweep_keys: Vec<String> = sweep.iter().map(|(k, _)| k.clone()).collect();
    let swept = !sweep.is_empty();

    let mut runs = Vec::new();
    // Base-document values replaced by a variant or sweep point, by key path, with what the
    // check of each in place of its replacement said (in the first run that replaced it).
    let mut base_checks: std::collections::BTreeMap<String, Option<BaseVerdict>> =
        std::collections::BTreeMap::new();
    // How many runs replace each such value: one that some run keeps is checked in that run.
    let mut replaced_in: std::collections::BTreeMap<String, usize> =
        std::collections::BTreeMap::new();
    for variant in &variants {
        for point in grid(&sweep) {
            let mut run_doc = doc.clone();
            let mut name_parts = Vec::new();
            if let Some(v) = variant {
                name_parts.push(v.name.clone());
                for (k, val) in &v.set {
                    let key = key_string(k);
                    set_path(&mut run_doc, &key, val.clone()).map_err(|m| {
                        src.error(
                            &format!("variants.{}", v.name),
                            m,
                            Some(format!("variant `{}`", v.name)),
                        )
                    })?;
                }
            }
            for (key, val) in &point {
                name_parts.push(format!(
                    "{}={}",
                    key.rsplit('.').next().unwrap_or(key),
                    value_label(val)
                ));
                set_path(&mut run_doc, key, val.clone())
                    .map_err(|m| src.error(&format!("sweep.{key}"), m, Some("the sweep".into())))?;
            }
            for (key, val) in overrides {
                set_path(&mut run_doc, key, val.clone())
                    .map_err(|m| src.error(key, m, Some(format!("--set {key}"))))?;
            }
            let origin = |key: &str| -> Option<String> {
                if let Some(o) = overrides.iter().find(|(k, _)| key.starts_with(k.as_str())) {
                    return Some(format!("--set {}={}", o.0, value_label(&o.1)));
                }
                if point.iter().any(|(k, _)| key.starts_with(k.as_str())) {
                    return Some("the sweep".into());
                }
                variant.as_ref().and_then(|v| {
                    v.set
                        .keys()
                        .any(|k| key.starts_with(&key_string(k)))
                        .then(|| format!("variant `{}`", v.name))
                })
            };
            let name = if name_parts.is_empty() {
                "run".to_string()
            } else {
                name_parts.join(",")
            };
            // The base document's values that this variant or sweep point replaces: would each
            // be accepted here? (Checked below, so that a value every run replaces is still
            // checked.)
            let replaced: std::collections::BTreeSet<String> = variant
                .iter()
                .flat_map(|v| v.set.keys().map(key_string))
                .chain(point.iter().map(|(k, _)| k.clone()))
                .collect();
            for key in replaced {
                *replaced_in.entry(key.clone()).or_default() += 1;
                let Some(base_value) = get_path(&doc, &key) else {
                    continue;
                };
                let verdict = base_checks.entry(key.clone()).or_insert(None);
                if matches!(verdict, Some(BaseVerdict::Accepted)) {
                    continue;
                }
                let mut probe = run_doc.clone();
                if set_path(&mut probe, &key, base_value.clone()).is_err() {
                    continue;
                }
                let result = parse_run(&src, probe, name.clone(), swept, &|_| None);
                *verdict = Some(match result {
                    Err(e) if nested(&e.key, &key) || nested(&key, &e.key) => {
                        BaseVerdict::Rejected(e)
                    }
                    _ => BaseVerdict::Accepted,
                });
            }
            runs.push(parse_run(&src, run_doc, name, swept, &origin)?);
        }
    }
    for (key, verdict) in base_checks {
        if replaced_in.get(&key).copied().unwrap_or(0) < runs.len() {
            // A run keeps the base value and has been checked with it.
            continue;
        }
        if let Some(BaseVerdict::Rejected(e)) = verdict {
            // The deeper of the two keys says more (`model.hidden` inside a replaced `model`).
            let at = if nested(&e.key, &key) { &e.key } else { &key };
            let mut located = src.error(at, e.message, None);
            located.message.push_str(
                " (in the base document: every variant or sweep point replaces this value, but \
                 it is checked all the same; fix or remove it)",
            );
            return Err(located);
        }
    }
    let first = &runs[0];
    let name = first
        .resolved
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "experiment".into());
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(src.error(
            "name",
            format!("`{name}` cannot name a results folder"),
            None,
        ));
    }
    let study = first.study.kind();
    if let Some(other) = runs.iter().find(|r| r.study.kind() != study) {
        return Err(src.error(
            "study",
            format!(
                "run `{}` is a {} study, run `{}` a {} study: one file drives one study",
                first.name,
                reference::study_name(study),
                other.name,
                reference::study_name(other.study.kind())
            ),
            None,
        ));
    }
    Ok(Experiment {
        name,
        study,
        source: file.to_path_buf(),
        runs,
        sweep_keys,
    })
}

/// One run's resolved document into a validated run: the schema (serde), then `check_run`.
fn parse_run(
    src: &Source,
    doc: Value,
    name: String,
    swept: bool,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, ConfigError> {
    let raw: RawRun = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let key = error_key("", &e);
        src.error(&key, e.inner().to_string(), origin(&key))
    })?;
    check_run(src, raw, name, doc, swept, origin)
}

fn take_variants(src: &Source, v: Option<Value>) -> Result<Vec<Option<RawVariant>>, ConfigError> {
    let Some(v) = v else { return Ok(vec![None]) };
    let list: Vec<RawVariant> = serde_path_to_error::deserialize(v)
        .map_err(|e| src.error(&error_key("variants", &e), e.inner().to_string(), None))?;
    if list.is_empty() {
        return Err(src.error(
            "variants",
            "the list of variants is empty (remove the key for a single run)",
            None,
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for v in &list {
        if v.name.is_empty() || !seen.insert(v.name.clone()) {
            return Err(src.error(
                "variants",
                format!("variant name `{}` is empty or repeated", v.name),
                None,
            ));
        }
    }
    Ok(list.into_iter().map(Some).collect())
}

/// The key path of a deserialisation error below `prefix`. serde reports a missing field at
/// the section that lacks it, so the field's name is appended: the error then names the key.
fn error_key(prefix: &str, e: &serde_path_to_error::Error<crate::yaml::Error>) -> String {
    let suffix = path_suffix(&e.path().to_string());
    let mut key = if prefix.is_empty() {
        suffix.trim_start_matches('.').to_string()
    } else {
        format!("{prefix}{suffix}")
    };
    let message = e.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
    key
}

fn path_suffix(p: &str) -> String {
    if p == "." || p.is_empty() {
        String::new()
    } else if p.starts_with('[') {
        p.to_string()
    } else {
        format!(".{p}")
    }
}

fn take_sweep(src: &Source, v: Option<Value>) -> Result<Vec<(String, Vec<Value>)>, ConfigError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Value::Mapping(map) = v else {
        return Err(src.error(
            "sweep",
            "expected a mapping of key path -> list of values",
            None,
        ));
    };
    if map.is_empty() {
        return Err(src.error(
            "sweep",
            "the sweep has no keys (remove it for a single run)",
            None,
        ));
    }
    let mut out = Vec::new();
    for (k, vals) in map {
        let key = key_string(&k);
        let full = format!("sweep.{key}");
        match vals {
            Value::Sequence(list) if !list.is_empty() => out.push((key, list)),
            Value::Sequence(_) => {
                return Err(src.error(
                    &full,
                    "empty list of values: a sweep key needs at least one value",
                    None,
                ))
            }
            other => {
                return Err(src.error(
                    &full,
                    format!("expected a list of values, got `{}`", value_label(&other)),
                    None,
                ))
            }
        }
    }
    Ok(out)
}

/// Cartesian product of the sweep, first key outermost. One empty point when there is no sweep.
pub fn grid(sweep: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    let mut points = vec![Vec::new()];
    for (key, values) in sweep {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

fn positive(
    src: &Source,
    key: &str,
    v: i64,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<usize, ConfigError> {
    if v <= 0 {
        return Err(src.error(
            key,
            format!("got {v}, must be a positive integer"),
            origin(key),
        ));
    }
    Ok(v as usize)
}

fn finite_in(
    src: &Source,
    key: &str,
    v: f64,
    ok: bool,
    allowed: &str,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<f64, ConfigError> {
    if !v.is_finite() || !ok {
        return Err(src.error(key, format!("got {v}, allowed: {allowed}"), origin(key)));
    }
    Ok(v)
}

fn check_run(
    src: &Source,
    raw: RawRun,
    name: String,
    resolved: Value,
    swept: bool,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, ConfigError> {
    let study = crate::studies::study(raw.study);
    let rules = study.rules();
    let study_name = reference::study_name(raw.study);
    let m = &raw.model;
    if m.arch != rules.arch {
        return Err(src.error(
            "model.arch",
            format!(
                "the {:?} study needs model.arch: {:?}",
                raw.study, rules.arch
            )
            .to_lowercase(),
            origin("model.arch"),
        ));
    }
    let mlp_only = |key: &str, present: bool| -> Result<(), ConfigError> {
        if present && m.arch != raw::RawArch::Mlp {
            return Err(src.error(
                key,
                if m.arch == raw::RawArch::Lenet {
                    "not a LeNet setting (LeNet's layers are fixed)"
                } else {
                    "not a setting of the active-learning CNN (its layers are fixed)"
                },
                origin(key),
            ));
        }
        Ok(())
    };
    mlp_only("model.hidden", m.hidden.is_some())?;
    mlp_only("model.activation", m.activation.is_some())?;
    mlp_only("model.input_dropout", m.input_dropout != 0.0)?;
    if m.placement.is_some() && m.arch != raw::RawArch::Lenet {
        return Err(src.error(
            "model.placement",
            "only LeNet has a dropout placement",
            origin("model.placement"),
        ));
    }
    let hidden_raw: &[i64] = m.hidden.as_deref().unwrap_or(&[]);
    if m.arch == raw::RawArch::Mlp && hidden_raw.is_empty() && !rules.default_hidden {
        return Err(src.error(
            "model.hidden",
            "at least one hidden layer is needed",
            origin("model.hidden"),
        ));
    }
    if m.arch == raw::RawArch::Mlp && m.activation.is_none() {
        return Err(src.error(
            "model.activation",
            "missing: one of relu, tanh, sigmoid",
            origin("model.activation"),
        ));
    }
    let hidden = hidden_raw
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            positive(src, &format!("model.hidden[{i}]"), w, origin).map_err(|mut e| {
                e.key = "model.hidden".into();
                e.message = format!("layer {i} has width {w}; widths must be positive integers");
                e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dropout = match (m.dropout, rules.searched_dropout) {
        (Some(_), Some(why)) => {
            return Err(src.error("model.dropout", why, origin("model.dropout")))
        }
        (None, Some(_)) => 0.0,
        (None, None) => {
            return Err(src.error(
                "model.dropout",
                "missing: the drop probability in [0, 1)",
                origin("model"),
            ))
        }
        (Some(p), None) => finite_in(
            src,
            "model.dropout",
            p,
            (0.0..1.0).contains(&p),
            "a drop probability in [0, 1)",
            origin,
        )?,
    };
    if let (Some(why), true) = (rules.fixed_input_dropout, m.input_dropout != 0.0) {
        return Err(src.error("model.input_dropout", why, origin("model.input_dropout")));
    }
    let input_dropout = finite_in(
        src,
        "model.input_dropout",
        m.input_dropout,
        (0.0..1.0).contains(&m.input_dropout),
        "a drop probability in [0, 1)",
        origin,
    )?;
    let method = match m.method.as_deref() {
        None => crate::methods::default_method(),
        Some(name) => crate::methods::by_name(name).ok_or_else(|| {
            src.error(
                "model.method",
                format!(
                    "got `{name}`, allowed: {}",
                    crate::methods::ALL
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                origin("model.method"),
            )
        })?,
    };
    if !method.serves(rules.uses) {
        return Err(src.error(
            "model.method",
            format!(
                "got `{}`, which the {study_name} study cannot use: it {}; allowed here: {}",
                method.name(),
                rules.uses.describe(),
                crate::methods::names_for(rules.uses).join(", ")
            ),
            origin("model.method"),
        ));
    }
    // A deep ensemble's size, and its members' drop rate (none).
    let method = match (m.members, method.name()) {
        (Some(k), "ensemble") => crate::methods::ensemble::Ensemble::with_members(positive(
            src,
            "model.members",
            k,
            origin,
        )?),
        (Some(k), other) => {
            return Err(src.error(
                "model.members",
                format!("got {k}, but only `model.method: ensemble` has members (this run's method is `{other}`)"),
                origin("model.members"),
            ))
        }
        (None, _) => method,
    };
    if method.name() == "ensemble" && dropout != 0.0 {
        return Err(src.error(
            "model.dropout",
            format!("got {dropout}, allowed with `model.method: ensemble`: 0 (an ensemble's members have no dropout)"),
            origin("model.dropout"),
        ));
    }
    // Concrete dropout's mask temperature, and its initial drop rate (`model.dropout`) > 0.
    let is_concrete = method.name() == "concrete_dropout";
    let method = match m.temperature {
        Some(t) if !is_concrete => {
            return Err(src.error(
                "model.temperature",
                format!(
                    "got {t}, but only `model.method: concrete_dropout` has a temperature (this run's method is `{}`)",
                    method.name()
                ),
                origin("model.temperature"),
            ))
        }
        Some(t) => crate::methods::concrete_dropout::ConcreteDropout::with_temperature(
            finite_in(src, "model.temperature", t, t > 0.0, "a temperature > 0", origin)?,
        ),
        None => method,
    };
    // (A study that searches the rate itself, uci, starts concrete dropout's rates on its own.)
    if is_concrete && dropout == 0.0 && rules.searched_dropout.is_none() {
        return Err(src.error(
            "model.dropout",
            "got 0, allowed with `model.method: concrete_dropout`: the initial drop rate p of \
             every layer, in (0, 1)",
            origin("model.dropout"),
        ));
    }
    let model = ModelConfig {
        method,
        arch: match (m.arch, m.placement) {
            (raw::RawArch::Mlp, _) => Arch::Mlp,
            (raw::RawArch::Lenet, Some(raw::RawPlacement::All)) => Arch::LeNet(LeNetDropout::All),
            (raw::RawArch::Lenet, _) => Arch::LeNet(LeNetDropout::Fc),
            (raw::RawArch::Cnn, _) => Arch::Cnn,
        },
        hidden,
        activation: match m.activation {
            Some(raw::RawActivation::Relu) | None => Activation::Relu,
            Some(raw::RawActivation::Tanh) => Activation::Tanh,
            Some(raw::RawActivation::Sigmoid) => Activation::Sigmoid,
        },
        dropout,
        input_dropout,
        init: match m.init {
            raw::RawInit::CaffeXavier => InitScheme::CaffeXavier,
            raw::RawInit::Torch => InitScheme::Torch,
            raw::RawInit::GlorotUniform => InitScheme::GlorotUniform,
        },
        first_layer_slope: m
            .first_layer_slope
            .map(|v| {
                finite_in(
                    src,
                    "model.first_layer_slope",
                    v,
                    v > 0.0,
                    "a slope > 0",
                    origin,
                )
            })
            .transpose()?,
    };

    let t = &raw.trainer;
    let batch_size = match &t.batch_size {
        None => None,
        Some(RawBatch::Word(w)) if w == "full" => None,
        Some(RawBatch::Word(w)) => {
            return Err(src.error(
                "trainer.batch_size",
                format!("got `{w}`, allowed: `full` or a positive integer"),
                origin("trainer.batch_size"),
            ))
        }
        Some(RawBatch::Size(b)) => Some(positive(src, "trainer.batch_size", *b, origin)?),
    };
    let lr = finite_in(
        src,
        "trainer.lr",
        t.lr,
        t.lr > 0.0,
        "a positive learning rate",
        origin,
    )?;
    let unit = |key: &str, v: Option<f64>, default: f64| -> Result<f64, ConfigError> {
        let v = v.unwrap_or(default);
        finite_in(
            src,
            key,
            v,
            (0.0..1.0).contains(&v),
            "a value in [0, 1)",
            origin,
        )
    };
    let optimizer = match t.optimizer {
        raw::RawOptimizer::Sgd => {
            if t.beta1.is_some() || t.beta2.is_some() {
                return Err(src.error(
                    "trainer.beta1",
                    "beta1/beta2 are Adam settings; the optimizer is sgd",
                    origin("trainer.optimizer"),
                ));
            }
            Optimizer::Sgd {
                momentum: unit("trainer.momentum", t.momentum, 0.9)?,
            }
        }
        raw::RawOptimizer::Adam => {
            if t.momentum.is_some() {
                return Err(src.error(
                    "trainer.momentum",
                    "momentum is an SGD setting; the optimizer is adam (use beta1)",
                    origin("trainer.optimizer"),
                ));
            }
            Optimizer::Adam {
                beta1: unit("trainer.beta1", t.beta1, 0.9)?,
                beta2: unit("trainer.beta2", t.beta2, 0.999)?,
            }
        }
    };
    let schedule = match &t.schedule {
        None | Some(RawSchedule::Constant) => LrSchedule::Constant,
        Some(RawSchedule::Inv { gamma, power }) => {
            let gamma = finite_in(
                src,
                "trainer.schedule.gamma",
                *gamma,
                *gamma >= 0.0,
                "gamma >= 0",
                origin,
            )?;
            let power = finite_in(
                src,
                "trainer.schedule.power",
                *power,
                *power >= 0.0,
                "power >= 0",
                origin,
            )?;
            LrSchedule::Inv { gamma, power }
        }
        Some(RawSchedule::Cosine { final_fraction }) => LrSchedule::Cosine {
            final_fraction: finite_in(
                src,
                "trainer.schedule.final_fraction",
                *final_fraction,
                (0.0..=1.0).contains(final_fraction),
                "a fraction in [0, 1]",
                origin,
            )?,
        },
    };
    let log_every = positive(src, "trainer.log_every", t.log_every.unwrap_or(100), origin)?;
    let dropout_warmup = match t.dropout_warmup {
        None => 0.0,
        Some(f) => {
            let f = finite_in(
                src,
                "trainer.dropout_warmup",
                f,
                (0.0..1.0).contains(&f),
                "a fraction of the steps in [0, 1)",
                origin,
            )?;
            if f > 0.0 && !matches!(model.method.name(), "mc_dropout" | "heteroscedastic") {
                return Err(src.error(
                    "trainer.dropout_warmup",
                    format!(
                        "got {f}, but `model.method: {}` has no fixed drop rates to warm up \
                         (allowed with mc_dropout and heteroscedastic)",
                        model.method.name()
                    ),
                    origin("trainer.dropout_warmup"),
                ));
            }
            if f > 0.0 && model.dropout == 0.0 && model.input_dropout == 0.0 {
                return Err(src.error(
                    "trainer.dropout_warmup",
                    format!("got {f}, but the net has no dropout to warm up (model.dropout is 0)"),
                    origin("trainer.dropout_warmup"),
                ));
            }
            f
        }
    };
    let adversarial = match t.adversarial {
        None => 0.0,
        Some(f) => {
            let f = finite_in(
                src,
                "trainer.adversarial",
                f,
                (0.0..1.0).contains(&f),
                "a fraction of each input's range in [0, 1)",
                origin,
            )?;
            if f > 0.0 && model.method.name() != "ensemble" {
                return Err(src.error(
                    "trainer.adversarial",
                    format!(
                        "got {f}, but adversarial training is deep ensembles' (allowed with \
                         `model.method: ensemble`, this run's method is `{}`)",
                        model.method.name()
                    ),
                    origin("trainer.adversarial"),
                ));
            }
            f
        }
    };
    let trainer = TrainSettings {
        batch_size,
        lr,
        schedule,
        optimizer,
        seed: raw.seed,
        log_every,
        dropout_warmup,
        adversarial,
    };

    let p = &raw.precision;
    let nonneg = |key: &str, v: f64| finite_in(src, key, v, v >= 0.0, "a value >= 0", origin);
    let pos = |key: &str, v: f64| finite_in(src, key, v, v > 0.0, "a value > 0", origin);
    let form = rules.regularisation;
    let regularisation = match (t.weight_decay, p.tau, p.length_scale) {
        (Some(_), _, _) if form == RegularisationRule::Prior => {
            return Err(src.error(
                "trainer.weight_decay",
                format!(
                    "the {study_name} study scales its regulariser with each data size N from \
                     precision.length_scale and precision.tau (weight_reg = l^2 / (tau N)); \
                     remove this key"
                ),
                origin("trainer.weight_decay"),
            ))
        }
        (None, tau, Some(l)) if form == RegularisationRule::Prior => Regularisation::Tau {
            tau: pos("precision.tau", tau.unwrap_or(1.0))?,
            length_scale: pos("precision.length_scale", l)?,
        },
        (None, _, None) if form == RegularisationRule::Prior => {
            return Err(src.error(
                "precision.length_scale",
                format!(
                    "missing: the {study_name} study needs the prior length-scale l (the \
                     authors' 1e-4), and takes precision.tau (default 1)"
                ),
                origin("precision"),
            ))
        }
        (Some(_), _, _) if form == RegularisationRule::TauGrid => {
            return Err(src.error(
                "trainer.weight_decay",
                format!(
                    "the {study_name} study derives weight decay from precision.length_scale, p \
                     and tau; remove this key"
                ),
                origin("trainer.weight_decay"),
            ))
        }
        (None, None, Some(l)) if form == RegularisationRule::TauGrid => Regularisation::TauGrid {
            length_scale: pos("precision.length_scale", l)?,
        },
        (Some(wd), None, None) if form == RegularisationRule::Classification => {
            Regularisation::DecayOnly { weight_decay: nonneg("trainer.weight_decay", wd)? }
        }
        (Some(wd), None, Some(l)) => Regularisation::WeightDecay {
            weight_decay: pos("trainer.weight_decay", wd).map_err(|mut e| {
                e.message.push_str(" (tau is derived from it; with zero weight decay give precision.tau instead of precision.length_scale)");
                e
            })?,
            length_scale: pos("precision.length_scale", l)?,
        },
        (None, Some(tau), Some(l)) => {
            Regularisation::Tau { tau: pos("precision.tau", tau)?, length_scale: pos("precision.length_scale", l)? }
        }
        (Some(wd), Some(tau), None) => {
            Regularisation::Explicit { weight_decay: nonneg("trainer.weight_decay", wd)?, tau: pos("precision.tau", tau)? }
        }
        _ => {
            return Err(src.error(
                "precision",
                "give exactly two of trainer.weight_decay, precision.tau, precision.length_scale \
                 (tau = (1 - p) l^2 / (2 N weight_decay) links them)",
                origin("precision"),
            ))
        }
    };

    let budget = pos("predict.memory_budget_mb", raw.predict.memory_budget_mb)?;
    let predict = PredictConfig {
        memory_budget_bytes: (budget * 1024.0 * 1024.0) as usize,
    };
    let data = if rules.generated_data {
        DataSource::Generated
    } else {
        check_data(src, &raw, origin)?
    };
    let checker = Checker { src, origin, swept };
    let section = study.check(&checker, &raw, &data, &trainer, &regularisation)?;

    if let Some((key, doc)) = reference::unread_key(raw.study, &resolved) {
        let readers: Vec<&str> = doc
            .studies
            .iter()
            .map(|s| reference::study_name(*s))
            .collect();
        return Err(src.error(
            &key,
            format!(
                "the {study_name} study does not read this key (read by: {}); remove it",
                readers.join(", ")
            ),
            origin(&key),
        ));
    }
    Ok(RunConfig {
        name,
        seed: raw.seed,
        data,
        model,
        trainer,
        regularisation,
        predict,
        study: section,
        resolved,
    })
}

/// The study-specific checks shared by several studies' sections.
impl Checker<'_> {
    /// `predict.samples`: T, the MC passes per input (the studies that read it need it).
    pub(crate) fn samples(&self, raw: &RawRun) -> Result<usize, ConfigError> {
        match raw.predict.samples {
            Some(t) => positive(self.src, "predict.samples", t, self.origin),
            None => Err(self.src.error(
                "predict.samples",
                "missing: T, the MC passes per input (a positive integer)",
                (self.origin)("predict"),
            )),
        }
    }

    /// `trainer.iterations` or `trainer.epochs`, exactly one.
    pub(crate) fn length(&self, t: &raw::RawTrainer) -> Result<TrainLength, ConfigError> {
        let (src, origin) = (self.src, self.origin);
        match (t.iterations, t.epochs) {
            (Some(i), None) => Ok(TrainLength::Iterations(positive(
                src,
                "trainer.iterations",
                i,
                origin,
            )?)),
            (None, Some(e)) => Ok(TrainLength::Epochs(positive(
                src,
                "trainer.epochs",
                e,
                origin,
            )?)),
            _ => Err(src.error(
                "trainer.iterations",
                "give exactly one of trainer.iterations and trainer.epochs",
                origin("trainer"),
            )),
        }
    }

    /// `trainer.iterations` of a study that counts steps; `trainer.epochs` is refused with `why`.
    pub(crate) fn iterations_only(
        &self,
        t: &raw::RawTrainer,
        why: &str,
    ) -> Result<usize, ConfigError> {
        match (t.iterations, t.epochs) {
            (Some(i), None) => positive(self.src, "trainer.iterations", i, self.origin),
            (None, Some(_)) => {
                Err(self
                    .src
                    .error("trainer.epochs", why, (self.origin)("trainer.epochs")))
            }
            _ => Err(self.src.error(
                "trainer.iterations",
                "give exactly one of trainer.iterations and trainer.epochs",
                (self.origin)("trainer"),
            )),
        }
    }

    /// Neither `trainer.iterations` nor `trainer.epochs` (the study sets the length): `why`.
    pub(crate) fn no_length(&self, t: &raw::RawTrainer, why: &str) -> Result<(), ConfigError> {
        let key = match (t.iterations, t.epochs) {
            (None, None) => return Ok(()),
            (Some(_), _) => "trainer.iterations",
            (None, Some(_)) => "trainer.epochs",
        };
        Err(self.src.error(key, why, (self.origin)(key)))
    }
}

/// The `data:` section: the vendored folder, or an own CSV table with its columns and split.
fn check_data(
    src: &Source,
    raw: &RawRun,
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<DataSource, ConfigError> {
    let d = &raw.data;
    let err = |key: &str, msg: String| src.error(key, msg, origin(key));
    let Some(csv) = &d.csv else {
        for (key, given) in [
            ("data.target", d.target.is_some()),
            ("data.features", d.features.is_some()),
            ("data.split", d.split.is_some()),
        ] {
            if given {
                return Err(err(key, "only used with data.csv (your own table)".into()));
            }
        }
        let dir = d.dir.clone().unwrap_or_else(|| PathBuf::from("data"));
        if !dir.is_dir() {
            return Err(err(
                "data.dir",
                format!(
                    "the data folder `{}` does not exist (paths are relative to the directory \
                     you run from)",
                    dir.display()
                ),
            ));
        }
        return Ok(DataSource::Vendored(dir));
    };
    if d.dir.is_some() {
        return Err(err(
            "data.dir",
            "give data.dir (the vendored data) or data.csv (your table), not both".into(),
        ));
    }
    if !csv.is_file() {
        return Err(err(
            "data.csv",
            format!(
                "`{}` is not a file (paths are relative to the directory you run from)",
                csv.display()
            ),
        ));
    }
    let Some(target) = d.target.clone().filter(|t| !t.trim().is_empty()) else {
        return Err(err(
            "data.target",
            "missing: the name of the target column".into(),
        ));
    };
    if let Some(f) = &d.features {
        if f.is_empty() {
            return Err(err(
                "data.features",
                "give at least one column (or remove the key: every column but the target)".into(),
            ));
        }
    }
    // data.split: the uci study reads it, the co2 study refuses it (each in its `check`).
    Ok(DataSource::Table(TableSource {
        csv: csv.clone(),
        target,
        features: d.features.clone(),
    }))
}
