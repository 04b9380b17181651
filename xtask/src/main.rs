//! `cargo xtask`: provisions libtorch without pytorch.org and runs the project's cargo commands
//! against it (every child cargo gets `LIBTORCH`; build/rpath.rs embeds its `lib/` as rpath).

mod libtorch;
mod manifest;
mod paired;
mod pins;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use libtorch::Libtorch;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

/// Paired rounds of `bench --compare` unless `--rounds` says otherwise.
const PAIRED_ROUNDS: u16 = 10;

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
    /// Start a one-node Slurm cluster here (root; installs slurm-wlm and munge if missing), run
    /// uci_quick and a sweep as job arrays, and check the collected results (xtask/slurm-test.sh).
    SlurmTest,
    /// `cargo bench --workspace ARGS...`; with --compare, the benches of mcd-models and
    /// mcd-trainer, then bench/pytorch_reference.py (PyTorch eager, same workloads), a table
    /// of ratios, and paired rounds of the Rust / PyTorch targets.
    Bench {
        /// Also run the PyTorch-eager reference (needs Python torch) and print Rust / PyTorch
        /// ratios; must come before ARGS.
        #[arg(long)]
        compare: bool,
        /// With --compare: paired rounds (default 10), each timing both sides back to back (the
        /// verdicts on the Rust / PyTorch targets are the median of the rounds' ratios).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        rounds: Option<u16>,
        /// With --compare: only the paired rounds, no criterion benches or full reference.
        #[arg(long)]
        paired_only: bool,
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
            allocator_env(&mut mcd);
            run_forwarding_signals(mcd)
        }
        Cmd::Test { args } => {
            let lt = ensure_libtorch(false)?;
            run(cargo(&lt, workspace_args("test", &passthrough(args, raw))))
        }
        Cmd::SlurmTest => {
            let lt = ensure_libtorch(false)?;
            // The test build makes target/debug/mcd too, with the same features: after
            // `cargo xtask test` (CI's previous step) this compiles nothing.
            let code = run(cargo(&lt, ["test", "--workspace", "--no-run"]))?;
            if code != 0 {
                return Ok(code);
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("slurm-test.sh");
            let mut cmd = Command::new("bash");
            cmd.arg(script).arg(target_dir()?.join("debug").join("mcd"));
            run(cmd)
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
        Cmd::Bench {
            compare,
            rounds,
            paired_only,
            args,
        } => {
            let lt = ensure_libtorch(false)?;
            // xtask's own options sit between the subcommand and ARGS; drop them so the `--`
            // check of `passthrough` sees ARGS exactly as typed.
            let args = passthrough(args, &without_bench_options(raw));
            if !compare {
                if paired_only || rounds.is_some() {
                    anyhow::bail!("--rounds and --paired-only go with --compare");
                }
                let mut cmd = cargo(&lt, workspace_args("bench", &args));
                allocator_env(&mut cmd);
                return run(cmd);
            }
            let rounds = usize::from(rounds.unwrap_or(PAIRED_ROUNDS));
            bench_compare(&lt, &args, rounds, paired_only)
        }
    }
}

/// The Python that runs bench/pytorch_reference.py: `$MCD_PYTHON`, else `python3`.
fn python() -> OsString {
    std::env::var_os("MCD_PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// The command line without `bench`'s own options (`--compare`, `--paired-only`, `--rounds N`
/// or `--rounds=N`), which clap has parsed and which come before ARGS.
fn without_bench_options(raw: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = raw.iter().take(2).cloned().collect();
    let mut rest = raw.iter().skip(2).peekable();
    while let Some(a) = rest.peek() {
        let a = a.to_string_lossy();
        if a == "--compare" || a == "--paired-only" || a.starts_with("--rounds=") {
            rest.next();
        } else if a == "--rounds" {
            rest.next();
            rest.next();
        } else {
            break;
        }
    }
    out.extend(rest.cloned());
    out
}

/// `bench --compare`: Rust benches, then the PyTorch-eager reference, then a table of ratios,
/// then `rounds` paired rounds of the Rust / PyTorch targets (only those with `paired_only`).
/// Exits 2 (before benchmarking anything) when Python torch is missing.
fn bench_compare(lt: &Libtorch, args: &[OsString], rounds: usize, paired_only: bool) -> Result<u8> {
    let py = python();
    let has_torch = Command::new(&py)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "xtask: bench --compare needs PyTorch in {}: install it with\n    \
             {} -m pip install torch==2.11.0\n\
             (the same version as the libtorch the Rust side links; CPU is enough; set \
             MCD_PYTHON to use another interpreter)",
            py.to_string_lossy(),
            py.to_string_lossy()
        );
        return Ok(2);
    }
    let out = target_dir()?.join("bench-compare");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    if !paired_only {
        let code = bench_table(lt, args, &py, &out)?;
        if code != 0 {
            return Ok(code);
        }
    }
    bench_paired(lt, &py, &out, rounds)
}

