//! Past one machine: a config as N independent tasks that write only their own files under a
//! shared results root, and a collect step that builds exactly the result folder one process
//! would have written. Slurm (or `xargs -P`) does the scheduling; this is the task protocol.
//!
//! - co2 and mnist_rotated: a task trains one run (variant / sweep point) into the weight cache.
//! - uci: a task computes one stack of splits of one data set into the resume cache.
//! - collect: every task must have finished for this exact config; then the study runs with
//!   nothing left to train (`Mode::CachedOnly`) and writes `results/<name>/` as usual.
//!
//! Under the results root, `.tasks/<name>/` holds `plan.json` (the config's hash and the task
//! list), one folder per finished task (`task_0003/`: `run.log`, `done.json`; written as a
//! temporary folder and renamed, so it is whole or absent), and the Slurm scripts and logs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Experiment;
use crate::output::OutputDir;
use crate::studies::{self, uci};
use crate::{Context, Mode};

/// One independent piece of a config.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Train run `index` of the experiment (co2, mnist_rotated).
    Run { index: usize, label: String },
    /// One stack of UCI splits.
    Uci(uci::Unit),
}

impl Task {
    pub fn label(&self) -> &str {
        match self {
            Task::Run { label, .. } | Task::Uci(uci::Unit { label, .. }) => label,
        }
    }
}

/// The tasks of an experiment, in a fixed order (indices are stable for one config).
pub fn plan(exp: &Experiment) -> Result<Vec<Task>> {
    studies::study(exp.study).tasks(exp)
}

/// sha256 of the study and every run's resolved document: what a task's output depends on.
pub fn config_hash(exp: &Experiment) -> Result<String> {
    let text = exp.resolved_yaml().context("serialising the runs")?;
    Ok(crate::cache::hex(&Sha256::digest(
        format!("{:?}\n{text}", exp.study).as_bytes(),
    )))
}

/// `.tasks/<name>/` under the results root.
pub fn tasks_dir(root: &Path, exp: &Experiment) -> PathBuf {
    root.join(".tasks").join(&exp.name)
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct PlanFile {
    config: String,
    config_hash: String,
    tasks: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    index: usize,
    config_hash: String,
    task: String,
    seconds: f64,
}

/// How to rerun tasks, for messages: `mcd task CONFIG [--set ...] --results DIR`.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `CONFIG [--set K=V]... [--seed N]`, shell-quoted.
    pub config_args: String,
    pub results: PathBuf,
}

impl Invocation {
    fn task(&self, index: usize) -> String {
        format!(
            "mcd task {} --index {index} --results {}",
            self.config_args,
            quote(&self.results.display().to_string())
        )
    }
}

