//! Rotated-MNIST classification uncertainty (paper Fig. 4), test-set calibration and
//! Fashion-MNIST out-of-distribution detection.
//!
//! Every run trains its method's classifier on MNIST (or loads its cached weights): a dropout
//! LeNet (MC dropout), M LeNets (a deep ensemble) or a LeNet with learnt drop rates (concrete
//! dropout; `methods::classification`), then:
//! - rotates one test digit through the configured angles and runs T passes per image: scatters of
//!   the softmax input and output for the 3 classes with the largest mean output, and a per-angle
//!   table (MC and standard-dropout classes, max probability, entropy, BALD, variation ratio);
//! - evaluates the test set with standard dropout and with MC dropout: accuracy, NLL, Brier, ECE
//!   (15 bins) and a reliability diagram;
//! - scores Fashion-MNIST test images against MNIST test images: AUROC and AUPR of the max softmax
//!   probability (standard dropout), predictive entropy and mutual information (MC).
//!
//! When a run's method is not MC dropout (configs/mnist_methods.yaml), one more table,
//! `methods`, puts each run in a row: the predictive's test metrics, its Fashion-MNIST AUROC and
//! AUPR, and the drop rates a method learnt. An ensemble's "passes" are its members, its
//! standard prediction its first member alone.

use anyhow::{Context as _, Result};
use mcd_datasets::{mnist, transform, DataRoot, ImageSet, Split};
use mcd_evaluation::classification as cls;
use mcd_evaluation::{LogitSamples, ProbSamples};
use mcd_models::lenet::LeNetSpec;
use mcd_models::mc::{to_vec_f32, McConfig};
use mcd_report::{
    reliability_figure, scatter_figure_with_thumbnails, Column, ScatterGroup, Table, Thumbnail,
    Values,
};
use tch::{nn, Kind, Tensor};

use super::runs_unless_task;
use crate::cache::{load_or_train, DataFingerprint, Key, TrainSummary, WeightCache, SCHEMA};
use crate::config::raw::{RawArch, RawRun};
use crate::config::{
    Checker, ConfigError, DataSource, Experiment, MnistConfig, Regularisation, RegularisationRule,
    Rules, RunConfig, StudyConfig, StudyKind, TrainSettings,
};
use crate::curves::Curve;
use crate::methods::classification::Classifier;
use crate::output::OutputDir;
use crate::{Context, Mode};

const PREDICT_SEED: u64 = 0x00D1_6175;
/// Test images per prediction call: bounds the memory of the deterministic prefix.
const IMAGES_PER_CALL: i64 = 2000;

/// Test-set metrics of one prediction mode.
struct Metrics {
    accuracy: f64,
    nll: f64,
    brier: f64,
    ece: f64,
}

/// Everything one run measured.
struct Outcome {
    name: String,
    /// `model.method`, and its label.
    method: &'static str,
    label: &'static str,
    dropout: f64,
    placement: String,
    train: TrainSummary,
    standard: Metrics,
    /// The deterministic prediction in the table ("standard dropout").
    standard_label: &'static str,
    mc: Metrics,
    mc_samples: usize,
    /// "T" (MC passes) or "M" (an ensemble's members).
    passes_symbol: &'static str,
    /// (score name, AUROC, AUPR)
    ood: Vec<(String, f64, f64)>,
    /// AUROC and AUPR of the predictive's entropy and mutual information (NaN without `ood`).
    ood_predictive: [f64; 4],
    /// What the method learnt beside the weights (concrete dropout: p per position).
    learned: Vec<(String, f64)>,
    /// The recorded loss / this = the curve (an ensemble: its members' mean).
    loss_divisor: f64,
}

/// The mnist_rotated study (registered in [`super::study`]).
pub struct MnistRotated;

impl super::Study for MnistRotated {
    fn rules(&self) -> Rules {
        Rules {
            arch: RawArch::Lenet,
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
        crate::config::mnist::check(c, raw, data)
    }

    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
        run(exp, ctx, out)
    }
}

