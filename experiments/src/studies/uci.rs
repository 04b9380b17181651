//! The UCI regression benchmark (paper Table 1) with the authors' 2018 grid-search protocol.
//!
//! Per data set and split: the last 20% of the training rows (unshuffled) are held out; every
//! (p, tau) of the grid is trained on the first 80% and scored by validation log-likelihood;
//! the best is retrained on the whole training part and scored on the test part with T passes
//! (RMSE and log-likelihood in original units, and the standard-dropout RMSE).
//!
//! Speed: all grid points of a group of splits train as one [`StackedMlp`] (one batched
//! forward/backward per step), and the retraining of the group's splits as another.
//! Resumable: each finished split is written to `<cache>/uci/<protocol key>/<data set>/` at
//! once, and a rerun of the same protocol reads it instead of training again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use mcd_datasets::uci::{self, SetName, UciDataset, UciName, UciSplit};
use mcd_datasets::{DataError, DataRoot};
use mcd_evaluation::regression::{
    coverage, rmse, weight_decay_from_tau, DecayConvention, McStream,
};
use mcd_models::mlp::MlpSpec;
use mcd_models::rng::splitmix64;
use mcd_models::stacked::{Member, StackedMlp};
use mcd_trainer::stacked::{train_stacked, StackedData, StackedSpec};
use mcd_trainer::TrainReport;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::cache::{DataFingerprint, Key, SCHEMA};
use crate::config::raw::{RawArch, RawRun};
use crate::config::{
    Checker, ConfigError, DataSource, Experiment, Regularisation, RegularisationRule, Rules,
    RunConfig, StackTrainer, StudyConfig, StudyKind, TrainSettings, UciConfig, UciSets,
    OWN_TABLE_HIDDEN,
};
use crate::curves::Curve;
use crate::output::OutputDir;
use crate::tasks::Task;
use crate::{Context, Mode};

mod evaluate;
mod methods;
mod tables;

use evaluate::{evaluate, merge_chunk};
use tables::{write_methods_table, write_predictions, write_tables, Summary};

/// Everything that fixes one data set's per-split results (with the data set: its resume key,
/// [`Protocol::key`]; the spec and seed enter the key as its model and seed).
#[derive(Debug, Clone, Serialize)]
struct Protocol {
    #[serde(skip)]
    spec: MlpSpec,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    beta1: f64,
    beta2: f64,
    length_scale: f64,
    /// Fixed tau instead of the grid.
    dropout_rates: Vec<f64>,
    tau_values: Vec<f64>,
    validation_samples: usize,
    test_samples: usize,
    budget_bytes: usize,
    /// MC dropout's stacks through `mcd_trainer::fused` (absent from the key when false, so
    /// the keys of libtorch-trained results did not change when it came).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fused: bool,
    #[serde(skip)]
    seed: u64,
}

impl Protocol {
    fn grid(&self) -> Vec<(f64, f64)> {
        self.dropout_rates
            .iter()
            .flat_map(|&p| self.tau_values.iter().map(move |&t| (p, t)))
            .collect()
    }

    /// Key of the resume folder: every setting above, the data set and the code version.
    fn key(&self, name: &SetName) -> Result<String> {
        Key {
            schema: SCHEMA,
            study: StudyKind::Uci,
            model: &self.spec,
            train: self,
            seed: self.seed,
            data: &DataFingerprint::Named(match name {
                SetName::Uci(n) => n.to_string(),
                SetName::Own { label, fingerprint } => format!("{label} {fingerprint}"),
            }),
            // The only method the stacked grid serves (`Use::StackedRegression`).
            method: "mc_dropout",
            dropout_warmup: 0,
        }
        .hash()
    }

    /// The authors' weight decay `l^2 (1 - p) / (2 N tau)` (see `mcd_trainer` for why it
    /// applies unchanged to this project's loss convention).
    fn weight_decay(&self, p: f64, tau: f64, n: usize) -> Result<f64> {
        Ok(weight_decay_from_tau(
            self.length_scale,
            p,
            n,
            tau,
            DecayConvention::Paper,
        )?)
    }

