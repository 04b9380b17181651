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
    coverage, rmse, weight_decay_from_tau, ChunkSummary, DecayConvention, McStream,
};
use mcd_models::mc::to_vec_f32;
use mcd_models::mlp::MlpSpec;
use mcd_models::rng::splitmix64;
use mcd_models::stacked::{Member, StackedMlp};
use mcd_report::{errorbar_figure, Column, Table};
use mcd_trainer::stacked::{train_stacked, StackedData, StackedSpec};
use mcd_trainer::TrainReport;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

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

mod methods;

const PUBLISHED: &str = include_str!("../../data/uci_published.csv");
const PUBLISHED_ENSEMBLES: &str = include_str!("../../data/uci_published_ensembles.csv");

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

/// MC evaluation of every member on its set's test part: a stream of T passes (original units,
/// the member's tau) and the standard-dropout predictions (original units).
fn evaluate(
    stack: &StackedMlp,
    sets: &[&UciSplit],
    member_set: &[usize],
    taus: &[f64],
    passes: usize,
    proto: &Protocol,
    device: Device,
) -> Result<Vec<(McStream, Vec<f64>)>> {
    let m = member_set.len() as i64;
    // Each member's passes start from its own seed, whatever the stack it is in.
    let seeds: Vec<u64> = stack
        .members()
        .iter()
        .map(|mb| splitmix64(mb.seed ^ 0x0E_7A15))
        .collect();
    stack.reseed_masks(&seeds);
    let x = Tensor::stack(
        &member_set
            .iter()
            .map(|&s| sets[s].x_test.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device);
    let n = x.size()[1];
    let per_member = |f: &dyn Fn(&UciSplit) -> f64| {
        Tensor::from_slice(&member_set.iter().map(|&s| f(sets[s])).collect::<Vec<f64>>())
            .to_device(device)
            .view([m, 1, 1, 1])
    };
    let (y_std, y_mean) = (per_member(&|s| s.y_std), per_member(&|s| s.y_mean));
    let tau = Tensor::from_slice(taus)
        .to_device(device)
        .view([m, 1, 1, 1]);
    let targets: Vec<Vec<f64>> = member_set
        .iter()
        .map(|&s| {
            let y = to_vec_f32(&sets[s].y_test).context("reading a split's test targets")?;
            Ok(y.iter()
                .map(|&v| f64::from(v) * sets[s].y_std + sets[s].y_mean)
                .collect())
        })
        .collect::<Result<_>>()?;
    let y_t = Tensor::stack(
        &targets
            .iter()
            .map(|y| Tensor::from_slice(y))
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device)
    .view([m, 1, n, 1]);
    let mut streams = targets
        .iter()
        .zip(taus)
        .map(|(y, &t)| McStream::new(y.clone(), t))
        .collect::<Result<Vec<_>, _>>()?;
    if proto.fused {
        let scales: Vec<(f64, f64)> = member_set
            .iter()
            .map(|&s| (sets[s].y_std, sets[s].y_mean))
            .collect();
        return evaluate_fused(stack, &x, streams, &scales, passes);
    }
    let to_vec = |t: Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.to_device(Device::Cpu).contiguous().view([-1]),
        )?)
    };
    stack.mc_chunks(&x, passes, proto.budget_bytes, |row0, out| -> Result<()> {
        merge_chunk(&mut streams, out, row0, &y_t, &y_std, &y_mean, &tau)
    })?;
    let standard = tch::no_grad(|| stack.forward_t(&x, false)).to_kind(Kind::Double)
        * y_std.view([m, 1, 1])
        + y_mean.view([m, 1, 1]);
    let standard = to_vec(standard)?;
    let n = n as usize;
    Ok(streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, standard[i * n..(i + 1) * n].to_vec()))
        .collect())
}