/// Runs the study into `out`.
pub fn run(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let cache = WeightCache::new(&ctx.cache_dir.join("weights"));
    let multi = exp.runs.len() > 1;
    let Some(outcomes) =
        runs_unless_task(&exp.runs, ctx, |run| run_one(run, multi, &cache, ctx, out))?
    else {
        return Ok(());
    };
    let curves: Vec<Curve> = outcomes
        .iter()
        .map(|o| {
            let mut c = Curve::of(&o.name, &o.train);
            c.loss.iter_mut().for_each(|l| *l /= o.loss_divisor);
            c
        })
        .collect();
    let methods = outcomes.iter().any(|o| o.method != "mc_dropout");
    let labels = if methods {
        crate::curves::Labels {
            table: "MNIST training curves: each run's objective (nats) on each logged step's batch, per run (MC dropout: cross-entropy, dropout on; deep ensemble: the mean of its members' cross-entropies; concrete dropout: cross-entropy + its regulariser, relaxed masks on)",
            figure: "MNIST: training objective per run",
            loss: "objective on the batch (nats)",
        }
    } else {
        crate::curves::Labels {
            table: "MNIST training curves: cross-entropy (nats) on each logged step's batch (dropout on), per run",
            figure: "MNIST: training cross-entropy per run",
            loss: "cross-entropy on the batch (nats)",
        }
    };
    crate::curves::write(out, "", labels, &curves)?;
    let tables = out.subdir("tables")?;
    let table = metrics_table(&outcomes)?;
    table.write_all(&tables, "test_metrics")?;
    let md = table.to_markdown();
    out.log(&format!("\n{md}"));
    if outcomes.iter().any(|o| !o.ood.is_empty()) {
        let ood = ood_table(&outcomes)?;
        ood.write_all(&tables, "ood")?;
        let md = ood.to_markdown();
        out.log(&format!("\n{md}"));
    }
    if methods {
        let table = methods_table(&outcomes)?;
        table.write_all(&tables, "methods")?;
        out.log(&format!("\n{}", table.to_markdown()));
    }
    Ok(())
}

fn limited(set: ImageSet, limit: Option<usize>) -> ImageSet {
    match limit {
        Some(l) if l < set.len() => ImageSet {
            images: set.images.narrow(0, 0, l as i64),
            labels: set.labels.narrow(0, 0, l as i64),
        },
        _ => set,
    }
}

