//! Active learning on MNIST (Gal, Islam & Ghahramani 2017, "Deep Bayesian Active Learning with
//! Image Data"): BALD, max entropy, variation ratios and mean STD against random acquisition.
//!
//! Per run, acquisition function and repeat: a balanced initial training set and a validation
//! set are drawn from the 60,000 MNIST training images (the same for every function of a
//! repeat); the rest is the pool. Each round trains the CNN (`mcd_models::cnn`) from scratch on
//! the current training set, measures its test error (standard dropout: one deterministic pass,
//! as the authors' `model.evaluate`), scores a random subset of the pool with T MC passes (the
//! convolutions once per image, the dense head T times) and moves the `acquire` best images to
//! the training set. Every finished round is saved at once in the resume cache
//! (`<cache>/active_learning/<key>.json`, temporary name then rename), so a killed run continues
//! from its last finished round, with the same acquisitions.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use mcd_datasets::{mnist, DataRoot, Split};
use mcd_evaluation::classification as cls;
use mcd_evaluation::ProbSamples;
use mcd_models::cnn::{Cnn, CnnSpec};
use mcd_models::mc::{repeated_passes, standard_predict, to_vec_f32};
use mcd_models::rng::{splitmix64, SeededRng};
use mcd_models::StochasticModel;
use mcd_report::{spread_figure, Column, SpreadSeries, Table, Values};
use mcd_trainer::{Objective, TrainError};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::parallel_runs;
use crate::cache::{write_atomically, DataFingerprint, Key, SCHEMA};
use crate::config::active_learning::{Acquisition, ActiveLearningConfig, CLASSES, MNIST_TRAIN};
use crate::config::raw::{RawArch, RawRun};
use crate::config::{
    Checker, ConfigError, DataSource, Experiment, Regularisation, RegularisationRule, Rules,
    RunConfig, StudyConfig, StudyKind, TrainLength, TrainSettings,
};
use crate::output::OutputDir;
use crate::{Context, Mode};

/// Images per deterministic forward (test evaluation, the scored subset's convolutions).
const IMAGES_PER_CALL: usize = 1000;

/// The paper's Table 1 (images acquired to reach 10 % and 5 % test error) and Table 2 (test
/// error after 1,000 acquired images, %) per function; NaN where the paper gives none.
fn paper(f: Acquisition) -> (f64, f64, f64) {
    match f {
        Acquisition::Bald => (145.0, 335.0, 1.80),
        Acquisition::VariationRatios => (120.0, 295.0, 1.64),
        Acquisition::MaxEntropy => (165.0, 355.0, 1.74),
        Acquisition::Random => (255.0, 835.0, 4.66),
        Acquisition::MeanStd => (f64::NAN, f64::NAN, f64::NAN),
    }
}

/// The active_learning study (registered in [`super::study`]).
pub struct ActiveLearning;

impl super::Study for ActiveLearning {
    fn rules(&self) -> Rules {
        Rules {
            arch: RawArch::Cnn,
            default_hidden: false,
            searched_dropout: None,
            fixed_input_dropout: None,
            regularisation: RegularisationRule::Classification,
            uses: crate::methods::Use::Classification,
            generated_data: false,
        }
    }

    fn check(
        &self,
        c: &Checker,
        raw: &RawRun,
        data: &DataSource,
        _: &TrainSettings,
        _: &Regularisation,
    ) -> Result<StudyConfig, ConfigError> {
        crate::config::active_learning::check(c, raw, data)
    }

    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
        run(exp, ctx, out)
    }
}

/// MNIST as plain vectors (tensors are not `Sync`; each worker builds the few it needs).
struct Images {
    /// [N, 28 * 28], row-major.
    pixels: Vec<f32>,
    labels: Vec<i64>,
}

const PIXELS: usize = 28 * 28;

