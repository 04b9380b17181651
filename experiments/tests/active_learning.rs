//! The active_learning study: its scores on hand-built passes, the balanced initial set, the
//! pool bookkeeping, resuming after an interrupted round, a tiny run end to end, and located
//! config errors.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use mcd_evaluation::classification as cls;
use mcd_evaluation::ProbSamples;
use mcd_experiments::studies::active_learning::{draw_sets, pool_of, top_k, Progress};

fn tiny() -> String {
    common::tiny_active_learning_config()
}

#[test]
fn the_four_scores_on_hand_built_passes() {
    // T = 2 passes, one point, 2 classes: [0.8, 0.2] then [0.2, 0.8].
    let data = [0.8f32, 0.2, 0.2, 0.8];
    let s = ProbSamples::new(&data, 2, 1, 2).unwrap();
    let h82 = -(0.8f64 * 0.8f64.ln() + 0.2 * 0.2f64.ln());
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    // Mean [0.5, 0.5]: entropy ln 2.
    assert!(close(cls::predictive_entropy(&s)[0], 2f64.ln()));
    // BALD: ln 2 - mean of the passes' entropies.
    assert!(close(cls::mutual_information(&s)[0], 2f64.ln() - h82));
    // Each class wins one of two passes: 1 - 1/2.
    assert!(close(cls::variation_ratio(&s)[0], 0.5));
    // Each class's probability is 0.8 or 0.2: sd 0.3, mean over classes 0.3.
    assert!(close(cls::mean_std(&s)[0], 0.3));
    // Passes that agree score 0 on BALD, variation ratios and mean STD.
    let agree = [0.9f32, 0.1, 0.9, 0.1];
    let s = ProbSamples::new(&agree, 2, 1, 2).unwrap();
    assert!(cls::mutual_information(&s)[0].abs() < 1e-9);
    assert_eq!(cls::variation_ratio(&s)[0], 0.0);
    assert!(cls::mean_std(&s)[0].abs() < 1e-7);
    // The best first, ties to the earlier position.
    assert_eq!(top_k(&[0.1, 0.7, 0.3, 0.7, 0.0], 3), vec![1, 3, 2]);
}

fn mnist_labels() -> Vec<i64> {
    let root = mcd_datasets::DataRoot::open(common::data_dir()).unwrap();
    let set = mcd_datasets::mnist::load(&root, mcd_datasets::Split::Train).unwrap();
    Vec::<i64>::try_from(&set.labels).unwrap()
}

#[test]
fn the_initial_set_is_balanced_and_apart_from_validation_and_pool() {
    let labels = mnist_labels();
    let (init, val) = draw_sets(&labels, 20, 100, 0, 0);
    assert_eq!((init.len(), val.len()), (20, 100));
    let mut per_class = [0; 10];
    for &i in &init {
        per_class[labels[i] as usize] += 1;
    }
    assert_eq!(per_class, [2; 10]);
    let a: BTreeSet<_> = init.iter().collect();
    let b: BTreeSet<_> = val.iter().collect();
    assert!(a.is_disjoint(&b));
    let pool = pool_of(labels.len(), &[init.as_slice(), val.as_slice()]);
    assert_eq!(pool.len(), 60_000 - 120);
    assert!(pool.iter().all(|i| !a.contains(i) && !b.contains(i)));
    // Same seed and repeat, same sets; another repeat, other sets.
    assert_eq!(draw_sets(&labels, 20, 100, 0, 0), (init.clone(), val));
    assert_ne!(draw_sets(&labels, 20, 100, 0, 1).0, init);
}