    /// Seed of one net: a function of the run seed, data set, split, phase and grid point only.
    fn member_seed(&self, name: &SetName, split: usize, phase: u64, point: usize) -> u64 {
        let mut h = splitmix64(self.seed ^ 0x0C1_5EED);
        for v in [name.seed_tag(), split as u64, phase, point as u64] {
            h = splitmix64(h ^ v);
        }
        h
    }
}

/// One grid point's validation score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct GridPoint {
    p: f64,
    tau: f64,
    validation_ll: f64,
}

/// What one split gave; written as JSON as soon as it is finished.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct SplitResult {
    dataset: String,
    split: usize,
    p: f64,
    tau: f64,
    grid: Vec<GridPoint>,
    test_rmse: f64,
    test_ll: f64,
    standard_rmse: f64,
    /// Fraction of test targets within +-1.96 predictive sd.
    coverage_95: f64,
    epochs: usize,
    /// Wall time of the split's share of its group (grid search, retraining and test).
    seconds: f64,
    /// Test rows (data-file row indices), targets, predictive means and sds, original units.
    rows: Vec<usize>,
    y: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
    /// The final model's training curve: (step, its loss) at every logged step of the
    /// retraining (0.5 MSE of standardised targets on the step's mini-batch, dropout on, without
    /// the weight decay). `None` in a split saved before curves were recorded.
    #[serde(default)]
    train_curve: Option<Vec<(usize, f64)>>,
    /// Concrete dropout: the final model's learnt p per layer (the input's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learnt_p: Option<Vec<f64>>,
    /// Concrete dropout: the final model's learnt p per layer (`p_before_layer{i}`) at the
    /// logged steps of `train_curve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    train_p: Option<Vec<(String, Vec<f64>)>>,
}

impl SplitResult {
    /// A split's result from its final model's MC test stream and standard-dropout
    /// predictions, with the method's chosen (p, tau) and the final model's training curve;
    /// no learnt rates (concrete dropout adds them).
    #[allow(clippy::too_many_arguments)]
    fn tested(
        ds: &UciDataset,
        split: usize,
        (p, tau): (f64, f64),
        grid: Vec<GridPoint>,
        (stream, standard): (&McStream, &[f64]),
        epochs: usize,
        seconds: f64,
        rows: Vec<usize>,
        train_curve: Vec<(usize, f64)>,
    ) -> Result<Self, mcd_evaluation::EvalError> {
        let pred = stream.predictive()?;
        let sd = pred.sd();
        Ok(SplitResult {
            dataset: ds.name.dir_name().to_string(),
            split,
            p,
            tau,
            grid,
            test_rmse: stream.rmse()?,
            test_ll: stream.log_likelihood()?.mean,
            standard_rmse: rmse(standard, stream.targets())?,
            coverage_95: coverage(&pred.mean, &sd, stream.targets(), 1.96)?,
            epochs,
            seconds,
            rows,
            y: stream.targets().to_vec(),
            mean: pred.mean,
            sd,
            train_curve: Some(train_curve),
            learnt_p: None,
            train_p: None,
        })
    }
}

/// Logged steps of a retraining: about this many, the last step included.
const CURVE_POINTS: usize = 100;

/// The uci study (registered in [`super::study`]).
pub struct Uci;

impl super::Study for Uci {
    fn rules(&self) -> Rules {
        Rules {
            arch: RawArch::Mlp,
            default_hidden: true,
            searched_dropout: Some(
                "the uci study grid-searches the drop rate: set uci.dropout_rates (default: \
                 each data set's dropout_rates.txt) instead",
            ),
            fixed_input_dropout: Some(
                "the uci study drops inputs with the same rate as the hidden layer (the \
                 authors' protocol); remove this key",
            ),
            regularisation: RegularisationRule::TauGrid,
            uses: crate::methods::Use::StackedRegression,
            generated_data: false,
        }
    }