fn run_one(
    run: &RunConfig,
    multi: bool,
    cache: &WeightCache,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Option<Outcome>> {
    let StudyConfig::MnistRotated(cfg) = &run.study else {
        unreachable!("validation: an mnist_rotated experiment's runs are mnist_rotated runs")
    };
    let placement = cfg.placement;
    let root = DataRoot::open(&cfg.dir)?;
    let train_full = mnist::load(&root, Split::Train)?;
    let test_full = mnist::load(&root, Split::Test)?;
    let n_test_full = test_full.len();
    if cfg.digit_index >= n_test_full {
        anyhow::bail!(
            "mnist.digit_index {} is outside the test set (0..{n_test_full})",
            cfg.digit_index
        );
    }
    let digit = to_vec_f32(&test_full.images.get(cfg.digit_index as i64))
        .context("reading the rotated digit")?;
    let digit_label = i64::try_from(test_full.labels.get(cfg.digit_index as i64))
        .context("reading the rotated digit's label")?;
    let train = limited(train_full, cfg.train_limit);
    let test = limited(test_full, cfg.test_limit);
    let device = ctx.device;
    let (x_train, y_train) = (
        train.images.to_device(device),
        train.labels.to_device(device),
    );
    let n_train = train.len();

    let spec = LeNetSpec::mnist(run.model.dropout, placement);
    let (trainer, _) = run.train_spec(cfg.length, n_train)?;
    let mut vs = nn::VarStore::new(device);
    let method = run.model.method;
    let model = method.classifier(&vs.root(), &spec, run.seed);
    let cache_name = model.cache_name();
    let (images, labels) = mnist::files(Split::Train);
    let data = DataFingerprint::Files {
        sha256: [images, labels]
            .iter()
            .map(|rel| {
                root.sha256(rel)
                    .map(str::to_string)
                    .with_context(|| format!("{rel} is not in the data folder's manifest"))
            })
            .collect::<Result<_>>()?,
        rows: n_train,
    };
    let key = Key {
        schema: SCHEMA,
        study: StudyKind::MnistRotated,
        model: &spec,
        train: &trainer,
        seed: run.seed,
        data: &data,
        method: &cache_name,
        dropout_warmup: 0,
    }
    .hash()?;
    let monitor = cfg.monitor_images.min(test.len()) as i64;
    let (mx, my) = (
        test.images.narrow(0, 0, monitor).to_device(device),
        test.labels.narrow(0, 0, monitor),
    );
    let train_summary = load_or_train(cache, &key, &mut vs, ctx, out, &run.name, |vs| {
        let mut sink = ctx.display.sink(&run.name);
        let (objective, train_spec) = model.training(&trainer, n_train);
        mcd_trainer::train(
            vs,
            model.net(),
            &x_train,
            &y_train,
            &train_spec,
            objective.as_ref(),
            sink.as_mut(),
            &mut |epoch| {
                let pred = model
                    .standard_logits(&mx)
                    .argmax(1, false)
                    .to_device(tch::Device::Cpu);
                let acc =
                    f64::try_from(pred.eq_tensor(&my).to_kind(Kind::Double).mean(Kind::Double))
                        .unwrap_or(f64::NAN);
                let line = format!(
                    "[{}] epoch {epoch}: accuracy on the first {monitor} test images {acc:.4}",
                    run.name
                );
                out.log(&line);
                Some(line)
            },
        )
        .with_context(|| format!("training run `{}`", run.name))
    })?;
    out.log(&format!(
        "[{}] {} it on {n_train} images, {:.1}s",
        run.name, train_summary.iterations, train_summary.seconds
    ));
    let learned = model.learned();
    for (what, v) in &learned {
        out.log(&format!("[{}] learnt {what}: {v:.4}", run.name));
    }
    if !learned.is_empty() && train_summary.tracked.is_none() {
        out.log(&format!(
            "[{}] the cached weights {key} were trained before learnt values were recorded \
             during training: training_curves has this run's losses but no p columns for it \
             (--retrain records them)",
            run.name
        ));
    }
    if ctx.mode == Mode::TrainOnly {
        return Ok(None);
    }

    let budget = run.predict.memory_budget_bytes;
    let seed = run.seed ^ PREDICT_SEED;
    let prefix = if multi {
        format!("{}_", run.name.replace([',', '='], "_"))
    } else {
        String::new()
    };

    // Rotated digit (Fig. 4).
    let rotated: Vec<f32> = cfg
        .angles
        .iter()
        .flat_map(|&a| transform::rotate(&digit, 28, a))
        .collect();
    let rot_x = Tensor::from_slice(&rotated)
        .view([cfg.angles.len() as i64, 1, 28, 28])
        .to_device(device);
    let rot_mc = McConfig {
        samples: cfg.rotation_samples,
        memory_budget_bytes: budget,
        seed,
    };
    let rot_logits =
        to_vec_f32(&model.logit_passes(&rot_x, &rot_mc)).context("reading the rotation samples")?;
    let rot_std = to_vec_f32(&model.standard_logits(&rot_x))
        .context("reading the rotation's standard prediction")?;
    let thumbs: Vec<Thumbnail> = rotated
        .chunks(28 * 28)
        .enumerate()
        .map(|(i, px)| Thumbnail {
            x: i as f64,
            side: 28,
            pixels: px.iter().map(|v| (v * 256.0 / 255.0).min(1.0)).collect(),
        })
        .collect();
    rotation_report(
        run,
        cfg,
        model.as_ref(),
        digit_label,
        &rot_logits,
        &rot_std,
        &thumbs,
        &prefix,
        out,
    )?;

    // Test set: standard dropout and MC dropout.
    let labels: Vec<usize> = Vec::<i64>::try_from(&test.labels)?
        .into_iter()
        .map(|l| l as usize)
        .collect();
    let asked = cfg.test_samples;
    let t = model.passes(asked);
    let symbol = model.passes_symbol();
    let (std_probs, mc_probs) =
        predict_set(model.as_ref(), &test.images, asked, budget, seed, device)?;
    let std_mean = cls::MeanProbs::new(
        std_probs.iter().map(|&p| f64::from(p)).collect(),
        labels.len(),
        10,
    )?;
    let mc_set = ProbSamples::new(&mc_probs, t, labels.len(), 10)?;
    let mc_mean = cls::mean_probs(&mc_set);
    let metrics = |p: &cls::MeanProbs| -> Result<(Metrics, cls::Calibration)> {
        let cal = cls::ece(p, &labels, cls::DEFAULT_ECE_BINS)?;
        Ok((
            Metrics {
                accuracy: cls::accuracy(p, &labels)?,
                nll: cls::nll(p, &labels)?,
                brier: cls::brier(p, &labels)?,
                ece: cal.ece,
            },
            cal,
        ))
    };
    let (standard, std_cal) = metrics(&std_mean)?;
    let (mc, mc_cal) = metrics(&mc_mean)?;
    let figures = out.subdir("figures")?;
    for (what, cal) in [("standard", &std_cal), ("mc", &mc_cal)] {
        let bins: Vec<_> = cal
            .bins
            .iter()
            .map(|b| (b.lower, b.upper, b.accuracy, b.confidence, b.count))
            .collect();
        reliability_figure(
            &bins,
            &format!(
                "Reliability, {} ({}), ECE {:.4}",
                if what == "mc" {
                    format!("{} {symbol}={t}", method.label())
                } else {
                    model.standard_label().into()
                },
                run.name,
                cal.ece
            ),
            &figures.join(format!("{prefix}reliability_{what}")),
        )?;
    }
    let (std_tag, mc_tag) = model.tags();
    out.log(&format!(
        "[{}] test accuracy {std_tag} {:.4}, {mc_tag} ({symbol}={t}) {:.4}; NLL {:.4} / {:.4}; ECE {:.4} / {:.4}",
        run.name, standard.accuracy, mc.accuracy, standard.nll, mc.nll, standard.ece, mc.ece
    ));

    // Out of distribution: Fashion-MNIST test images (positives) against MNIST test images.
    let mut ood = Vec::new();
    if cfg.ood {
        let fashion = limited(mnist::fashion_mnist_test(&root)?, cfg.test_limit);
        let (f_std, f_mc) = predict_set(
            model.as_ref(),
            &fashion.images,
            asked,
            budget,
            seed ^ 1,
            device,
        )?;
        let nf = fashion.len();
        let f_std_mean =
            cls::MeanProbs::new(f_std.iter().map(|&p| f64::from(p)).collect(), nf, 10)?;
        let f_set = ProbSamples::new(&f_mc, t, nf, 10)?;
        let is_ood: Vec<bool> = std::iter::repeat_n(false, labels.len())
            .chain(std::iter::repeat_n(true, nf))
            .collect();
        let cat = |a: Vec<f64>, b: Vec<f64>| -> Vec<f64> { a.into_iter().chain(b).collect() };
        let scores = [
            (
                format!("1 - max softmax ({std_tag})"),
                cat(std_mean.confidence(), f_std_mean.confidence())
                    .into_iter()
                    .map(|c| 1.0 - c)
                    .collect(),
            ),
            (
                format!("predictive entropy ({mc_tag})"),
                cat(
                    cls::predictive_entropy(&mc_set),
                    cls::predictive_entropy(&f_set),
                ),
            ),
            (
                format!("mutual information ({mc_tag})"),
                cat(
                    cls::mutual_information(&mc_set),
                    cls::mutual_information(&f_set),
                ),
            ),
        ];
        for (name, s) in scores {
            let s: Vec<f64> = s;
            ood.push((name, cls::auroc(&s, &is_ood)?, cls::aupr(&s, &is_ood)?));
        }
    }
    // The predictive's scores: entropy and mutual information (the last two).
    let ood_predictive = match ood.as_slice() {
        [_, (_, ea, ep), (_, ma, mp)] => [*ea, *ep, *ma, *mp],
        _ => [f64::NAN; 4],
    };
    Ok(Some(Outcome {
        name: run.name.clone(),
        method: method.name(),
        label: method.label(),
        dropout: run.model.dropout,
        placement: format!("{placement:?}"),
        train: train_summary,
        standard,
        standard_label: model.standard_label(),
        mc,
        mc_samples: t,
        passes_symbol: symbol,
        ood,
        ood_predictive,
        learned,
        loss_divisor: model.loss_divisor(),
    }))
}

/// Standard-dropout probabilities [N, 10] and MC probabilities [T, N, 10] of a set of images
/// (T: the classifier's passes when `t` are asked for), predicted in slices of
/// `IMAGES_PER_CALL` so the deterministic prefix stays small.
fn predict_set(
    net: &dyn Classifier,
    images: &Tensor,
    t: usize,
    budget: usize,
    seed: u64,
    device: tch::Device,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = images.size()[0];
    let (mut std_parts, mut mc_parts) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let len = IMAGES_PER_CALL.min(n - start);
        let x = images.narrow(0, start, len).to_device(device);
        std_parts.push(
            net.standard_logits(&x)
                .softmax(-1, Kind::Float)
                .to_device(tch::Device::Cpu),
        );
        let mc = McConfig {
            samples: t,
            memory_budget_bytes: budget,
            seed: seed.wrapping_add(start as u64),
        };
        mc_parts.push(
            net.logit_passes(&x, &mc)
                .softmax(-1, Kind::Float)
                .to_device(tch::Device::Cpu),
        );
        start += len;
    }
    Ok((
        to_vec_f32(&Tensor::cat(&std_parts, 0)).context("reading the standard predictions")?,
        to_vec_f32(&Tensor::cat(&mc_parts, 1)).context("reading the MC predictions")?,
    ))
}

