//! Concrete dropout's synthetic study (Gal, Hron & Kendall 2017, "Concrete Dropout", the
//! synthetic experiment of their Keras notebook `concrete-dropout-keras.ipynb`): how the learnt
//! drop rates and the aleatoric and epistemic sd depend on the amount of data.
//!
//! Data: y = 2 x + 8 + e with x ~ N(0, 1) and e ~ N(0, 1), drawn in Rust from seeds derived
//! from the run seed, N and the repetition (no files). For every N of
//! `concrete_synthetic.sizes` and every repetition, N training points and
//! `concrete_synthetic.test_points` held-out points come from one stream, as in the authors'
//! `gen_data(N + 1000)`; the held-out x are again ~ N(0, 1), and every number in the tables is
//! measured on them.
//!
//! The net is the authors': the MLP of `model.hidden` with a concrete dropout layer before
//! every Linear (the one on the input when `model.input_dropout` > 0, the authors' net has it)
//! and a mean and a log-variance output, each behind its own concrete layer
//! (`ConcreteMlp::with_split_head`), every rate starting at `model.dropout` (input:
//! `model.input_dropout`). It minimises the heteroscedastic Gaussian NLL plus the concrete
//! regulariser with `weight_reg = l^2 / (tau N)` and `dropout_reg = 2 / (tau N)` (the authors:
//! l = 1e-4, tau = 1), half the authors' objective (`methods::concrete_dropout`). Every net
//! trains for `trainer.iterations` steps whatever its N. Prediction: T = `predict.samples`
//! passes with the relaxed masks; the aleatoric sd of a point is sqrt(mean over passes of
//! exp(log-variance)), the epistemic sd the sd over passes of the mean output, each averaged
//! over the held-out points.

use anyhow::{Context as _, Result};
use mcd_models::mc::{mc_samples, to_vec_f32, McConfig};
use mcd_models::rng::{splitmix64, SeededRng};
use mcd_report::{spread_figure, Column, SpreadSeries, Table, Values};
use tch::{nn, Tensor};

use super::runs_unless_task;
use crate::cache::{load_or_train, DataFingerprint, Key, TrainSummary, WeightCache, SCHEMA};
use crate::config::raw::{RawArch, RawRun};
use crate::config::{
    Checker, ConcreteSyntheticConfig, ConfigError, DataSource, Experiment, Regularisation,
    RegularisationRule, Rules, RunConfig, StudyConfig, StudyKind, TrainLength, TrainSettings,
};
use crate::methods::concrete_dropout::{ConcreteDropout, ConcreteMlp, ConcreteObjective};
use crate::methods::heteroscedastic::{Heteroscedastic, HeteroscedasticNll};
use crate::methods::{Method, Passes, Use};
use crate::output::OutputDir;
use crate::{Context, Mode};

/// The data's line and noise: y = SLOPE x + INTERCEPT + NOISE_SD e.
pub const SLOPE: f64 = 2.0;
pub const INTERCEPT: f64 = 8.0;
pub const NOISE_SD: f64 = 1.0;

/// Salts of the seeds derived for each (N, repetition).
const DATA_SALT: u64 = 0x0DA7_A5E7;
const NET_SALT: u64 = 0x00E7_5EED;
const SHUFFLE_SALT: u64 = 0x05A0_FF1E;
const PREDICT_SALT: u64 = 0x00C0_FFEE;

/// `n` points of y = 2 x + 8 + e, x and e ~ N(0, 1), from `seed`: (x, y).
pub fn generate(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SeededRng::new(seed);
    (0..n)
        .map(|_| {
            let x = rng.next_normal();
            let e = rng.next_normal();
            (x as f32, (SLOPE * x + INTERCEPT + NOISE_SD * e) as f32)
        })
        .unzip()
}

/// The seed of one (N, repetition)'s data, weights, mini-batch order or masks (`salt`).
fn derived_seed(run_seed: u64, n: usize, repeat: usize, salt: u64) -> u64 {
    let job = splitmix64(((n as u64) << 20) ^ repeat as u64);
    splitmix64(run_seed ^ splitmix64(salt ^ job))
}

/// The study (registered in [`super::study`]).
pub struct ConcreteSynthetic;

