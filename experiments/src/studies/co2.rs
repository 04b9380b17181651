//! Mauna Loa CO2 extrapolation (paper Fig. 2 and 3) and dropout-rate comparisons.
//!
//! Every run trains one MLP on Gal's 272-point series and predicts the 1000 extrapolation inputs
//! with T MC-dropout passes. Without a sweep the report is the paper's figure: (a) standard
//! dropout, (b) GP, (c) MC dropout ReLU, (d) MC dropout TanH, plus Fig. 3 (ReLU, small T vs T).
//! With a sweep it is a table of all runs and one plot of predictive sd against x per activation.

use std::time::Instant;

use anyhow::{Context as _, Result};
use mcd_datasets::{co2, DataRoot};
use mcd_evaluation::fit::{window_fit, WindowFit};
use mcd_evaluation::regression as reg;
use mcd_models::gp::{Gp, GpHyper};
use mcd_models::mc::{to_vec_f32, McConfig};
use mcd_models::mlp::{Activation, SpreadFirstLayer};
use mcd_report::{band_figure, line_figure, BandPanel, Column, Series, Table, Values};
use tch::{nn, Tensor};

use super::runs_unless_task;
use crate::cache::{load_or_train, DataFingerprint, Key, TrainSummary, WeightCache, SCHEMA};
use crate::config::raw::{RawArch, RawRun};
use crate::config::{
    Checker, Co2Config, Co2Report, ConfigError, DataSource, Experiment, Regularisation,
    RegularisationRule, Rules, RunConfig, StudyConfig, StudyKind, TrainLength, TrainSettings,
};
use crate::curves::Curve;
use crate::methods::{RegressionPredictive, Regressor};
use crate::output::OutputDir;
use crate::{Context, Mode};

/// Seed offset of the prediction masks (distinct from the training mask stream).
const PREDICT_SEED: u64 = 0x00C0_FFEE;

/// The data every run shares, as host vectors (tensors are not shareable across threads; each
/// run makes its own on its device).
struct Co2Inputs {
    x_train: Vec<f32>,
    y_train: Vec<f32>,
    /// Training inputs followed by the extrapolation inputs.
    x_all: Vec<f32>,
}

/// Extrapolation inputs drawn for an own table: from its smallest x to x* (or its largest x).
const TABLE_GRID_POINTS: usize = 1000;

/// A host vector as an [n, 1] tensor on `device`.
fn column(v: &[f32], device: tch::Device) -> Tensor {
    Tensor::from_slice(v)
        .view([v.len() as i64, 1])
        .to_device(device)
}

/// What one run of a method produced.
struct RunResult {
    name: String,
    /// The method (`model.method`) and its name in tables and figures ("MC dropout", ...).
    method: &'static str,
    label: &'static str,
    activation: Activation,
    dropout: f64,
    /// Hidden widths, e.g. "4 x 256".
    hidden: String,
    /// Fraction of the steps over which the drop rates rose (`trainer.dropout_warmup`).
    dropout_warmup: f64,
    samples: usize,
    /// The precision in the predictive variance (NaN: the method learns the noise per input).
    tau: f64,
    weight_decay: f64,
    train: TrainSummary,
    /// The predictive over `x_all`: mean, sd and its epistemic and aleatoric parts.
    pred: RegressionPredictive,
    /// Standard dropout (dropout off) over `x_all`.
    standard: Vec<f64>,
    /// Fig. 3: the same net with few passes.
    small: Option<(usize, RegressionPredictive)>,
    train_ll: f64,
}

impl RunResult {
    /// MC dropout's own runs (the paper's panels), not another method's.
    fn is_mc_dropout(&self) -> bool {
        self.method == "mc_dropout"
    }

    /// How tables and figures name the run: the method's label, and the run's name unless it
    /// only repeats the method's ("MC dropout relu", but "deep ensemble", not "deep ensemble
    /// ensemble").
    fn title(&self) -> String {
        if self.name == self.method {
            self.label.to_string()
        } else {
            format!("{} {}", self.label, self.name)
        }
    }
}

