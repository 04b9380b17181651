//! `cargo xtask`: provisions libtorch without pytorch.org and runs the project's cargo commands
//! against it (every child cargo gets `LIBTORCH`; build/rpath.rs embeds its `lib/` as rpath).

mod libtorch;
mod manifest;
mod pins;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use libtorch::Libtorch;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

/// Variables that make torch-sys ignore `LIBTORCH` (and so link another libtorch than the rpath says).
const OVERRIDING_VARS: [&str; 1] = ["LIBTORCH_USE_PYTORCH"];

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project tasks. libtorch: $LIBTORCH if set, else a cache under \
             ${XDG_CACHE_HOME:-$HOME/.cache}/mcdrop built from pinned PyPI wheels."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Ensure libtorch is there; print its directory on stdout and its version on stderr.
    Libtorch {
        /// Also check every cached file's sha256 against the manifest (not only its size).
        #[arg(long)]
        verify: bool,
    },
    /// Build `mcd` (release) and run `mcd run CONFIG ARGS...` (e.g. --seed 1 --set k=v).
    // No `--help` of its own, so that `cargo xtask run CONFIG --help` shows mcd's options;
    // `cargo xtask help run` shows this one.
    #[command(disable_help_flag = true)]
    Run {
        /// Experiment config file.
        config: OsString,
        /// Passed to `mcd run` after CONFIG.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// `cargo test --workspace ARGS...` (the project's test command; --workspace is dropped if ARGS pick packages).
    Test {
        /// Passed to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// `cargo fmt --all -- --check`, then `cargo clippy --workspace --all-targets -- -D warnings`.
    Lint,
    /// `cargo bench --workspace ARGS...`.
    Bench {
        /// Passed to `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&raw);
    match dispatch(cli.command, &raw) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand (`raw` is the full command line); the result is the exit code to leave with.
fn dispatch(cmd: Cmd, raw: &[OsString]) -> Result<u8> {
    match cmd {
        Cmd::Libtorch { verify } => {
            let lt = ensure_libtorch(verify)?;
            println!("{}", lt.dir.display());
            Ok(0)
        }
        Cmd::Run { config, args } => {
            let lt = ensure_libtorch(false)?;
            let code = run(cargo(
                &lt,
                [
                    "build",
                    "--release",
                    "-p",
                    "mcd-experiments",
                    "--bin",
                    "mcd",
                ],
            ))?;
            if code != 0 {
                return Ok(code);
            }
            let exe = target_dir()?.join("release").join("mcd");
            let mut mcd = Command::new(&exe);
            // mcd runs from the caller's directory so that a relative CONFIG means what was typed.
            mcd.arg("run").arg(config).args(args);
            run(mcd)
        }
        Cmd::Test { args } => {
            let lt = ensure_libtorch(false)?;
            run(cargo(&lt, workspace_args("test", &passthrough(args, raw))))
        }
        Cmd::Lint => {
            let lt = ensure_libtorch(false)?;
            let code = run(cargo(&lt, ["fmt", "--all", "--", "--check"]))?;
            if code != 0 {
                return Ok(code);
            }
            run(cargo(
                &lt,
                [
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            ))
        }
        Cmd::Bench { args } => {
            let lt = ensure_libtorch(false)?;
            run(cargo(&lt, workspace_args("bench", &passthrough(args, raw))))
        }
    }
}

/// Finds or builds libtorch and says on stderr which one is used.
fn ensure_libtorch(verify: bool) -> Result<Libtorch> {
    let lt = libtorch::ensure(verify)?;
    eprintln!("xtask: using {}", lt.describe());
    Ok(lt)
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// Cargo's target directory, following the environment overrides cargo itself reads.
fn target_dir() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let from_env = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty());
    Ok(match from_env {
        Some(dir) => cwd.join(dir),
        None => workspace_root().join("target"),
    })
}

/// A child cargo in the workspace root with `LIBTORCH` set.
fn cargo<I, S>(lt: &Libtorch, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args)
        .current_dir(workspace_root())
        .env("LIBTORCH", &lt.dir);
    for var in OVERRIDING_VARS {
        if std::env::var_os(var).is_some() {
            eprintln!("xtask: note: not passing {var} on, so that torch-sys uses LIBTORCH");
            cmd.env_remove(var);
        }
    }
    cmd
}

/// The arguments after the subcommand exactly as typed: clap swallows a leading `--`, which cargo
/// needs to tell its own options from the test binary's (`cargo xtask test -- --nocapture`).
fn passthrough(parsed: Vec<OsString>, raw: &[OsString]) -> Vec<OsString> {
    match raw.get(2..) {
        // The subcommand is always raw[1] (xtask has no global options); only trust the raw tail
        // when it is the parsed arguments plus one leading `--`.
        Some(tail) if tail.first().is_some_and(|a| a == "--") && tail[1..] == parsed[..] => {
            tail.to_vec()
        }
        _ => parsed,
    }
}

/// `cargo SUB --workspace ARGS`, without `--workspace` when ARGS already pick packages.
fn workspace_args(sub: &str, args: &[OsString]) -> Vec<OsString> {
    let mut out = vec![OsString::from(sub)];
    if !selects_packages(args) {
        out.push("--workspace".into());
    }
    out.extend(args.iter().cloned());
    out
}

/// True when cargo options (before any `--`) name packages with `-p`/`--package`.
fn selects_packages(args: &[OsString]) -> bool {
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| a.starts_with("-p") || a == "--package" || a.starts_with("--package="))
}

/// Runs a child to completion and returns the exit code to pass on.
fn run(mut cmd: Command) -> Result<u8> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    Ok(exit_code(status))
}

