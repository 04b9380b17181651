//! Experiment configs: YAML text -> raw serde structs (unknown keys rejected) -> `check()` into
//! validated types. Nothing downstream re-validates.
//!
//! A file describes one *base* run, optional `variants` (named override sets) and an optional
//! `sweep` (key path -> list of values). Each run's document is resolved in this order:
//! base -> variant -> sweep point -> `--set` overrides from the command line.

// A config error is built once per process, on the way out: its size does not matter.
#![allow(clippy::result_large_err)]

mod locate;
pub mod raw;
pub mod reference;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::{Mapping, Value};
use mcd_datasets::uci::UciName;
use mcd_models::lenet::LeNetDropout;
use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
use mcd_trainer::{LrSchedule, Optimizer, TrainSpec};

pub use raw::StudyKind;
use raw::{RawBatch, RawRun, RawSchedule, RawVariant};

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

/// CO2 study settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Co2Config {
    /// T, the MC passes per input (`predict.samples`).
    pub samples: usize,
    pub x_star: f64,
    pub small_samples: usize,
    pub band_sd_relu: f64,
    pub band_sd_tanh: f64,
    pub gp: bool,
    pub near_from: f64,
    /// Consecutive training points per window of the fit check (>= 3).
    pub fit_window: usize,
}

/// Rotated-MNIST study settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MnistConfig {
    pub digit_index: usize,
    pub angles: Vec<f64>,
    pub rotation_samples: usize,
    pub test_samples: usize,
    pub ood: bool,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub monitor_images: usize,
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

