//! A config as independent tasks: every task run (in any order, one at a time here), then
//! collect, gives the tables and figures of one `mcd run` (timing columns aside); a missing task
//! is named with the command that reruns it and nothing is written; a changed config, an index
//! out of range and `--submit` without Slurm are clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mcd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(args)
        .output()
        .expect("running mcd")
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mcd failed:\n{stderr}");
    stderr
}

/// Every file of a result folder, CSV tables without their timing columns; run.log and the
/// Markdown and Parquet copies of the tables aside.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if p.is_dir() {
                stack.push(p);
            } else if rel != Path::new("run.log")
                // The Markdown and Parquet tables repeat the CSV, timing columns included.
                && !(rel.starts_with("tables")
                    && p.extension().is_some_and(|x| x == "md" || x == "parquet"))
            {
                let bytes = std::fs::read(&p).unwrap();
                let is_csv = p.extension().is_some_and(|x| x == "csv");
                out.push((rel, if is_csv { drop_timing(&bytes) } else { bytes }));
            }
        }
    }
    out.sort();
    out
}

/// CSV fields, double quotes respected (run names hold commas).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn drop_timing(csv: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let header = fields(text.lines().next().unwrap_or(""));
    let skip: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.contains("seconds"))
        .map(|(i, _)| i)
        .collect();
    text.lines()
        .map(|l| {
            fields(l)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// Runs every task (one thread each), collects, and compares with one `mcd run` of the same
/// config; `threads` for the run and collect must give each of its nets one thread too.
fn tasks_then_collect_equals_one_run(
    cfg: &Path,
    dir: &Path,
    name: &str,
    sets: &[&str],
    threads: &'static str,
) -> usize {
    let cfg = cfg.to_str().unwrap();
    let shared = dir.join("shared");
    let single = dir.join("single");
    let with = |mut v: Vec<&'static str>| -> Vec<String> {
        let mut a: Vec<String> = v.drain(..).map(String::from).collect();
        a.insert(1, cfg.to_string());
        for s in sets {
            a.push("--set".into());
            a.push((*s).to_string());
        }
        a
    };
    let listed = mcd(&with(vec!["tasks"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&listed.stdout).into_owned();
    ok(listed);
    let n = stdout.lines().count();
    assert!(n >= 2, "expected several tasks:\n{stdout}");
    // Backwards, to show the order does not matter.
    for i in (0..n).rev() {
        let mut a = with(vec!["task", "--plain", "--threads", "1", "--index"]);
        a.insert(6, i.to_string());
        a.extend(["--results".into(), shared.display().to_string()]);
        ok(mcd(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    let mut a = with(vec![
        "collect",
        "--plain",
        "--threads",
        threads,
        "--results",
    ]);
    a.insert(6, shared.display().to_string());
    let log = ok(mcd(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(!log.contains("] 1/"), "collect must not train:\n{log}");
    let mut a = with(vec!["run", "--plain", "--threads", threads, "--results"]);
    a.insert(6, single.display().to_string());
    ok(mcd(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let (got, want) = (contents(&shared.join(name)), contents(&single.join(name)));
    assert_eq!(
        got.iter().map(|f| &f.0).collect::<Vec<_>>(),
        want.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((path, a), (_, b)) in got.iter().zip(&want) {
        assert!(
            a == b,
            "{}: collected and single-run files differ",
            path.display()
        );
    }
    n
}

fn sweep_config(dir: &Path) -> PathBuf {
    let text = common::tiny_config()
        .split("variants:")
        .next()
        .unwrap()
        .replace("name: tiny", "name: sweep")
        .to_string()
        + "sweep:\n  model.dropout: [0.1, 0.2]\n  model.activation: [relu, tanh]\n";
    common::write(dir, "sweep.yaml", &text)
}

#[test]
fn a_sweep_as_tasks_collects_into_the_single_run_result() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sweep_config(dir.path());
    // Four runs on two threads: each run trains and predicts on one, as the tasks do.
    let n = tasks_then_collect_equals_one_run(&cfg, dir.path(), "sweep", &[], "2");
    assert_eq!(n, 4);
}

#[test]
fn uci_as_tasks_collects_into_the_single_run_result() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/uci_quick.yaml");
    let data = format!("data.dir={}", common::data_dir().display());
    let sets = [
        data.as_str(),
        "uci.splits=2",
        "uci.splits_per_stack=1",
        "uci.epoch_multiplier=1",
        "uci.validation_samples=20",
        "predict.samples=100",
    ];
    // The uci study trains its stacks one after another on all the threads it is given.
    let n = tasks_then_collect_equals_one_run(&cfg, dir.path(), "uci_quick", &sets, "1");
    assert_eq!(n, 4);
}

#[test]
fn concrete_synthetic_as_tasks_collects_into_the_single_run_result() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_synthetic_config().replace("  repeats: 2\n", "  repeats: 1\n")
        + "variants:\n  - name: a\n    set: {seed: 1}\n  - name: b\n    set: {seed: 2}\n";
    let cfg = common::write(dir.path(), "synthetic.yaml", &text);
    // Two runs of two nets each on two threads: every net trains on one, as in the tasks.
    let n = tasks_then_collect_equals_one_run(&cfg, dir.path(), "tiny_synthetic", &[], "2");
    assert_eq!(n, 2);
    // Several runs: a `run` column, and one row per (run, N, repetition) plus a mean row.
    let csv = std::fs::read_to_string(dir.path().join("single/tiny_synthetic/tables/summary.csv"))
        .unwrap();
    assert!(csv.starts_with("run,N,repeat,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 2, "{csv}");
}

#[test]
fn missing_tasks_are_named_and_nothing_is_collected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sweep_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let root = dir.path().join("shared");
    let root_s = root.to_str().unwrap();
    // Nothing planned yet.
    let out = mcd(&["collect", cfg, "--results", root_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tasks of"));
    for i in ["0", "2"] {
        ok(mcd(&[
            "task",
            cfg,
            "--index",
            i,
            "--results",
            root_s,
            "--plain",
        ]));
    }
    // A finished task is skipped.
    let again = ok(mcd(&["task", cfg, "--index", "0", "--results", root_s]));
    assert!(again.contains("finished before, skipped"), "{again}");
    let out = mcd(&["collect", cfg, "--results", root_s, "--plain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 of 4 tasks have not finished: 1, 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("mcd task {cfg} --index 3 --results {root_s}")),
        "{stderr}"
    );
    assert!(stderr.contains("--indices 1,3 --submit"), "{stderr}");
    assert!(!root.join("sweep").exists(), "nothing may be collected");
    // Out of range.
    let out = mcd(&["task", cfg, "--index", "4", "--results", root_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range: "));
    // The config changed since planning: its hash differs from plan.json's.
    let out = mcd(&[
        "task",
        cfg,
        "--index",
        "1",
        "--results",
        root_s,
        "--set",
        "seed=9",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("belong to another config"), "{stderr}");
}

#[test]
fn slurm_scripts_and_submit_without_slurm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sweep_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    let root = dir.path().join("shared");
    let root_s = root.to_str().unwrap();
    let args = [
        "slurm",
        cfg,
        "--results",
        root_s,
        "--max-parallel",
        "2",
        "--cpus",
        "1",
        "--indices",
        "1,3",
        "--partition",
        "debug",
        "--device",
        "cuda",
    ];
    ok(mcd(&args));
    let script = std::fs::read_to_string(root.join(".tasks/sweep/array.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=1,3%2",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --partition=debug",
        "#SBATCH --gres=gpu:1",
        "task ",
        "--index \"$SLURM_ARRAY_TASK_ID\"",
        "--device cuda",
    ] {
        assert!(script.contains(line), "`{line}` missing from:\n{script}");
    }
    let collect = std::fs::read_to_string(root.join(".tasks/sweep/collect.sbatch")).unwrap();
    assert!(collect.contains(" collect "), "{collect}");
    let out = mcd(&["slurm", cfg, "--results", root_s, "--indices", "7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("task 7 is out of range"));
    // --submit where no sbatch is on PATH.
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["slurm", cfg, "--results", root_s, "--submit"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`sbatch` is not on PATH"), "{stderr}");
}