/// [`evaluate`] through `mcd_trainer::fused`: each member's passes reduced on its own thread
/// into its stream, straight from the fused forward's chunks. `scales` are each member's
/// (y_std, y_mean).
fn evaluate_fused(
    stack: &StackedMlp,
    x: &Tensor,
    streams: Vec<McStream>,
    scales: &[(f64, f64)],
    passes: usize,
) -> Result<Vec<(McStream, Vec<f64>)>> {
    use mcd_trainer::fused::mc::{mc_passes, standard, McChunk, McError};
    let n = x.size()[1] as usize;
    let xv = to_vec_f32(&x.to_device(Device::Cpu)).context("reading the test inputs")?;
    let mut states: Vec<(McStream, (f64, f64))> =
        streams.into_iter().zip(scales.iter().copied()).collect();
    let reduce =
        |state: &mut (McStream, (f64, f64)), c: McChunk| -> Result<(), mcd_evaluation::EvalError> {
            let (stream, (sd, mean)) = state;
            let tau = stream.tau();
            let mut means = vec![0f64; c.rows];
            let mut m2 = vec![0f64; c.rows];
            let mut lse = vec![0f64; c.rows];
            let targets = &stream.targets()[c.row0..c.row0 + c.rows];
            let value = |t: usize, i: usize| f64::from(c.values[t * c.rows + i]) * *sd + *mean;
            for i in 0..c.rows {
                let mu = (0..c.passes).map(|t| value(t, i)).sum::<f64>() / c.passes as f64;
                means[i] = mu;
                m2[i] = (0..c.passes).map(|t| (value(t, i) - mu).powi(2)).sum();
                let y = targets[i];
                let top = (0..c.passes)
                    .map(|t| -0.5 * tau * (y - value(t, i)).powi(2))
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..c.passes)
                    .map(|t| (-0.5 * tau * (y - value(t, i)).powi(2) - top).exp())
                    .sum();
                lse[i] = top + sum.ln();
            }
            stream.merge(ChunkSummary {
                passes: c.passes,
                offset: c.row0,
                mean: &means,
                m2: &m2,
                lse: &lse,
            })
        };
    mc_passes(stack, &xv, n, passes, &mut states, &reduce).map_err(|e| match e {
        McError::Caller(e) => anyhow::Error::from(e),
        McError::Train(e) => anyhow::Error::from(e),
    })?;
    let plain = standard(stack, &xv, n)?;
    Ok(states
        .into_iter()
        .enumerate()
        .map(|(i, (stream, (sd, mean)))| {
            let standard = plain[i * n..(i + 1) * n]
                .iter()
                .map(|&v| f64::from(v) * sd + mean)
                .collect();
            (stream, standard)
        })
        .collect())
}

/// Merges a chunk of passes, `out` `[M, passes, rows, 1]` in standardised units over rows
/// `row0..row0 + rows`, into each member's stream (original units: `y_std`, `y_mean` and
/// `tau` `[M, 1, 1, 1]`; targets `y_t` `[M, 1, n, 1]`).
fn merge_chunk(
    streams: &mut [McStream],
    out: &Tensor,
    row0: usize,
    y_t: &Tensor,
    y_std: &Tensor,
    y_mean: &Tensor,
    tau: &Tensor,
) -> Result<()> {
    let to_vec = |t: Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.to_device(Device::Cpu).contiguous().view([-1]),
        )?)
    };
    let o = out.to_kind(Kind::Double) * y_std + y_mean; // [M, passes, rows, 1]
    let (tc, rows) = (o.size()[1] as usize, o.size()[2] as usize);
    let y = y_t.narrow(2, row0 as i64, rows as i64);
    let mean = o.mean_dim(1, true, Kind::Double);
    let m2 = (&o - &mean)
        .square()
        .sum_dim_intlist(1, false, Kind::Double);
    let lse = ((&y - &o).square() * (tau * -0.5)).logsumexp(1, false);
    let (mean, m2, lse) = (to_vec(mean)?, to_vec(m2)?, to_vec(lse)?);
    for (i, s) in streams.iter_mut().enumerate() {
        let r = i * rows..(i + 1) * rows;
        s.merge(ChunkSummary {
            passes: tc,
            offset: row0,
            mean: &mean[r.clone()],
            m2: &m2[r.clone()],
            lse: &lse[r],
        })?;
    }
    Ok(())
}

/// Mean and standard error (sample sd / sqrt(n); NaN for one value).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// One data set's row of the table.
#[derive(Debug, Clone)]
struct Summary {
    name: SetName,
    splits: usize,
    rmse: (f64, f64),
    ll: (f64, f64),
    standard_rmse: (f64, f64),
    coverage_95: f64,
    /// Most often chosen (p, tau) and how often.
    mode: String,
    seconds_per_split: f64,
    note: String,
    /// The method's label, and this run's wall time on the data set (seconds; splits read from
    /// the resume cache cost nearly nothing).
    method: String,
    run_seconds: f64,
}