/// One row of the summary table.
struct Row {
    model: String,
    /// The run behind the row (the GP's: none, and its fitting time).
    run: RunFacts,
    samples: f64,
    tau: f64,
    train_rmse: f64,
    /// Window-by-window fit of the mean to the training data.
    fit: WindowFit,
    train_ll: f64,
    coverage: f64,
    sd_near: f64,
    sd_star: f64,
    mean_star: f64,
    /// Epistemic and aleatoric sd: mean over the training inputs, and at x*.
    parts: SdParts,
}

/// What a summary row says of the run it comes from; every row of one run says the same.
struct RunFacts {
    activation: String,
    dropout: f64,
    hidden: String,
    dropout_warmup: f64,
    weight_decay: f64,
    iterations: f64,
    train_seconds: f64,
}

impl RunFacts {
    fn of(r: &RunResult) -> Self {
        RunFacts {
            activation: r.activation.to_string(),
            dropout: r.dropout,
            hidden: r.hidden.clone(),
            dropout_warmup: r.dropout_warmup,
            weight_decay: r.weight_decay,
            iterations: r.train.iterations as f64,
            train_seconds: r.train.seconds,
        }
    }

    /// A row that no net made (the GP), with the seconds its fit took.
    fn none(seconds: f64) -> Self {
        RunFacts {
            activation: "-".into(),
            dropout: f64::NAN,
            hidden: "-".into(),
            dropout_warmup: f64::NAN,
            weight_decay: f64::NAN,
            iterations: f64::NAN,
            train_seconds: seconds,
        }
    }
}

/// The two parts of a predictive sd (NaN where a model has no such split).
#[derive(Clone, Copy)]
struct SdParts {
    epistemic_train: f64,
    aleatoric_train: f64,
    epistemic_star: f64,
    aleatoric_star: f64,
}

impl SdParts {
    const NONE: SdParts = SdParts {
        epistemic_train: f64::NAN,
        aleatoric_train: f64::NAN,
        epistemic_star: f64::NAN,
        aleatoric_star: f64::NAN,
    };

    fn of(p: &RegressionPredictive, n_train: usize, star: usize) -> Self {
        let mean = |v: &[f64]| v[..n_train].iter().sum::<f64>() / n_train.max(1) as f64;
        SdParts {
            epistemic_train: mean(&p.epistemic_sd),
            aleatoric_train: mean(&p.aleatoric_sd),
            epistemic_star: p.epistemic_sd[star],
            aleatoric_star: p.aleatoric_sd[star],
        }
    }
}

/// The co2 study (registered in [`super::study`]).
pub struct Co2;

impl super::Study for Co2 {
    fn rules(&self) -> Rules {
        Rules {
            arch: RawArch::Mlp,
            default_hidden: false,
            searched_dropout: None,
            fixed_input_dropout: None,
            regularisation: RegularisationRule::Regression,
            uses: crate::methods::Use::Regression,
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
        crate::config::co2::check(c, raw, data)
    }

    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
        run(exp, ctx, out)
    }
}

/// A run's co2 section.
fn section(run: &RunConfig) -> &Co2Config {
    match &run.study {
        StudyConfig::Co2(c) => c,
        other => unreachable!("validation: a co2 experiment has {:?} runs", other.kind()),
    }
}

