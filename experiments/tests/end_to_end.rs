//! The `mcd` binary on a tiny config: finishes in seconds, writes a complete result folder;
//! a bad config exits non-zero and leaves nothing behind.

mod common;

use std::process::Command;

#[test]
fn tiny_co2_run_writes_its_folder_and_reuses_cached_weights() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(dir.path(), "tiny.yaml", &common::tiny_config());
    let results = dir.path().join("results");
    let run = || common::mcd_run(&cfg, &results);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mcd failed:\n{stderr}");
    let folder = results.join("tiny");
    for f in [
        "config.yaml",
        "config.resolved.yaml",
        "run.log",
        "figures/fig2_co2.png",
        "figures/fig2_co2.svg",
        "figures/fig3_relu_samples.png",
        "tables/summary.csv",
        "tables/summary.parquet",
        "tables/summary.md",
        "tables/predictions.csv",
    ] {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let summary = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    for model in [
        "standard dropout",
        "GP",
        "MC dropout relu",
        "MC dropout tanh",
        "(T=5)",
    ] {
        assert!(summary.contains(model), "summary lacks {model}:\n{summary}");
    }
    // The fit check: the GP follows the seasonal wave everywhere, the barely trained nets do
    // not, and run.log names where.
    let mut lines = summary.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (model, flat) = (col("model"), col("flat_windows"));
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let windows: f64 = cells[flat].parse().unwrap();
        if cells[model].starts_with("GP") {
            assert_eq!(windows, 0.0, "{line}");
        } else if cells[model] == "MC dropout relu" {
            assert!(windows > 0.0, "{line}");
        }
    }
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(
        log.contains("warning: MC dropout relu: the mean misses half or more"),
        "{log}"
    );
    let resolved = std::fs::read_to_string(folder.join("config.resolved.yaml")).unwrap();
    assert!(resolved.contains("relu:") && resolved.contains("tanh:"));
    // No temporary folders left.
    let leftovers: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    // Second run: weights come from the cache, and the result is the same.
    let again = run();
    assert!(again.status.success());
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(log.contains("loaded cached weights"), "{log}");
    assert_eq!(
        std::fs::read_to_string(folder.join("tables/summary.csv"))
            .unwrap()
            .lines()
            .count(),
        summary.lines().count()
    );
}

#[test]
fn tiny_co2_run_with_the_heteroscedastic_method_reports_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config()
        .replace("  small_samples: 5\n", "  small_samples: 5\n  gp: false\n")
        .replace(
            "set: {model.activation: tanh, trainer.lr: 0.005}",
            "set: {model.method: heteroscedastic}",
        )
        .replace("  - name: tanh\n", "  - name: het\n");
    let cfg = common::write(dir.path(), "het.yaml", &text);
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny");
    assert!(folder.join("figures/sd_parts_het.png").is_file());
    assert!(!folder.join("figures/sd_parts_relu.png").exists());
    let table = |name: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let text = std::fs::read_to_string(folder.join(format!("tables/{name}.csv"))).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().split(',').map(String::from).collect();
        let rows = lines
            .map(|l| l.split(',').map(String::from).collect())
            .collect();
        (header, rows)
    };
    let (header, rows) = table("summary");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = rows
        .iter()
        .find(|r| r[col("model")] == "heteroscedastic MC dropout het")
        .unwrap_or_else(|| panic!("no heteroscedastic row in {rows:?}"));
    let num = |r: &Vec<String>, name: &str| -> f64 { r[col(name)].parse().unwrap() };
    let (e, a, sd) = (
        num(row, "epistemic_sd_at_x_star"),
        num(row, "aleatoric_sd_at_x_star"),
        num(row, "sd_at_x_star"),
    );
    assert!(e > 0.0 && a > 0.0, "{row:?}");
    assert!(
        (sd * sd - (e * e + a * a)).abs() < 1e-9 * sd * sd,
        "{row:?}"
    );
    assert!(num(row, "epistemic_sd_train") > 0.0 && num(row, "aleatoric_sd_train") > 0.0);
    assert!(
        row[col("tau")].is_empty() || row[col("tau")] == "NaN",
        "no tau: {row:?}"
    );
    // MC dropout's aleatoric part is 1/sqrt(tau), the same everywhere.
    let mc = rows
        .iter()
        .find(|r| r[col("model")] == "MC dropout relu")
        .unwrap();
    let tau = num(mc, "tau");
    assert!((num(mc, "aleatoric_sd_at_x_star") - 1.0 / tau.sqrt()).abs() < 1e-12);
    let (header, _) = table("predictions");
    for c in [
        "het_mean",
        "het_sd",
        "het_epistemic_sd",
        "het_aleatoric_sd",
        "relu_sd",
    ] {
        assert!(
            header.iter().any(|h| h == c),
            "predictions lack {c}: {header:?}"
        );
    }
    assert!(
        !header.iter().any(|h| h == "relu_epistemic_sd"),
        "{header:?}"
    );
}