impl Summary {
    fn of(name: SetName, r: &[SplitResult]) -> Self {
        let col = |f: fn(&SplitResult) -> f64| mean_se(&r.iter().map(f).collect::<Vec<_>>());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in r {
            *counts
                .entry(format!("p {} tau {}", s.p, s.tau))
                .or_default() += 1;
        }
        let mode = counts
            .iter()
            .max_by_key(|(_, &c)| c)
            .map(|(k, c)| format!("{k} ({c}/{})", r.len()))
            .unwrap_or_default();
        Self {
            name,
            splits: r.len(),
            rmse: col(|s| s.test_rmse),
            ll: col(|s| s.test_ll),
            standard_rmse: col(|s| s.standard_rmse),
            coverage_95: col(|s| s.coverage_95).0,
            mode,
            seconds_per_split: col(|s| s.seconds).0,
            note: String::new(),
            method: String::new(),
            run_seconds: f64::NAN,
        }
    }

    fn skipped(name: SetName, why: &str) -> Self {
        Self {
            name,
            splits: 0,
            rmse: (f64::NAN, f64::NAN),
            ll: (f64::NAN, f64::NAN),
            standard_rmse: (f64::NAN, f64::NAN),
            coverage_95: f64::NAN,
            mode: String::new(),
            seconds_per_split: f64::NAN,
            note: format!("skipped: {why}"),
            method: String::new(),
            run_seconds: f64::NAN,
        }
    }
}

/// Published numbers of one data set (NaN where not published).
#[derive(Debug, Clone, Copy)]
struct Published {
    rmse_2018: (f64, f64),
    ll_2018: (f64, f64),
    rmse_2016: f64,
    ll_2016: f64,
}

fn published() -> Result<BTreeMap<String, Published>> {
    let mut out = BTreeMap::new();
    let mut lines = PUBLISHED
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    lines.next(); // header
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |j: usize| -> Result<f64> {
            let s = f.get(j).copied().unwrap_or("").trim();
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse().with_context(|| {
                format!(
                    "experiments/data/uci_published.csv line {}: field {} `{s}` is not a number",
                    i + 1,
                    j + 1
                )
            })
        };
        out.insert(
            f[0].to_string(),
            Published {
                rmse_2018: (num(1)?, num(2)?),
                ll_2018: (num(3)?, num(4)?),
                rmse_2016: num(5)?,
                ll_2016: num(6)?,
            },
        );
    }
    Ok(out)
}

/// Whether `ours` lies within one of our standard errors of the published mean (rounded to two
/// decimals, so half a unit of the last digit is allowed too).
fn within_one_se(ours: (f64, f64), published: f64) -> &'static str {
    if !(ours.0.is_finite() && published.is_finite()) {
        return "";
    }
    let slack = if ours.1.is_finite() { ours.1 } else { 0.0 } + 0.005;
    if (ours.0 - published).abs() <= slack {
        "yes"
    } else {
        "no"
    }
}