/// Runs the study into `out`.
pub fn run(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let first = &exp.runs[0];
    let co2cfg = *section(first);
    let inputs = match &first.data {
        DataSource::Vendored(dir) => Co2Inputs::new(&co2::load_gal(&DataRoot::open(dir)?)?)?,
        DataSource::Table(table) => {
            Co2Inputs::from_table(&crate::studies::load_table(table, out)?, co2cfg.x_star)?
        }
        DataSource::Generated => unreachable!("validation: the co2 study reads data"),
    };
    let n_train = inputs.x_train.len();
    out.log(&format!(
        "CO2: {n_train} training points, {} prediction inputs",
        inputs.x_all.len()
    ));

    let cache = WeightCache::new(&ctx.cache_dir.join("weights"));
    let Some(results) = runs_unless_task(&exp.runs, ctx, |run| {
        run_one(run, section(run), &inputs, &cache, ctx, out)
    })?
    else {
        return Ok(());
    };

    let gp = if co2cfg.gp {
        Some(fit_gp(&inputs, out)?)
    } else {
        None
    };

    let mut rows = Vec::new();
    let near = |sd: &[f64]| near_mean(&inputs.x_train, &sd[..n_train], co2cfg.near_from);
    let star = nearest(&inputs.x_all, co2cfg.x_star);
    let y: Vec<f32> = inputs.y_train.clone();
    let judge = |mean: &[f64]| {
        window_fit(&inputs.x_train, &y, mean, co2cfg.fit_window)
            .with_context(|| format!("the fit check (co2.fit_window = {})", co2cfg.fit_window))
    };
    if co2cfg.report == Co2Report::Paper {
        if let Some(r) = results
            .iter()
            .find(|r| r.activation == Activation::Relu && r.is_mc_dropout())
            .or(results.first())
        {
            rows.push(Row {
                model: format!("standard dropout ({})", r.name),
                run: RunFacts::of(r),
                samples: 1.0,
                tau: f64::NAN,
                train_rmse: reg::rmse(&r.standard[..n_train], &y)?,
                fit: judge(&r.standard[..n_train])?,
                train_ll: f64::NAN,
                coverage: f64::NAN,
                sd_near: f64::NAN,
                sd_star: f64::NAN,
                mean_star: r.standard[star],
                parts: SdParts::NONE,
            });
        }
        if let Some((mean, sd, secs)) = &gp {
            rows.push(Row {
                model: "GP (SE kernel)".into(),
                run: RunFacts::none(*secs),
                samples: f64::NAN,
                tau: f64::NAN,
                train_rmse: reg::rmse(&mean[..n_train], &y)?,
                fit: judge(&mean[..n_train])?,
                train_ll: f64::NAN,
                coverage: reg::coverage(&mean[..n_train], &sd[..n_train], &y, 2.0)?,
                sd_near: near(sd),
                sd_star: sd[star],
                mean_star: mean[star],
                parts: SdParts::NONE,
            });
        }
    }
    for r in &results {
        let (mean, sd) = (&r.pred.mean, &r.pred.sd);
        rows.push(Row {
            model: r.title(),
            run: RunFacts::of(r),
            samples: r.samples as f64,
            tau: r.tau,
            train_rmse: reg::rmse(&mean[..n_train], &y)?,
            fit: judge(&mean[..n_train])?,
            train_ll: r.train_ll,
            coverage: reg::coverage(&mean[..n_train], &sd[..n_train], &y, 2.0)?,
            sd_near: near(sd),
            sd_star: sd[star],
            mean_star: mean[star],
            parts: SdParts::of(&r.pred, n_train, star),
        });
        if let Some((t, small)) = &r.small {
            let (mean, sd) = (&small.mean, &small.sd);
            rows.push(Row {
                model: format!("{} (T={t})", r.title()),
                run: RunFacts::of(r),
                samples: *t as f64,
                tau: r.tau,
                train_rmse: reg::rmse(&mean[..n_train], &y)?,
                fit: judge(&mean[..n_train])?,
                train_ll: f64::NAN,
                coverage: reg::coverage(&mean[..n_train], &sd[..n_train], &y, 2.0)?,
                sd_near: near(sd),
                sd_star: sd[star],
                mean_star: mean[star],
                parts: SdParts::of(small, n_train, star),
            });
        }
    }
    for r in &rows {
        if !r.fit.flat_stretches.is_empty() {
            let stretches: Vec<String> = r
                .fit
                .flat_stretches
                .iter()
                .map(|(a, b)| format!("[{a:.2}, {b:.2}]"))
                .collect();
            out.log(&format!(
                "warning: {}: the mean misses half or more of the data's swing in {} of {} \
                 windows of {} points, over x in {}",
                r.model,
                r.fit.flat_windows,
                r.fit.windows,
                r.fit.window,
                stretches.join(", ")
            ));
        }
    }
    let table = summary_table(&rows, inputs.x_all[star]);
    let figures = out.subdir("figures")?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, "summary")?;
    predictions_table(&inputs, &results, gp.as_ref()).write_all(&tables, "predictions")?;

    if co2cfg.report == Co2Report::Paper {
        draw_fig2(
            &inputs,
            &results,
            gp.as_ref(),
            &co2cfg,
            &figures.join("fig2_co2"),
        )?;
        draw_fig3(
            &inputs,
            &results,
            &co2cfg,
            &figures.join("fig3_relu_samples"),
        )?;
    } else {
        draw_sd_curves(&inputs, &results, &figures)?;
    }
    draw_sd_parts(&inputs, &results, &figures)?;
    let curves: Vec<Curve> = results
        .iter()
        .map(|r| Curve::of(&r.name, &r.train))
        .collect();
    crate::curves::write(
        out,
        "",
        crate::curves::Labels {
            table: "CO2 training curves: the objective on each logged step's batch (dropout on), per run",
            figure: "CO2: training loss per run",
            loss: "training loss (objective on the batch)",
        },
        &curves,
    )?;
    let md = table.to_markdown();
    out.log(&format!("\n{md}"));
    Ok(())
}

