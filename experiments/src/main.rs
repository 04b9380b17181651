//! `mcd`: runs an experiment config. Usually started through `cargo xtask run CONFIG`.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mcd_experiments::config::{self, ConfigError};
use mcd_experiments::tasks::{self, quote, Invocation, SlurmSpec, TaskOutcome};
use mcd_experiments::{parse_device, progress::Display, studies, Context, Mode};

#[derive(Parser, Debug)]
#[command(name = "mcd", about = "MC dropout experiments (Gal & Ghahramani 2016)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct ConfigArgs {
    /// Experiment config (YAML).
    config: PathBuf,
    /// Override a config value, e.g. --set model.dropout=0.2 (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Override the config's seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl ConfigArgs {
    /// The config and its overrides as typed on a command line.
    fn shell_words(&self) -> String {
        let mut words = vec![quote(&self.config.display().to_string())];
        for s in &self.set {
            words.push("--set".into());
            words.push(quote(s));
        }
        if let Some(seed) = self.seed {
            words.push(format!("--seed {seed}"));
        }
        words.join(" ")
    }
}

/// Where and how a run computes.
#[derive(clap::Args, Debug)]
struct ComputeArgs {
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads to use, at least 1 (default: all cores).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Parent folder of the result folders (and of the cache and task folders).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Plain log lines instead of progress bars.
    #[arg(long)]
    plain: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an experiment and write results/<name>/.
    Run {
        #[command(flatten)]
        args: ConfigArgs,
        #[command(flatten)]
        compute: ComputeArgs,
        /// Train again even when cached weights for this exact config exist.
        #[arg(long)]
        retrain: bool,
    },
    /// Validate a config and print the runs it expands to.
    Check {
        #[command(flatten)]
        args: ConfigArgs,
    },
    /// Print the reference of every config key (Markdown; `docs/config.md` is this output).
    Keys,
    /// List the independent tasks a config splits into (for `task`, `slurm`).
    Tasks {
        #[command(flatten)]
        args: ConfigArgs,
    },
    /// Run one task into the results folder (a finished task is skipped).
    Task {
        #[command(flatten)]
        args: ConfigArgs,
        /// Which task, from 0 (see `mcd tasks`).
        #[arg(long)]
        index: usize,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Build results/<name>/ from the finished tasks (lists the missing ones otherwise).
    Collect {
        #[command(flatten)]
        args: ConfigArgs,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Write (and with --submit, submit) a Slurm job array of the tasks and a collect job.
    Slurm {
        #[command(flatten)]
        args: ConfigArgs,
        /// Shared results folder (must be visible to every node).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// At most this many tasks at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        max_parallel: u32,
        /// CPUs per task (also the task's --threads).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
        cpus: u32,
        /// Memory per task, as sbatch takes it.
        #[arg(long, default_value = "4G")]
        mem: String,
        /// Time limit per task, as sbatch takes it.
        #[arg(long, default_value = "04:00:00")]
        time: String,
        #[arg(long)]
        partition: Option<String>,
        /// cpu or cuda (cuda asks for one GPU per task).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Only these tasks, e.g. 3,5 (a resubmission of failed ones).
        #[arg(long, value_delimiter = ',')]
        indices: Option<Vec<usize>>,
        /// Submit the array with sbatch and print its job id.
        #[arg(long)]
        submit: bool,
        /// With --submit: also submit the collect job, to start after the array (afterany).
        #[arg(long, requires = "submit")]
        collect: bool,
    },
}

/// [`load`] for a command: a bad config is printed, and exit 2.
fn load_or_exit(args: &ConfigArgs) -> Result<config::Experiment, ExitCode> {
    load(args).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

#[allow(clippy::result_large_err)] // built once, on the way out
fn load(args: &ConfigArgs) -> Result<config::Experiment, ConfigError> {
    let mut overrides = Vec::new();
    for s in &args.set {
        let o = config::parse_override(s).map_err(|message| ConfigError {
            file: args.config.clone(),
            line: None,
            column: None,
            key: String::new(),
            message,
            origin: Some("the command line".into()),
        })?;
        overrides.push(o);
    }
    if let Some(seed) = args.seed {
        overrides.push(("seed".into(), serde_norway::Value::Number(seed.into())));
    }
    config::load(&args.config, &overrides)
}

fn context(compute: &ComputeArgs, retrain: bool) -> Result<Context, String> {
    let device = parse_device(&compute.device)?;
    let threads = compute
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    // The budget for work on this thread (the uci study; parallel runs set their share).
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
    mcd_experiments::interrupt::install()
        .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(Context {
        device,
        threads,
        retrain,
        mode: Mode::Run,
        display: Display::new(compute.plain),
        cache_dir: compute.results.join(".cache"),
    })
}

/// Loads the config and sets up the context: exit 2 on bad input.
fn prepare(
    args: &ConfigArgs,
    compute: &ComputeArgs,
    retrain: bool,
) -> Result<(config::Experiment, Context), ExitCode> {
    let exp = load_or_exit(args)?;
    let ctx = context(compute, retrain).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    Ok((exp, ctx))
}

fn finish(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(message) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout. A reader that has gone (`mcd keys | head`) ends the output quietly:
/// `println!` would panic there.
fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `emit` as a command's whole result.
fn emit_all(text: &str) -> ExitCode {
    match emit(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys => emit_all(&config::reference::markdown()),
        Command::Check { args } => match load_or_exit(&args) {
            Ok(exp) => {
                let mut text = format!(
                    "{}: study {:?}, {} run(s) -> results/{}/\n",
                    exp.source.display(),
                    exp.study,
                    exp.runs.len(),
                    exp.name
                );
                for r in &exp.runs {
                    text.push_str(&format!("  {}\n", r.name));
                }
                emit_all(&text)
            }
            Err(code) => code,
        },
        Command::Run {
            args,
            compute,
            retrain,
        } => match prepare(&args, &compute, retrain) {
            Ok((exp, ctx)) => finish(
                studies::run(&exp, &ctx, &compute.results)
                    .map(|dir| format!("results written to {}", dir.display())),
            ),
            Err(code) => code,
        },
        Command::Tasks { args } => match load_or_exit(&args) {
            Ok(exp) => finish(tasks::plan(&exp).and_then(|list| {
                let text: String = list
                    .iter()
                    .enumerate()
                    .map(|(i, t)| format!("{i}\t{}\n", t.label()))
                    .collect();
                emit(&text).context("writing the task list to stdout")?;
                Ok(format!("{}: {} task(s)", exp.source.display(), list.len()))
            })),
            Err(code) => code,
        },
        Command::Task {
            args,
            index,
            compute,
        } => match prepare(&args, &compute, false) {
            Ok((exp, ctx)) => finish(tasks::run_task(&exp, &ctx, &compute.results, index).map(
                |outcome| match outcome {
                    TaskOutcome::AlreadyDone => format!("task {index}: finished before, skipped"),
                    TaskOutcome::Done(dir) => format!("task {index} done ({})", dir.display()),
                },
            )),
            Err(code) => code,
        },
        Command::Collect { args, compute } => match prepare(&args, &compute, false) {
            Ok((exp, ctx)) => {
                let how = Invocation {
                    config_args: args.shell_words(),
                    results: compute.results.clone(),
                };
                finish(
                    tasks::collect(&exp, &ctx, &compute.results, &how)
                        .map(|dir| format!("results written to {}", dir.display())),
                )
            }
            Err(code) => code,
        },
        Command::Slurm {
            args,
            results,
            max_parallel,
            cpus,
            mem,
            time,
            partition,
            device,
            indices,
            submit,
            collect,
        } => {
            let exp = match load_or_exit(&args) {
                Ok(e) => e,
                Err(code) => return code,
            };
            if !matches!(device.as_str(), "cpu" | "cuda") {
                eprintln!("error: --device `{device}`: expected cpu or cuda");
                return ExitCode::from(2);
            }
            let spec = SlurmSpec {
                max_parallel: max_parallel as usize,
                cpus: cpus as usize,
                mem,
                time,
                partition,
                gpu: device == "cuda",
                indices,
            };
            let how = Invocation {
                config_args: args.shell_words(),
                results: results.clone(),
            };
            let results_abs = std::path::absolute(&results).unwrap_or(results.clone());
            let mcd_args = format!(
                "--results {} --device {device} --plain",
                quote(&results_abs.display().to_string())
            );
            finish((|| {
                let (array, collect_script, n) =
                    tasks::write_slurm_scripts(&exp, &results, &spec, &how, &mcd_args)?;
                let mut lines = vec![format!(
                    "{n} task(s); wrote {} and {}",
                    array.display(),
                    collect_script.display()
                )];
                if submit {
                    let id = tasks::sbatch(&array, &[])?;
                    emit(&format!("{id}\n")).context("writing the job id to stdout")?;
                    lines.push(format!("submitted the task array as job {id}"));
                    if collect {
                        let cid = tasks::sbatch(
                            &collect_script,
                            &[format!("--dependency=afterany:{id}")],
                        )?;
                        emit(&format!("{cid}\n")).context("writing the job id to stdout")?;
                        lines.push(format!(
                            "submitted the collect job as job {cid} (after {id})"
                        ));
                    }
                } else {
                    lines.push(format!("submit with: sbatch {}", array.display()));
                }
                Ok(lines.join("\n"))
            })())
        }
    }
}