/// Fig. 4 scatters (with the rotated digits under the x axis) and the per-angle table.
#[allow(clippy::too_many_arguments)]
fn rotation_report(
    run: &RunConfig,
    cfg: &MnistConfig,
    model: &dyn Classifier,
    digit_label: i64,
    logits: &[f32],
    standard_logits: &[f32],
    thumbnails: &[Thumbnail],
    prefix: &str,
    out: &OutputDir,
) -> Result<()> {
    let (t, n, c) = (model.passes(cfg.rotation_samples), cfg.angles.len(), 10);
    let symbol = model.passes_symbol();
    // Other methods than MC dropout name themselves in the titles.
    let method = match run.model.method.name() {
        "mc_dropout" => String::new(),
        _ => format!("{}, ", run.model.method.label()),
    };
    let logit_set = LogitSamples::new(logits, t, n, c)?;
    let probs = logit_set.softmax();
    let set = ProbSamples::new(&probs, t, n, c)?;
    let mean = cls::mean_probs(&set);
    let std_set = LogitSamples::new(standard_logits, 1, n, c)?.softmax();
    let std_mean = cls::MeanProbs::new(std_set.iter().map(|&p| f64::from(p)).collect(), n, c)?;

    // The 3 classes with the largest mean softmax output over all angles.
    let mut totals: Vec<(usize, f64)> = (0..c)
        .map(|k| (k, (0..n).map(|i| mean.row(i).map_or(0.0, |r| r[k])).sum()))
        .collect();
    totals.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<usize> = totals.iter().take(3).map(|p| p.0).collect();
    let ticks: Vec<(f64, String)> = cfg
        .angles
        .iter()
        .enumerate()
        .map(|(i, a)| (i as f64, format!("{a:.0}°")))
        .collect();
    let groups = |values: &[f32]| -> Vec<ScatterGroup> {
        top.iter()
            .enumerate()
            .map(|(g, &k)| {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for pass in 0..t {
                    for i in 0..n {
                        // Small offsets keep the three classes' clouds apart at each angle.
                        x.push(i as f64 + (g as f64 - 1.0) * 0.15);
                        y.push(f64::from(values[(pass * n + i) * c + k]));
                    }
                }
                ScatterGroup {
                    label: format!("class {k}"),
                    x,
                    y,
                }
            })
            .collect()
    };
    let figures = out.subdir("figures")?;
    scatter_figure_with_thumbnails(
        &format!(
            "(a) Softmax input, {method}rotated \"{digit_label}\" (test image {}), {symbol}={t}",
            cfg.digit_index
        ),
        "rotation",
        "softmax input (logit)",
        &groups(logits),
        Some(ticks.clone()),
        thumbnails,
        &figures.join(format!("{prefix}fig4a_softmax_input")),
    )?;
    scatter_figure_with_thumbnails(
        &format!(
            "(b) Softmax output, {method}rotated \"{digit_label}\" (test image {}), {symbol}={t}",
            cfg.digit_index
        ),
        "rotation",
        "softmax output",
        &groups(&probs),
        Some(ticks),
        thumbnails,
        &figures.join(format!("{prefix}fig4b_softmax_output")),
    )?;

    let entropy = cls::predictive_entropy(&set);
    let mi = cls::mutual_information(&set);
    let vr = cls::variation_ratio(&set);
    let table = Table::from_columns(
        format!(
            "Rotated digit ({}): test image {}, label {digit_label}, {symbol} = {t}",
            run.name, cfg.digit_index
        ),
        vec![
            Column::new("angle_deg", Values::F64(cfg.angles.clone())),
            Column::new(
                "mc_class",
                Values::I64(mean.predicted().into_iter().map(|k| k as i64).collect()),
            ),
            Column::new(
                "standard_class",
                Values::I64(std_mean.predicted().into_iter().map(|k| k as i64).collect()),
            ),
            Column::new("mc_max_prob", Values::F64(mean.confidence())),
            Column::new("standard_max_prob", Values::F64(std_mean.confidence())),
            Column::new("entropy", Values::F64(entropy)),
            Column::new("mutual_information", Values::F64(mi)),
            Column::new("variation_ratio", Values::F64(vr)),
        ],
    )?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, &format!("{prefix}rotation"))?;
    out.log(&format!("\n{}", table.to_markdown()));
    Ok(())
}