impl Images {
    fn of(set: &mcd_datasets::ImageSet, limit: usize) -> Result<Self> {
        let n = set.len().min(limit) as i64;
        Ok(Self {
            pixels: to_vec_f32(&set.images.narrow(0, 0, n)).context("reading MNIST images")?,
            labels: Vec::<i64>::try_from(&set.labels.narrow(0, 0, n))
                .context("reading MNIST labels")?,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Images [k, 1, 28, 28] and labels [k] of rows `idx`.
    fn rows(&self, idx: &[usize], device: tch::Device) -> (Tensor, Tensor) {
        let mut px = Vec::with_capacity(idx.len() * PIXELS);
        for &i in idx {
            px.extend_from_slice(&self.pixels[i * PIXELS..(i + 1) * PIXELS]);
        }
        let labels: Vec<i64> = idx.iter().map(|&i| self.labels[i]).collect();
        (
            Tensor::from_slice(&px)
                .view([idx.len() as i64, 1, 28, 28])
                .to_device(device),
            Tensor::from_slice(&labels).to_device(device),
        )
    }
}

/// The data of one run: training and test images and the training files' fingerprint.
struct Data {
    train: Images,
    test: Images,
    fingerprint: DataFingerprint,
}

fn load(cfg: &ActiveLearningConfig) -> Result<Data> {
    let root = DataRoot::open(&cfg.dir)?;
    let train = mnist::load(&root, Split::Train)?;
    let test = mnist::load(&root, Split::Test)?;
    if train.len() != MNIST_TRAIN {
        bail!(
            "the MNIST training set has {} images, expected {MNIST_TRAIN}",
            train.len()
        );
    }
    let files = [mnist::files(Split::Train), mnist::files(Split::Test)];
    let sha256 = files
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .map(|rel| {
            root.sha256(&rel)
                .map(str::to_string)
                .with_context(|| format!("{rel} is not in the data folder's manifest"))
        })
        .collect::<Result<_>>()?;
    Ok(Data {
        train: Images::of(&train, usize::MAX)?,
        test: Images::of(&test, cfg.test_images)?,
        fingerprint: DataFingerprint::Files {
            sha256,
            rows: MNIST_TRAIN,
        },
    })
}

/// One round: trained on `train_size` images, its test error, then (except after the last)
/// the images it acquired.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Round {
    pub round: usize,
    pub train_size: usize,
    /// Fraction of the test images misclassified (standard dropout).
    pub test_error: f64,
    /// Same on the validation set; `None` without one.
    pub validation_error: Option<f64>,
    /// The objective on the last training batch.
    pub final_loss: f64,
    pub train_seconds: f64,
    pub score_seconds: f64,
    pub test_seconds: f64,
    /// Indices into the 60,000 MNIST training images, best first.
    pub acquired: Vec<usize>,
    /// Their scores (empty for random acquisition).
    pub scores: Vec<f64>,
}

/// What the resume cache holds for one (run, function, repeat): the sets drawn and every
/// finished round.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub key: String,
    pub initial: Vec<usize>,
    pub validation: Vec<usize>,
    pub rounds: Vec<Round>,
}

/// Everything besides the model spec and the data that determines a sequence of rounds (the
/// number of rounds is not in it: a longer run continues a shorter one's rounds).
#[derive(Debug, Serialize)]
struct Protocol<'a> {
    function: Acquisition,
    repeat: usize,
    epochs: usize,
    batch_size: Option<usize>,
    lr: f64,
    optimizer: mcd_trainer::Optimizer,
    schedule: mcd_trainer::LrSchedule,
    weight_decay: f64,
    dense_l2: f64,
    samples: usize,
    acquire: usize,
    initial: usize,
    validation: usize,
    pool_subset: usize,
    test_images: usize,
    /// What the test error means.
    test_prediction: &'a str,
}

/// Cross-entropy plus the authors' Keras `l2(c / N)` on the hidden dense layer's weights:
/// `CE + (c / N) ||W||^2`.
struct DenseL2 {
    weight: Tensor,
    coefficient: f64,
}