/// Where a run's data come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// The vendored, checksummed data folder.
    Vendored(PathBuf),
    /// A researcher's own CSV file.
    Table(TableSource),
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
    /// Training settings; `weight_decay` is filled in by the study from [`Regularisation`].
    pub trainer: TrainSpec,
    pub regularisation: Regularisation,
    pub predict: PredictConfig,
    pub co2: Option<Co2Config>,
    pub mnist: Option<MnistConfig>,
    pub uci: Option<UciConfig>,
    /// Training length in epochs, when given so; the study then sets `trainer.iterations`.
    pub epochs: Option<usize>,
    /// The resolved document, saved next to the results.
    pub resolved: Value,
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

    let mut runs = Vec::new();
    // Base-document values replaced by a variant or sweep point, by key path, with what the
    // check of each in place of its replacement said (in the first run that replaced it).
    let mut base_checks: std::collections::BTreeMap<String, Option<BaseVerdict>> =
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
            let replaced = variant
                .iter()
                .flat_map(|v| v.set.keys().map(key_string))
                .chain(point.iter().map(|(k, _)| k.clone()));
            for key in replaced {
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
                let result = parse_run(&src, probe, name.clone(), &|_| None);
                *verdict = Some(match result {
                    Err(e) if nested(&e.key, &key) || nested(&key, &e.key) => {
                        BaseVerdict::Rejected(e)
                    }
                    _ => BaseVerdict::Accepted,
                });
            }
            runs.push(parse_run(&src, run_doc, name, &origin)?);
        }
    }
    for (key, verdict) in base_checks {
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
    let study: StudyKind = crate::yaml::from_value(first.resolved["study"].clone())
        .map_err(|e| src.error("study", e.to_string(), None))?;
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
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, ConfigError> {
    let raw: RawRun = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let key = error_key("", &e);
        src.error(&key, e.inner().to_string(), origin(&key))
    })?;
    check_run(src, raw, name, doc, origin)
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
    origin: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, ConfigError> {
    let m = &raw.model;
    let wants = match raw.study {
        StudyKind::Co2 => raw::RawArch::Mlp,
        StudyKind::MnistRotated => raw::RawArch::Lenet,
        StudyKind::Uci => raw::RawArch::Mlp,
    };
    if m.arch != wants {
        return Err(src.error(
            "model.arch",
            format!("the {:?} study needs model.arch: {:?}", raw.study, wants).to_lowercase(),
            origin("model.arch"),
        ));
    }
    let mlp_only = |key: &str, present: bool| -> Result<(), ConfigError> {
        if present && m.arch == raw::RawArch::Lenet {
            return Err(src.error(
                key,
                "not a LeNet setting (LeNet's layers are fixed)",
                origin(key),
            ));
        }
        Ok(())
    };
    mlp_only("model.hidden", m.hidden.is_some())?;
    mlp_only("model.activation", m.activation.is_some())?;
    mlp_only("model.input_dropout", m.input_dropout != 0.0)?;
    if m.placement.is_some() && m.arch == raw::RawArch::Mlp {
        return Err(src.error(
            "model.placement",
            "only LeNet has a dropout placement",
            origin("model.placement"),
        ));
    }
    let hidden_raw: &[i64] = m.hidden.as_deref().unwrap_or(&[]);
    if m.arch == raw::RawArch::Mlp && hidden_raw.is_empty() && raw.study != StudyKind::Uci {
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
    let uci_study = raw.study == StudyKind::Uci;
    let dropout =
        match (m.dropout, uci_study) {
            (Some(_), true) => return Err(src.error(
                "model.dropout",
                "the uci study grid-searches the drop rate: set uci.dropout_rates (default: each \
                 data set's dropout_rates.txt) instead",
                origin("model.dropout"),
            )),
            (None, true) => 0.0,
            (None, false) => {
                return Err(src.error(
                    "model.dropout",
                    "missing: the drop probability in [0, 1)",
                    origin("model"),
                ))
            }
            (Some(p), false) => finite_in(
                src,
                "model.dropout",
                p,
                (0.0..1.0).contains(&p),
                "a drop probability in [0, 1)",
                origin,
            )?,
        };
    if uci_study && m.input_dropout != 0.0 {
        return Err(src.error(
            "model.input_dropout",
            "the uci study drops inputs with the same rate as the hidden layer (the authors' \
             protocol); remove this key",
            origin("model.input_dropout"),
        ));
    }
    let input_dropout = finite_in(
        src,
        "model.input_dropout",
        m.input_dropout,
        (0.0..1.0).contains(&m.input_dropout),
        "a drop probability in [0, 1)",
        origin,
    )?;
    let model = ModelConfig {
        arch: match (m.arch, m.placement) {
            (raw::RawArch::Mlp, _) => Arch::Mlp,
            (raw::RawArch::Lenet, Some(raw::RawPlacement::All)) => Arch::LeNet(LeNetDropout::All),
            (raw::RawArch::Lenet, _) => Arch::LeNet(LeNetDropout::Fc),
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
    let (iterations, epochs) = match (t.iterations, t.epochs) {
        (None, None) if uci_study => (0, None),
        (i, e) if uci_study => {
            let key = if i.is_some() {
                "trainer.iterations"
            } else {
                "trainer.epochs"
            };
            let _ = e;
            return Err(src.error(
                key,
                "the uci study trains each data set for its n_epochs.txt x uci.epoch_multiplier \
                 epochs; remove this key",
                origin(key),
            ));
        }
        (Some(i), None) => (positive(src, "trainer.iterations", i, origin)?, None),
        (None, Some(_)) if raw.study == StudyKind::Co2 => {
            return Err(src.error(
                "trainer.epochs",
                "the co2 study counts its training in steps: give trainer.iterations instead \
                 of trainer.epochs",
                origin("trainer.epochs"),
            ))
        }
        (None, Some(e)) => (0, Some(positive(src, "trainer.epochs", e, origin)?)),
        _ => {
            return Err(src.error(
                "trainer.iterations",
                "give exactly one of trainer.iterations and trainer.epochs",
                origin("trainer"),
            ))
        }
    };
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
    if uci_study && !matches!(optimizer, Optimizer::Adam { .. }) {
        return Err(src.error(
            "trainer.optimizer",
            "the uci study trains with adam (the authors' protocol and the stacked trainer)",
            origin("trainer.optimizer"),
        ));
    }
    if uci_study && schedule != LrSchedule::Constant {
        return Err(src.error(
            "trainer.schedule",
            "the uci study uses a constant learning rate",
            origin("trainer.schedule"),
        ));
    }

    let p = &raw.precision;
    let nonneg = |key: &str, v: f64| finite_in(src, key, v, v >= 0.0, "a value >= 0", origin);
    let pos = |key: &str, v: f64| finite_in(src, key, v, v > 0.0, "a value > 0", origin);
    let regularisation = match (t.weight_decay, p.tau, p.length_scale) {
        (Some(_), _, _) if uci_study => {
            return Err(src.error(
                "trainer.weight_decay",
                "the uci study derives weight decay from precision.length_scale, p and tau; \
                 remove this key",
                origin("trainer.weight_decay"),
            ))
        }
        (None, None, Some(l)) if uci_study => Regularisation::TauGrid {
            length_scale: pos("precision.length_scale", l)?,
        },
        (Some(wd), None, None) if raw.study == StudyKind::MnistRotated => {
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

    let trainer = TrainSpec {
        iterations,
        batch_size,
        lr,
        schedule,
        optimizer,
        weight_decay: 0.0,
        seed: raw.seed,
        log_every,
    };
    // The co2 and uci studies need T; mnist_rotated refuses the key (reference: not read).
    let samples = match raw.predict.samples {
        Some(t) => positive(src, "predict.samples", t, origin)?,
        None if raw.study == StudyKind::MnistRotated => 0,
        None => {
            return Err(src.error(
                "predict.samples",
                "missing: T, the MC passes per input (a positive integer)",
                origin("predict"),
            ))
        }
    };
    let budget = pos("predict.memory_budget_mb", raw.predict.memory_budget_mb)?;
    let predict = PredictConfig {
        memory_budget_bytes: (budget * 1024.0 * 1024.0) as usize,
    };

    let co2 = match (&raw.co2, raw.study) {
        (None, StudyKind::Co2) => {
            return Err(src.error(
                "co2",
                "the co2 study needs a `co2:` section (x_star, ...)",
                None,
            ))
        }
        (Some(c), StudyKind::Co2) => {
            let band = c.band_sd.clone().unwrap_or(raw::RawBandSd {
                relu: 2.0,
                tanh: 8.0,
            });
            Some(Co2Config {
                samples,
                x_star: finite_in(src, "co2.x_star", c.x_star, true, "a finite number", origin)?,
                small_samples: positive(src, "co2.small_samples", c.small_samples, origin)?,
                band_sd_relu: pos("co2.band_sd.relu", band.relu)?,
                band_sd_tanh: pos("co2.band_sd.tanh", band.tanh)?,
                gp: c.gp,
                near_from: c.near_from.unwrap_or(f64::NEG_INFINITY),
                fit_window: match c.fit_window {
                    w @ 3.. => w as usize,
                    w => {
                        return Err(src.error(
                            "co2.fit_window",
                            format!("{w} is too small: give at least 3 consecutive points"),
                            origin("co2.fit_window"),
                        ))
                    }
                },
            })
        }
        // Another study's section: refused below (reference: not read by this study).
        _ => None,
    };

    let mnist = match (&raw.mnist, raw.study) {
        (None, StudyKind::MnistRotated) => {
            return Err(src.error(
                "mnist",
                "the mnist_rotated study needs a `mnist:` section (digit_index, angles, ...)",
                None,
            ))
        }
        (Some(c), StudyKind::MnistRotated) => {
            if c.angles.is_empty() || c.angles.iter().any(|a| !a.is_finite()) {
                return Err(src.error(
                    "mnist.angles",
                    "give a non-empty list of finite angles in degrees",
                    origin("mnist.angles"),
                ));
            }
            let digit_index = usize::try_from(c.digit_index).map_err(|_| {
                src.error(
                    "mnist.digit_index",
                    format!("got {}, must be an index >= 0", c.digit_index),
                    origin("mnist.digit_index"),
                )
            })?;
            let limit =
                |key: &str, v: Option<i64>| v.map(|v| positive(src, key, v, origin)).transpose();
            Some(MnistConfig {
                digit_index,
                angles: c.angles.clone(),
                rotation_samples: positive(
                    src,
                    "mnist.rotation_samples",
                    c.rotation_samples,
                    origin,
                )?,
                test_samples: positive(src, "mnist.test_samples", c.test_samples, origin)?,
                ood: c.ood,
                train_limit: limit("mnist.train_limit", c.train_limit)?,
                test_limit: limit("mnist.test_limit", c.test_limit)?,
                monitor_images: positive(src, "mnist.monitor_images", c.monitor_images, origin)?,
            })
        }
        _ => None,
    };

    let data = check_data(src, &raw, origin)?;
    let uci = match (&raw.uci, raw.study) {
        (None, StudyKind::Uci) => {
            return Err(src.error(
                "uci",
                "the uci study needs a `uci:` section (datasets, epoch_multiplier, ...)",
                None,
            ))
        }
        (Some(c), StudyKind::Uci) => Some(check_uci(
            src,
            c,
            samples,
            &data,
            raw.data.split.as_ref(),
            origin,
        )?),
        _ => None,
    };

    if let Some((key, doc)) = reference::unread_key(raw.study, &resolved) {
        let readers: Vec<&str> = doc
            .studies
            .iter()
            .map(|s| reference::study_name(*s))
            .collect();
        return Err(src.error(
            &key,
            format!(
                "the {} study does not read this key (read by: {}); remove it",
                reference::study_name(raw.study),
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
        co2,
        mnist,
        uci,
        epochs,
        resolved,
    })
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
    // The uci study reads data.split (`check_uci`); mnist_rotated refuses data.csv.
    if d.split.is_some() && raw.study == StudyKind::Co2 {
        return Err(err(
            "data.split",
            "the co2 study fits every row of the table: remove data.split".into(),
        ));
    }
    Ok(DataSource::Table(TableSource {
        csv: csv.clone(),
        target,
        features: d.features.clone(),
    }))
}

fn check_split(
    src: &Source,
    s: &raw::RawSplit,
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
    c: &raw::RawUci,
    test_samples: usize,
    data: &DataSource,
    split: Option<&raw::RawSplit>,
    origin: &dyn Fn(&str) -> Option<String>,
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
            return finish_uci(src, c, sets, dropout_rates, test_samples, origin);
        }
        DataSource::Vendored(dir) => dir.clone(),
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
        raw::RawNames::Word(w) if w == "all" => UciName::ALL.to_vec(),
        raw::RawNames::Word(w) => vec![UciName::from_str(w).map_err(|e| {
            src.error(
                "uci.datasets",
                format!("{e} (or `all`)"),
                origin("uci.datasets"),
            )
        })?],
        raw::RawNames::List(names) => {
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
    )
}

/// The settings both kinds of uci data share.
fn finish_uci(
    src: &Source,
    c: &raw::RawUci,
    sets: UciSets,
    dropout_rates: Option<Vec<f64>>,
    test_samples: usize,
    origin: &dyn Fn(&str) -> Option<String>,
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
    })
}