fn progress_files(results: &Path) -> Vec<(String, Progress)> {
    let dir = results.join(".cache/active_learning");
    let mut out: Vec<(String, Progress)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn read(results: &Path, rel: &str) -> String {
    std::fs::read_to_string(results.join("tiny_al").join(rel)).unwrap()
}

/// A tiny run end to end: every output is written, acquired images leave the pool and never
/// repeat; a rerun after an interrupted round (the resume file cut back to its first round, as
/// kill -9 after that round leaves it) ends with the same acquisitions and the same curve.
#[test]
fn tiny_run_end_to_end_and_resume_after_an_interrupted_round() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(dir.path(), "exp.yaml", &tiny());
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    for f in [
        "tables/curve.csv",
        "tables/curve.parquet",
        "tables/curve.md",
        "tables/acquired.csv",
        "tables/images_to_error.csv",
        "tables/summary.md",
        "tables/round_times.csv",
        "figures/test_error.png",
        "figures/test_error.svg",
    ] {
        assert!(results.join("tiny_al").join(f).is_file(), "{f} missing");
    }
    let files = progress_files(&results);
    assert_eq!(files.len(), 2, "one resume file per function and repeat");
    for (name, p) in &files {
        assert_eq!(p.rounds.len(), 4, "{name}: rounds 0..=3");
        let mut seen: BTreeSet<usize> = p.initial.iter().copied().collect();
        seen.extend(&p.validation);
        assert_eq!(seen.len(), 30);
        for (k, r) in p.rounds.iter().enumerate() {
            assert_eq!(r.train_size, 10 + 5 * k, "{name}");
            let want = if k < 3 { 5 } else { 0 };
            assert_eq!(r.acquired.len(), want, "{name} round {k}");
            for &i in &r.acquired {
                assert!(
                    seen.insert(i),
                    "{name}: image {i} acquired twice or from a set"
                );
            }
            assert!((0.0..=1.0).contains(&r.test_error));
        }
    }
    let acquired = read(&results, "tables/acquired.csv");
    let curve = read(&results, "tables/curve.csv");
    assert_eq!(acquired.lines().count(), 1 + 2 * 3 * 5);

    // Interrupted after round 1: the resume files hold rounds 0 and 1 only.
    for (name, p) in &files {
        let mut cut = p.clone();
        cut.rounds.truncate(2);
        std::fs::write(
            results.join(".cache/active_learning").join(name),
            serde_json::to_string(&cut).unwrap(),
        )
        .unwrap();
    }
    let out = common::mcd_run(&cfg, &results);
    let log = read(&results, "run.log");
    assert!(log.contains("resuming after round 1"), "{log}");
    let _ = out;
    assert_eq!(read(&results, "tables/acquired.csv"), acquired);
    // The curve's errors and sizes match; its timings are new for the redone rounds.
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split(',').take(9).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(strip(&read(&results, "tables/curve.csv")), strip(&curve));
    let again = progress_files(&results);
    for ((_, a), (_, b)) in again.iter().zip(&files) {
        let ids = |p: &Progress| -> Vec<Vec<usize>> {
            p.rounds.iter().map(|r| r.acquired.clone()).collect()
        };
        assert_eq!(ids(a), ids(b));
    }
}

#[test]
fn bad_values_are_located_errors() {
    let cases: &[(&str, &str, &str, usize, &[&str])] = &[
        (
            "  pool_subset: 40\n",
            "  pool_subset: 70000\n",
            "active_learning.pool_subset",
            25,
            &["70000"],
        ),
        (
            "  rounds: 3\n",
            "  rounds: 0\n",
            "active_learning.rounds",
            21,
            &["got 0"],
        ),
        (
            "  functions: [bald, random]\n",
            "  functions: [bald, coin_flip]\n",
            "active_learning.functions",
            19,
            &["coin_flip", "max_entropy"],
        ),
        (
            "  initial: 10\n",
            "  initial: 25\n",
            "active_learning.initial",
            23,
            &["25", "balanced"],
        ),
        (
            "  rounds: 3\n",
            "  rounds: 20000\n",
            "active_learning.rounds",
            21,
            &["20000", "pool"],
        ),
    ];
    for (from, to, key, line, needles) in cases {
        let text = tiny().replace(from, to);
        assert_ne!(text, tiny(), "{from}");
        let e = common::load_text(&text, &[]).expect_err(to);
        common::assert_config_error(&e, key, Some(*line), needles);
    }
    // trainer.iterations is refused: rounds train for epochs.
    let text = tiny().replace("  epochs: 2\n", "  iterations: 2\n");
    let e = common::load_text(&text, &[]).unwrap_err();
    common::assert_config_error(&e, "trainer.iterations", Some(10), &["epochs"]);
}

/// mcd exits non-zero with the located error, without a panic and without touching results.
#[test]
fn a_bad_config_exits_with_the_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(
        dir.path(),
        "exp.yaml",
        &tiny().replace("  pool_subset: 40\n", "  pool_subset: 70000\n"),
    );
    let results = dir.path().join("results");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["run", cfg.to_str().unwrap(), "--plain", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("exp.yaml:25") && err.contains("active_learning.pool_subset"),
        "{err}"
    );
    assert!(!results.join("tiny_al").exists());
}
