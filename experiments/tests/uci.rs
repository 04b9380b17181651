//! The UCI study through the `mcd` binary: `configs/uci_quick.yaml` end to end (shortened), and
//! resuming: finished splits are read back, a missing one is recomputed to the same numbers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quick_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/uci_quick.yaml")
}

fn run(results: &Path, extra: &[&str]) -> Output {
    let data = format!("data.dir={}", common::data_dir().display());
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .arg("run")
        .arg(quick_config())
        .args([
            "--plain",
            "--threads",
            "1",
            "--set",
            &data,
            // Shortened: 2 splits, 40 epochs, few passes.
            "--set",
            "uci.splits=2",
            "--set",
            "uci.epoch_multiplier=1",
            "--set",
            "uci.validation_samples=50",
            "--set",
            "predict.samples=300",
        ])
        .args(extra)
        .arg("--results")
        .arg(results)
        .output()
        .expect("running mcd");
    common::succeeded(out)
}

/// `(dataset, split) -> JSON` of every resumable split result under the results cache.
fn split_files(results: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for key in std::fs::read_dir(results.join(".cache/uci")).unwrap() {
        for set in std::fs::read_dir(key.unwrap().path()).unwrap() {
            let set = set.unwrap();
            for f in std::fs::read_dir(set.path()).unwrap() {
                let f = f.unwrap().path();
                out.push((set.file_name().to_string_lossy().into_owned(), f));
            }
        }
    }
    out.sort();
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quick_config_end_to_end_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    run(&results, &[]);
    let folder = results.join("uci_quick");
    for f in [
        "config.resolved.yaml",
        "tables/table1.csv",
        "tables/table1.parquet",
        "tables/table1.md",
        "figures/ll.png",
        "figures/ll.svg",
        "figures/rmse_relative.png",
        "predictions/bostonHousing.parquet",
        "predictions/yacht.parquet",
        "tables/training_curves.csv",
        "tables/training_curves.md",
        "figures/training_curves.png",
    ] {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let table = std::fs::read_to_string(folder.join("tables/table1.csv")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    // Columns: dataset, splits, rmse, rmse_se, rmse_2018, rmse_2018_se, rmse_2016, ll, ...
    for (row, (name, target_sd)) in rows.iter().zip([("bostonHousing", 9.2), ("yacht", 15.1)]) {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!((f[0], f[1]), (name, "2"), "{row}");
        // Even 40 epochs beat predicting the training mean by a clear margin.
        let rmse: f64 = f[2].parse().unwrap();
        assert!(rmse > 0.0 && rmse < 0.8 * target_sd, "{name} RMSE {rmse}");
        let ll: f64 = f[7].parse().unwrap();
        assert!(ll.is_finite() && ll < 0.0, "{name} LL {ll}");
    }

    // One training curve per data set: the mean of its two final models' curves, ending at
    // the last step (40 epochs of ceil(rows / 128) steps).
    let curves_path = folder.join("tables/training_curves.csv");
    let curves = std::fs::read_to_string(&curves_path).unwrap();
    let mut lines = curves.lines();
    assert_eq!(
        lines.next().unwrap(),
        "run,step,loss,loss_min,loss_max,splits"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for name in ["bostonHousing", "yacht"] {
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == name).collect();
        assert!(mine.len() > 20, "{name}: {} logged steps", mine.len());
        assert!(mine.iter().all(|r| r[5] == "2"), "{name}: {mine:?}");
        let loss = |r: &Vec<&str>, i: usize| -> f64 { r[i].parse().unwrap() };
        let (first, last) = (mine[0], mine[mine.len() - 1]);
        assert_eq!(first[1], "0");
        assert!(
            loss(last, 2) < loss(first, 2),
            "{name}: {first:?} -> {last:?}"
        );
        for r in &mine {
            assert!(
                loss(r, 3) <= loss(r, 2) && loss(r, 2) <= loss(r, 4),
                "{r:?}"
            );
        }
    }

    // Every split was saved; a second run reads them all back, curves included.
    let files = split_files(&results);
    assert_eq!(files.len(), 4, "{files:?}");
    let again = run(&results, &[]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains("bostonHousing: 2 splits (2 already done"),
        "{log}"
    );
    assert!(!log.contains("grid ("), "nothing is trained again:\n{log}");
    assert_eq!(std::fs::read_to_string(&curves_path).unwrap(), curves);

    // A split saved before curves were recorded (no `train_curve`) still loads: the data
    // set's curve is the other split's, and the log says so.
    let (_, boston0) = files
        .iter()
        .find(|(set, f)| set == "bostonHousing" && f.ends_with("split_00.json"))
        .expect("boston split 0 saved");
    let mut old = json(boston0);
    old.as_object_mut().unwrap().remove("train_curve").unwrap();
    std::fs::write(boston0, old.to_string()).unwrap();

    // A lost split is recomputed, alone this time, to the same result (up to f32 rounding in
    // batched kernels of another size): a split's nets, masks and passes depend on the seed,
    // not on which splits share its stack.
    let (_, yacht1) = files
        .iter()
        .find(|(set, f)| set == "yacht" && f.ends_with("split_01.json"))
        .expect("yacht split 1 saved");
    let before = json(yacht1);
    std::fs::remove_file(yacht1).unwrap();
    let third = run(&results, &[]);
    let log = String::from_utf8_lossy(&third.stderr);
    assert!(log.contains("yacht: 2 splits (1 already done"), "{log}");
    assert!(
        log.contains("bostonHousing: 1 of 2 splits were saved before training curves"),
        "{log}"
    );
    let curves = std::fs::read_to_string(&curves_path).unwrap();
    let boston: Vec<&str> = curves
        .lines()
        .filter(|l| l.starts_with("bostonHousing,"))
        .collect();
    assert!(
        !boston.is_empty() && boston.iter().all(|l| l.ends_with(",1")),
        "{curves}"
    );
    let after = json(yacht1);
    for key in ["p", "tau", "test_rmse", "test_ll", "standard_rmse"] {
        let (a, b) = (before[key].as_f64().unwrap(), after[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            "{key}: {a} then {b}"
        );
    }

    // libtorch's stacked trainer is another protocol (the default is the fused one): it starts
    // afresh under its own key, and lands on the same numbers to rounding.
    let torch = run(&results, &["--set", "uci.stack_trainer=libtorch"]);
    let log = String::from_utf8_lossy(&torch.stderr);
    assert!(log.contains("yacht: 2 splits (0 already done"), "{log}");
    let files = split_files(&results);
    assert_eq!(files.len(), 8, "{files:?}");
    let twins: Vec<&PathBuf> = files
        .iter()
        .filter(|(set, f)| set == "yacht" && f.ends_with("split_01.json"))
        .map(|(_, f)| f)
        .collect();
    assert_eq!(twins.len(), 2);
    let (a, b) = (json(twins[0]), json(twins[1]));
    for key in ["test_rmse", "test_ll"] {
        let (a, b) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 0.02 * a.abs(),
            "{key}: fused and libtorch {a} / {b}"
        );
    }
}

#[test]
fn uci_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = std::fs::read_to_string(quick_config()).unwrap().replace(
        "datasets: [bostonHousing, yacht]",
        "datasets: [bostonHousing, yatch]",
    );
    let cfg = common::write(dir.path(), "bad_uci.yaml", &bad);
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("uci.datasets[1]") && stderr.contains("yatch") && stderr.contains("yacht"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear error:\n{stderr}");
}

/// `uci.stack_trainer`: an unknown value, and `fused` where it cannot run, are located errors.
#[test]
fn stack_trainer_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let quick = std::fs::read_to_string(quick_config()).unwrap();
    for (extra, model, wanted) in [
        ("stack_trainer: torch", "", "allowed: fused, libtorch"),
        (
            "stack_trainer: fused",
            "  method: concrete_dropout\n",
            "trains MC dropout only",
        ),
        (
            "stack_trainer: fused",
            "  activation: tanh\n",
            "ReLU hidden layers only",
        ),
    ] {
        let text = quick
            .replace(
                "  validation_samples: 200",
                &format!("  validation_samples: 200\n  {extra}"),
            )
            .replace(
                "  activation: relu\n",
                if model.contains("activation") {
                    ""
                } else {
                    "  activation: relu\n"
                },
            )
            .replace("model:\n", &format!("model:\n{model}"));
        let cfg = common::write(dir.path(), "bad_stack.yaml", &text);
        let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
            .args(["check", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra} {model}: {stderr}");
        assert!(
            stderr.contains("uci.stack_trainer") && stderr.contains(wanted),
            "{stderr}"
        );
        assert!(stderr.contains("bad_stack.yaml:"), "located: {stderr}");
    }
}