impl Objective for DenseL2 {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        mcd_trainer::CrossEntropy.check_shapes(x, y)
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let ce = out.cross_entropy_for_logits(y);
        if self.coefficient > 0.0 {
            ce + self.weight.square().sum(Kind::Float) * self.coefficient
        } else {
            ce
        }
    }
}

fn mix(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x0AC7_1BE5_u64, |h, &p| splitmix64(h ^ splitmix64(p)))
}

/// The initial training set (balanced: `initial / 10` per class) and the validation set of a
/// repeat, drawn from a permutation of the training images seeded by (seed, repeat).
pub fn draw_sets(
    labels: &[i64],
    initial: usize,
    validation: usize,
    seed: u64,
    repeat: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    SeededRng::new(mix(&[seed, repeat as u64, 1])).shuffle(&mut order);
    let val: Vec<usize> = order[..validation].to_vec();
    let per_class = initial / CLASSES;
    let mut count = [0usize; CLASSES];
    let mut init = Vec::with_capacity(initial);
    for &i in &order[validation..] {
        let c = labels[i] as usize;
        if count[c] < per_class {
            count[c] += 1;
            init.push(i);
            if init.len() == initial {
                break;
            }
        }
    }
    (init, val)
}

/// The pool after `acquired`: every training image in neither set, ascending.
pub fn pool_of(n: usize, sets: &[&[usize]]) -> Vec<usize> {
    let mut taken = vec![false; n];
    for set in sets {
        for &i in *set {
            taken[i] = true;
        }
    }
    (0..n).filter(|&i| !taken[i]).collect()
}

/// `k` pool images drawn without replacement (partial Fisher-Yates), in drawing order.
fn subset(pool: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut p = pool.to_vec();
    let mut rng = SeededRng::new(seed);
    for i in 0..k.min(p.len()) {
        let j = i + rng.below(p.len() - i);
        p.swap(i, j);
    }
    p.truncate(k);
    p
}

/// The positions of the `k` highest scores, best first; ties go to the earlier position.
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Misclassified fraction of `images` under standard dropout.
fn error_rate(net: &Cnn, images: &Images, device: tch::Device) -> Result<f64> {
    let n = images.len();
    let mut wrong = 0i64;
    for start in (0..n).step_by(IMAGES_PER_CALL) {
        let idx: Vec<usize> = (start..(start + IMAGES_PER_CALL).min(n)).collect();
        let (x, y) = images.rows(&idx, device);
        let pred = standard_predict(net, &x).argmax(1, false);
        wrong +=
            i64::try_from(pred.ne_tensor(&y).sum(Kind::Int64)).context("counting test errors")?;
    }
    Ok(wrong as f64 / n.max(1) as f64)
}

/// Softmax outputs [T, S, 10] of T passes over the images `idx`: the convolutions once per
/// image, then the dense head T times over the whole subset per forward.
fn mc_probs(
    net: &Cnn,
    images: &Images,
    idx: &[usize],
    samples: usize,
    seed: u64,
    device: tch::Device,
) -> Result<Vec<f32>> {
    let probs = tch::no_grad(|| {
        let parts: Vec<Tensor> = idx
            .chunks(IMAGES_PER_CALL)
            .map(|chunk| net.deterministic_prefix(&images.rows(chunk, device).0))
            .collect();
        let prefix = Tensor::cat(&parts, 0);
        net.reseed(seed);
        let s = idx.len() as i64;
        let c = net.output_dim() as i64;
        let out = Tensor::empty([samples as i64, s, c], (Kind::Float, device));
        repeated_passes(net, &prefix, samples, 1, &mut |done, k, y| {
            let mut slot = out.narrow(0, done as i64, k as i64);
            slot.copy_(&y.view([k as i64, s, c]));
        });
        out.softmax(-1, Kind::Float)
    });
    to_vec_f32(&probs).context("reading the MC passes")
}

/// One (run, function, repeat) of the study.
struct Unit<'a> {
    run: &'a RunConfig,
    cfg: &'a ActiveLearningConfig,
    data: &'a Data,
    function: Acquisition,
    repeat: usize,
}