/// One table row: (prediction mode, run, its metrics, T).
type MetricsRow<'a> = (String, &'a Outcome, &'a Metrics, f64);

fn metrics_table(outcomes: &[Outcome]) -> Result<Table> {
    let mut rows: Vec<MetricsRow> = Vec::new();
    for o in outcomes {
        rows.push((o.standard_label.into(), o, &o.standard, 1.0));
        rows.push((
            format!("{} ({}={})", o.label, o.passes_symbol, o.mc_samples),
            o,
            &o.mc,
            o.mc_samples as f64,
        ));
    }
    let f = |get: &dyn Fn(&MetricsRow) -> f64| Values::F64(rows.iter().map(get).collect());
    Ok(Table::from_columns(
        "MNIST test set",
        vec![
            Column::new(
                "run",
                Values::Str(rows.iter().map(|r| r.1.name.clone()).collect()),
            ),
            Column::new(
                "placement",
                Values::Str(rows.iter().map(|r| r.1.placement.clone()).collect()),
            ),
            Column::new("dropout", f(&|r| r.1.dropout)),
            Column::new(
                "prediction",
                Values::Str(rows.iter().map(|r| r.0.clone()).collect()),
            ),
            Column::new("T", f(&|r| r.3)),
            Column::new("accuracy", f(&|r| r.2.accuracy)),
            Column::new("nll", f(&|r| r.2.nll)),
            Column::new("brier", f(&|r| r.2.brier)),
            Column::new("ece_15_bins", f(&|r| r.2.ece)),
            Column::new("iterations", f(&|r| r.1.train.iterations as f64)),
            Column::new("train_seconds", f(&|r| r.1.train.seconds)),
        ],
    )?)
}