#[test]
fn bad_config_exits_non_zero_and_keeps_previous_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("tiny")).unwrap();
    std::fs::write(results.join("tiny/keep.txt"), "previous").unwrap();
    let cfg = common::write(
        dir.path(),
        "bad.yaml",
        &common::tiny_config().replace("dropout: 0.1", "dropout: 1.5"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["run", cfg.to_str().unwrap(), "--plain", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:9") && stderr.contains("model.dropout"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear error:\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(results.join("tiny/keep.txt")).unwrap(),
        "previous"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["run", cfg.to_str().unwrap(), "--device", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tiny_mnist_run_writes_figures_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(dir.path(), "tiny_mnist.yaml", &common::tiny_mnist_config());
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .args(["run", cfg.to_str().unwrap(), "--plain", "--results"])
        .arg(&results)
        .output()
        .expect("running mcd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mcd failed:\n{stderr}");
    let folder = results.join("tiny_mnist");
    for f in [
        "figures/fig4a_softmax_input.png",
        "figures/fig4b_softmax_output.svg",
        "figures/reliability_mc.png",
        "figures/reliability_standard.png",
        "tables/rotation.csv",
        "tables/test_metrics.parquet",
        "tables/ood.md",
        "tables/training_curves.md",
        "figures/training_curves.svg",
    ] {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let rotation = std::fs::read_to_string(folder.join("tables/rotation.csv")).unwrap();
    assert_eq!(
        rotation.lines().count(),
        1 + 4,
        "one row per angle:\n{rotation}"
    );
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(
        log.contains("epoch 1: accuracy on the first 100 test images"),
        "{log}"
    );
    // 256 images in batches of 64, one epoch: 4 steps, logged every 2 and at the last.
    let curves = std::fs::read_to_string(folder.join("tables/training_curves.csv")).unwrap();
    let steps: Vec<&str> = curves
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(steps, ["0", "2", "3"], "{curves}");
    assert!(curves.starts_with("run,step,loss\n"), "{curves}");
}

#[test]
fn co2_sd_curves_report_pairs_each_rate_with_its_own_width() {
    // A dropout-rate comparison as variants: each p with its width and warm-up.
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config()
        .split("variants:")
        .next()
        .unwrap()
        .to_string()
        + "  report: sd_curves\nvariants:\n  - name: p1\n    set: {model.dropout: 0.1}\n  \
           - name: p3\n    set: {model.dropout: 0.3, model.hidden: [32, 32], \
           trainer.dropout_warmup: 0.5}\n";
    let cfg = common::write(dir.path(), "rates.yaml", &text);
    let results = dir.path().join("results");
    let out = common::mcd_run(&cfg, &results);
    assert!(out.status.success());
    let folder = results.join("tiny");
    assert!(folder.join("figures/sd_vs_x_relu.png").exists());
    assert!(!folder.join("figures/fig2_co2.png").exists());
    let svg = std::fs::read_to_string(folder.join("figures/sd_vs_x_relu.svg")).unwrap();
    assert!(svg.contains("p = 0.3, 2 x 32") && svg.contains("p = 0.1, 2 x 16"));
    let summary = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    assert!(!summary.contains("GP"), "{summary}");
    let mut lines = summary.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (model, hidden, warmup) = (col("model"), col("hidden"), col("dropout_warmup"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[model] == name)
            .unwrap_or_else(|| panic!("no row {name}:\n{summary}"))
    };
    assert_eq!(row("MC dropout p3")[hidden], "2 x 32");
    assert_eq!(row("MC dropout p3")[warmup].parse::<f64>().unwrap(), 0.5);
    assert_eq!(row("MC dropout p1")[hidden], "2 x 16");
    assert_eq!(row("MC dropout p1")[warmup].parse::<f64>().unwrap(), 0.0);
}