impl Co2Inputs {
    fn new(data: &co2::Co2Data) -> Result<Self> {
        let read = |t: &Tensor, what: &str| {
            to_vec_f32(t).with_context(|| format!("reading the CO2 {what} tensor"))
        };
        let x_train = read(&data.x_train, "training inputs")?;
        let y_train = read(&data.y_train, "training targets")?;
        let mut x_all = x_train.clone();
        x_all.extend(read(&data.x_test, "test inputs")?);
        Ok(Self {
            x_train,
            y_train,
            x_all,
        })
    }

    /// An own table with one feature: x and y standardised over its rows (so that x* and the
    /// table's values are in the same units as for the CO2 series), rows in order of x, and a
    /// grid of inputs from the smallest x to x*.
    fn from_table(t: &mcd_datasets::OwnTable, x_star: f64) -> Result<Self> {
        if t.features.len() != 1 {
            anyhow::bail!(
                "{}: the co2 study fits y against one input, but the features are {} ({}): \
                 set data.features to one column",
                t.path.display(),
                t.features.len(),
                t.features.join(", ")
            );
        }
        let (xm, xs) = mcd_datasets::standardise(&t.x, t.rows, 1);
        let (ym, ys) = mcd_datasets::standardise(&t.y, t.rows, 1);
        let mut rows: Vec<(f32, f32)> =
            t.x.iter()
                .zip(&t.y)
                .map(|(x, y)| (((x - xm[0]) / xs[0]) as f32, ((y - ym[0]) / ys[0]) as f32))
                .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let x_train: Vec<f32> = rows.iter().map(|r| r.0).collect();
        let y_train: Vec<f32> = rows.iter().map(|r| r.1).collect();
        let lo = f64::from(x_train[0]);
        let hi = x_star.max(f64::from(x_train[x_train.len() - 1]));
        let mut x_all = x_train.clone();
        x_all.extend(
            (0..TABLE_GRID_POINTS)
                .map(|i| (lo + (hi - lo) * i as f64 / (TABLE_GRID_POINTS - 1) as f64) as f32),
        );
        Ok(Self {
            x_train,
            y_train,
            x_all,
        })
    }
}

