//! `mcd`: runs an experiment config. Usually started through `cargo xtask run CONFIG`.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcd_experiments::config::{self, ConfigError};
use mcd_experiments::{parse_device, progress::Display, studies, Context};

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

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an experiment and write results/<name>/.
    Run {
        #[command(flatten)]
        args: ConfigArgs,
        /// cpu, cuda or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// CPU threads to use, at least 1 (default: all cores).
        #[arg(long)]
        threads: Option<NonZeroUsize>,
        /// Parent folder of the result folders.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Train again even when cached weights for this exact config exist.
        #[arg(long)]
        retrain: bool,
        /// Plain log lines instead of progress bars.
        #[arg(long)]
        plain: bool,
    },
    /// Validate a config and print the runs it expands to.
    Check {
        #[command(flatten)]
        args: ConfigArgs,
    },
    /// Print the reference of every config key (Markdown; `docs/config.md` is this output).
    Keys,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys => {
            print!("{}", config::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::Check { args } => match load(&args) {
            Ok(exp) => {
                println!(
                    "{}: study {:?}, {} run(s) -> results/{}/",
                    exp.source.display(),
                    exp.study,
                    exp.runs.len(),
                    exp.name
                );
                for r in &exp.runs {
                    println!("  {}", r.name);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            args,
            device,
            threads,
            results,
            retrain,
            plain,
        } => {
            let exp = match load(&args) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let device = match parse_device(&device) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let threads = threads
                .or_else(|| std::thread::available_parallelism().ok())
                .map_or(1, NonZeroUsize::get);
            if let Err(e) = mcd_experiments::interrupt::install() {
                eprintln!("error: cannot install the Ctrl-C handler: {e}");
                return ExitCode::FAILURE;
            }
            let ctx = Context {
                device,
                threads,
                retrain,
                display: Display::new(plain),
                cache_dir: results.join(".cache"),
            };
            match studies::run(&exp, &ctx, &results) {
                Ok(dir) => {
                    eprintln!("results written to {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