    fn check(
        &self,
        c: &Checker,
        raw: &RawRun,
        data: &DataSource,
        trainer: &TrainSettings,
        regularisation: &Regularisation,
    ) -> Result<StudyConfig, ConfigError> {
        crate::config::uci::check(c, raw, data, trainer, regularisation)
    }

    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
        run(exp, ctx, out)
    }

    fn tasks(&self, exp: &Experiment) -> Result<Vec<Task>> {
        Ok(units(exp)?.into_iter().map(Task::Uci).collect())
    }

    fn run_task(
        &self,
        exp: &Experiment,
        task: &Task,
        ctx: &Context,
        out: &OutputDir,
    ) -> Result<()> {
        let (run, unit) = match task {
            Task::Uci(unit) => (unit.run, Some(unit)),
            Task::Run { index, .. } => (*index, None),
        };
        let run = exp
            .runs
            .get(run)
            .with_context(|| format!("no run {run} in this experiment"))?;
        run_one(run, "", ctx, out, unit).map(drop)
    }
}

/// Runs the study into `out`; runs of more than one method also get the comparison table
/// (`tables/methods.*`, one row per data set and method).
pub fn run(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let mut all = Vec::new();
    for run in &exp.runs {
        let prefix = if exp.runs.len() > 1 {
            format!("{}_", run.name)
        } else {
            String::new()
        };
        all.push((run.name.clone(), run_one(run, &prefix, ctx, out, None)?));
    }
    let methods: std::collections::BTreeSet<&str> =
        exp.runs.iter().map(|r| r.model.method.name()).collect();
    if methods.len() > 1 {
        write_methods_table(out, &all)?;
    }
    Ok(())
}

/// One task of the study: one stack of splits of one data set of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub run: usize,
    /// Position of the data set in the run's list (an own table: 0).
    pub set: usize,
    pub splits: Vec<usize>,
    pub label: String,
}

