//! The paired rounds of `bench --compare`: the Rust / PyTorch targets, timed side by
//! side.
//!
//! The criterion benches and the PyTorch reference run one after the other, about eight
//! minutes apart, and this machine's speed drifts over minutes: a training-step ratio from
//! such a table measured the drift as much as the code. Here both sides run as servers
//! (`--serve`; protocol in `crates/trainer/benches/benchmarks/paired.rs`) and xtask asks them
//! in turn for a short burst of the same workload, in the order Rust, PyTorch in even rounds
//! and PyTorch, Rust in odd ones, so a drift in either direction hits both sides alike. Each
//! round gives one ratio (PyTorch's median call over Rust's); the verdict is on the median
//! of the rounds' ratios, and the spread is printed with it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};

/// One target: a Rust workload against a PyTorch one.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// What the verdict line calls it.
    pub label: &'static str,
    pub rust: String,
    pub torch: String,
    /// Calls per side and round (the median call is the side's time in that round).
    pub calls: usize,
    /// The target for PyTorch's time over Rust's.
    pub target: f64,
}

/// The three ratio targets, for `t` MC passes.
pub fn pairs(t: usize) -> Vec<Pair> {
    let same = |label, name: &str, calls, target| Pair {
        label,
        rust: name.into(),
        torch: name.into(),
        calls,
        target,
    };
    vec![
        same(
            "training step, CO2 net",
            "train/adam_step_co2_n272",
            10,
            1.2,
        ),
        same("training step, LeNet", "train/sgd_step_lenet_b64", 20, 1.2),
        Pair {
            label: "MC prediction, CO2 net, against PyTorch looping over T",
            rust: format!("mc/mc_samples_1GiB_T{t}"),
            torch: format!("mc/forward_t_loop_T{t}"),
            calls: 1,
            target: 2.0,
        },
    ]
}

/// A running bench server.
pub struct Server {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The workloads it announced.
    workloads: Vec<String>,
}