/// The criterion benches of mcd-models and mcd-trainer, then bench/pytorch_reference.py, then
/// the table of both, into and from `out`.
fn bench_table(lt: &Libtorch, args: &[OsString], py: &OsStr, out: &Path) -> Result<u8> {
    let mut rust = cargo(lt, ["bench", "-p", "mcd-models", "-p", "mcd-trainer"]);
    rust.args(args).env("MCD_BENCH_OUT", out);
    allocator_env(&mut rust);
    let code = run(rust)?;
    if code != 0 {
        return Ok(code);
    }
    let torch_tsv = out.join("pytorch.tsv");
    let mut reference = pytorch_reference(py);
    reference.arg("--out").arg(&torch_tsv);
    let code = run(reference)?;
    if code != 0 {
        return Ok(code);
    }
    let read = |name: &str| -> Result<Vec<BenchRow>> {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        parse_bench_tsv(&text).with_context(|| format!("in {}", path.display()))
    };
    let mut rust_rows = Vec::new();
    for name in ["mcd-models.tsv", "mcd-trainer.tsv"] {
        if out.join(name).exists() {
            rust_rows.extend(read(name)?);
        }
    }
    println!("\n{}", compare_report(&rust_rows, &read("pytorch.tsv")?));
    Ok(0)
}

/// `bench/pytorch_reference.py` under `py`, with the benches' allocator settings.
fn pytorch_reference(py: &OsStr) -> Command {
    let mut cmd = Command::new(py);
    allocator_env(&mut cmd);
    cmd.arg(workspace_root().join("bench").join("pytorch_reference.py"));
    cmd
}

/// The paired rounds: both sides as servers, asked in turn; the table, the verdicts, and
/// `out/paired.tsv`.
fn bench_paired(lt: &Libtorch, py: &OsStr, out: &Path, rounds: usize) -> Result<u8> {
    let t = std::env::var("MCD_BENCH_T")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100);
    let pairs = paired::pairs(t);
    eprintln!("xtask: paired rounds: starting the Rust and PyTorch bench servers");
    let mut rust_cmd = cargo(
        lt,
        [
            "bench",
            "-p",
            "mcd-trainer",
            "--bench",
            "bench_main",
            "--",
            "--serve",
        ],
    );
    allocator_env(&mut rust_cmd);
    let mut rust = paired::Server::start("Rust", rust_cmd)?;
    let mut torch_cmd = pytorch_reference(py);
    torch_cmd.arg("--serve");
    let mut torch = paired::Server::start("PyTorch", torch_cmd)?;
    let rows = paired::run_rounds(&mut rust, &mut torch, &pairs, rounds, |round, rows| {
        let ratios: Vec<String> = rows.iter().map(|r| format!("{:.2}x", r.ratio())).collect();
        eprintln!(
            "xtask: paired round {}/{rounds}: PyTorch / Rust {}",
            round + 1,
            ratios.join(", ")
        );
    })?;
    paired::write_tsv(&out.join("paired.tsv"), &pairs, &rows)?;
    println!("\n{}", paired::report(&pairs, &rows));
    Ok(0)
}

/// One row of a bench TSV (written by the bench binaries and bench/pytorch_reference.py).
#[derive(Debug, Clone, PartialEq)]
struct BenchRow {
    name: String,
    median_s: f64,
    flop: Option<f64>,
}

impl BenchRow {
    fn gflops(&self) -> Option<f64> {
        self.flop.map(|f| f / self.median_s / 1e9)
    }
}

/// Parses `name, median_s, flop, elements` rows (tab-separated, with a header line).
fn parse_bench_tsv(text: &str) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, median, flop, ..] = cols[..] else {
            anyhow::bail!(
                "line {}: expected 4 tab-separated columns in `{line}`",
                i + 1
            );
        };
        let num = |s: &str| -> Result<f64> {
            s.parse()
                .with_context(|| format!("line {}: `{s}` is not a number", i + 1))
        };
        rows.push(BenchRow {
            name: name.to_string(),
            median_s: num(median)?,
            flop: if flop.is_empty() {
                None
            } else {
                Some(num(flop)?)
            },
        });
    }
    Ok(rows)
}