/// The study's tasks: every run's data sets, cut into stacks of `uci.splits_per_stack` splits
/// as a single process trains them.
pub fn units(exp: &Experiment) -> Result<Vec<Unit>> {
    let mut out = Vec::new();
    for (r, run) in exp.runs.iter().enumerate() {
        let cfg = uci_config(run);
        let mut counts: Vec<(String, usize)> = Vec::new();
        match &cfg.sets {
            UciSets::Vendored { dir, datasets, .. } => {
                let root = DataRoot::open(dir)?;
                // Counted from n_splits.txt: planning reads no data (each task loads its own).
                for &name in datasets {
                    match uci::split_count(&root, name) {
                        Ok(n) => counts.push((name.to_string(), n)),
                        // Skipped with a note by the run; no task.
                        Err(DataError::Missing { .. }) if name == UciName::YearPredictionMsd => {
                            counts.push((name.to_string(), 0))
                        }
                        Err(e) => return Err(e).with_context(|| format!("reading {name}")),
                    }
                }
            }
            UciSets::Own { table, split, .. } => {
                let n = match split {
                    mcd_datasets::SplitRule::Random { count, .. } => *count,
                    mcd_datasets::SplitRule::IndexFiles(pairs) => pairs.len(),
                };
                counts.push((table.csv.display().to_string(), n));
            }
        }
        for (set, (name, n)) in counts.into_iter().enumerate() {
            let n = cfg.splits.unwrap_or(usize::MAX).min(n);
            let all: Vec<usize> = (0..n).collect();
            for chunk in all.chunks(cfg.splits_per_stack) {
                out.push(Unit {
                    run: r,
                    set,
                    splits: chunk.to_vec(),
                    label: format!(
                        "run `{}`, {name}, splits {}-{}",
                        run.name,
                        chunk[0],
                        chunk[chunk.len() - 1]
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// A run's uci section.
fn uci_config(run: &RunConfig) -> &UciConfig {
    match &run.study {
        StudyConfig::Uci(c) => c,
        other => unreachable!("validation: a uci experiment has {:?} runs", other.kind()),
    }
}

/// One run: every data set (or only `unit`'s), then the tables unless this is a task.
fn run_one(
    run: &RunConfig,
    prefix: &str,
    ctx: &Context,
    out: &OutputDir,
    unit: Option<&Unit>,
) -> Result<Vec<Summary>> {
    let cfg = uci_config(run);
    let other = methods::Other::of(run.model.method, cfg);
    if ctx.device != Device::Cpu {
        bail!(
            "the uci study runs on the CPU only (its nets are small; got --device {:?})",
            ctx.device
        );
    }
    let started = Instant::now();
    let mut summaries = Vec::new();
    let mut curves = Vec::new();
    let wanted_set = |set: usize| unit.is_none_or(|u| u.set == set);
    let run_set =
        |ds: UciDataset, summaries: &mut Vec<Summary>, curves: &mut Vec<Curve>| -> Result<()> {
            let proto = protocol(run, cfg, &ds)?;
            let wanted: Vec<usize> = match unit {
                Some(u) => u.splits.clone(),
                None => (0..cfg.splits.unwrap_or(usize::MAX).min(ds.splits.len())).collect(),
            };
            let set_started = Instant::now();
            let results = run_dataset(&ds, &proto, cfg, ctx, out, &wanted, other)?;
            if ctx.mode != Mode::TrainOnly {
                write_predictions(out, prefix, &ds.name, &results)?;
                curves.push(curve_of(&ds.name, &results, out));
                let mut summary = Summary::of(ds.name, &results);
                if let Some(o) = &other {
                    summary.mode = o.chosen(&results);
                }
                summary.method = run.model.method.label().to_string();
                summary.run_seconds = set_started.elapsed().as_secs_f64();
                summaries.push(summary);
            }
            Ok(())
        };
    match &cfg.sets {
        UciSets::Vendored { dir, datasets, .. } => {
            let root = DataRoot::open(dir)
                .with_context(|| format!("opening the data folder {}", dir.display()))?;
            for (set, &name) in datasets.iter().enumerate() {
                if !wanted_set(set) {
                    continue;
                }
                let ds = match uci::load(&root, name) {
                    Ok(ds) => ds,
                    Err(DataError::Missing { path, msg }) if name == UciName::YearPredictionMsd => {
                        out.log(&format!(
                            "skipping {name}: no data at {} ({msg})",
                            path.display()
                        ));
                        summaries.push(Summary::skipped(
                            SetName::Uci(name),
                            "not vendored (no data file)",
                        ));
                        continue;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("loading UCI data set {name}"))
                    }
                };
                run_set(ds, &mut summaries, &mut curves)?;
            }
        }
        UciSets::Own { table, split, .. } => {
            let ds = crate::studies::load_table(table, out)?
                .into_dataset(split)
                .context("splitting data.csv")?;
            run_set(ds, &mut summaries, &mut curves)?;
        }
    }
    if ctx.mode == Mode::TrainOnly {
        return Ok(summaries);
    }
    out.log(&format!(
        "UCI benchmark finished in {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    ));
    write_tables(out, prefix, &summaries, run.model.method.label())?;
    let labels = match other.map(|o| o.name()) {
        Some("ensemble") => crate::curves::Labels {
            table: "UCI training curves: deep ensembles' loss (the members' mean Gaussian NLL, \
                    standardised targets, on each logged step's mini-batch), mean over splits, \
                    per data set",
            figure: "UCI: deep ensembles' training loss (mean over splits)",
            loss: "Gaussian NLL on the batch (standardised)",
        },
        Some(_) => crate::curves::Labels {
            table: "UCI training curves: concrete dropout's final models' loss (0.5 MSE with \
                    relaxed masks + the halved regulariser, standardised targets, on each logged \
                    step's mini-batch) and learnt p per layer, mean over splits, per data set",
            figure: "UCI: concrete dropout's training loss (mean over splits)",
            loss: "0.5 MSE + regulariser on the batch",
        },
        None => crate::curves::Labels {
            table: "UCI training curves: the final models' loss (0.5 MSE, standardised targets, \
                    on each logged step's mini-batch, dropout on), mean over splits, per data set",
            figure: "UCI: final models' training loss (mean over splits)",
            loss: "0.5 MSE on the batch (standardised)",
        },
    };
    crate::curves::write(out, prefix, labels, &curves)?;
    Ok(summaries)
}

/// A data set's training curve: the mean over its splits of the final model's (the retraining
/// of the chosen p and tau on the whole training part) loss at each logged step, with the
/// spread over splits. Splits saved before curves were recorded are left out, and the log says
/// so.
fn curve_of(name: &SetName, results: &[SplitResult], out: &OutputDir) -> Curve {
    let have: Vec<&[(usize, f64)]> = results
        .iter()
        .filter_map(|r| r.train_curve.as_deref())
        .collect();
    let missing = results.len() - have.len();
    if missing > 0 {
        out.log(&format!(
            "{name}: {missing} of {} splits were saved before training curves were recorded; \
             training_curves {} (--retrain records them)",
            results.len(),
            if have.is_empty() {
                "has no curve for this data set".to_string()
            } else {
                format!("averages the other {} (column `splits`)", have.len())
            }
        ));
    }
    let mut curve = Curve::mean_of(name.dir_name(), &have);
    // Concrete dropout: the learnt rates, mean over splits at each step.
    let rates: Vec<&Vec<(String, Vec<f64>)>> =
        results.iter().filter_map(|r| r.train_p.as_ref()).collect();
    if let Some(first) = rates.first() {
        for (j, (layer, series)) in first.iter().enumerate() {
            let mean: Vec<f64> = (0..series.len())
                .map(|i| {
                    let v: Vec<f64> = rates
                        .iter()
                        .filter_map(|r| r.get(j)?.1.get(i).copied())
                        .collect();
                    v.iter().sum::<f64>() / v.len() as f64
                })
                .collect();
            if mean.len() == curve.steps.len() {
                curve.learned.push((layer.clone(), mean));
            }
        }
    }
    curve
}

/// The protocol for one data set: the config's settings plus the data set's own grid, width
/// and epochs.
fn protocol(run: &RunConfig, cfg: &UciConfig, ds: &UciDataset) -> Result<Protocol> {
    let (default_hidden, epochs) = match &cfg.sets {
        UciSets::Vendored {
            epoch_multiplier, ..
        } => (
            ds.n_hidden,
            ((ds.n_epochs as f64 * epoch_multiplier).round() as usize).max(1),
        ),
        UciSets::Own { epochs, .. } => (OWN_TABLE_HIDDEN, *epochs),
    };
    let hidden = if run.model.hidden.is_empty() {
        vec![default_hidden]
    } else {
        run.model.hidden.clone()
    };
    Ok(Protocol {
        spec: MlpSpec {
            input_dim: ds.n_features,
            hidden,
            output_dim: 1,
            activation: run.model.activation,
            dropout: 0.0,
            input_dropout: 0.0,
            init: run.model.init,
            first_layer: None,
        },
        epochs,
        batch_size: run.trainer.batch_size.unwrap_or(usize::MAX),
        lr: run.trainer.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        length_scale: cfg.length_scale,
        dropout_rates: cfg
            .dropout_rates
            .clone()
            .unwrap_or_else(|| ds.dropout_rates.clone()),
        tau_values: cfg
            .fixed_tau
            .map(|t| vec![t])
            .or_else(|| cfg.tau_values.clone())
            .unwrap_or_else(|| ds.tau_values.clone()),
        validation_samples: cfg.validation_samples,
        test_samples: cfg.test_samples,
        budget_bytes: run.predict.memory_budget_bytes,
        // The other methods' stacks train through their own objectives (libtorch).
        fused: cfg.stack_trainer == StackTrainer::Fused
            && methods::Other::of(run.model.method, cfg).is_none(),
        seed: run.seed,
    })
}

/// Every requested split of one data set: finished ones from the resume folder, the rest
/// trained group by group and saved as they finish.
fn run_dataset(
    ds: &UciDataset,
    proto: &Protocol,
    cfg: &UciConfig,
    ctx: &Context,
    out: &OutputDir,
    wanted: &[usize],
    other: Option<methods::Other>,
) -> Result<Vec<SplitResult>> {
    let n_splits = wanted.len();
    let key = match &other {
        None => proto.key(&ds.name)?,
        Some(o) => o.key(proto, &ds.name)?,
    };
    let dir = ctx.cache_dir.join("uci").join(key).join(ds.name.dir_name());
    let mut done = BTreeMap::new();
    let mut todo = Vec::new();
    for &k in wanted {
        match (!ctx.retrain || ctx.mode == Mode::CachedOnly)
            .then(|| read_split(&dir, k))
            .flatten()
        {
            Some(r) => {
                done.insert(k, r);
            }
            None => todo.push(k),
        }
    }
    match &other {
        None => out.log(&format!(
            "{}: {} splits ({} already done in {}), grid {} x {} (p x tau), {} epochs, {} hidden",
            ds.name,
            n_splits,
            done.len(),
            dir.display(),
            proto.dropout_rates.len(),
            proto.tau_values.len(),
            proto.epochs,
            proto.spec.hidden[0],
        )),
        Some(o) => out.log(&format!(
            "{}: {} splits ({} already done in {}), {}, {} hidden",
            ds.name,
            n_splits,
            done.len(),
            dir.display(),
            o.describe(proto),
            proto.spec.hidden[0],
        )),
    }
    if ctx.mode == Mode::CachedOnly && !todo.is_empty() {
        bail!(
            "{}: splits {todo:?} are not in {}: their tasks have not finished",
            ds.name,
            dir.display()
        );
    }
    for group in todo.chunks(cfg.splits_per_stack) {
        let results = match &other {
            None => run_group(ds, group, proto, ctx, out)?,
            Some(o) => o.run_group(ds, group, proto, ctx, out)?,
        };
        for r in results {
            write_split(&dir, &r)?;
            out.log(&match &other {
                None => format!(
                    "{} split {:2}: p {} tau {} | test RMSE {:.4} LL {:.4} | standard RMSE {:.4} | {:.1} s",
                    r.dataset, r.split, r.p, r.tau, r.test_rmse, r.test_ll, r.standard_rmse, r.seconds
                ),
                Some(o) => o.split_line(&r),
            });
            done.insert(r.split, r);
        }
    }
    Ok(done.into_values().collect())
}

fn split_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("split_{k:02}.json"))
}

/// A finished split, or None when absent or unreadable (then it is recomputed).
fn read_split(dir: &Path, k: usize) -> Option<SplitResult> {
    let text = std::fs::read_to_string(split_path(dir, k)).ok()?;
    serde_json::from_str::<SplitResult>(&text)
        .ok()
        .filter(|r| r.split == k)
}

/// Written to a temporary name and renamed, so an interrupted run never leaves half a file.
fn write_split(dir: &Path, r: &SplitResult) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_string(r).context("serialising a split result")?;
    crate::cache::write_atomically(&split_path(dir, r.split), text.as_bytes())
}

/// Grid search, retraining and test of a group of splits.
fn run_group(
    ds: &UciDataset,
    splits: &[usize],
    proto: &Protocol,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Vec<SplitResult>> {
    let started = Instant::now();
    let grid = proto.grid();
    let label = |what: &str| {
        format!(
            "{} splits {}-{} {what}",
            ds.name,
            splits[0],
            splits[splits.len() - 1]
        )
    };

    // Grid search on the 80/20 validation splits.
    let val: Vec<UciSplit> = splits
        .iter()
        .map(|&k| ds.split(k, true))
        .collect::<Result<_, _>>()?;
    let mut members = Vec::new();
    let mut member_set = Vec::new();
    let mut taus = Vec::new();
    let mut decays = Vec::new();
    for (s, &k) in splits.iter().enumerate() {
        let n = val[s].train_rows.len();
        for (g, &(p, tau)) in grid.iter().enumerate() {
            members.push(Member {
                dropout: p,
                input_dropout: p,
                seed: proto.member_seed(&ds.name, k, 0, g),
            });
            member_set.push(s);
            taus.push(tau);
            decays.push(proto.weight_decay(p, tau, n)?);
        }
    }
    let sets: Vec<&UciSplit> = val.iter().collect();
    let (stack, _) = train(
        &sets,
        &members,
        &member_set,
        &decays,
        proto,
        ctx,
        &label("grid"),
        GRID_LOG_EVERY,
    )?;
    let scores = evaluate(
        &stack,
        &sets,
        &member_set,
        &taus,
        proto.validation_samples,
        proto,
        ctx.device,
    )?;
    let mut best = Vec::with_capacity(splits.len());
    let mut grids = Vec::with_capacity(splits.len());
    for s in 0..splits.len() {
        let points: Vec<GridPoint> = grid
            .iter()
            .enumerate()
            .map(|(g, &(p, tau))| {
                let ll = scores[s * grid.len() + g]
                    .0
                    .log_likelihood()
                    .map(|l| l.mean);
                Ok(GridPoint {
                    p,
                    tau,
                    validation_ll: ll?,
                })
            })
            .collect::<Result<_, mcd_evaluation::EvalError>>()?;
        // The first best on ties; a non-finite score never wins.
        let g = points
            .iter()
            .enumerate()
            .filter(|(_, pt)| pt.validation_ll.is_finite())
            .fold(None, |acc: Option<(usize, f64)>, (g, pt)| match acc {
                Some((_, b)) if b >= pt.validation_ll => acc,
                _ => Some((g, pt.validation_ll)),
            })
            .map(|(g, _)| g)
            .with_context(|| {
                format!(
                    "{} split {}: no grid point has a finite validation log-likelihood",
                    ds.name, splits[s]
                )
            })?;
        best.push(g);
        grids.push(points);
    }
    drop(stack);

    // Retrain the best of each split on its whole training part; test.
    let full: Vec<UciSplit> = splits
        .iter()
        .map(|&k| ds.split(k, false))
        .collect::<Result<_, _>>()?;
    let members: Vec<Member> = splits
        .iter()
        .zip(&best)
        .map(|(&k, &g)| Member {
            dropout: grid[g].0,
            input_dropout: grid[g].0,
            seed: proto.member_seed(&ds.name, k, 1, g),
        })
        .collect();
    let member_set: Vec<usize> = (0..splits.len()).collect();
    let taus: Vec<f64> = best.iter().map(|&g| grid[g].1).collect();
    let decays: Vec<f64> = best
        .iter()
        .zip(&full)
        .map(|(&g, sp)| proto.weight_decay(grid[g].0, grid[g].1, sp.train_rows.len()))
        .collect::<Result<_>>()?;
    let sets: Vec<&UciSplit> = full.iter().collect();
    // The final models' curves: about CURVE_POINTS logged steps each.
    let rows = sets[0].train_rows.len();
    let steps = proto.epochs * rows.div_ceil(proto.batch_size.clamp(1, rows.max(1)));
    let (stack, report) = train(
        &sets,
        &members,
        &member_set,
        &decays,
        proto,
        ctx,
        &label("retrain"),
        (steps / CURVE_POINTS).max(1),
    )?;
    let logged: Vec<usize> = report.losses.iter().map(|l| l.0).collect();
    let tested = evaluate(
        &stack,
        &sets,
        &member_set,
        &taus,
        proto.test_samples,
        proto,
        ctx.device,
    )?;
    let seconds = started.elapsed().as_secs_f64() / splits.len() as f64;
    out.log(&format!(
        "{}: {} x {} nets trained and tested in {:.1} s",
        label("done"),
        splits.len(),
        grid.len() + 1,
        seconds * splits.len() as f64
    ));

    splits
        .iter()
        .enumerate()
        .zip(tested)
        .map(|((s, &k), (stream, standard))| {
            SplitResult::tested(
                ds,
                k,
                grid[best[s]],
                grids[s].clone(),
                (&stream, &standard),
                proto.epochs,
                seconds,
                full[s].test_rows.clone(),
                logged
                    .iter()
                    .copied()
                    .zip(report.member_losses[s].iter().copied())
                    .collect(),
            )
        })
        .collect::<Result<_, mcd_evaluation::EvalError>>()
        .map_err(Into::into)
}

/// How often the grid search logs its mean loss (only the progress display reads it).
const GRID_LOG_EVERY: usize = 200;

/// Trains one stack: member m on `sets[member_set[m]]`'s training part, logging the losses
/// every `log_every` steps.
#[allow(clippy::too_many_arguments)]
fn train(
    sets: &[&UciSplit],
    members: &[Member],
    member_set: &[usize],
    decays: &[f64],
    proto: &Protocol,
    ctx: &Context,
    label: &str,
    log_every: usize,
) -> Result<(StackedMlp, TrainReport)> {
    let stack = StackedMlp::new(&proto.spec, members);
    let dev = |t: &Tensor| t.to_device(ctx.device);
    let xs: Vec<Tensor> = sets.iter().map(|s| dev(&s.x_train)).collect();
    let ys: Vec<Tensor> = sets.iter().map(|s| dev(&s.y_train)).collect();
    let data = StackedData::new(&xs, &ys, member_set.to_vec())?;
    let spec = StackedSpec {
        epochs: proto.epochs,
        batch_size: proto.batch_size,
        lr: proto.lr,
        beta1: proto.beta1,
        beta2: proto.beta2,
        eps: 1e-8,
        weight_decay: decays.to_vec(),
        shuffle_seeds: members
            .iter()
            .map(|m| splitmix64(m.seed ^ 0x5_4FF1E))
            .collect(),
        log_every,
    };
    let mut sink = ctx
        .display
        .sink(&format!("{label} ({} nets)", members.len()));
    let report = if proto.fused {
        mcd_trainer::fused::train_fused(&stack, &data, &spec, sink.as_mut())
    } else {
        train_stacked(&stack, &data, &spec, sink.as_mut())
    }
    .with_context(|| format!("training {label}"))?;
    Ok((stack, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight decay of a grid point is the authors' formula (and tau comes back from it).
    #[test]
    fn weight_decay_of_a_grid_point() {
        use mcd_evaluation::regression::tau_from_weight_decay;
        let proto = Protocol {
            spec: MlpSpec {
                input_dim: 13,
                hidden: vec![50],
                output_dim: 1,
                activation: mcd_models::mlp::Activation::Relu,
                dropout: 0.0,
                input_dropout: 0.0,
                init: mcd_models::mlp::InitScheme::GlorotUniform,
                first_layer: None,
            },
            epochs: 1,
            batch_size: 128,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            length_scale: 1e-2,
            dropout_rates: vec![0.005, 0.05],
            tau_values: vec![0.1, 0.2],
            validation_samples: 10,
            test_samples: 10,
            budget_bytes: 1 << 20,
            fused: false,
            seed: 1,
        };
        // Boston, p = 0.05, tau = 0.1, N = 455: 1e-4 * 0.95 / (2 * 455 * 0.1).
        let wd = proto.weight_decay(0.05, 0.1, 455).unwrap();
        assert!((wd - 1e-4 * 0.95 / 91.0).abs() < 1e-18, "{wd}");
        let tau = tau_from_weight_decay(1e-2, 0.05, 455, wd, DecayConvention::Paper).unwrap();
        assert!((tau - 0.1).abs() < 1e-12);
        assert_eq!(
            proto.grid(),
            [(0.005, 0.1), (0.005, 0.2), (0.05, 0.1), (0.05, 0.2)]
        );
        assert!(proto.weight_decay(0.05, 0.0, 455).is_err());
        // Seeds differ between splits, phases and grid points.
        let boston = SetName::Uci(UciName::BostonHousing);
        let s = |k, ph, g| proto.member_seed(&boston, k, ph, g);
        assert!(s(0, 0, 0) != s(1, 0, 0) && s(0, 0, 0) != s(0, 1, 0) && s(0, 0, 0) != s(0, 0, 1));
    }
}
