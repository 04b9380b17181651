//! The concrete_synthetic study: a tiny run end to end (its table, figures and the learnt rates'
//! dependence on N), and its config errors, each located.

mod common;

use common::assert_config_error as assert_err;
use mcd_experiments::config::{ConfigError, StudyConfig};

fn err(text: &str, overrides: &[&str]) -> ConfigError {
    common::load_text(text, overrides).expect_err("the config should be refused")
}

/// `text` with the line starting `key:` (after its indentation) replaced by `line`.
fn with_line(key: &str, line: &str) -> String {
    let text = common::tiny_synthetic_config();
    let old = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}` line"));
    text.replacen(old, line, 1)
}

#[test]
fn the_tiny_config_loads_with_its_defaults() {
    let exp = common::load_text(&common::tiny_synthetic_config(), &[]).unwrap();
    let StudyConfig::ConcreteSynthetic(c) = &exp.runs[0].study else {
        panic!("{:?}", exp.runs[0].study)
    };
    assert_eq!(c.sizes, vec![10, 2000]);
    assert_eq!(
        (c.repeats, c.test_points, c.iterations, c.samples),
        (2, 200, 400, 10)
    );
    assert_eq!(c.temperature, 0.1);
    // Without the section: the authors' sizes, 3 repetitions, 1000 held-out points; without
    // precision.tau: 1.
    let text = common::tiny_synthetic_config();
    let text = text.split("concrete_synthetic:\n").next().unwrap();
    let text = text.replace("  tau: 1\n", "");
    let exp = common::load_text(&text, &[]).unwrap();
    let StudyConfig::ConcreteSynthetic(c) = &exp.runs[0].study else {
        panic!()
    };
    assert_eq!(c.sizes, vec![10, 25, 50, 100, 1000, 10000]);
    assert_eq!((c.repeats, c.test_points), (3, 1000));
    let (_, tau) = exp.runs[0]
        .train_spec(mcd_experiments::config::TrainLength::Iterations(1), 10)
        .unwrap();
    assert_eq!(tau, 1.0);
}

#[test]
fn bad_sizes_repeats_and_rates_are_located_errors() {
    for (sizes, needle) in [
        ("[1, 10]", "N >= 2"),
        ("[10, 10]", "strictly increasing"),
        ("[100, 10]", "strictly increasing"),
        ("[]", "empty"),
        ("[10, 2000000]", "N <= 1000000"),
    ] {
        let text = with_line("sizes", &format!("  sizes: {sizes}"));
        assert_err(
            &err(&text, &[]),
            "concrete_synthetic.sizes",
            Some(23),
            &[needle],
        );
    }
    let text = with_line("repeats", "  repeats: 0");
    assert_err(
        &err(&text, &[]),
        "concrete_synthetic.repeats",
        Some(24),
        &["got 0", "positive integer"],
    );
    let text = with_line("test_points", "  test_points: 0");
    assert_err(
        &err(&text, &[]),
        "concrete_synthetic.test_points",
        Some(25),
        &["got 0"],
    );
    // From the command line: the override is named.
    let e = err(
        &common::tiny_synthetic_config(),
        &["concrete_synthetic.sizes=[5, 3]"],
    );
    assert_eq!(e.key, "concrete_synthetic.sizes", "{e}");
    assert!(
        e.to_string().contains("--set concrete_synthetic.sizes"),
        "{e}"
    );
    // The temperature and the initial rates.
    for t in ["0", "-1"] {
        let text = with_line("temperature", &format!("  temperature: {t}"));
        assert_err(
            &err(&text, &[]),
            "model.temperature",
            Some(10),
            &["a temperature > 0"],
        );
    }
    let text = with_line("dropout", "  dropout: 0");
    assert_err(&err(&text, &[]), "model.dropout", Some(6), &["(0, 1)"]);
    let text = with_line("dropout", "  dropout: 1.5");
    assert_err(&err(&text, &[]), "model.dropout", Some(6), &["[0, 1)"]);
    let text = with_line("input_dropout", "  input_dropout: 1");
    assert_err(
        &err(&text, &[]),
        "model.input_dropout",
        Some(7),
        &["[0, 1)"],
    );
    // T >= 2: the epistemic sd is an sd over passes.
    let text = with_line("samples", "  samples: 1");
    assert_err(
        &err(&text, &[]),
        "predict.samples",
        Some(21),
        &["at least 2"],
    );
}

#[test]
fn keys_the_study_does_not_take_are_located_errors() {
    // An unknown key in the section.
    let text = with_line("repeats", "  repeat: 2");
    let e = err(&text, &[]);
    assert_eq!(e.key, "concrete_synthetic.repeat", "{e}");
    assert_eq!(e.line, Some(24), "{e}");
    assert!(e.to_string().contains("unknown field"), "{e}");
    // Another method: the study learns the rates.
    let text = with_line("method", "  method: mc_dropout");
    assert_err(
        &err(&text, &[]),
        "model.method",
        Some(9),
        &["mc_dropout", "cannot use", "allowed here: concrete_dropout"],
    );
    // A fixed weight decay: the regulariser scales with each N.
    let text = with_line("log_every", "  log_every: 100\n  weight_decay: 1.0e-6");
    assert_err(
        &err(&text, &[]),
        "trainer.weight_decay",
        Some(17),
        &["remove this key"],
    );
    // Epochs instead of steps.
    let text = with_line("iterations", "  epochs: 10");
    assert_err(
        &err(&text, &[]),
        "trainer.epochs",
        Some(12),
        &["trainer.iterations"],
    );
    // No length-scale.
    let text = with_line("length_scale", "  tau: 2").replace("  tau: 1\n", "");
    assert_err(
        &err(&text, &[]),
        "precision.length_scale",
        Some(17),
        &["missing", "1e-4"],
    );
    // The data are drawn, not read.
    let text = format!("{}data:\n  dir: data\n", common::tiny_synthetic_config());
    assert_err(
        &err(&text, &[]),
        "data",
        Some(26),
        &["concrete_synthetic study does not read"],
    );
}

#[test]
fn a_tiny_run_writes_its_table_and_figures_and_learns_larger_rates_from_fewer_points() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write(dir.path(), "tiny.yaml", &common::tiny_synthetic_config());
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny_synthetic");
    let mut files = vec![
        "config.yaml".to_string(),
        "config.resolved.yaml".into(),
        "run.log".into(),
    ];
    for ext in ["csv", "parquet", "md"] {
        files.push(format!("tables/summary.{ext}"));
    }
    for fig in ["p_vs_n", "aleatoric_sd_vs_n", "epistemic_sd_vs_n"] {
        for ext in ["png", "svg"] {
            files.push(format!("figures/{fig}.{ext}"));
        }
    }
    for f in &files {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let csv = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let value = |row: &[&str], name: &str| -> f64 { row[col(name)].parse().unwrap() };
    // Two repetitions and a mean row per N.
    let repeats: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[col("N")], r[col("repeat")]))
        .collect();
    assert_eq!(
        repeats,
        [
            ("10", "1"),
            ("10", "2"),
            ("10", "mean"),
            ("2000", "1"),
            ("2000", "2"),
            ("2000", "mean")
        ]
    );
    let rates = [
        "p_input",
        "p_hidden1",
        "p_hidden2",
        "p_mean_head",
        "p_logvar_head",
    ];
    for row in &rows {
        for name in rates {
            let p = value(row, name);
            assert!(p > 0.0 && p < 1.0, "{name} = {p}: {row:?}");
        }
        for name in ["aleatoric_sd", "epistemic_sd", "test_rmse"] {
            let v = value(row, name);
            assert!(v.is_finite() && v > 0.0, "{name} = {v}: {row:?}");
        }
    }
    for (mean, reps) in [(2, [0, 1]), (5, [3, 4])] {
        for name in ["p_hidden1", "aleatoric_sd", "epistemic_sd"] {
            let avg = (value(&rows[reps[0]], name) + value(&rows[reps[1]], name)) / 2.0;
            assert!((value(&rows[mean], name) - avg).abs() < 1e-9, "{name}");
        }
    }
    // The regulariser's weight falls with N: fewer points keep larger rates on every layer
    // behind the 32-wide hidden layers (the input's K = 1 weighs little either way).
    let (few, many) = (&rows[2], &rows[5]);
    for name in ["p_hidden1", "p_hidden2", "p_mean_head", "p_logvar_head"] {
        assert!(
            value(few, name) > value(many, name),
            "{name}: {} from 10 points, {} from 2000",
            value(few, name),
            value(many, name)
        );
    }
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(log.contains("[N=10 rep 1] 400 it"), "{log}");
    assert!(log.contains("learnt p_input"), "{log}");

    // A second run finds every net in the weight cache and writes the same table.
    let out = common::mcd_run(&cfg, &results);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("loaded cached weights").count(),
        4,
        "{stderr}"
    );
    // Training times come from the cache too.
    let again = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    assert_eq!(csv, again);
}