/// The comparison table (rows with the same name in both), the MC share of the matmul target,
/// and ratios without a target; the Rust / PyTorch targets are the paired rounds'.
fn compare_report(rust: &[BenchRow], torch: &[BenchRow]) -> String {
    let ms = |r: &BenchRow| format!("{:.3} ms", r.median_s * 1e3);
    let gf = |r: &BenchRow| r.gflops().map_or("-".into(), |g| format!("{g:.1}"));
    let mut s = String::from(
        "| workload | Rust (tch) | PyTorch eager | PyTorch / Rust | Rust GFLOP/s | PyTorch GFLOP/s |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in rust {
        // A fused variant (`..._fused`) is compared with PyTorch's row of the plain workload.
        let plain = r.name.strip_suffix("_fused").unwrap_or(&r.name);
        let Some(t) = torch.iter().find(|t| t.name == plain) else {
            s += &format!("| {} | {} | - | - | {} | - |\n", r.name, ms(r), gf(r));
            continue;
        };
        s += &format!(
            "| {} | {} | {} | {:.2}x | {} | {} |\n",
            r.name,
            ms(r),
            ms(t),
            t.median_s / r.median_s,
            gf(r),
            gf(t)
        );
    }
    // PyTorch-only workloads (variants without a Rust row of the same name).
    for t in torch
        .iter()
        .filter(|t| !rust.iter().any(|r| r.name == t.name))
    {
        s += &format!("| {} | - | {} | - | - | {} |\n", t.name, ms(t), gf(t));
    }
    let find = |rows: &[BenchRow], prefix: &str| -> Option<BenchRow> {
        rows.iter().find(|r| r.name.starts_with(prefix)).cloned()
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    // Rust's MC prediction: the fastest mc_samples row.
    let best_mc = rust
        .iter()
        .filter(|r| r.name.starts_with("mc/mc_samples_"))
        .min_by(|a, b| a.median_s.total_cmp(&b.median_s));
    s += "\nTargets:\n";
    // The faster matmul kernel (MKL's or oneDNN's) is the reference.
    let matmul = rust
        .iter()
        .filter(|r| r.name.starts_with("matmul/"))
        .filter_map(|r| r.gflops().map(|g| (g, r.name.as_str())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match (best_mc, matmul) {
        (Some(mc), Some((mm, mm_name))) => {
            let share = mc.gflops().unwrap_or(0.0) / mm;
            s += &format!(
                "- MC prediction ({}) at {:.1}% of the plain matmul's GFLOP/s ({mm_name}) \
                 (target 85%): {}\n",
                mc.name,
                100.0 * share,
                verdict(share >= 0.85)
            );
            // MC's GFLOP/s count the dense net's multiply-adds, also those the shared first
            // product skips; the same plan through the plain matmuls shows the kernels' share.
            if let Some(plain) = find(rust, "mc/repeated_passes_") {
                s += &format!(
                    "  ({:.1}% with every pass through the plain matmuls, {})\n",
                    100.0 * plain.gflops().unwrap_or(0.0) / mm,
                    plain.name
                );
            }
        }
        _ => s += "- MC share of matmul GFLOP/s: not measured\n",
    }
    s += "- Rust / PyTorch targets: decided by the paired rounds below (this table's two sides \
          ran minutes apart)\n";
    // No target: against PyTorch with the net and batch in channels-last memory.
    if let (Some(r), Some(t)) = (
        find(rust, "train/sgd_step_lenet"),
        find(torch, "train/sgd_step_lenet_b64_torch_channels_last"),
    ) {
        s += &format!(
            "- training step, LeNet: {:.2}x faster than PyTorch eager in channels-last memory\n",
            t.median_s / r.median_s
        );
    }
    // LeNet MC (no target): our mc_samples against PyTorch's plain loop over T.
    for net in ["lenet", "lenet_all"] {
        if let (Some(r), Some(t)) = (
            find(rust, &format!("{net}/mc_samples_")),
            find(torch, &format!("{net}/forward_t_loop_")),
        ) {
            s += &format!(
                "- MC prediction, {net}: {:.2}x faster than PyTorch eager looping over T\n",
                t.median_s / r.median_s
            );
        }
    }
    s
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

/// glibc malloc settings for the processes that run tensors (mcd, the benches, the PyTorch
/// reference), unless the user set them: libtorch allocates every activation afresh, and above
/// glibc's default 128 KiB threshold each one is a new mmap whose pages fault in on first touch
/// (measured: a 300 KB mask tensor cost 61 us to create, 22 us with these settings). Keeping
/// freed memory in the heap lets the next step reuse it.
fn allocator_env(cmd: &mut Command) {
    for (var, value) in [
        ("MALLOC_MMAP_THRESHOLD_", "33554432"),
        ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
        ("MALLOC_TOP_PAD_", "268435456"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
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

/// [`run`] for `mcd`: SIGINT, SIGTERM and SIGHUP sent to xtask are passed on to the child
/// instead of ending xtask, so that `mcd` cleans up and its exit code (130, 143, 129) comes
/// back. (Ctrl-C reaches both through the terminal; `kill` of xtask alone would otherwise
/// leave `mcd` running.)
fn run_forwarding_signals(mut cmd: Command) -> Result<u8> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing the signal forwarding")?;
    let handle = signals.handle();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id().to_string();
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            // `kill` from procps/coreutils: std has no way to signal a child but SIGKILL.
            let _ = Command::new("kill")
                .args([format!("-{signal}"), pid.clone()])
                .status();
        }
    });
    let status = child.wait().context("waiting for mcd");
    handle.close();
    let _ = forwarder.join();
    Ok(exit_code(status?))
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

    #[test]
    fn bench_compare_flag_is_parsed_before_cargo_args() {
        let Cmd::Bench {
            compare,
            rounds,
            paired_only,
            args,
        } = parse(&["bench", "--compare", "--rounds", "4", "--", "mc"])
        else {
            panic!("not a bench command");
        };
        assert!(compare && !paired_only);
        assert_eq!(rounds, Some(4));
        assert_eq!(strs(&args), ["mc"]);
        let Cmd::Bench {
            compare, rounds, ..
        } = parse(&["bench"])
        else {
            panic!("not a bench command");
        };
        assert!(!compare);
        assert_eq!(rounds, None);
        let raw = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let typed = raw(&[
            "xtask",
            "bench",
            "--compare",
            "--rounds",
            "4",
            "--paired-only",
            "--",
            "mc",
        ]);
        assert_eq!(
            strs(&without_bench_options(&typed)),
            ["xtask", "bench", "--", "mc"]
        );
        let typed = raw(&["xtask", "bench", "--rounds=3", "-p", "mcd-models"]);
        assert_eq!(
            strs(&without_bench_options(&typed)),
            ["xtask", "bench", "-p", "mcd-models"]
        );
        let no_rounds = ["xtask", "bench", "--compare", "--rounds", "0"];
        assert!(Cli::try_parse_from(no_rounds).is_err());
    }

    #[test]
    fn bench_tsv_parses_and_rejects_garbage() {
        let rows = parse_bench_tsv(
            "name\tmedian_s\tflop\telements\nmatmul/x\t2e-1\t1.6e10\t\ndropout/y\t1e-3\t\t1e6\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].gflops(), Some(80.0));
        assert_eq!(rows[1].flop, None);
        assert!(parse_bench_tsv("h\nmatmul\tfast\t\t\n").is_err());
        assert!(parse_bench_tsv("h\nonly-one-column\n").is_err());
    }

    #[test]
    fn compare_report_gives_ratios_and_verdicts() {
        let row = |name: &str, median_s: f64, flop: Option<f64>| BenchRow {
            name: name.into(),
            median_s,
            flop,
        };
        let rust = vec![
            row("matmul/m", 1.0, Some(100e9)),
            row("matmul/slower", 1.0, Some(80e9)),
            row("mc/mc_samples_1GiB_T100", 2.0, Some(180e9)),
            row("mc/repeated_passes_1GiB_T100", 3.0, Some(180e9)),
            row("mc/forward_t_loop_T100", 2.5, Some(180e9)),
            row("train/adam_step_co2", 0.1, None),
            row("train/sgd_step_lenet_b64", 0.02, None),
            row("lenet/mc_samples_T50", 0.5, None),
        ];
        let torch = vec![
            row("mc/forward_t_loop_T100", 5.0, Some(180e9)),
            row("train/adam_step_co2", 0.11, None),
            row("train/sgd_step_lenet_b64", 0.03, None),
            row("train/sgd_step_lenet_b64_torch_channels_last", 0.021, None),
            row("lenet/forward_t_loop_T50", 2.0, None),
        ];
        let r = compare_report(&rust, &torch);
        // 90 GFLOP/s against 100: 90%, met. The Rust / PyTorch verdicts are the paired rounds'.
        assert!(
            r.contains("at 90.0% of the plain matmul's GFLOP/s (matmul/m) (target 85%): met"),
            "{r}"
        );
        assert!(r.contains("(60.0% with every pass through the plain matmuls, mc/repeated_passes_"));
        assert!(
            !r.contains("target 2x") && !r.contains("target 1.2x"),
            "{r}"
        );
        assert!(r.contains("| train/adam_step_co2 | 100.000 ms | 110.000 ms | 1.10x |"));
        assert!(r.contains("LeNet: 1.05x faster than PyTorch eager in channels-last memory"));
        assert!(r.contains("| train/sgd_step_lenet_b64_torch_channels_last | - | 21.000 ms |"));
        assert!(r.contains("MC prediction, lenet: 4.00x faster than PyTorch eager looping"));
        assert!(!r.contains("lenet_all:"), "no row, no line");
        assert!(r.contains("| mc/forward_t_loop_T100 | 2500.000 ms | 5000.000 ms | 2.00x |"));
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