fn run_one(
    run: &RunConfig,
    co2cfg: &Co2Config,
    inputs: &Co2Inputs,
    cache: &WeightCache,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Option<RunResult>> {
    let n_train = inputs.x_train.len();
    let x_all_t = column(&inputs.x_all, ctx.device);
    let mut spec = run.model.mlp_spec(1, 1);
    spec.first_layer = run.model.first_layer_slope.map(|slope| {
        let (low, high) = inputs
            .x_train
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| {
                (lo.min(f64::from(x)), hi.max(f64::from(x)))
            });
        SpreadFirstLayer { slope, low, high }
    });
    let (trainer, tau) = run.train_spec(TrainLength::Iterations(co2cfg.iterations), n_train)?;
    let weight_decay = trainer.weight_decay;
    let method = run.model.method;
    let mut vs = nn::VarStore::new(ctx.device);
    let model = Regressor::new(method, &vs.root(), &spec, run.seed, tau)
        .with_adversarial(run.trainer.adversarial);
    let cache_name = model.cache_name();
    let warmup_steps = run.trainer.dropout_warmup_steps(trainer.iterations);
    let key = Key {
        schema: SCHEMA,
        study: StudyKind::Co2,
        model: &model.spec,
        train: &trainer,
        seed: run.seed,
        data: &DataFingerprint::of_values(&inputs.x_train, &inputs.y_train),
        method: &cache_name,
        dropout_warmup: warmup_steps,
    }
    .hash()?;
    let train = load_or_train(cache, &key, &mut vs, ctx, out, &run.name, |vs| {
        let mut sink = ctx.display.sink(&run.name);
        model
            .train(
                vs,
                &column(&inputs.x_train, ctx.device),
                &column(&inputs.y_train, ctx.device),
                &trainer,
                warmup_steps,
                sink.as_mut(),
            )
            .with_context(|| format!("training run `{}`", run.name))
    })?;
    let mut extras = if warmup_steps > 0 {
        format!(", dropout warm-up over the first {warmup_steps} steps")
    } else {
        String::new()
    };
    if model.adversarial > 0.0 {
        extras += &format!(
            ", adversarial training (step {} of each input's range)",
            model.adversarial
        );
    }
    out.log(&format!(
        "[{}] {} it, {:.1}s, final loss {:.4}, weight decay {weight_decay:.3e}, tau {tau:.4}{extras}",
        run.name, train.iterations, train.seconds, train.final_loss
    ));
    // What the method learnt beside the weights (concrete dropout: p per layer).
    let learned = model.learned(&vs);
    for (what, v) in &learned {
        out.log(&format!("[{}] learnt {what}: {v:.4}", run.name));
    }
    if !learned.is_empty() && train.tracked.is_none() {
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
    if !learned.is_empty() {
        let mut csv = String::from("method,parameter,value\n");
        for (what, v) in &learned {
            csv.push_str(&format!("{},\"{what}\",{v}\n", method.name()));
        }
        out.subdir("tables")?;
        out.write(&format!("tables/learned_{}.csv", run.name), &csv)?;
    }

    let predict_started = Instant::now();
    let mc = McConfig {
        samples: co2cfg.samples,
        memory_budget_bytes: run.predict.memory_budget_bytes,
        seed: run.seed ^ PREDICT_SEED,
    };
    let passes = model.passes(&x_all_t, &mc)?;
    let n_all = inputs.x_all.len();
    let pred = method.regression_predictive(&passes, tau)?;
    let train_ll =
        method.regression_log_likelihood(&passes.inputs(0..n_train), &inputs.y_train, tau)?;
    let standard = model.point(&x_all_t)?;
    // Fig. 3's few passes, for ReLU nets whose passes differ (an ensemble's members without
    // dropout give the same predictive at any T).
    let stochastic = run.model.dropout > 0.0 || run.model.input_dropout > 0.0;
    let small = if run.model.activation == Activation::Relu
        && stochastic
        && co2cfg.small_samples < mc.samples
    {
        let mc_small = McConfig {
            samples: co2cfg.small_samples,
            ..mc
        };
        let s = model
            .passes(&x_all_t, &mc_small)
            .context("the small-T passes")?;
        Some((mc_small.samples, method.regression_predictive(&s, tau)?))
    } else {
        None
    };
    out.log(&format!(
        "[{}] {} MC passes over {n_all} inputs in {:.2}s",
        run.name,
        mc.samples,
        predict_started.elapsed().as_secs_f64()
    ));
    Ok(Some(RunResult {
        name: run.name.clone(),
        method: method.name(),
        label: method.label(),
        activation: run.model.activation,
        dropout: run.model.dropout,
        hidden: hidden_label(&run.model.hidden),
        dropout_warmup: run.trainer.dropout_warmup,
        samples: mc.samples,
        tau: pred.tau.unwrap_or(f64::NAN),
        weight_decay,
        train,
        pred,
        standard,
        small,
        train_ll,
    }))
}

/// Exact GP with hyperparameters by maximum marginal likelihood: (mean, sd, seconds).
fn fit_gp(inputs: &Co2Inputs, out: &OutputDir) -> Result<(Vec<f64>, Vec<f64>, f64)> {
    let started = Instant::now();
    let x: Vec<f64> = inputs.x_train.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f64> = inputs.y_train.iter().map(|&v| f64::from(v)).collect();
    let init = GpHyper {
        length_scale: 0.1,
        signal_var: 1.0,
        noise_var: 0.01,
    };
    let gp = Gp::fit_optimised(&x, 1, &y, init).context("fitting the GP baseline")?;
    let xs: Vec<f64> = inputs.x_all.iter().map(|&v| f64::from(v)).collect();
    let pred = gp.predict(&xs, 1).context("GP prediction")?;
    let (mean, var) = (pred.mean, pred.var);
    let secs = started.elapsed().as_secs_f64();
    let h = gp.hyper();
    out.log(&format!(
        "GP: length-scale {:.4}, signal var {:.4}, noise var {:.2e}, log marginal likelihood {:.2} ({secs:.2}s)",
        h.length_scale,
        h.signal_var,
        h.noise_var,
        gp.log_marginal_likelihood()
    ));
    Ok((mean, var.iter().map(|v| v.max(0.0).sqrt()).collect(), secs))
}

fn nearest(xs: &[f32], target: f64) -> usize {
    xs.iter()
        .enumerate()
        .min_by(|a, b| {
            (f64::from(*a.1) - target)
                .abs()
                .total_cmp(&(f64::from(*b.1) - target).abs())
        })
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Mean predictive sd over the training inputs with x >= `from`.
fn near_mean(x: &[f32], sd: &[f64], from: f64) -> f64 {
    let picked: Vec<f64> = x
        .iter()
        .zip(sd)
        .filter(|(x, _)| f64::from(**x) >= from)
        .map(|(_, s)| *s)
        .collect();
    picked.iter().sum::<f64>() / picked.len().max(1) as f64
}

fn summary_table(rows: &[Row], x_star: f32) -> Table {
    let f = |get: fn(&Row) -> f64| Values::F64(rows.iter().map(get).collect());
    Table::from_columns(
        format!("CO2 extrapolation; x* = {x_star:.3}"),
        vec![
            Column::new(
                "model",
                Values::Str(rows.iter().map(|r| r.model.clone()).collect()),
            ),
            Column::new(
                "activation",
                Values::Str(rows.iter().map(|r| r.run.activation.clone()).collect()),
            ),
            Column::new("dropout", f(|r| r.run.dropout)),
            Column::new(
                "hidden",
                Values::Str(rows.iter().map(|r| r.run.hidden.clone()).collect()),
            ),
            Column::new("dropout_warmup", f(|r| r.run.dropout_warmup)),
            Column::new("T", f(|r| r.samples)),
            Column::new("tau", f(|r| r.tau)),
            Column::new("weight_decay", f(|r| r.run.weight_decay)),
            Column::new("iterations", f(|r| r.run.iterations)),
            Column::new("train_seconds", f(|r| r.run.train_seconds)),
            Column::new("train_rmse", f(|r| r.train_rmse)),
            Column::new("worst_window_rmse", f(|r| r.fit.worst_rmse)),
            Column::new("flat_windows", f(|r| r.fit.flat_windows as f64)),
            Column::new("train_ll", f(|r| r.train_ll)),
            Column::new("coverage_2sd", f(|r| r.coverage)),
            Column::new("sd_near_data", f(|r| r.sd_near)),
            Column::new("sd_at_x_star", f(|r| r.sd_star)),
            Column::new("sd_ratio", f(|r| r.sd_star / r.sd_near)),
            Column::new("mean_at_x_star", f(|r| r.mean_star)),
            Column::new("epistemic_sd_train", f(|r| r.parts.epistemic_train)),
            Column::new("aleatoric_sd_train", f(|r| r.parts.aleatoric_train)),
            Column::new("epistemic_sd_at_x_star", f(|r| r.parts.epistemic_star)),
            Column::new("aleatoric_sd_at_x_star", f(|r| r.parts.aleatoric_star)),
        ],
    )
    .expect("all columns have one value per row")
}

/// Hidden widths as tables print them: "4 x 256", or "64-32" when they differ.
fn hidden_label(widths: &[usize]) -> String {
    match widths {
        [] => "none".into(),
        [w, rest @ ..] if rest.iter().all(|v| v == w) => format!("{} x {w}", widths.len()),
        _ => widths
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// Per-input predictions of every model (the uncertainties, saved per example).
fn predictions_table(
    inputs: &Co2Inputs,
    results: &[RunResult],
    gp: Option<&(Vec<f64>, Vec<f64>, f64)>,
) -> Table {
    let mut cols = vec![Column::new(
        "x",
        Values::F64(inputs.x_all.iter().map(|&v| f64::from(v)).collect()),
    )];
    let n_train = inputs.y_train.len();
    let y: Vec<f64> = (0..inputs.x_all.len())
        .map(|i| inputs.y_train.get(i).map_or(f64::NAN, |&v| f64::from(v)))
        .collect();
    cols.push(Column::new("y", Values::F64(y)));
    debug_assert!(n_train <= inputs.x_all.len());
    if let Some((mean, sd, _)) = gp {
        cols.push(Column::new("gp_mean", Values::F64(mean.clone())));
        cols.push(Column::new("gp_sd", Values::F64(sd.clone())));
    }
    for r in results {
        cols.push(Column::new(
            format!("{}_standard", r.name),
            Values::F64(r.standard.clone()),
        ));
        cols.push(Column::new(
            format!("{}_mean", r.name),
            Values::F64(r.pred.mean.clone()),
        ));
        cols.push(Column::new(
            format!("{}_sd", r.name),
            Values::F64(r.pred.sd.clone()),
        ));
        // A method that learns the noise per input: both parts per input.
        if r.pred.tau.is_none() {
            cols.push(Column::new(
                format!("{}_epistemic_sd", r.name),
                Values::F64(r.pred.epistemic_sd.clone()),
            ));
            cols.push(Column::new(
                format!("{}_aleatoric_sd", r.name),
                Values::F64(r.pred.aleatoric_sd.clone()),
            ));
        }
    }
    Table::from_columns("CO2 predictions per input", cols)
        .expect("all columns have one value per input")
}

fn panel(
    inputs: &Co2Inputs,
    title: String,
    mean: &[f64],
    sd: &[f64],
    band_sd: f64,
    x_star: f64,
) -> BandPanel {
    BandPanel {
        title,
        x_obs: inputs.x_train.iter().map(|&v| f64::from(v)).collect(),
        y_obs: inputs.y_train.iter().map(|&v| f64::from(v)).collect(),
        x_pred: inputs.x_all.iter().map(|&v| f64::from(v)).collect(),
        mean: mean.to_vec(),
        sd: sd.to_vec(),
        band_sd,
        train_end: inputs.x_train.iter().copied().fold(f32::MIN, f32::max) as f64,
        x_star: Some(x_star),
        y_range: None,
    }
}

fn draw_fig2(
    inputs: &Co2Inputs,
    results: &[RunResult],
    gp: Option<&(Vec<f64>, Vec<f64>, f64)>,
    cfg: &Co2Config,
    stem: &std::path::Path,
) -> Result<()> {
    let mut panels = Vec::new();
    let mc = |act| {
        results
            .iter()
            .find(|r| r.activation == act && r.is_mc_dropout())
    };
    let (relu, tanh) = (mc(Activation::Relu), mc(Activation::Tanh));
    if let Some(r) = relu.or(results.first()) {
        let zeros = vec![0.0; r.standard.len()];
        panels.push(panel(
            inputs,
            format!("(a) Standard dropout ({})", r.activation),
            &r.standard,
            &zeros,
            2.0,
            cfg.x_star,
        ));
    }
    if let Some((mean, sd, _)) = gp {
        panels.push(panel(
            inputs,
            "(b) Gaussian process (SE kernel)".into(),
            mean,
            sd,
            2.0,
            cfg.x_star,
        ));
    }
    if let Some(r) = relu {
        panels.push(panel(
            inputs,
            format!("(c) MC dropout, ReLU (T={})", r.samples),
            &r.pred.mean,
            &r.pred.sd,
            cfg.band_sd_relu,
            cfg.x_star,
        ));
    }
    if let Some(r) = tanh {
        panels.push(panel(
            inputs,
            format!("(d) MC dropout, TanH (T={})", r.samples),
            &r.pred.mean,
            &r.pred.sd,
            cfg.band_sd_tanh,
            cfg.x_star,
        ));
    }
    // Other methods' runs, one panel each after the paper's four.
    for (r, letter) in results.iter().filter(|r| !r.is_mc_dropout()).zip('e'..) {
        let band = match r.activation {
            Activation::Tanh => cfg.band_sd_tanh,
            _ => cfg.band_sd_relu,
        };
        panels.push(panel(
            inputs,
            format!(
                "({letter}) {}, {} (T={})",
                r.title(),
                r.activation,
                r.samples
            ),
            &r.pred.mean,
            &r.pred.sd,
            band,
            cfg.x_star,
        ));
    }
    band_figure(&panels, 2, stem)?;
    Ok(())
}

fn draw_fig3(
    inputs: &Co2Inputs,
    results: &[RunResult],
    cfg: &Co2Config,
    stem: &std::path::Path,
) -> Result<()> {
    let Some(r) = results
        .iter()
        .find(|r| r.small.is_some() && r.is_mc_dropout())
    else {
        return Ok(());
    };
    let (t, small) = r.small.as_ref().expect("checked above");
    let panels = [
        panel(
            inputs,
            format!("MC dropout, ReLU, T={t}"),
            &small.mean,
            &small.sd,
            cfg.band_sd_relu,
            cfg.x_star,
        ),
        panel(
            inputs,
            format!("MC dropout, ReLU, T={}", r.samples),
            &r.pred.mean,
            &r.pred.sd,
            cfg.band_sd_relu,
            cfg.x_star,
        ),
    ];
    band_figure(&panels, 2, stem)?;
    Ok(())
}

/// Dropout-rate comparison: predictive sd against x, one line per run, one plot per activation.
fn draw_sd_curves(inputs: &Co2Inputs, results: &[RunResult], dir: &std::path::Path) -> Result<()> {
    let x: Vec<f64> = inputs.x_all.iter().map(|&v| f64::from(v)).collect();
    let train_end = inputs.x_train.iter().copied().fold(f32::MIN, f32::max) as f64;
    for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.activation == act).collect();
        // Name the width too where the runs' widths differ.
        let widths_differ = runs.iter().any(|r| r.hidden != runs[0].hidden);
        let series: Vec<Series> = runs
            .iter()
            .map(|r| Series {
                label: match (r.is_mc_dropout(), widths_differ) {
                    (true, false) => format!("p = {}", r.dropout),
                    (true, true) => format!("p = {}, {}", r.dropout, r.hidden),
                    (false, _) => format!("{}, p = {}", r.label, r.dropout),
                },
                x: x.clone(),
                y: r.pred.sd.clone(),
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        line_figure(
            &format!("Predictive sd against x, MC dropout {act}"),
            "x (standardised)",
            "predictive sd",
            &series,
            &[(train_end, "end of training data")],
            true,
            &dir.join(format!("sd_vs_x_{act}")),
        )?;
    }
    Ok(())
}

/// For each run whose method learns the noise per input: its predictive sd against x with the
/// epistemic and aleatoric parts (`sd_parts_<run>`).
fn draw_sd_parts(inputs: &Co2Inputs, results: &[RunResult], dir: &std::path::Path) -> Result<()> {
    let x: Vec<f64> = inputs.x_all.iter().map(|&v| f64::from(v)).collect();
    let train_end = inputs.x_train.iter().copied().fold(f32::MIN, f32::max) as f64;
    for r in results.iter().filter(|r| r.pred.tau.is_none()) {
        let series = |label: &str, y: &[f64]| Series {
            label: label.into(),
            x: x.clone(),
            y: y.to_vec(),
        };
        let stem: String = r
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        line_figure(
            &format!("Predictive sd and its parts, {}", r.title()),
            "x (standardised)",
            "sd",
            &[
                series("total", &r.pred.sd),
                series("epistemic", &r.pred.epistemic_sd),
                series("aleatoric", &r.pred.aleatoric_sd),
            ],
            &[(train_end, "end of training data")],
            true,
            &dir.join(format!("sd_parts_{stem}")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_and_near_mean() {
        let x = [0.0f32, 1.0, 2.0, 3.0];
        assert_eq!(nearest(&x, 2.2), 2);
        assert_eq!(near_mean(&x, &[1.0, 2.0, 3.0, 4.0], 1.5), 3.5);
    }
}