impl Unit<'_> {
    fn label(&self) -> String {
        format!(
            "{}/{}/r{}",
            self.run.name,
            self.function.name(),
            self.repeat
        )
    }
}

/// The resume file of a unit and its key.
fn resume_path(u: &Unit, ctx: &Context) -> Result<(PathBuf, String)> {
    let cfg = u.cfg;
    let t = &u.run.trainer;
    let spec = CnnSpec::mnist(cfg.conv_dropout, u.run.model.dropout);
    let (weight_decay, _) = u.run.regularisation.resolve(1, u.run.model.dropout)?;
    let protocol = Protocol {
        function: u.function,
        repeat: u.repeat,
        epochs: cfg.epochs,
        batch_size: t.batch_size,
        lr: t.lr,
        optimizer: t.optimizer,
        schedule: t.schedule,
        weight_decay,
        dense_l2: cfg.dense_l2,
        samples: cfg.samples,
        acquire: cfg.acquire,
        initial: cfg.initial,
        validation: cfg.validation,
        pool_subset: cfg.pool_subset,
        test_images: cfg.test_images,
        test_prediction: "standard dropout",
    };
    let key = Key {
        schema: SCHEMA,
        study: StudyKind::ActiveLearning,
        model: &spec,
        train: &protocol,
        seed: u.run.seed,
        data: &u.data.fingerprint,
        method: "mc_dropout",
        dropout_warmup: 0,
    }
    .hash()?;
    Ok((
        ctx.cache_dir
            .join("active_learning")
            .join(format!("{key}.json")),
        key,
    ))
}

