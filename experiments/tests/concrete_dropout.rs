//! Concrete dropout (`model.method: concrete_dropout`): the config keys' errors, and a tiny co2
//! run that logs and tabulates the learnt drop rates.

mod common;

use mcd_experiments::config::ConfigError;

/// The tiny co2 config with `model` lines replaced: `dropout: 0.1` becomes `lines`.
fn with_model(lines: &str) -> String {
    common::tiny_config().replace("  dropout: 0.1\n", lines)
}

fn err(text: &str, overrides: &[&str]) -> ConfigError {
    common::load_text(text, overrides).expect_err("the config should be refused")
}

use common::assert_config_error as assert_err;

#[test]
fn a_concrete_config_loads_with_its_temperature() {
    let text = with_model("  dropout: 0.1\n  method: concrete_dropout\n  temperature: 0.2\n");
    let exp = common::load_text(&text, &[]).unwrap();
    let m = exp.runs[0].model.method;
    assert_eq!(m.name(), "concrete_dropout");
    assert_eq!(
        m.cache_name(2.0),
        "concrete_dropout temperature=2e-1 tau=2e0"
    );
    // Without a temperature: the authors' 0.1.
    let text = with_model("  dropout: 0.1\n  method: concrete_dropout\n");
    let exp = common::load_text(&text, &[]).unwrap();
    assert_eq!(
        exp.runs[0].model.method.cache_name(2.0),
        "concrete_dropout temperature=1e-1 tau=2e0"
    );
}

#[test]
fn bad_temperatures_and_initial_rates_are_located_errors() {
    for t in ["0", "-0.1", ".nan"] {
        let text = with_model(&format!(
            "  dropout: 0.1\n  method: concrete_dropout\n  temperature: {t}\n"
        ));
        assert_err(
            &err(&text, &[]),
            "model.temperature",
            Some(11),
            &["a temperature > 0"],
        );
    }
    // From the command line too.
    let text = with_model("  dropout: 0.1\n  method: concrete_dropout\n");
    let e = err(&text, &["model.temperature=0"]);
    assert_eq!(e.key, "model.temperature", "{e}");
    assert!(e.to_string().contains("--set model.temperature=0"), "{e}");
    // A temperature for another method.
    let text = with_model("  dropout: 0.1\n  temperature: 0.1\n");
    assert_err(
        &err(&text, &[]),
        "model.temperature",
        Some(10),
        &["concrete_dropout", "mc_dropout"],
    );
    // The initial rate (`model.dropout`) in (0, 1): 0 and 1 are refused.
    let text = with_model("  dropout: 0\n  method: concrete_dropout\n");
    assert_err(
        &err(&text, &[]),
        "model.dropout",
        Some(9),
        &["(0, 1)", "concrete_dropout"],
    );
    let text = with_model("  dropout: 1\n  method: concrete_dropout\n");
    assert_err(&err(&text, &[]), "model.dropout", Some(9), &["[0, 1)"]);
}

#[test]
fn the_mnist_classifier_takes_concrete_dropout() {
    // Its LeNet learns p at every dropout position (tests/mnist_methods.rs has the run).
    let text = common::tiny_mnist_config().replace(
        "  dropout: 0.25\n",
        "  dropout: 0.25\n  method: concrete_dropout\n",
    );
    let exp = common::load_text(&text, &[]).unwrap();
    assert_eq!(exp.runs[0].model.method.name(), "concrete_dropout");
}

#[test]
fn tiny_co2_run_logs_and_tabulates_the_learnt_rates() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::tiny_config()
        .replace("  small_samples: 5\n", "  small_samples: 5\n  gp: false\n")
        .replace(
            "set: {model.activation: tanh, trainer.lr: 0.005}",
            "set: {model.method: concrete_dropout}",
        )
        .replace("  - name: tanh\n", "  - name: cd\n");
    let cfg = common::write(dir.path(), "cd.yaml", &text);
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny");
    let table = std::fs::read_to_string(folder.join("tables/learned_cd.csv")).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows[0], "method,parameter,value");
    // Two hidden layers: a rate before each of the two Linears after them.
    assert_eq!(rows.len(), 3, "{table}");
    for r in &rows[1..] {
        assert!(r.starts_with("concrete_dropout,\"p before layer"), "{r}");
        let p: f64 = r.rsplit(',').next().unwrap().parse().unwrap();
        assert!(p > 0.0 && p < 1.0, "{r}");
    }
    assert!(!folder.join("tables/learned_relu.csv").exists());
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(
        log.contains("[cd] learnt p before layer1 (K = 16)"),
        "{log}"
    );
}