impl super::Study for ConcreteSynthetic {
    fn rules(&self) -> Rules {
        Rules {
            arch: RawArch::Mlp,
            default_hidden: false,
            searched_dropout: None,
            fixed_input_dropout: None,
            regularisation: RegularisationRule::Prior,
            uses: Use::ConcreteHeteroscedastic,
            generated_data: true,
        }
    }

    fn check(
        &self,
        c: &Checker,
        raw: &RawRun,
        _: &DataSource,
        _: &TrainSettings,
        _: &Regularisation,
    ) -> Result<StudyConfig, ConfigError> {
        crate::config::concrete_synthetic::check(c, raw)
    }

    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
        run(exp, ctx, out)
    }
}

/// A run's section.
fn section(run: &RunConfig) -> &ConcreteSyntheticConfig {
    match &run.study {
        StudyConfig::ConcreteSynthetic(c) => c,
        other => unreachable!(
            "validation: a concrete_synthetic experiment has {:?} runs",
            other.kind()
        ),
    }
}

/// One net to train: a run's (N, repetition).
struct Job<'a> {
    run: &'a RunConfig,
    n: usize,
    /// 0-based.
    repeat: usize,
    /// How logs and progress name it.
    label: String,
}

/// What one net gave, on its held-out points.
struct JobResult {
    run: String,
    n: usize,
    repeat: usize,
    /// (column, learnt p) in net order: input, hidden layers, mean head, log-variance head.
    rates: Vec<(String, f64)>,
    aleatoric_sd: f64,
    epistemic_sd: f64,
    test_rmse: f64,
    test_ll: f64,
    weight_reg: f64,
    dropout_reg: f64,
    train: TrainSummary,
}

/// A host vector as an [n, 1] tensor on `device`.
fn column(v: &[f32], device: tch::Device) -> Tensor {
    Tensor::from_slice(v)
        .view([v.len() as i64, 1])
        .to_device(device)
}

/// Runs the study into `out`.
pub fn run(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let several = exp.runs.len() > 1;
    let jobs: Vec<Job> = exp
        .runs
        .iter()
        .flat_map(|run| {
            let cfg = section(run);
            cfg.sizes.iter().flat_map(move |&n| {
                (0..cfg.repeats).map(move |repeat| Job {
                    run,
                    n,
                    repeat,
                    label: if several {
                        format!("{} N={n} rep {}", run.name, repeat + 1)
                    } else {
                        format!("N={n} rep {}", repeat + 1)
                    },
                })
            })
        })
        .collect();
    out.log(&format!(
        "concrete_synthetic: y = {SLOPE} x + {INTERCEPT} + e, x and e ~ N(0, 1); {} net(s)",
        jobs.len()
    ));
    let cache = WeightCache::new(&ctx.cache_dir.join("weights"));
    let Some(results) = runs_unless_task(&jobs, ctx, |job| run_one(job, &cache, ctx, out))? else {
        return Ok(());
    };

    let table = summary_table(&results, several);
    let tables = out.subdir("tables")?;
    table.write_all(&tables, "summary")?;
    let figures = out.subdir("figures")?;
    draw_figures(&results, several, &figures)?;
    let curves: Vec<crate::curves::Curve> = results
        .iter()
        .map(|r| {
            let name = if several {
                format!("{} N={} rep {}", r.run, r.n, r.repeat + 1)
            } else {
                format!("N={} rep {}", r.n, r.repeat + 1)
            };
            crate::curves::Curve::of(&name, &r.train)
        })
        .collect();
    crate::curves::write(
        out,
        "",
        crate::curves::Labels {
            table: "Concrete synthetic training curves: the objective on each logged step's batch \
                    (heteroscedastic NLL + concrete regulariser), per net",
            figure: "Training loss per net (N, repetition)",
            loss: "training loss (objective on the batch)",
        },
        &curves,
    )?;
    out.log(&format!("\n{}", table.to_markdown()));
    Ok(())
}