fn write_tables(out: &OutputDir, prefix: &str, rows: &[Summary], method: &str) -> Result<()> {
    let pubs = published()?;
    let nan = Published {
        rmse_2018: (f64::NAN, f64::NAN),
        ll_2018: (f64::NAN, f64::NAN),
        rmse_2016: f64::NAN,
        ll_2016: f64::NAN,
    };
    let p: Vec<Published> = rows
        .iter()
        .map(|r| {
            // Only the vendored sets have published numbers (an own table may share a name).
            r.name
                .uci()
                .and_then(|n| pubs.get(n.dir_name()).copied())
                .unwrap_or(nan)
        })
        .collect();
    let f = |g: &dyn Fn(usize) -> f64| (0..rows.len()).map(g).collect::<Vec<f64>>();
    let table = Table::from_columns(
        "UCI test RMSE and log-likelihood (mean and standard error over splits) next to the published MC dropout numbers",
        vec![
            Column::str("dataset", rows.iter().map(|r| r.name.dir_name()).collect()),
            Column::i64("splits", rows.iter().map(|r| r.splits as i64).collect()),
            Column::f64("rmse", f(&|i| rows[i].rmse.0)),
            Column::f64("rmse_se", f(&|i| rows[i].rmse.1)),
            Column::f64("rmse_2018", f(&|i| p[i].rmse_2018.0)),
            Column::f64("rmse_2018_se", f(&|i| p[i].rmse_2018.1)),
            Column::f64("rmse_2016", f(&|i| p[i].rmse_2016)),
            Column::f64("ll", f(&|i| rows[i].ll.0)),
            Column::f64("ll_se", f(&|i| rows[i].ll.1)),
            Column::f64("ll_2018", f(&|i| p[i].ll_2018.0)),
            Column::f64("ll_2018_se", f(&|i| p[i].ll_2018.1)),
            Column::f64("ll_2016", f(&|i| p[i].ll_2016)),
            Column::str("rmse_within_1se_of_2018", rows.iter().zip(&p).map(|(r, p)| within_one_se(r.rmse, p.rmse_2018.0)).collect()),
            Column::str("ll_within_1se_of_2018", rows.iter().zip(&p).map(|(r, p)| within_one_se(r.ll, p.ll_2018.0)).collect()),
            Column::f64("standard_dropout_rmse", f(&|i| rows[i].standard_rmse.0)),
            Column::f64("standard_dropout_rmse_se", f(&|i| rows[i].standard_rmse.1)),
            Column::f64("coverage_95", f(&|i| rows[i].coverage_95)),
            Column::str("most_chosen", rows.iter().map(|r| r.mode.clone()).collect()),
            Column::f64("seconds_per_split", f(&|i| rows[i].seconds_per_split)),
            Column::str("note", rows.iter().map(|r| r.note.clone()).collect()),
        ],
    )?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, &format!("{prefix}table1"))?;
    out.log(&format!("\n{}", table.to_markdown()));

    // Figures: only data sets with results.
    let have: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].splits > 0).collect();
    if have.is_empty() {
        return Ok(());
    }
    let figures = out.subdir("figures")?;
    // One error-bar series: name, mean and error of data set i.
    type Series<'a> = (&'a str, &'a dyn Fn(usize) -> f64, &'a dyn Fn(usize) -> f64);
    let nan = |_: usize| f64::NAN;
    let draw = |title: &str,
                y_label: &str,
                sets: &[usize],
                series: &[Series],
                scale: &dyn Fn(usize) -> f64,
                stem: &str| {
        let labels: Vec<String> = sets
            .iter()
            .map(|&i| rows[i].name.dir_name().to_string())
            .collect();
        let groups: Vec<_> = series
            .iter()
            .map(|(name, mean, err)| {
                let pick = |f: &dyn Fn(usize) -> f64| {
                    sets.iter().map(|&i| f(i) / scale(i)).collect::<Vec<f64>>()
                };
                (name.to_string(), pick(mean), pick(err))
            })
            .collect();
        errorbar_figure(
            title,
            y_label,
            &labels,
            &groups,
            &figures.join(format!("{prefix}{stem}")),
        )
    };
    draw(
        "UCI test log-likelihood (mean +- 1 standard error over splits)",
        "test log-likelihood (nats)",
        &have,
        &[
            ("this run", &|i| rows[i].ll.0, &|i| rows[i].ll.1),
            ("Gal 2018", &|i| p[i].ll_2018.0, &|i| p[i].ll_2018.1),
            ("paper 2016", &|i| p[i].ll_2016, &nan),
        ],
        &|_| 1.0,
        "ll",
    )?;
    // RMSE scales differ by three orders of magnitude between data sets: drawn relative to
    // Gal's 2018 value (data sets whose published RMSE rounds to 0 are left out).
    let rel: Vec<usize> = have
        .iter()
        .copied()
        .filter(|&i| p[i].rmse_2018.0 > 0.0)
        .collect();
    if !rel.is_empty() {
        draw(
            "UCI test RMSE relative to Gal 2018 (1 = published; +- 1 standard error)",
            "RMSE / published 2018 RMSE",
            &rel,
            &[
                (&format!("{method}, this run"), &|i| rows[i].rmse.0, &|i| {
                    rows[i].rmse.1
                }),
                (
                    if method == "deep ensemble" {
                        "its first member alone, this run"
                    } else {
                        "standard dropout, this run"
                    },
                    &|i| rows[i].standard_rmse.0,
                    &|i| rows[i].standard_rmse.1,
                ),
                ("Gal 2018", &|i| p[i].rmse_2018.0, &|i| p[i].rmse_2018.1),
                ("paper 2016", &|i| p[i].rmse_2016, &nan),
            ],
            &|i| p[i].rmse_2018.0,
            "rmse_relative",
        )?;
    }
    Ok(())
}