/// Runs (or resumes) every round of one unit; the rounds in order.
fn run_unit(u: &Unit, ctx: &Context, out: &OutputDir) -> Result<Progress> {
    let cfg = u.cfg;
    let label = u.label();
    let (path, key) = resume_path(u, ctx)?;
    let (initial, validation) = draw_sets(
        &u.data.train.labels,
        cfg.initial,
        cfg.validation,
        u.run.seed,
        u.repeat,
    );
    if initial.len() < cfg.initial {
        bail!(
            "[{label}] the training images left beside the {} validation images cannot give a \
             balanced initial set of {}",
            cfg.validation,
            cfg.initial
        );
    }
    let mut progress = Progress {
        key: key.clone(),
        initial,
        validation,
        rounds: Vec::new(),
    };
    // `--retrain` recomputes every round (and overwrites the resume file as it goes).
    let saved = std::fs::read_to_string(&path).ok().filter(|_| !ctx.retrain);
    if let Some(text) = saved {
        match serde_json::from_str::<Progress>(&text) {
            Ok(p)
                if p.key == key
                    && p.initial == progress.initial
                    && p.validation == progress.validation =>
            {
                let mut rounds = p.rounds;
                rounds.truncate(cfg.rounds + 1);
                // A round that acquired nothing (the last of a shorter run) is redone.
                while rounds
                    .last()
                    .is_some_and(|r| r.round < cfg.rounds && r.acquired.is_empty())
                {
                    rounds.pop();
                }
                if !rounds.is_empty() {
                    out.log(&format!(
                        "[{label}] resuming after round {} ({})",
                        rounds.len() - 1,
                        path.display()
                    ));
                }
                progress.rounds = rounds;
            }
            _ => out.log(&format!(
                "[{label}] {} does not match this protocol; starting afresh",
                path.display()
            )),
        }
    }
    let mut sink = ctx.display.sink(&label);
    sink.start(cfg.rounds + 1);
    let device = ctx.device;
    let validation = Images {
        pixels: progress
            .validation
            .iter()
            .flat_map(|&i| {
                u.data.train.pixels[i * PIXELS..(i + 1) * PIXELS]
                    .iter()
                    .copied()
            })
            .collect(),
        labels: progress
            .validation
            .iter()
            .map(|&i| u.data.train.labels[i])
            .collect(),
    };
    for round in progress.rounds.len()..=cfg.rounds {
        if ctx.mode == Mode::CachedOnly {
            bail!(
                "[{label}] round {round} is not in the resume cache ({}); run the task first",
                path.display()
            );
        }
        let mut train_idx = progress.initial.clone();
        for r in &progress.rounds {
            train_idx.extend_from_slice(&r.acquired);
        }
        let n = train_idx.len();
        let round_seed = mix(&[u.run.seed, u.repeat as u64, round as u64, 2]);

        // Train from scratch.
        let started = Instant::now();
        let (x, y) = u.data.train.rows(&train_idx, device);
        let vs = nn::VarStore::new(device);
        let spec = CnnSpec::mnist(cfg.conv_dropout, u.run.model.dropout);
        let net = Cnn::new(&vs.root(), &spec, round_seed);
        let (mut tspec, _) = u.run.train_spec(TrainLength::Epochs(cfg.epochs), n)?;
        tspec.seed = mix(&[round_seed, 3]);
        tspec.log_every = tspec.iterations.max(1);
        let objective = DenseL2 {
            weight: net.dense_weight().shallow_clone(),
            coefficient: cfg.dense_l2 / n as f64,
        };
        let report = mcd_trainer::train(
            &vs,
            &net,
            &x,
            &y,
            &tspec,
            &objective,
            &mut mcd_trainer::Silent,
            &mut |_| None,
        )
        .with_context(|| format!("[{label}] training round {round}"))?;
        let train_seconds = started.elapsed().as_secs_f64();

        // Test (and validation) error.
        let started = Instant::now();
        let test_error = error_rate(&net, &u.data.test, device)?;
        let validation_error = if !validation.labels.is_empty() {
            Some(error_rate(&net, &validation, device)?)
        } else {
            None
        };
        let test_seconds = started.elapsed().as_secs_f64();

        // Score a pool subset and acquire.
        let started = Instant::now();
        let (acquired, scores) = if round < cfg.rounds {
            let mut taken: Vec<&[usize]> =
                vec![progress.initial.as_slice(), progress.validation.as_slice()];
            taken.extend(progress.rounds.iter().map(|r| r.acquired.as_slice()));
            let pool = pool_of(u.data.train.len(), &taken);
            let sub = subset(&pool, cfg.pool_subset, mix(&[round_seed, 4]));
            if u.function == Acquisition::Random {
                (sub[..cfg.acquire].to_vec(), Vec::new())
            } else {
                let probs = mc_probs(
                    &net,
                    &u.data.train,
                    &sub,
                    cfg.samples,
                    mix(&[round_seed, 5]),
                    device,
                )?;
                let set = ProbSamples::new(&probs, cfg.samples, sub.len(), CLASSES)?;
                let scores = match u.function {
                    Acquisition::MaxEntropy => cls::predictive_entropy(&set),
                    Acquisition::Bald => cls::mutual_information(&set),
                    Acquisition::VariationRatios => cls::variation_ratio(&set),
                    Acquisition::MeanStd => cls::mean_std(&set),
                    Acquisition::Random => unreachable!("random acquisition scores nothing"),
                };
                let best = top_k(&scores, cfg.acquire);
                (
                    best.iter().map(|&p| sub[p]).collect(),
                    best.iter().map(|&p| scores[p]).collect(),
                )
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let score_seconds = started.elapsed().as_secs_f64();
        progress.rounds.push(Round {
            round,
            train_size: n,
            test_error,
            validation_error,
            final_loss: report.losses.last().map_or(f64::NAN, |l| l.1),
            train_seconds,
            score_seconds,
            test_seconds,
            acquired,
            scores,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_atomically(&path, serde_json::to_string(&progress)?.as_bytes())?;
        sink.step(round, test_error, 0.0);
        out.log(&format!(
            "[{label}] round {round}: {n} training images, test error {:.2} %; train {train_seconds:.1}s, score {score_seconds:.1}s, test {test_seconds:.1}s",
            100.0 * test_error
        ));
    }
    sink.finish();
    Ok(progress)
}

/// Runs the study into `out`.
pub fn run(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let mut loaded = Vec::new();
    for run in &exp.runs {
        let StudyConfig::ActiveLearning(cfg) = &run.study else {
            unreachable!(
                "validation: an active_learning experiment's runs are active_learning runs"
            )
        };
        loaded.push((run, cfg, load(cfg)?));
    }
    let units: Vec<Unit> = loaded
        .iter()
        .flat_map(|(run, cfg, data)| {
            cfg.functions.iter().flat_map(move |&function| {
                (0..cfg.repeats).map(move |repeat| Unit {
                    run,
                    cfg,
                    data,
                    function,
                    repeat,
                })
            })
        })
        .collect();
    out.log(&format!(
        "{} sequence(s) of rounds (run x function x repeat), {} thread(s)",
        units.len(),
        ctx.threads
    ));
    let results = parallel_runs(&units, ctx.threads, |u| run_unit(u, ctx, out))?;
    if ctx.mode == Mode::TrainOnly {
        return Ok(());
    }
    report(&units, &results, exp.runs.len() > 1, out)
}

/// Acquired images at the first round whose test error is at most `threshold`, if any.
fn images_to(p: &Progress, acquire: usize, threshold: f64) -> f64 {
    p.rounds
        .iter()
        .find(|r| r.test_error <= threshold)
        .map_or(f64::NAN, |r| (r.round * acquire) as f64)
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.len() < v.len() || v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

/// A (run, function) and the indices of its repeats' units.
type Group<'a, 'b> = (&'a Unit<'b>, Vec<usize>);

/// Tables and figures of every unit.
fn report(units: &[Unit], results: &[Progress], multi: bool, out: &OutputDir) -> Result<()> {
    let tables = out.subdir("tables")?;
    let figures = out.subdir("figures")?;
    let pairs: Vec<(&Unit, &Progress)> = units.iter().zip(results).collect();

    // The curve: one row per round.
    let rows: Vec<(&Unit, &Round)> = pairs
        .iter()
        .flat_map(|(u, p)| p.rounds.iter().map(move |r| (*u, r)))
        .collect();
    let s = |f: &dyn Fn(&(&Unit, &Round)) -> String| Values::Str(rows.iter().map(f).collect());
    let f = |f: &dyn Fn(&(&Unit, &Round)) -> f64| Values::F64(rows.iter().map(f).collect());
    let i = |f: &dyn Fn(&(&Unit, &Round)) -> i64| Values::I64(rows.iter().map(f).collect());
    Table::from_columns(
        "Active learning: test error per round (standard dropout), with the time of each step",
        vec![
            Column::new("run", s(&|r| r.0.run.name.clone())),
            Column::new("function", s(&|r| r.0.function.name().to_string())),
            Column::new("repeat", i(&|r| r.0.repeat as i64)),
            Column::new("round", i(&|r| r.1.round as i64)),
            Column::new(
                "acquired_images",
                i(&|r| (r.1.round * r.0.cfg.acquire) as i64),
            ),
            Column::new("train_size", i(&|r| r.1.train_size as i64)),
            Column::new("test_error", f(&|r| r.1.test_error)),
            Column::new(
                "validation_error",
                f(&|r| r.1.validation_error.unwrap_or(f64::NAN)),
            ),
            Column::new("final_loss", f(&|r| r.1.final_loss)),
            Column::new("train_seconds", f(&|r| r.1.train_seconds)),
            Column::new("score_seconds", f(&|r| r.1.score_seconds)),
            Column::new("test_seconds", f(&|r| r.1.test_seconds)),
        ],
    )?
    .write_all(&tables, "curve")?;

    // The acquired images, best first within a round.
    let mut acq: Vec<(&Unit, usize, usize, usize, f64)> = Vec::new();
    for (u, p) in &pairs {
        for r in &p.rounds {
            for (rank, &idx) in r.acquired.iter().enumerate() {
                acq.push((
                    *u,
                    r.round,
                    rank,
                    idx,
                    *r.scores.get(rank).unwrap_or(&f64::NAN),
                ));
            }
        }
    }
    Table::from_columns(
        "Active learning: the images acquired in each round (index into the 60,000 MNIST training images), best first",
        vec![
            Column::new("run", Values::Str(acq.iter().map(|a| a.0.run.name.clone()).collect())),
            Column::new("function", Values::Str(acq.iter().map(|a| a.0.function.name().to_string()).collect())),
            Column::new("repeat", Values::I64(acq.iter().map(|a| a.0.repeat as i64).collect())),
            Column::new("round", Values::I64(acq.iter().map(|a| a.1 as i64).collect())),
            Column::new("rank", Values::I64(acq.iter().map(|a| a.2 as i64).collect())),
            Column::new("mnist_index", Values::I64(acq.iter().map(|a| a.3 as i64).collect())),
            Column::new("label", Values::I64(acq.iter().map(|a| a.0.data.train.labels[a.3]).collect())),
            Column::new("score", Values::F64(acq.iter().map(|a| a.4).collect())),
        ],
    )?
    .write_all(&tables, "acquired")?;

    // Images to reach 10 % and 5 % error, per function and repeat, next to Table 1.
    let to: Vec<(f64, f64)> = pairs
        .iter()
        .map(|(u, p)| {
            (
                images_to(p, u.cfg.acquire, 0.10),
                images_to(p, u.cfg.acquire, 0.05),
            )
        })
        .collect();
    let t = Table::from_columns(
        "Acquired images to reach 10 % and 5 % test error (NaN: not reached), per repeat; the paper's Table 1",
        vec![
            Column::new("run", Values::Str(pairs.iter().map(|p| p.0.run.name.clone()).collect())),
            Column::new("function", Values::Str(pairs.iter().map(|p| p.0.function.name().to_string()).collect())),
            Column::new("repeat", Values::I64(pairs.iter().map(|p| p.0.repeat as i64).collect())),
            Column::new("images_to_10pct", Values::F64(to.iter().map(|t| t.0).collect())),
            Column::new("paper_10pct", Values::F64(pairs.iter().map(|p| paper(p.0.function).0).collect())),
            Column::new("images_to_5pct", Values::F64(to.iter().map(|t| t.1).collect())),
            Column::new("paper_5pct", Values::F64(pairs.iter().map(|p| paper(p.0.function).1).collect())),
        ],
    )?;
    t.write_all(&tables, "images_to_error")?;
    out.log(&format!("\n{}", t.to_markdown()));

    // Per (run, function): the last round's error, mean and sd over repeats, next to Table 2;
    // the mean time of a round's steps.
    let mut groups: Vec<Group> = Vec::new();
    for (k, (u, _)) in pairs.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g.0.run.name == u.run.name && g.0.function == u.function)
        {
            Some(g) => g.1.push(k),
            None => groups.push((*u, vec![k])),
        }
    }
    let stat = |g: &Group, f: &dyn Fn(usize) -> f64| {
        mean_sd(&g.1.iter().map(|&k| f(k)).collect::<Vec<_>>())
    };
    let last = |k: usize| {
        results[k]
            .rounds
            .last()
            .map_or(f64::NAN, |r| 100.0 * r.test_error)
    };
    let mean_of = |k: usize, f: &dyn Fn(&Round) -> f64| {
        let r = &results[k].rounds;
        r.iter().map(f).sum::<f64>() / r.len().max(1) as f64
    };
    let col = |name: &str, f: &dyn Fn(&Group) -> f64| {
        Column::new(name, Values::F64(groups.iter().map(f).collect()))
    };
    let summary = Table::from_columns(
        "Active learning: test error (%) after the last round (mean and sd over repeats; the paper's Table 2 after 1,000 acquired images), images to 10 % / 5 % error (mean over repeats that reached it in all), mean seconds per round",
        vec![
            Column::new("run", Values::Str(groups.iter().map(|g| g.0.run.name.clone()).collect())),
            Column::new("function", Values::Str(groups.iter().map(|g| g.0.function.name().to_string()).collect())),
            col("repeats", &|g| g.1.len() as f64),
            col("acquired_images", &|g| (g.0.cfg.rounds * g.0.cfg.acquire) as f64),
            col("test_error_pct", &|g| stat(g, &last).0),
            col("test_error_sd", &|g| stat(g, &last).1),
            col("paper_error_pct_at_1000", &|g| paper(g.0.function).2),
            col("images_to_10pct", &|g| stat(g, &|k| to[k].0).0),
            col("paper_10pct", &|g| paper(g.0.function).0),
            col("images_to_5pct", &|g| stat(g, &|k| to[k].1).0),
            col("paper_5pct", &|g| paper(g.0.function).1),
            col("train_seconds", &|g| stat(g, &|k| mean_of(k, &|r| r.train_seconds)).0),
            col("score_seconds", &|g| stat(g, &|k| mean_of(k, &|r| r.score_seconds)).0),
            col("test_seconds", &|g| stat(g, &|k| mean_of(k, &|r| r.test_seconds)).0),
        ],
    )?;
    summary.write_all(&tables, "summary")?;
    out.log(&format!("\n{}", summary.to_markdown()));

    // Time of a round's steps against the training-set size (mean over functions and repeats;
    // scoring over the scoring functions only).
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.1.train_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let avg = |n: usize, scored: bool, f: &dyn Fn(&Round) -> f64| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.1.train_size == n && (!scored || r.0.function != Acquisition::Random))
            .filter(|r| !scored || !r.1.acquired.is_empty())
            .map(|r| f(r.1))
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Table::from_columns(
        "Seconds per round step against the training-set size (mean over runs, functions and repeats; scoring: the scoring functions' rounds that acquired)",
        vec![
            Column::new("train_size", Values::I64(sizes.iter().map(|&n| n as i64).collect())),
            Column::new("train_seconds", Values::F64(sizes.iter().map(|&n| avg(n, false, &|r| r.train_seconds)).collect())),
            Column::new("score_seconds", Values::F64(sizes.iter().map(|&n| avg(n, true, &|r| r.score_seconds)).collect())),
            Column::new("test_seconds", Values::F64(sizes.iter().map(|&n| avg(n, false, &|r| r.test_seconds)).collect())),
        ],
    )?
    .write_all(&tables, "round_times")?;

    // Fig. 1: test error against acquired images, mean ± sd over repeats, per function.
    let mut runs: Vec<&str> = pairs.iter().map(|p| p.0.run.name.as_str()).collect();
    runs.dedup();
    for name in runs {
        let series: Vec<SpreadSeries> = groups
            .iter()
            .filter(|g| g.0.run.name == name)
            .map(|g| {
                let rounds = g.0.cfg.rounds + 1;
                let at = |r: usize| -> Vec<f64> {
                    g.1.iter()
                        .map(|&k| {
                            results[k]
                                .rounds
                                .get(r)
                                .map_or(f64::NAN, |x| 100.0 * x.test_error)
                        })
                        .collect()
                };
                let stats: Vec<(f64, f64)> = (0..rounds).map(|r| mean_sd(&at(r))).collect();
                SpreadSeries {
                    label: g.0.function.name().to_string(),
                    x: (0..rounds).map(|r| (r * g.0.cfg.acquire) as f64).collect(),
                    mean: stats.iter().map(|s| s.0).collect(),
                    spread: stats.iter().map(|s| s.1).collect(),
                }
            })
            .collect();
        let stem = if multi {
            format!("test_error_{}", name.replace([',', '=', '/'], "_"))
        } else {
            "test_error".to_string()
        };
        spread_figure(
            &format!("MNIST active learning ({name}): test error, mean ± sd over repeats"),
            "acquired images",
            "test error (%)",
            &series,
            false,
            &figures.join(stem),
        )?;
    }
    Ok(())
}

/// Where the resume cache of the study lives under a cache folder (for tests and docs).
pub fn resume_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("active_learning")
}