fn run_one(
    job: &Job,
    cache: &WeightCache,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Option<JobResult>> {
    let (run, n, repeat) = (job.run, job.n, job.repeat);
    let cfg = section(run);
    let (x, y) = generate(
        n + cfg.test_points,
        derived_seed(run.seed, n, repeat, DATA_SALT),
    );
    let (x_train, x_test) = x.split_at(n);
    let (y_train, y_test) = y.split_at(n);

    // A mean and a log-variance output.
    let spec = run.model.mlp_spec(1, 2);
    let (mut trainer, tau) = run.train_spec(TrainLength::Iterations(cfg.iterations), n)?;
    let (weight_reg, dropout_reg) =
        ConcreteDropout::coefficients(trainer.weight_decay, spec.dropout, tau, n);
    // The weight penalty is in the objective; each repetition has its own mini-batch order.
    trainer.weight_decay = 0.0;
    trainer.seed = derived_seed(run.seed, n, repeat, SHUFFLE_SALT);
    let net_seed = derived_seed(run.seed, n, repeat, NET_SALT);
    let mut vs = nn::VarStore::new(ctx.device);
    let net = ConcreteMlp::with_split_head(&vs.root(), &spec, net_seed, cfg.temperature);
    let objective =
        ConcreteObjective::new(&net, weight_reg, dropout_reg).with_data(HeteroscedasticNll);
    let method = format!(
        "concrete_dropout heteroscedastic split_head temperature={:e} tau={tau:e}",
        cfg.temperature
    );
    let key = Key {
        schema: SCHEMA,
        study: StudyKind::ConcreteSynthetic,
        model: &spec,
        train: &trainer,
        seed: net_seed,
        data: &DataFingerprint::of_values(x_train, y_train),
        method: &method,
        dropout_warmup: 0,
    }
    .hash()?;
    let train = load_or_train(cache, &key, &mut vs, ctx, out, &job.label, |vs| {
        let mut sink = ctx.display.sink(&job.label);
        mcd_trainer::train(
            vs,
            &net,
            &column(x_train, ctx.device),
            &column(y_train, ctx.device),
            &trainer,
            &objective,
            sink.as_mut(),
            &mut |_| None,
        )
        .with_context(|| format!("training `{}`", job.label))
    })?;
    let n_hidden = spec.hidden.len();
    let mut rates: Vec<(String, f64)> = net
        .rates()
        .into_iter()
        .map(|(i, _, p)| {
            let name = if i == 0 {
                "p_input".to_string()
            } else {
                format!("p_hidden{i}")
            };
            (name, p)
        })
        .collect();
    for (j, _, p) in net.head_rates() {
        rates.push((["p_mean_head", "p_logvar_head"][j.min(1)].to_string(), p));
    }
    debug_assert!(rates.len() <= n_hidden + 2);
    out.log(&format!(
        "[{}] {} it, {:.1}s, final loss {:.4}, weight_reg {weight_reg:.3e}, dropout_reg \
         {dropout_reg:.3e}; learnt {}",
        job.label,
        train.iterations,
        train.seconds,
        train.final_loss,
        rates
            .iter()
            .map(|(k, p)| format!("{k} {p:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if ctx.mode == Mode::TrainOnly {
        return Ok(None);
    }

    let passes = predict(
        &net,
        x_test,
        cfg.samples,
        run.predict.memory_budget_bytes,
        &spec.hidden,
        derived_seed(run.seed, n, repeat, PREDICT_SALT),
        ctx.device,
    )?;
    // The mixture of the passes' Gaussians; no tau term (the noise is learnt).
    let pred = Heteroscedastic.regression_predictive(&passes, f64::NAN)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(Some(JobResult {
        run: run.name.clone(),
        n,
        repeat,
        rates,
        aleatoric_sd: mean(&pred.aleatoric_sd),
        epistemic_sd: mean(&pred.epistemic_sd),
        test_rmse: mcd_evaluation::regression::rmse(&pred.mean, y_test)?,
        test_ll: Heteroscedastic.regression_log_likelihood(&passes, y_test, f64::NAN)?,
        weight_reg,
        dropout_reg,
        train,
    }))
}

/// T passes over `x` (two outputs each), in chunks of inputs whose activations fit in `budget`
/// bytes (four of the widest layer's per input and pass); chunk c draws its masks from
/// `seed ^ splitmix64(c)`.
fn predict(
    net: &ConcreteMlp,
    x: &[f32],
    samples: usize,
    budget: usize,
    hidden: &[usize],
    seed: u64,
    device: tch::Device,
) -> Result<Passes> {
    let widest = hidden.iter().copied().max().unwrap_or(1).max(1);
    let rows = (budget / (4 * widest * std::mem::size_of::<f32>())).clamp(1, x.len().max(1));
    let n = x.len();
    let mut data = vec![0f32; samples * n * 2];
    for (c, start) in (0..n).step_by(rows).enumerate() {
        let len = rows.min(n - start);
        let mc = McConfig {
            samples,
            memory_budget_bytes: budget,
            seed: seed ^ splitmix64(c as u64),
        };
        let chunk = to_vec_f32(&mc_samples(
            net,
            &column(&x[start..start + len], device),
            &mc,
        ))
        .context("reading the MC samples")?;
        // [T, len, 2] into [T, n, 2].
        for t in 0..samples {
            data[(t * n + start) * 2..(t * n + start + len) * 2]
                .copy_from_slice(&chunk[t * len * 2..(t + 1) * len * 2]);
        }
    }
    Ok(Passes {
        data,
        t: samples,
        n,
        out: 2,
    })
}

/// The numeric columns of a row, by name, in table order.
fn numbers(r: &JobResult) -> Vec<(String, f64)> {
    let mut v = r.rates.clone();
    v.extend([
        ("aleatoric_sd".to_string(), r.aleatoric_sd),
        ("epistemic_sd".to_string(), r.epistemic_sd),
        ("test_rmse".to_string(), r.test_rmse),
        ("test_ll".to_string(), r.test_ll),
        ("weight_reg".to_string(), r.weight_reg),
        ("dropout_reg".to_string(), r.dropout_reg),
        ("iterations".to_string(), r.train.iterations as f64),
        ("final_loss".to_string(), r.train.final_loss),
        ("train_seconds".to_string(), r.train.seconds),
    ]);
    v
}

/// The results of each (run, N), in order, with the run's name and N.
fn by_size(results: &[JobResult]) -> Vec<(&str, usize, Vec<&JobResult>)> {
    let mut groups: Vec<(&str, usize, Vec<&JobResult>)> = Vec::new();
    for r in results {
        match groups.last_mut() {
            Some((run, n, rs)) if *run == r.run && *n == r.n => rs.push(r),
            _ => groups.push((&r.run, r.n, vec![r])),
        }
    }
    groups
}

/// Mean and sample sd (NaN for one value) of `v`.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    (m, sd)
}

/// One row per (N, repetition) and a `mean` row per N (the mean over its repetitions).
fn summary_table(results: &[JobResult], several: bool) -> Table {
    let mut runs = Vec::new();
    let mut sizes = Vec::new();
    let mut repeats = Vec::new();
    let mut rows: Vec<Vec<(String, f64)>> = Vec::new();
    for (run, n, group) in by_size(results) {
        for r in &group {
            runs.push(run.to_string());
            sizes.push(n as i64);
            repeats.push((r.repeat + 1).to_string());
            rows.push(numbers(r));
        }
        let cols: Vec<Vec<(String, f64)>> = group.iter().map(|r| numbers(r)).collect();
        let mean_row = cols[0]
            .iter()
            .enumerate()
            .map(|(c, (name, _))| {
                let v: Vec<f64> = cols.iter().map(|row| row[c].1).collect();
                (name.clone(), mean_sd(&v).0)
            })
            .collect();
        runs.push(run.to_string());
        sizes.push(n as i64);
        repeats.push("mean".to_string());
        rows.push(mean_row);
    }
    let mut columns = Vec::new();
    if several {
        columns.push(Column::new("run", Values::Str(runs)));
    }
    columns.push(Column::new("N", Values::I64(sizes)));
    columns.push(Column::new("repeat", Values::Str(repeats)));
    // Every row has the same columns: all runs of one experiment have the same net depth, or
    // a missing rate is NaN.
    let mut names: Vec<String> = Vec::new();
    for row in &rows {
        for (name, _) in row {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    for name in names {
        let values = rows
            .iter()
            .map(|row| {
                row.iter()
                    .find(|(k, _)| *k == name)
                    .map_or(f64::NAN, |(_, v)| *v)
            })
            .collect();
        columns.push(Column::new(name, Values::F64(values)));
    }
    Table::from_columns(
        "Concrete dropout on y = 2x + 8 + e: learnt p and sds on held-out x ~ N(0, 1)",
        columns,
    )
    .expect("all columns have one value per row")
}

/// How the figures name a rate's column.
fn rate_label(column: &str) -> String {
    match column {
        "p_input" => "input".into(),
        "p_mean_head" => "mean head".into(),
        "p_logvar_head" => "log-variance head".into(),
        other => other
            .strip_prefix("p_hidden")
            .map_or(other.to_string(), |i| format!("hidden layer {i}")),
    }
}

/// p per layer, and the aleatoric and epistemic sd, against N (log x): mean ± sd over the
/// repetitions.
fn draw_figures(results: &[JobResult], several: bool, dir: &std::path::Path) -> Result<()> {
    let groups = by_size(results);
    let mut run_names: Vec<&str> = Vec::new();
    for (run, _, _) in &groups {
        if !run_names.contains(run) {
            run_names.push(run);
        }
    }
    let label = |run: &str, what: &str| {
        if several {
            format!("{run}: {what}")
        } else {
            what.to_string()
        }
    };
    // One series per (run, quantity): N, and the mean and sd over repetitions at each N.
    let series = |run: &str, what: String, get: &dyn Fn(&JobResult) -> Option<f64>| {
        let mut s = SpreadSeries {
            label: what,
            x: Vec::new(),
            mean: Vec::new(),
            spread: Vec::new(),
        };
        for (r, n, rs) in groups.iter().filter(|g| g.0 == run) {
            debug_assert_eq!(*r, run);
            let v: Vec<f64> = rs.iter().filter_map(|r| get(r)).collect();
            if v.is_empty() {
                continue;
            }
            let (m, sd) = mean_sd(&v);
            s.x.push(*n as f64);
            s.mean.push(m);
            s.spread.push(sd);
        }
        s
    };
    let mut rates = Vec::new();
    let mut aleatoric = Vec::new();
    let mut epistemic = Vec::new();
    for run in &run_names {
        let first = results
            .iter()
            .find(|r| r.run == *run)
            .expect("a run has results");
        for (name, _) in &first.rates {
            let get = |r: &JobResult| r.rates.iter().find(|(k, _)| k == name).map(|(_, p)| *p);
            rates.push(series(run, label(run, &rate_label(name)), &get));
        }
        aleatoric.push(series(run, label(run, "aleatoric sd"), &|r| {
            Some(r.aleatoric_sd)
        }));
        epistemic.push(series(run, label(run, "epistemic sd"), &|r| {
            Some(r.epistemic_sd)
        }));
    }
    // The data's noise sd, which the aleatoric sd should find.
    if let Some(s) = aleatoric.first() {
        aleatoric.push(SpreadSeries {
            label: format!("noise sd of the data ({NOISE_SD})"),
            x: s.x.clone(),
            mean: vec![NOISE_SD; s.x.len()],
            spread: vec![0.0; s.x.len()],
        });
    }
    let bars = "mean ± sd over repetitions";
    spread_figure(
        &format!("Learnt drop rate per layer ({bars})"),
        "N (training points, log scale)",
        "drop probability p",
        &rates,
        true,
        &dir.join("p_vs_n"),
    )?;
    spread_figure(
        &format!("Aleatoric sd on held-out x ({bars})"),
        "N (training points, log scale)",
        "aleatoric sd",
        &aleatoric,
        true,
        &dir.join("aleatoric_sd_vs_n"),
    )?;
    spread_figure(
        &format!("Epistemic sd on held-out x ({bars})"),
        "N (training points, log scale)",
        "epistemic sd",
        &epistemic,
        true,
        &dir.join("epistemic_sd_vs_n"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_follow_the_line_with_unit_noise() {
        let n = 200_000;
        let (x, y) = generate(n, 7);
        let nf = n as f64;
        let mx = x.iter().map(|&v| f64::from(v)).sum::<f64>() / nf;
        let my = y.iter().map(|&v| f64::from(v)).sum::<f64>() / nf;
        let sxx: f64 = x.iter().map(|&v| (f64::from(v) - mx).powi(2)).sum();
        let sxy: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (f64::from(a) - mx) * (f64::from(b) - my))
            .sum();
        // Least squares.
        let slope = sxy / sxx;
        let intercept = my - slope * mx;
        let resid_sd = (x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (f64::from(b) - intercept - slope * f64::from(a)).powi(2))
            .sum::<f64>()
            / (nf - 2.0))
            .sqrt();
        // Standard errors at this N: slope and intercept ~0.002, sd ~0.0016.
        assert!((slope - SLOPE).abs() < 0.01, "slope {slope}");
        assert!(
            (intercept - INTERCEPT).abs() < 0.01,
            "intercept {intercept}"
        );
        assert!((resid_sd - NOISE_SD).abs() < 0.01, "noise sd {resid_sd}");
        // x ~ N(0, 1).
        assert!(mx.abs() < 0.01, "mean x {mx}");
        assert!(
            ((sxx / nf).sqrt() - 1.0).abs() < 0.01,
            "sd x {}",
            (sxx / nf).sqrt()
        );
        // The same seed gives the same data; another seed, other data.
        assert_eq!(generate(50, 7), generate(50, 7));
        assert_eq!(generate(50, 7).0[..], x[..50]);
        assert_ne!(generate(50, 8), generate(50, 7));
    }

    #[test]
    fn every_size_and_repetition_has_its_own_seeds() {
        let mut seen = std::collections::HashSet::new();
        for n in [10, 25, 1000] {
            for repeat in 0..3 {
                for salt in [DATA_SALT, NET_SALT, SHUFFLE_SALT, PREDICT_SALT] {
                    assert!(seen.insert(derived_seed(0, n, repeat, salt)));
                }
            }
        }
        assert_ne!(
            derived_seed(0, 10, 0, DATA_SALT),
            derived_seed(1, 10, 0, DATA_SALT)
        );
    }

    #[test]
    fn prediction_in_chunks_keeps_the_pass_major_layout() {
        use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![8],
            output_dim: 2,
            activation: Activation::Relu,
            dropout: 0.2,
            input_dropout: 0.1,
            init: InitScheme::GlorotUniform,
            first_layer: None,
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = ConcreteMlp::with_split_head(&vs.root(), &spec, 1, 0.1);
        let x: Vec<f32> = (0..7).map(|i| i as f32 / 7.0).collect();
        // 4 x 8 floats per input: a budget of 3 inputs' worth cuts 7 inputs into 3 + 3 + 1.
        let budget = 3 * 4 * 8 * 4;
        let p = predict(&net, &x, 5, budget, &spec.hidden, 11, tch::Device::Cpu).unwrap();
        assert_eq!((p.t, p.n, p.out, p.data.len()), (5, 7, 2, 5 * 7 * 2));
        // The second chunk (inputs 3..6) is its own call, seeded seed ^ splitmix64(1).
        let mc = McConfig {
            samples: 5,
            memory_budget_bytes: budget,
            seed: 11 ^ splitmix64(1),
        };
        let direct =
            to_vec_f32(&mc_samples(&net, &column(&x[3..6], tch::Device::Cpu), &mc)).unwrap();
        for t in 0..5 {
            for i in 0..3 {
                for o in 0..2 {
                    assert_eq!(
                        p.data[(t * 7 + 3 + i) * 2 + o],
                        direct[(t * 3 + i) * 2 + o],
                        "pass {t}, input {}, output {o}",
                        3 + i
                    );
                }
            }
        }
        // One chunk when the budget holds everything.
        let whole = predict(&net, &x, 5, 1 << 20, &spec.hidden, 11, tch::Device::Cpu).unwrap();
        let mc = McConfig {
            samples: 5,
            memory_budget_bytes: 1 << 20,
            seed: 11 ^ splitmix64(0),
        };
        let direct = to_vec_f32(&mc_samples(&net, &column(&x, tch::Device::Cpu), &mc)).unwrap();
        assert_eq!(whole.data, direct);
    }

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean_sd(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
        let (m, sd) = mean_sd(&[4.0]);
        assert_eq!(m, 4.0);
        assert!(sd.is_nan());
    }
}
