//! One module per study; `run` sets up the result folder around whichever the config names.

pub mod active_learning;
pub mod co2;
pub mod concrete_synthetic;
pub mod mnist;
pub mod uci;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::config::raw::RawRun;
use crate::config::{
    Checker, ConfigError, DataSource, Experiment, Regularisation, Rules, StudyConfig, StudyKind,
    TableSource, TrainSettings,
};
use crate::output::OutputDir;
use crate::tasks::Task;
use crate::Context;

/// A study: what it fixes in the common config sections, the check of its own section, its
/// tasks and its run. Every study is registered in [`study`].
pub trait Study: Sync {
    /// What validation applies to the common `model` and `precision` sections.
    fn rules(&self) -> Rules;

    /// Validates the study's own settings, once: its section (`co2:`, ...), the training length
    /// and whatever else it reads; the common sections are already checked. Nothing downstream
    /// checks them again.
    #[allow(clippy::result_large_err)]
    fn check(
        &self,
        c: &Checker,
        raw: &RawRun,
        data: &DataSource,
        trainer: &TrainSettings,
        regularisation: &Regularisation,
    ) -> Result<StudyConfig, ConfigError>;

    /// Runs every run of `exp` into `out` (in a task, `ctx.mode` says how far).
    fn run(&self, exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()>;

    /// The independent pieces of `exp`, for clusters (default: one per run).
    fn tasks(&self, exp: &Experiment) -> Result<Vec<Task>> {
        Ok(exp
            .runs
            .iter()
            .enumerate()
            .map(|(index, r)| Task::Run {
                index,
                label: format!("train run `{}`", r.name),
            })
            .collect())
    }

    /// Runs one of [`Study::tasks`] (default: its run alone).
    fn run_task(
        &self,
        exp: &Experiment,
        task: &Task,
        ctx: &Context,
        out: &OutputDir,
    ) -> Result<()> {
        let index = match task {
            Task::Run { index, .. } => *index,
            Task::Uci(unit) => unit.run,
        };
        let one = Experiment {
            runs: vec![exp.runs[index].clone()],
            ..exp.clone()
        };
        self.run(&one, ctx, out)
    }
}

/// The registry: every study, by the name configs give it (`study:`).
pub fn study(kind: StudyKind) -> &'static dyn Study {
    match kind {
        StudyKind::Co2 => &co2::Co2,
        StudyKind::MnistRotated => &mnist::MnistRotated,
        StudyKind::Uci => &uci::Uci,
        StudyKind::ConcreteSynthetic => &concrete_synthetic::ConcreteSynthetic,
        StudyKind::ActiveLearning => &active_learning::ActiveLearning,
    }
}

/// Runs the experiment into `results_root/<name>/` (atomically) and returns that folder.
pub fn run(exp: &Experiment, ctx: &Context, results_root: &Path) -> Result<PathBuf> {
    let out = OutputDir::create(results_root, &exp.name)?;
    match write_inputs(exp, ctx, &out).and_then(|_| study(exp.study).run(exp, ctx, &out)) {
        Ok(()) => out.commit(),
        Err(e) => {
            out.log(&format!("failed: {e:#}"));
            out.abandon();
            Err(e)
        }
    }
}

/// Reads an own table (`data.csv`), logs what was read and records the file's sha256 in the
/// result folder (`data.sha256`, in `sha256sum` format).
pub fn load_table(t: &TableSource, out: &OutputDir) -> Result<mcd_datasets::OwnTable> {
    let table = mcd_datasets::own::read_csv(&t.csv, &t.target, t.features.as_deref())?;
    out.log(&format!(
        "data: {} ({} rows; target `{}`; features {}; sha256 {})",
        t.csv.display(),
        table.rows,
        table.target,
        table.features.join(", "),
        table.sha256
    ));
    out.write(
        "data.sha256",
        &format!("{}  {}\n", table.sha256, t.csv.display()),
    )?;
    Ok(table)
}

/// Saves the original config and the resolved config of every run, and starts the log.
fn write_inputs(exp: &Experiment, ctx: &Context, out: &OutputDir) -> Result<()> {
    let text = std::fs::read_to_string(&exp.source)
        .with_context(|| format!("reading {}", exp.source.display()))?;
    out.write("config.yaml", &text)?;
    let resolved = exp
        .resolved_yaml()
        .context("serialising the resolved configs")?;
    out.write(
        "config.resolved.yaml",
        &format!(
            "# Resolved config of every run (base -> variant -> sweep point -> --set).\n{resolved}"
        ),
    )?;
    out.log(&format!(
        "experiment `{}` from {} ({} run(s)); device {:?}, {} thread(s); args: {}",
        exp.name,
        exp.source.display(),
        exp.runs.len(),
        ctx.device,
        ctx.threads,
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    Ok(())
}

/// [`parallel_runs`] over a study's runs, whose results are `None` in a task
/// (`Mode::TrainOnly`, training only): the results, or `None` when nothing follows training.
pub fn runs_unless_task<T: Sync, R: Send>(
    items: &[T],
    ctx: &Context,
    f: impl Fn(&T) -> Result<Option<R>> + Sync,
) -> Result<Option<Vec<R>>> {
    let results: Vec<R> = parallel_runs(items, ctx.threads, f)?
        .into_iter()
        .flatten()
        .collect();
    Ok((ctx.mode != crate::Mode::TrainOnly).then_some(results))
}

/// Runs `f` over `items` on a pool of `jobs` workers, each limiting libtorch to `threads / jobs`
/// intra-op threads so parallel runs do not oversubscribe the cores. Results keep input order.
pub fn parallel_runs<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use rayon::prelude::*;
    let jobs = items.len().clamp(1, threads.max(1));
    let per_job = (threads / jobs).max(1) as i32;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("starting the worker pool")?;
    pool.install(|| {
        items
            .par_iter()
            .map(|item| {
                tch::set_num_threads(per_job);
                f(item)
            })
            .collect()
    })
}