/// Deep ensembles' published (RMSE, its +-, LL, its +-) per data set (LL = -NLL as printed).
fn published_ensembles() -> Result<BTreeMap<String, [f64; 4]>> {
    let mut out = BTreeMap::new();
    let mut lines = PUBLISHED_ENSEMBLES
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    lines.next(); // header
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |j: usize| -> Result<f64> {
            let s = f.get(j).copied().unwrap_or("").trim();
            s.parse().with_context(|| {
                format!(
                    "experiments/data/uci_published_ensembles.csv line {}: field {} `{s}` is not \
                     a number",
                    i + 1,
                    j + 1
                )
            })
        };
        out.insert(f[0].to_string(), [num(1)?, num(2)?, -num(3)?, num(4)?]);
    }
    Ok(out)
}

/// The published numbers for a method's row: (source, RMSE, its +-, LL, its +-).
fn published_for(method: &str, dataset: &str) -> Result<(String, [f64; 4])> {
    let nan = [f64::NAN; 4];
    Ok(match method {
        "MC dropout" => match published()?.get(dataset) {
            Some(p) => (
                "Gal 2018 (mean +- SE)".into(),
                [p.rmse_2018.0, p.rmse_2018.1, p.ll_2018.0, p.ll_2018.1],
            ),
            None => (String::new(), nan),
        },
        "deep ensemble" => match published_ensembles()?.get(dataset) {
            Some(p) => (
                "Lakshminarayanan et al. 2017 Table 1 (+- as printed)".into(),
                *p,
            ),
            None => (String::new(), nan),
        },
        _ => ("none found".into(), nan),
    })
}

/// The comparison of methods: one row per data set and method (runs in config order), with
/// the published numbers of the method and the wall time.
fn write_methods_table(out: &OutputDir, runs: &[(String, Vec<Summary>)]) -> Result<()> {
    let rows: Vec<(&str, &Summary)> = runs
        .iter()
        .flat_map(|(name, s)| s.iter().map(move |r| (name.as_str(), r)))
        .filter(|(_, r)| r.splits > 0)
        .collect();
    let mut order: Vec<&str> = Vec::new();
    for (_, r) in &rows {
        if !order.contains(&r.name.dir_name()) {
            order.push(r.name.dir_name());
        }
    }
    let mut sorted = rows.clone();
    sorted.sort_by_key(|(_, r)| order.iter().position(|d| *d == r.name.dir_name()));
    let rows = sorted;
    let pubs: Vec<(String, [f64; 4])> = rows
        .iter()
        .map(|(_, r)| {
            let own = r.name.uci().is_some();
            if own {
                published_for(&r.method, r.name.dir_name())
            } else {
                Ok((String::new(), [f64::NAN; 4]))
            }
        })
        .collect::<Result<_>>()?;
    // A method's wall time in this run, summed over its data sets.
    let run_total = |run: &str| -> f64 {
        runs.iter()
            .filter(|(n, _)| n == run)
            .flat_map(|(_, s)| s.iter())
            .filter(|r| r.run_seconds.is_finite())
            .map(|r| r.run_seconds)
            .sum()
    };
    let f = |g: &dyn Fn(usize) -> f64| (0..rows.len()).map(g).collect::<Vec<f64>>();
    let table = Table::from_columns(
        "UCI: test RMSE and log-likelihood per data set and method (mean and standard error over \
         splits) next to the method's published numbers; wall times in seconds",
        vec![
            Column::str(
                "dataset",
                rows.iter().map(|(_, r)| r.name.dir_name()).collect(),
            ),
            Column::str(
                "method",
                rows.iter().map(|(_, r)| r.method.clone()).collect(),
            ),
            Column::str("run", rows.iter().map(|(n, _)| n.to_string()).collect()),
            Column::i64(
                "splits",
                rows.iter().map(|(_, r)| r.splits as i64).collect(),
            ),
            Column::f64("rmse", f(&|i| rows[i].1.rmse.0)),
            Column::f64("rmse_se", f(&|i| rows[i].1.rmse.1)),
            Column::f64("ll", f(&|i| rows[i].1.ll.0)),
            Column::f64("ll_se", f(&|i| rows[i].1.ll.1)),
            Column::str("published", pubs.iter().map(|p| p.0.clone()).collect()),
            Column::f64("published_rmse", f(&|i| pubs[i].1[0])),
            Column::f64("published_rmse_pm", f(&|i| pubs[i].1[1])),
            Column::f64("published_ll", f(&|i| pubs[i].1[2])),
            Column::f64("published_ll_pm", f(&|i| pubs[i].1[3])),
            Column::f64("coverage_95", f(&|i| rows[i].1.coverage_95)),
            Column::str("chosen", rows.iter().map(|(_, r)| r.mode.clone()).collect()),
            Column::f64("train_s_per_split", f(&|i| rows[i].1.seconds_per_split)),
            Column::f64("run_s", f(&|i| rows[i].1.run_seconds)),
            Column::f64("method_run_s", f(&|i| run_total(rows[i].0))),
        ],
    )?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, "methods")?;
    out.log(&format!("\n{}", table.to_markdown()));
    // Log-likelihood per data set: one series per run, and the published ones.
    let sets: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let mut groups = Vec::new();
    for (name, summaries) in runs {
        let method = summaries
            .iter()
            .find(|r| !r.method.is_empty())
            .map_or(name.as_str(), |r| r.method.as_str());
        let pick = |d: &str| {
            summaries
                .iter()
                .find(|r| r.name.dir_name() == d && r.splits > 0)
        };
        groups.push((
            format!("{method}, this run"),
            order
                .iter()
                .map(|d| pick(d).map_or(f64::NAN, |r| r.ll.0))
                .collect(),
            order
                .iter()
                .map(|d| pick(d).map_or(f64::NAN, |r| r.ll.1))
                .collect(),
        ));
    }
    for (method, label) in [
        ("MC dropout", "Gal 2018"),
        ("deep ensemble", "Lakshminarayanan 2017 (+- as printed)"),
    ] {
        if !rows.iter().any(|(_, r)| r.method == method) {
            continue;
        }
        let p: Vec<[f64; 4]> = order
            .iter()
            .map(|d| published_for(method, d).map(|p| p.1))
            .collect::<Result<_>>()?;
        groups.push((
            label.to_string(),
            p.iter().map(|p| p[2]).collect(),
            p.iter().map(|p| p[3]).collect(),
        ));
    }
    let figures = out.subdir("figures")?;
    errorbar_figure(
        "UCI test log-likelihood per method (mean +- 1 standard error over splits)",
        "test log-likelihood (nats)",
        &sets,
        &groups,
        &figures.join("methods_ll"),
    )?;
    Ok(())
}

