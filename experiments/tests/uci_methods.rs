//! The uci study's methods side by side (`configs/uci_methods_quick.yaml`, shortened) through
//! the `mcd` binary, and the located errors of a bad method section.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quick_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/uci_methods_quick.yaml")
}

fn mcd(cfg: &Path, results: &Path, extra: &[&str]) -> Output {
    let data = format!("data.dir={}", common::data_dir().display());
    Command::new(env!("CARGO_BIN_EXE_mcd"))
        .arg("run")
        .arg(cfg)
        .args(["--plain", "--threads", "1", "--set", &data])
        .args(extra)
        .arg("--results")
        .arg(results)
        .output()
        .expect("running mcd")
}

/// The quick config on one data set, 2 splits, 40 epochs, few passes: the comparison table has
/// one row per method with the method's published numbers, every run writes its training
/// curve (concrete dropout's with its learnt p), and a rerun reads every split back.
#[test]
fn quick_methods_end_to_end_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let short = [
        "--set",
        "uci.datasets=[yacht]",
        "--set",
        "uci.splits=2",
        "--set",
        "uci.epoch_multiplier=1",
        "--set",
        "uci.validation_samples=20",
        "--set",
        "predict.samples=50",
    ];
    let first = common::succeeded(mcd(&quick_config(), &results, &short));
    let folder = results.join("uci_methods_quick");
    for f in [
        "tables/methods.csv",
        "tables/methods.md",
        "tables/methods.parquet",
        "figures/methods_ll.png",
        "tables/mc_dropout_table1.csv",
        "tables/concrete_dropout_table1.csv",
        "tables/ensemble_table1.csv",
        "tables/mc_dropout_training_curves.csv",
        "tables/concrete_dropout_training_curves.csv",
        "figures/concrete_dropout_training_curves_p.png",
        "tables/ensemble_training_curves.csv",
        "predictions/ensemble_yacht.parquet",
    ] {
        assert!(folder.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(folder.join("tables/methods.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let methods: Vec<&str> = rows.iter().map(|r| r[col("method")]).collect();
    assert_eq!(
        methods,
        ["MC dropout", "concrete dropout", "deep ensemble"],
        "{csv}"
    );
    for r in &rows {
        assert_eq!(r[col("dataset")], "yacht");
        assert_eq!(r[col("splits")], "2");
        for c in ["rmse", "ll", "rmse_se", "ll_se", "run_s", "method_run_s"] {
            let v: f64 = r[col(c)].parse().unwrap();
            assert!(v.is_finite(), "{c} {v} in {csv}");
        }
    }
    // Published: Gal 2018 for MC dropout, the deep-ensembles paper (LL = -NLL) for the ensemble.
    assert_eq!(rows[0][col("published_ll")], "-1.25");
    assert_eq!(rows[2][col("published_rmse")], "1.58");
    assert_eq!(rows[2][col("published_ll")], "-1.18");
    assert!(rows[1][col("chosen")].contains("learnt p"), "{csv}");
    // Concrete dropout's curve carries the learnt rate of both layers.
    let curves =
        std::fs::read_to_string(folder.join("tables/concrete_dropout_training_curves.csv"))
            .unwrap();
    let head = curves.lines().next().unwrap();
    assert!(
        head.contains("p_before_layer0") && head.contains("p_before_layer1"),
        "{head}"
    );
    // Three methods, three resume folders (the key names the method).
    let keys = std::fs::read_dir(results.join(".cache/uci"))
        .unwrap()
        .count();
    assert_eq!(keys, 3);

    // A rerun trains nothing and gives the same table.
    let again = common::succeeded(mcd(&quick_config(), &results, &short));
    let log = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert_eq!(log.matches("(2 already done in").count(), 3, "{log}");
    let csv2 = std::fs::read_to_string(folder.join("tables/methods.csv")).unwrap();
    let strip = |t: &str| -> Vec<String> {
        // The wall-time columns differ between runs.
        t.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f[..col("train_s_per_split")].join(",")
            })
            .collect()
    };
    assert_eq!(strip(&csv), strip(&csv2));
    drop(first);
}

/// A bad method setting is one located error (file, line, key, value, what is allowed), exit
/// code 2, no panic, and no result folder.
#[test]
fn bad_method_settings_are_located_errors() {
    let text = std::fs::read_to_string(quick_config()).unwrap();
    let ensemble = "{model.method: ensemble,";
    let concrete = "{model.method: concrete_dropout}";
    assert!(text.contains(ensemble) && text.contains(concrete));
    for (from, to, key, needles) in [
        (
            concrete,
            "{model.method: bayes_by_backprop}",
            "model.method",
            &["bayes_by_backprop", "mc_dropout", "ensemble"][..],
        ),
        (
            concrete,
            "{model.method: heteroscedastic}",
            "model.method",
            &["heteroscedastic", "uci", "concrete_dropout, ensemble"][..],
        ),
        (
            ensemble,
            "{model.method: ensemble, model.members: 0,",
            "model.members",
            &["got 0"][..],
        ),
        (
            concrete,
            "{model.method: concrete_dropout, model.temperature: 0}",
            "model.temperature",
            &["0", "> 0"][..],
        ),
        (
            concrete,
            "{model.method: concrete_dropout, uci.dropout_rates: [0.1]}",
            "uci.dropout_rates",
            &["concrete_dropout", "learns p"][..],
        ),
        (
            ensemble,
            "{model.method: ensemble, uci.tau_values: [1.0],",
            "uci.tau_values",
            &["ensemble", "no tau"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bad = text.replace(from, to);
        let cfg = common::write(dir.path(), "bad_methods.yaml", &bad);
        let results = dir.path().join("results");
        let out = mcd(&cfg, &results, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // The file and a line (the setting lives in a variant: the error says which).
        let at = stderr.split("bad_methods.yaml:").nth(1).unwrap_or("");
        let line: usize = at.split(':').next().unwrap_or("").parse().unwrap_or(0);
        assert!(line >= 1 && line <= bad.lines().count(), "{stderr}");
        let variant = if from == ensemble {
            "ensemble"
        } else {
            "concrete_dropout"
        };
        assert!(
            stderr.contains(&format!("key `{key}`"))
                && stderr.contains(&format!("variant `{variant}`")),
            "{key}: {stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{key}: `{n}` missing in {stderr}");
        }
        assert_eq!(stderr.trim().lines().count(), 1, "one error:\n{stderr}");
        assert!(!results.exists(), "{key}: a result folder was made");
    }
}