impl Server {
    /// Starts `cmd` with piped stdin and stdout and waits for its `ready` line (earlier
    /// stdout lines, such as a banner, are skipped).
    pub fn start(name: &'static str, mut cmd: Command) -> Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {name} bench server {cmd:?}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the {name} bench server has no pipes");
        };
        let mut server = Self {
            name,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            workloads: Vec::new(),
        };
        loop {
            let line = server.read_line()?;
            if let Some(list) = line.strip_prefix("ready\t") {
                server.workloads = list.split(',').map(str::to_string).collect();
                return Ok(server);
            }
        }
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .with_context(|| format!("reading from the {} bench server", self.name))?;
        if n == 0 {
            bail!(
                "the {} bench server ended without an answer (its errors are above)",
                self.name
            );
        }
        Ok(line.trim_end().to_string())
    }

    /// Whether the server announced `workload`.
    pub fn has(&self, workload: &str) -> bool {
        self.workloads.iter().any(|w| w == workload)
    }

    /// Seconds of each of `calls` calls of `workload`.
    pub fn call(&mut self, workload: &str, calls: usize) -> Result<Vec<f64>> {
        writeln!(self.stdin, "{workload} {calls}")
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("writing to the {} bench server", self.name))?;
        let line = self.read_line()?;
        parse_answer(&line, workload, calls)
            .with_context(|| format!("the {} bench server answered `{line}`", self.name))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Between requests a server only waits on stdin, so killing it loses nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<workload>\t<seconds> ...` with exactly `calls` positive times.
fn parse_answer(line: &str, workload: &str, calls: usize) -> Result<Vec<f64>> {
    let Some((name, times)) = line.split_once('\t') else {
        bail!("no tab in the answer");
    };
    if name == "error" {
        bail!("{times}");
    }
    if name != workload {
        bail!("asked for `{workload}`, got `{name}`");
    }
    let times = times
        .split_whitespace()
        .map(|t| match t.parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(s),
            _ => Err(anyhow::anyhow!("`{t}` is not a positive number of seconds")),
        })
        .collect::<Result<Vec<f64>>>()?;
    if times.len() != calls {
        bail!("asked for {calls} calls, got {} times", times.len());
    }
    Ok(times)
}

/// One side's median call in one round of one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRow {
    pub round: usize,
    /// Index into the pairs.
    pub pair: usize,
    pub rust_s: f64,
    pub torch_s: f64,
}

impl RoundRow {
    /// PyTorch's time over Rust's.
    pub fn ratio(&self) -> f64 {
        self.torch_s / self.rust_s
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[mid]
    } else {
        0.5 * (v[mid - 1] + v[mid])
    }
}

/// Runs `rounds` rounds over `pairs`, after one untimed warm-up call of each workload on each
/// side. `progress` gets each finished round's rows.
pub fn run_rounds(
    rust: &mut Server,
    torch: &mut Server,
    pairs: &[Pair],
    rounds: usize,
    mut progress: impl FnMut(usize, &[RoundRow]),
) -> Result<Vec<RoundRow>> {
    for p in pairs {
        for (server, name) in [(&*rust, &p.rust), (&*torch, &p.torch)] {
            if !server.has(name) {
                bail!(
                    "the {} bench server does not offer `{name}` (it offers {})",
                    server.name,
                    server.workloads.join(", ")
                );
            }
        }
    }
    for p in pairs {
        rust.call(&p.rust, 1)?;
        torch.call(&p.torch, 1)?;
    }
    let mut rows = Vec::new();
    for round in 0..rounds {
        let start = rows.len();
        for (i, p) in pairs.iter().enumerate() {
            let (rust_s, torch_s) = if round.is_multiple_of(2) {
                let r = rust.call(&p.rust, p.calls)?;
                (r, torch.call(&p.torch, p.calls)?)
            } else {
                let t = torch.call(&p.torch, p.calls)?;
                (rust.call(&p.rust, p.calls)?, t)
            };
            rows.push(RoundRow {
                round,
                pair: i,
                rust_s: median(&rust_s),
                torch_s: median(&torch_s),
            });
        }
        progress(round, &rows[start..]);
    }
    Ok(rows)
}

/// The table of the paired rounds and the verdict on each target.
pub fn report(pairs: &[Pair], rows: &[RoundRow]) -> String {
    let rounds = rows.iter().map(|r| r.round + 1).max().unwrap_or(0);
    let mut s = format!(
        "Paired rounds ({rounds}, alternating which side goes first; per round the median \
         call of each side):\n\n\
         | workload (Rust / PyTorch) | calls per round | Rust median | PyTorch median | \
         PyTorch / Rust: median of rounds | min | max | rounds at target |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut verdicts = String::new();
    for (i, p) in pairs.iter().enumerate() {
        let mine: Vec<&RoundRow> = rows.iter().filter(|r| r.pair == i).collect();
        if mine.is_empty() {
            verdicts += &format!("- {}: not measured\n", p.label);
            continue;
        }
        let ratios: Vec<f64> = mine.iter().map(|r| r.ratio()).collect();
        let at_target = ratios.iter().filter(|&&x| x >= p.target).count();
        let (lo, hi) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
        let m = median(&ratios);
        let ms = |v: Vec<f64>| format!("{:.3} ms", median(&v) * 1e3);
        let name = if p.rust == p.torch {
            p.rust.clone()
        } else {
            format!("{} / {}", p.rust, p.torch)
        };
        s += &format!(
            "| {name} | {} | {} | {} | {m:.2}x | {lo:.2}x | {hi:.2}x | {at_target} of {} |\n",
            p.calls,
            ms(mine.iter().map(|r| r.rust_s).collect()),
            ms(mine.iter().map(|r| r.torch_s).collect()),
            mine.len(),
        );
        verdicts += &format!(
            "- {}: {m:.2}x faster than PyTorch eager (median of {} paired rounds, {lo:.2}x to \
             {hi:.2}x; target {}x): {}\n",
            p.label,
            mine.len(),
            p.target,
            if m >= p.target { "met" } else { "NOT met" }
        );
    }
    s + "\nTargets, paired:\n" + &verdicts
}

/// `round, workload, rust_s, torch_s, ratio` rows, tab-separated.
pub fn write_tsv(path: &Path, pairs: &[Pair], rows: &[RoundRow]) -> Result<()> {
    let mut text = String::from("round\tworkload\trust_s\ttorch_s\ttorch_over_rust\n");
    for r in rows {
        text += &format!(
            "{}\t{}\t{:.6e}\t{:.6e}\t{:.4}\n",
            r.round + 1,
            pairs[r.pair].rust,
            r.rust_s,
            r.torch_s,
            r.ratio()
        );
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server in sh that answers every request with `calls` times of `secs`, after a banner.
    fn fake(name: &'static str, secs: &str) -> Server {
        let script = format!(
            "echo banner; echo 'ready\ta,b'; \
             while read w n; do \
               if [ \"$w\" = a ] || [ \"$w\" = b ]; then \
                 printf '%s\\t' \"$w\"; i=0; while [ $i -lt $n ]; do printf '{secs} '; i=$((i+1)); done; echo; \
               else printf 'error\\tunknown workload `%s`\\n' \"$w\"; fi; \
             done"
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        Server::start(name, cmd).unwrap()
    }

    #[test]
    fn answers_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_answer("a\t1e-3 2e-3", "a", 2).unwrap(), [1e-3, 2e-3]);
        let err = |line: &str| parse_answer(line, "a", 2).unwrap_err().to_string();
        assert!(err("error\tunknown workload `a`").contains("unknown workload"));
        assert!(err("b\t1 2").contains("asked for `a`, got `b`"));
        assert!(err("a\t1").contains("asked for 2 calls, got 1"));
        assert!(err("a\t1 -2").contains("`-2` is not a positive"));
        assert!(err("a 1 2").contains("no tab"));
    }

    #[test]
    fn rounds_alternate_and_report_the_median_ratio() {
        let mut rust = fake("Rust", "0.010");
        let mut torch = fake("PyTorch", "0.013");
        let pairs = vec![
            Pair {
                label: "step a",
                rust: "a".into(),
                torch: "a".into(),
                calls: 3,
                target: 1.2,
            },
            Pair {
                label: "b against a",
                rust: "b".into(),
                torch: "a".into(),
                calls: 1,
                target: 2.0,
            },
        ];
        let mut seen = Vec::new();
        let rows = run_rounds(&mut rust, &mut torch, &pairs, 3, |round, rows| {
            seen.push((round, rows.len()))
        })
        .unwrap();
        assert_eq!(seen, [(0, 2), (1, 2), (2, 2)]);
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| (r.ratio() - 1.3).abs() < 1e-9));
        let r = report(&pairs, &rows);
        assert!(
            r.contains("| a | 3 | 10.000 ms | 13.000 ms | 1.30x | 1.30x | 1.30x | 3 of 3 |"),
            "{r}"
        );
        assert!(r.contains("- step a: 1.30x faster than PyTorch eager (median of 3 paired rounds, 1.30x to 1.30x; target 1.2x): met"));
        assert!(r.contains("- b against a: 1.30x faster") && r.contains("target 2x): NOT met"));
        assert!(r.contains("| b / a | 1 |"));

        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("paired.tsv");
        write_tsv(&tsv, &pairs, &rows).unwrap();
        let text = std::fs::read_to_string(&tsv).unwrap();
        assert_eq!(text.lines().count(), 7);
        assert!(
            text.contains("\n3\tb\t1.000000e-2\t1.300000e-2\t1.3000\n"),
            "{text}"
        );
    }

    #[test]
    fn a_workload_a_server_lacks_is_named_before_anything_runs() {
        let mut rust = fake("Rust", "0.01");
        let mut torch = fake("PyTorch", "0.01");
        let pairs = vec![Pair {
            label: "c",
            rust: "a".into(),
            torch: "c".into(),
            calls: 1,
            target: 1.0,
        }];
        let err = run_rounds(&mut rust, &mut torch, &pairs, 1, |_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the PyTorch bench server does not offer `c` (it offers a, b)"
        );
    }

    #[test]
    fn a_server_that_dies_is_an_error_not_a_hang() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'ready\ta'; read line; exit 3"]);
        let mut server = Server::start("Rust", cmd).unwrap();
        let err = server.call("a", 1).unwrap_err();
        assert!(format!("{err:#}").contains("the Rust bench server ended without an answer"));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 0"]);
        assert!(Server::start("PyTorch", cmd).is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