/// The child's exit code; a child killed by signal N gives 128+N, as shells report it.
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(1);
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    fn parse(args: &[&str]) -> Cmd {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn run_passes_everything_after_config_through() {
        let Cmd::Run { config, args } = parse(&[
            "run", "cfg.yaml", "--seed", "3", "--set", "a=1", "--device", "cpu",
        ]) else {
            panic!("not a run command");
        };
        assert_eq!(config, "cfg.yaml");
        assert_eq!(
            strs(&args),
            ["--seed", "3", "--set", "a=1", "--device", "cpu"]
        );
        // After CONFIG even `--help` belongs to `mcd run`.
        let Cmd::Run { args, .. } = parse(&["run", "cfg.yaml", "--help"]) else {
            panic!("not a run command");
        };
        assert_eq!(strs(&args), ["--help"]);
    }

    /// Parses a `test` command line and returns what goes to cargo.
    fn test_passthrough(args: &[&str]) -> Vec<String> {
        let raw: Vec<OsString> = ["xtask", "test"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        let Cmd::Test { args } = Cli::try_parse_from(&raw).unwrap().command else {
            panic!("not a test command");
        };
        strs(&workspace_args("test", &passthrough(args, &raw)))
    }

    #[test]
    fn test_args_keep_their_double_dash() {
        assert_eq!(
            test_passthrough(&["-p", "xtask", "--", "--nocapture"]),
            ["test", "-p", "xtask", "--", "--nocapture"]
        );
        assert_eq!(
            test_passthrough(&["--", "--nocapture"]),
            ["test", "--workspace", "--", "--nocapture"]
        );
        assert_eq!(
            test_passthrough(&["--release", "manifest"]),
            ["test", "--workspace", "--release", "manifest"]
        );
        assert_eq!(test_passthrough(&[]), ["test", "--workspace"]);
    }

    #[test]
    fn workspace_flag_is_dropped_only_when_packages_are_picked() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(strs(&workspace_args("test", &[])), ["test", "--workspace"]);
        for picked in [
            &["-p", "a"][..],
            &["-pa"],
            &["--package", "a"],
            &["--package=a"],
        ] {
            assert_eq!(strs(&workspace_args("test", &os(picked)))[1], picked[0]);
        }
        // A `-p` after `--` belongs to the test binary, not to cargo.
        assert_eq!(
            strs(&workspace_args("bench", &os(&["--", "-p"]))),
            ["bench", "--workspace", "--", "-p"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_pass_through_including_signals() {
        let sh = |script: &str| Command::new("sh").args(["-c", script]).status().unwrap();
        assert_eq!(exit_code(sh("exit 0")), 0);
        assert_eq!(exit_code(sh("exit 3")), 3);
        assert_eq!(exit_code(sh("kill -TERM $$")), 128 + 15);
    }

    #[test]
    fn children_get_libtorch_and_run_in_the_workspace_root() {
        let lt = Libtorch {
            dir: "/opt/libtorch".into(),
            version: Some("2.11.0".into()),
            source: libtorch::Source::Env,
        };
        let cmd = cargo(&lt, ["test"]);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&(OsStr::new("LIBTORCH"), Some(OsStr::new("/opt/libtorch")))));
        assert!(!envs.iter().any(|(k, _)| *k == "LD_LIBRARY_PATH"));
        assert_eq!(cmd.get_current_dir(), Some(workspace_root()));
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