/// Per-example test predictions of every split (the uncertainties, saved to disk).
fn write_predictions(
    out: &OutputDir,
    prefix: &str,
    name: &SetName,
    r: &[SplitResult],
) -> Result<()> {
    if r.is_empty() {
        return Ok(());
    }
    let cat = |f: &dyn Fn(&SplitResult) -> Vec<f64>| r.iter().flat_map(f).collect::<Vec<f64>>();
    let table = Table::from_columns(
        format!("{name}: per-example MC-dropout test predictions (original units)"),
        vec![
            Column::i64(
                "split",
                r.iter()
                    .flat_map(|s| s.rows.iter().map(|_| s.split as i64))
                    .collect(),
            ),
            Column::i64(
                "row",
                r.iter()
                    .flat_map(|s| s.rows.iter().map(|&k| k as i64))
                    .collect(),
            ),
            Column::f64("y", cat(&|s| s.y.clone())),
            Column::f64("mean", cat(&|s| s.mean.clone())),
            Column::f64("sd", cat(&|s| s.sd.clone())),
        ],
    )?;
    let dir = out.subdir("predictions")?;
    table.write_parquet(dir.join(format!("{prefix}{}.parquet", name.dir_name())))?;
    Ok(())
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

    #[test]
    fn standard_error_and_one_se_rule() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // sample sd sqrt(5/3), over sqrt(4)
        assert!((se - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(within_one_se((2.95, 0.1), 2.90), "yes");
        assert_eq!(within_one_se((3.2, 0.1), 2.90), "no");
        assert_eq!(within_one_se((f64::NAN, 0.1), 2.90), "");
    }

    #[test]
    fn published_numbers_parse_and_cover_every_data_set() {
        let p = published().unwrap();
        for name in UciName::ALL {
            assert!(p.contains_key(name.dir_name()), "{name}");
        }
        let b = p["bostonHousing"];
        assert_eq!((b.rmse_2018, b.ll_2018), ((2.90, 0.18), (-2.40, 0.04)));
        assert_eq!(p["yacht"].rmse_2016, 1.11);
    }
}