/// Single-quotes a word for a POSIX shell where it needs it.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Reads `plan.json`, or writes it when absent; a plan of another config is an error.
fn ensure_plan(dir: &Path, exp: &Experiment, hash: &str, tasks: &[Task]) -> Result<()> {
    if let Some(existing) = read_plan(dir)? {
        return same_config(dir, &existing, exp, hash);
    }
    let file = PlanFile {
        config: exp.source.display().to_string(),
        config_hash: hash.to_string(),
        tasks: tasks.iter().map(|t| t.label().to_string()).collect(),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_string_pretty(&file)?;
    crate::cache::write_atomically(&dir.join("plan.json"), text.as_bytes())
}

/// A plan written for another config (or this one before it changed) is an error.
fn same_config(dir: &Path, existing: &PlanFile, exp: &Experiment, hash: &str) -> Result<()> {
    if existing.config_hash == hash {
        return Ok(());
    }
    bail!(
        "{}: these tasks belong to another config ({}, hash {}); {} hashes {}: the config \
         changed since its tasks were planned, or another config with the name `{}` uses \
         this results folder. Use another --results, or remove {} to start over",
        dir.join("plan.json").display(),
        existing.config,
        &existing.config_hash[..12],
        exp.source.display(),
        &hash[..12],
        exp.name,
        dir.display()
    )
}

fn read_plan(dir: &Path) -> Result<Option<PlanFile>> {
    let path = dir.join("plan.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a task plan (remove it to plan afresh)",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn task_name(index: usize) -> String {
    format!("task_{index:04}")
}

/// Whether task `index` finished for the config with this hash.
fn finished(dir: &Path, index: usize, hash: &str) -> bool {
    std::fs::read_to_string(dir.join(task_name(index)).join("done.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Done>(&t).ok())
        .is_some_and(|d| d.config_hash == hash && d.index == index)
}

/// The outcome of `mcd task`.
#[derive(Debug, PartialEq)]
pub enum TaskOutcome {
    /// Finished before: nothing to do.
    AlreadyDone,
    Done(PathBuf),
}

/// Runs task `index` into `root` (idempotent: a finished task is skipped; an unfinished one
/// starts over, and only a whole task folder ever appears).
pub fn run_task(exp: &Experiment, ctx: &Context, root: &Path, index: usize) -> Result<TaskOutcome> {
    let tasks = plan(exp)?;
    let Some(task) = tasks.get(index) else {
        bail!(
            "--index {index} is out of range: {} has {} task(s), indices 0 to {}",
            exp.source.display(),
            tasks.len(),
            tasks.len().saturating_sub(1)
        );
    };
    let hash = config_hash(exp)?;
    let dir = tasks_dir(root, exp);
    ensure_plan(&dir, exp, &hash, &tasks)?;
    if finished(&dir, index, &hash) {
        return Ok(TaskOutcome::AlreadyDone);
    }
    let started = Instant::now();
    let out = OutputDir::create(&dir, &task_name(index))?;
    let ctx = Context {
        mode: Mode::TrainOnly,
        ..ctx.clone()
    };
    out.log(&format!(
        "task {index} of {} ({}): {}",
        tasks.len(),
        exp.source.display(),
        task.label()
    ));
    let result = studies::study(exp.study)
        .run_task(exp, task, &ctx, &out)
        .and_then(|()| {
            let done = Done {
                index,
                config_hash: hash.clone(),
                task: task.label().to_string(),
                seconds: started.elapsed().as_secs_f64(),
            };
            out.write("done.json", &serde_json::to_string_pretty(&done)?)?;
            Ok(())
        });
    match result {
        Ok(()) => Ok(TaskOutcome::Done(out.commit()?)),
        Err(e) => {
            out.log(&format!("failed: {e:#}"));
            out.abandon();
            Err(e)
        }
    }
}

/// Builds `results/<name>/` from the finished tasks; lists the missing ones (with the commands
/// that rerun them) and writes nothing while any is missing.
pub fn collect(exp: &Experiment, ctx: &Context, root: &Path, how: &Invocation) -> Result<PathBuf> {
    let tasks = plan(exp)?;
    let hash = config_hash(exp)?;
    let dir = tasks_dir(root, exp);
    let Some(existing) = read_plan(&dir)? else {
        bail!(
            "no tasks of {} under {}: run them first (`{}` for each index from 0 to {}, or \
             `mcd slurm ... --submit`)",
            exp.source.display(),
            dir.display(),
            how.task(0).replace("--index 0", "--index I"),
            tasks.len().saturating_sub(1)
        );
    };
    same_config(&dir, &existing, exp, &hash)?;
    let missing: Vec<usize> = (0..tasks.len())
        .filter(|&i| !finished(&dir, i, &hash))
        .collect();
    if !missing.is_empty() {
        let mut msg = format!(
            "{} of {} tasks have not finished: {}; nothing was collected. Rerun them:",
            missing.len(),
            tasks.len(),
            missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        for &i in &missing {
            let _ = write!(msg, "\n  {}    # {}", how.task(i), tasks[i].label());
        }
        let _ = write!(
            msg,
            "\nor on Slurm: mcd slurm {} --results {} --indices {} --submit",
            how.config_args,
            quote(&how.results.display().to_string()),
            missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        bail!(msg);
    }
    let ctx = Context {
        mode: Mode::CachedOnly,
        ..ctx.clone()
    };
    studies::run(exp, &ctx, root)
}

/// Settings of the Slurm job array.
#[derive(Debug, Clone)]
pub struct SlurmSpec {
    /// At most this many tasks at once (`--array=...%K`).
    pub max_parallel: usize,
    pub cpus: usize,
    pub mem: String,
    pub time: String,
    pub partition: Option<String>,
    /// Ask for one GPU per task (`--device cuda`).
    pub gpu: bool,
    /// Only these task indices (a resubmission); None: all.
    pub indices: Option<Vec<usize>>,
}

/// The job array and the collect job, as sbatch scripts written into `.tasks/<name>/`.
pub fn write_slurm_scripts(
    exp: &Experiment,
    root: &Path,
    spec: &SlurmSpec,
    how: &Invocation,
    mcd_args: &str,
) -> Result<(PathBuf, PathBuf, usize)> {
    let tasks = plan(exp)?;
    if tasks.is_empty() {
        bail!("{} has no tasks to run", exp.source.display());
    }
    let hash = config_hash(exp)?;
    let dir = tasks_dir(root, exp);
    ensure_plan(&dir, exp, &hash, &tasks)?;
    let array = match &spec.indices {
        None => format!("0-{}", tasks.len() - 1),
        Some(list) => {
            if let Some(bad) = list.iter().find(|&&i| i >= tasks.len()) {
                bail!(
                    "--indices: task {bad} is out of range: {} has {} task(s), indices 0 to {}",
                    exp.source.display(),
                    tasks.len(),
                    tasks.len() - 1
                );
            }
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let exe = std::env::current_exe().context("locating the mcd binary")?;
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let dir_abs = dir.canonicalize().unwrap_or(dir.clone());
    let mut head = String::new();
    let _ = writeln!(head, "#!/bin/bash");
    let _ = writeln!(
        head,
        "# Written by `mcd slurm` for {}.",
        exp.source.display()
    );
    let _ = writeln!(head, "#SBATCH --cpus-per-task={}", spec.cpus);
    let _ = writeln!(head, "#SBATCH --mem={}", spec.mem);
    let _ = writeln!(head, "#SBATCH --time={}", spec.time);
    if let Some(p) = &spec.partition {
        let _ = writeln!(head, "#SBATCH --partition={p}");
    }
    if spec.gpu {
        let _ = writeln!(head, "#SBATCH --gres=gpu:1");
    }
    let run = |sub: &str| {
        format!(
            "set -euo pipefail\n# Config paths resolve from where the tasks were planned.\ncd {}\nexec {} {sub}\n",
            quote(&cwd.display().to_string()),
            quote(&exe.display().to_string())
        )
    };
    let array_script = format!(
        "{head}#SBATCH --job-name=mcd-{name}\n#SBATCH --array={array}%{k}\n#SBATCH --output={out}/slurm-%A_%a.out\n{body}",
        name = exp.name,
        k = spec.max_parallel,
        out = dir_abs.display(),
        body = run(&format!(
            "task {} --index \"$SLURM_ARRAY_TASK_ID\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" {mcd_args}",
            how.config_args
        ))
    );
    let collect_script = format!(
        "{head}#SBATCH --job-name=mcd-{name}-collect\n#SBATCH --output={out}/slurm-collect-%j.out\n{body}",
        name = exp.name,
        out = dir_abs.display(),
        body = run(&format!(
            "collect {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" {mcd_args}",
            how.config_args
        ))
    );
    let array_path = dir.join("array.sbatch");
    let collect_path = dir.join("collect.sbatch");
    crate::cache::write_atomically(&array_path, array_script.as_bytes())?;
    crate::cache::write_atomically(&collect_path, collect_script.as_bytes())?;
    Ok((array_path, collect_path, tasks.len()))
}

/// `sbatch --parsable [ARGS] SCRIPT`: the job id.
pub fn sbatch(script: &Path, args: &[String]) -> Result<String> {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "--submit: `sbatch` is not on PATH (no Slurm client here); the script is \
                     written, submit it where Slurm runs: sbatch {}",
                    script.display()
                )
            } else {
                anyhow::Error::new(e).context("running sbatch")
            }
        })?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() {
        bail!("sbatch {} printed no job id", script.display());
    }
    Ok(id)
}