fn ood_table(outcomes: &[Outcome]) -> Result<Table> {
    let rows: Vec<(&Outcome, &(String, f64, f64))> = outcomes
        .iter()
        .flat_map(|o| o.ood.iter().map(move |s| (o, s)))
        .collect();
    Ok(Table::from_columns(
        "Fashion-MNIST (out of distribution) vs MNIST test images",
        vec![
            Column::new(
                "run",
                Values::Str(rows.iter().map(|r| r.0.name.clone()).collect()),
            ),
            Column::new(
                "score",
                Values::Str(rows.iter().map(|r| r.1 .0.clone()).collect()),
            ),
            Column::new("auroc", Values::F64(rows.iter().map(|r| r.1 .1).collect())),
            Column::new("aupr", Values::F64(rows.iter().map(|r| r.1 .2).collect())),
        ],
    )?)
}

/// One row per run: its method's predictive (MC passes, or an ensemble's members) on the test
/// set, its Fashion-MNIST scores, and what it learnt beside the weights.
fn methods_table(outcomes: &[Outcome]) -> Result<Table> {
    let f = |get: &dyn Fn(&Outcome) -> f64| Values::F64(outcomes.iter().map(get).collect());
    let s = |get: &dyn Fn(&Outcome) -> String| Values::Str(outcomes.iter().map(get).collect());
    let mut cols = vec![
        Column::new("run", s(&|o| o.name.clone())),
        Column::new("method", s(&|o| o.label.to_string())),
        Column::new("placement", s(&|o| o.placement.clone())),
        Column::new("dropout", f(&|o| o.dropout)),
        Column::new(
            "passes",
            s(&|o| format!("{}={}", o.passes_symbol, o.mc_samples)),
        ),
        Column::new("accuracy", f(&|o| o.mc.accuracy)),
        Column::new("nll", f(&|o| o.mc.nll)),
        Column::new("brier", f(&|o| o.mc.brier)),
        Column::new("ece_15_bins", f(&|o| o.mc.ece)),
        Column::new("auroc_entropy", f(&|o| o.ood_predictive[0])),
        Column::new("aupr_entropy", f(&|o| o.ood_predictive[1])),
        Column::new("auroc_mutual_info", f(&|o| o.ood_predictive[2])),
        Column::new("aupr_mutual_info", f(&|o| o.ood_predictive[3])),
    ];
    let mut names: Vec<&str> = Vec::new();
    for o in outcomes {
        for (n, _) in &o.learned {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        cols.push(Column::new(
            format!("learnt_{name}"),
            f(&|o| {
                o.learned
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(f64::NAN, |l| l.1)
            }),
        ));
    }
    cols.push(Column::new("iterations", f(&|o| o.train.iterations as f64)));
    cols.push(Column::new("train_seconds", f(&|o| o.train.seconds)));
    Ok(Table::from_columns(
        "MNIST methods: each run's predictive on the test set (MC dropout and concrete dropout: T passes; deep ensemble: its M members), Fashion-MNIST AUROC / AUPR of its entropy and mutual information, learnt drop rates",
        cols,
    )?)
}
