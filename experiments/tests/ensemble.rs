//! Deep ensembles (`model.method: ensemble`): the config keys' errors, and a tiny co2 run that
//! reports the mixture's two parts.

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
fn an_ensemble_config_loads_with_its_size() {
    let exp = common::load_text(
        &with_model("  dropout: 0\n  method: ensemble\n  members: 3\n"),
        &[],
    )
    .unwrap();
    let m = exp.runs[0].model.method;
    assert_eq!(m.name(), "ensemble");
    assert_eq!(
        m.outputs_per_target(),
        6,
        "a mean and a variance per member"
    );
    // The default size is the paper's 5.
    let exp = common::load_text(&with_model("  dropout: 0\n  method: ensemble\n"), &[]).unwrap();
    assert_eq!(exp.runs[0].model.method.outputs_per_target(), 10);
    // ... and --set changes it.
    let exp = common::load_text(
        &with_model("  dropout: 0\n  method: ensemble\n"),
        &["model.members=2"],
    )
    .unwrap();
    assert_eq!(exp.runs[0].model.method.outputs_per_target(), 4);
}

#[test]
fn bad_ensemble_settings_are_located_errors() {
    // M < 1: file, line, key, value and what is allowed.
    for m in ["0", "-2"] {
        let e = err(
            &with_model(&format!(
                "  dropout: 0\n  method: ensemble\n  members: {m}\n"
            )),
            &[],
        );
        assert_err(
            &e,
            "model.members",
            Some(11),
            &[&format!("got {m}"), "positive integer"],
        );
    }
    // Not an integer.
    let e = err(
        &with_model("  dropout: 0\n  method: ensemble\n  members: 2.5\n"),
        &[],
    );
    assert_err(&e, "model.members", Some(11), &["invalid type"]);
    // Members without the ensemble method.
    let e = err(&with_model("  dropout: 0.1\n  members: 3\n"), &[]);
    assert_err(
        &e,
        "model.members",
        Some(10),
        &["got 3", "only `model.method: ensemble`", "`mc_dropout`"],
    );
    // Members with dropout.
    let e = err(&with_model("  dropout: 0.1\n  method: ensemble\n"), &[]);
    assert_err(
        &e,
        "model.dropout",
        Some(9),
        &["got 0.1", "`model.method: ensemble`: 0"],
    );
    // The studies that cannot use it refuse it (mnist_rotated takes it: tests/mnist_methods.rs),
    // and the key.
    let e = err(&common::tiny_synthetic_config(), &["model.method=ensemble"]);
    assert_eq!(e.key, "model.method", "{e}");
    assert!(
        e.to_string().contains("allowed here: concrete_dropout"),
        "{e}"
    );
    let e = err(&common::tiny_mnist_config(), &["model.members=3"]);
    assert_eq!(e.key, "model.members", "{e}");
}

#[test]
fn tiny_co2_run_with_an_ensemble_reports_the_mixture() {
    let dir = tempfile::tempdir().unwrap();
    // One run (a base `model.dropout` other than 0 is refused even where a variant replaces it).
    let base = with_model("  dropout: 0\n  method: ensemble\n  members: 3\n")
        .replace("  small_samples: 5\n", "  small_samples: 5\n  gp: false\n");
    let text = format!(
        "{}variants:\n  - name: ens\n    set: {{trainer.lr: 0.005}}\n",
        base.split("variants:").next().unwrap()
    );
    let cfg = common::write(dir.path(), "ens.yaml", &text);
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny");
    assert!(folder.join("figures/sd_parts_ens.png").is_file());
    let text = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row = rows
        .iter()
        .find(|r| r[col("model")] == "deep ensemble ens")
        .unwrap_or_else(|| panic!("no ensemble row in {rows:?}"));
    let num = |name: &str| -> f64 { row[col(name)].parse().unwrap() };
    let (e, a, sd) = (
        num("epistemic_sd_at_x_star"),
        num("aleatoric_sd_at_x_star"),
        num("sd_at_x_star"),
    );
    assert!(e > 0.0 && a > 0.0, "{row:?}");
    assert!(
        (sd * sd - (e * e + a * a)).abs() < 1e-9 * sd * sd,
        "{row:?}"
    );
}
