//! Config loading: valid files resolve, every malformed one gives one located, named error.

mod common;

use mcd_experiments::config::{
    self, parse_override, ConfigError, Regularisation, StudyConfig, TrainLength, UciConfig,
};
use mcd_models::mlp::Activation;

use common::load_text;

fn err(text: &str, overrides: &[&str]) -> ConfigError {
    load_text(text, overrides).expect_err("config should be rejected")
}

#[test]
fn valid_config_resolves_variants_and_round_trips() {
    let exp = load_text(&common::tiny_config(), &[]).unwrap();
    assert_eq!(exp.name, "tiny");
    assert_eq!(exp.runs.len(), 2);
    assert_eq!(exp.runs[0].name, "relu");
    assert_eq!(exp.runs[1].model.activation, Activation::Tanh);
    assert_eq!(exp.runs[1].trainer.lr, 0.005);
    assert_eq!(exp.runs[0].trainer.lr, 0.01);
    assert_eq!(exp.runs[0].model.hidden, vec![16, 16]);
    assert!(matches!(
        exp.runs[0].regularisation,
        Regularisation::WeightDecay { .. }
    ));
    // The resolved document of a run is itself a valid single-run config.
    let resolved = mcd_experiments::yaml::to_string(&exp.runs[1].resolved).unwrap();
    let again = load_text(&resolved, &[]).unwrap();
    assert_eq!(again.runs.len(), 1);
    assert_eq!(again.runs[0].model, exp.runs[1].model);
    assert_eq!(again.runs[0].trainer, exp.runs[1].trainer);
}

#[test]
fn set_overrides_apply_last() {
    let exp = load_text(
        &common::tiny_config(),
        &["model.dropout=0.2", "trainer.lr=0.5"],
    )
    .unwrap();
    assert!(exp
        .runs
        .iter()
        .all(|r| r.model.dropout == 0.2 && r.trainer.lr == 0.5));
}

#[test]
fn sweep_expands_to_the_product_in_file_order() {
    let text = format!(
        "{}sweep:\n  model.dropout: [0.05, 0.1, 0.2]\n  model.activation: [relu, tanh]\n",
        common::tiny_config().split("variants:").next().unwrap()
    );
    let exp = load_text(&text, &[]).unwrap();
    assert_eq!(exp.runs.len(), 6);
    assert_eq!(exp.sweep_keys, vec!["model.dropout", "model.activation"]);
    let got: Vec<(f64, Activation)> = exp
        .runs
        .iter()
        .map(|r| (r.model.dropout, r.model.activation))
        .collect();
    assert_eq!(got[0], (0.05, Activation::Relu));
    assert_eq!(got[1], (0.05, Activation::Tanh));
    assert_eq!(got[5], (0.2, Activation::Tanh));
    assert_eq!(exp.runs[2].name, "dropout=0.1,activation=relu");
    // Variants times sweep points.
    let both = format!(
        "{}sweep:\n  model.dropout: [0.1, 0.3]\n",
        common::tiny_config()
    );
    assert_eq!(load_text(&both, &[]).unwrap().runs.len(), 4);
}

/// Checks the error names the key and the expected line, and mentions `needle`.
fn assert_err(e: &ConfigError, key: &str, line: Option<usize>, needle: &str) {
    let msg = e.to_string();
    assert_eq!(e.key, key, "{msg}");
    assert_eq!(e.line, line, "{msg}");
    assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
    assert!(msg.contains("exp.yaml"), "`{msg}` should name the file");
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let text =
        common::tiny_config().replace("  dropout: 0.1\n", "  dropout: 0.1\n  dropuot: 0.2\n");
    let e = err(&text, &[]);
    assert_err(&e, "model.dropuot", Some(10), "unknown field `dropuot`");
}

#[test]
fn wrong_type_is_rejected() {
    let text = common::tiny_config().replace("iterations: 40", "iterations: many");
    assert_err(
        &err(&text, &[]),
        "trainer.iterations",
        Some(12),
        "invalid type",
    );
}

#[test]
fn dropout_of_one_is_rejected() {
    let text = common::tiny_config().replace("  dropout: 0.1\n", "  dropout: 1.0\n");
    assert_err(&err(&text, &[]), "model.dropout", Some(9), "[0, 1)");
}

#[test]
fn negative_width_is_rejected() {
    let text = common::tiny_config().replace("hidden: [16, 16]", "hidden: [16, -4]");
    assert_err(&err(&text, &[]), "model.hidden", Some(7), "width -4");
}

#[test]
fn unknown_activation_lists_the_allowed_ones() {
    let base = common::tiny_config()
        .split("variants:")
        .next()
        .unwrap()
        .to_string();
    let text = base.replace("activation: relu", "activation: swish");
    let e = err(&text, &[]);
    assert_err(&e, "model.activation", Some(8), "swish");
    assert!(e.to_string().contains("relu") && e.to_string().contains("tanh"));
    // The same mistake inside a variant says which variant it came from.
    let text = common::tiny_config().replace(
        "set: {model.activation: tanh,",
        "set: {model.activation: swish,",
    );
    let e = err(&text, &[]);
    assert_eq!(e.key, "model.activation");
    assert!(e.to_string().contains("variant `tanh`"), "{e}");
}

#[test]
fn unknown_method_lists_the_allowed_ones() {
    let text = common::tiny_config().replace("  dropout: 0.1\n", "  dropout: 0.1\n  method: bbb\n");
    let e = err(&text, &[]);
    assert_err(&e, "model.method", Some(10), "bbb");
    assert!(e.to_string().contains("mc_dropout"), "{e}");
    // Named explicitly, the default method is the default.
    let plain = load_text(&common::tiny_config(), &[]).unwrap();
    let text =
        common::tiny_config().replace("  dropout: 0.1\n", "  dropout: 0.1\n  method: mc_dropout\n");
    let named = load_text(&text, &[]).unwrap();
    assert_eq!(named.runs[0].model, plain.runs[0].model);
    assert_eq!(named.runs[0].model.method.name(), "mc_dropout");
}

#[test]
fn a_method_the_study_cannot_use_is_a_located_error() {
    // co2 takes the heteroscedastic head ...
    let text = common::tiny_config().replace(
        "  dropout: 0.1\n",
        "  dropout: 0.1\n  method: heteroscedastic\n",
    );
    let exp = load_text(&text, &[]).unwrap();
    assert_eq!(exp.runs[0].model.method.name(), "heteroscedastic");
    // ... the mnist classifier does not: file, line, key, value and what is allowed.
    let text = common::tiny_mnist_config().replace(
        "  dropout: 0.25\n",
        "  dropout: 0.25\n  method: heteroscedastic\n",
    );
    let e = err(&text, &[]);
    assert_err(&e, "model.method", Some(10), "`heteroscedastic`");
    let msg = e.to_string();
    assert!(
        msg.contains("mnist_rotated") && msg.contains("allowed here: mc_dropout"),
        "{msg}"
    );
    // ... nor the uci study's stacked grid, also from the command line.
    let e = err(&uci_text(), &["model.method=heteroscedastic"]);
    let msg = e.to_string();
    assert_eq!(e.key, "model.method", "{msg}");
    assert!(
        msg.contains("StackedMlp")
            && msg.contains("allowed here: mc_dropout")
            && msg.contains("--set model.method=heteroscedastic"),
        "{msg}"
    );
}

#[test]
fn unknown_optimiser_and_zero_iterations() {
    let text = common::tiny_config().replace("optimizer: adam", "optimizer: lbfgs");
    assert_err(&err(&text, &[]), "trainer.optimizer", Some(14), "lbfgs");
    let text = common::tiny_config().replace("iterations: 40", "iterations: 0");
    assert_err(&err(&text, &[]), "trainer.iterations", Some(12), "positive");
}

#[test]
fn missing_config_file_and_missing_data_dir() {
    let e = config::load(std::path::Path::new("/nonexistent/exp.yaml"), &[]).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/exp.yaml") && e.to_string().contains("cannot read")
    );
    let text =
        common::tiny_config().replace(&common::data_dir().display().to_string(), "/no/such/data");
    assert_err(&err(&text, &[]), "data.dir", Some(5), "/no/such/data");
}

#[test]
fn bad_set_overrides() {
    assert!(parse_override("model.dropout")
        .unwrap_err()
        .contains("KEY=VALUE"));
    assert!(parse_override("model..dropout=1")
        .unwrap_err()
        .contains("dotted key path"));
    assert!(parse_override("=3").is_err());
    // A well-formed override with a bad value says it came from --set.
    let e = err(&common::tiny_config(), &["model.dropout=1.5"]);
    assert_eq!(e.key, "model.dropout");
    assert!(e.to_string().contains("--set model.dropout=1.5"), "{e}");
    // An override of an unknown key.
    let e = err(&common::tiny_config(), &["model.depth=3"]);
    assert!(e.to_string().contains("unknown field `depth`"), "{e}");
    // Setting below a scalar.
    let e = err(&common::tiny_config(), &["seed.x=1"]);
    assert!(e.to_string().contains("not a section"), "{e}");
}

#[test]
fn empty_sweep_list_and_empty_variants() {
    let text = format!("{}sweep:\n  model.dropout: []\n", common::tiny_config());
    let e = err(&text, &[]);
    assert_eq!(e.key, "sweep.model.dropout");
    assert!(e.to_string().contains("empty list"), "{e}");
    let text = common::tiny_config()
        .split("variants:")
        .next()
        .unwrap()
        .to_string()
        + "variants: []\n";
    assert!(err(&text, &[]).to_string().contains("empty"));
}

#[test]
fn syntax_error_has_line_and_column() {
    let text = common::tiny_config().replace("  hidden: [16, 16]", "  hidden: [16, 16");
    let e = err(&text, &[]);
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
    assert!(e.to_string().contains("not valid YAML"));
}

#[test]
fn regularisation_needs_exactly_two_of_three() {
    let text = common::tiny_config().replace(
        "  length_scale: 0.25\n",
        "  length_scale: 0.25\n  tau: 10\n",
    );
    let e = err(&text, &[]);
    assert_eq!(e.key, "precision");
    assert!(e.to_string().contains("exactly two"), "{e}");
    // tau + length-scale: weight decay derived, and the round trip gives tau back.
    let text = common::tiny_config()
        .replace("  weight_decay: 1.0e-6\n", "")
        .replace(
            "  length_scale: 0.25\n",
            "  length_scale: 0.25\n  tau: 10\n",
        );
    let exp = load_text(&text, &[]).unwrap();
    let (wd, tau) = exp.runs[0].regularisation.resolve(272, 0.1).unwrap();
    assert_eq!(tau, 10.0);
    let expected_wd = 0.9 * 0.25 * 0.25 / (2.0 * 272.0 * 10.0);
    assert!((wd - expected_wd).abs() < 1e-15, "{wd}");
}

#[test]
fn repeated_variant_names_are_rejected() {
    let text = common::tiny_config().replace("name: tanh", "name: relu");
    assert!(err(&text, &[]).to_string().contains("repeated"));
}

#[test]
fn study_and_architecture_must_match() {
    let text = common::tiny_mnist_config().replace("arch: lenet", "arch: mlp");
    let e = err(&text, &[]);
    assert_eq!(e.key, "model.arch");
    assert!(e.to_string().contains("lenet"), "{e}");
    let text = common::tiny_mnist_config()
        .replace("  placement: all\n", "  placement: all\n  hidden: [10]\n");
    assert_eq!(err(&text, &[]).key, "model.hidden");
    let text =
        common::tiny_mnist_config().replace("  epochs: 1\n", "  epochs: 1\n  iterations: 5\n");
    assert!(err(&text, &[])
        .to_string()
        .contains("exactly one of trainer.iterations and trainer.epochs"));
    let text = common::tiny_mnist_config().replace("angles: [0, 30, 60, 90]", "angles: []");
    assert_eq!(err(&text, &[]).key, "mnist.angles");
    let exp = load_text(&common::tiny_mnist_config(), &[]).unwrap();
    assert!(matches!(
        &exp.runs[0].study,
        StudyConfig::MnistRotated(m) if m.length == TrainLength::Epochs(1)
    ));
    assert!(matches!(
        exp.runs[0].regularisation,
        Regularisation::DecayOnly { .. }
    ));
}

fn uci_section(run: &config::RunConfig) -> &UciConfig {
    match &run.study {
        StudyConfig::Uci(c) => c,
        other => panic!("a {:?} run", other.kind()),
    }
}

/// `configs/uci_quick.yaml` with the repository's data folder.
fn uci_text() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/uci_quick.yaml");
    std::fs::read_to_string(path).unwrap().replace(
        "study: uci\n",
        &format!(
            "study: uci\ndata:\n  dir: {}\n",
            common::data_dir().display()
        ),
    )
}

#[test]
fn uci_config_resolves_and_rejects_what_the_protocol_fixes() {
    let exp = load_text(&uci_text(), &[]).unwrap();
    let uci = uci_section(&exp.runs[0]);
    assert_eq!(uci.splits, Some(3));
    assert_eq!(uci.vendored_datasets().len(), 2);
    assert!(
        uci.dropout_rates.is_none(),
        "the data set's own grid by default"
    );
    assert!(matches!(
        exp.runs[0].regularisation,
        Regularisation::TauGrid { length_scale } if length_scale == 0.01
    ));
    let rejected = |set: &str, key: &str, needle: &str| {
        let e = err(&uci_text(), &[set]);
        let msg = e.to_string();
        assert_eq!(e.key, key, "{msg}");
        assert!(
            msg.contains(needle) && msg.contains(set),
            "`{msg}` should mention `{needle}`"
        );
    };
    rejected("model.dropout=0.1", "model.dropout", "uci.dropout_rates");
    rejected("trainer.epochs=10", "trainer.epochs", "epoch_multiplier");
    rejected("trainer.optimizer=sgd", "trainer.optimizer", "adam");
    rejected("uci.epoch_multiplier=0", "uci.epoch_multiplier", "positive");
    rejected(
        "uci.dropout_rates=[0.1, 1.0]",
        "uci.dropout_rates[1]",
        "[0, 1)",
    );
    rejected(
        "trainer.weight_decay=0.001",
        "trainer.weight_decay",
        "length_scale",
    );
    let all = load_text(&uci_text(), &["uci.datasets=all"]).unwrap();
    assert_eq!(uci_section(&all.runs[0]).vendored_datasets().len(), 10);
}

#[test]
fn co2_refuses_epochs_instead_of_training_nothing() {
    // Once accepted: the co2 study read only trainer.iterations, trained 0 steps and wrote the
    // tables of an untrained net.
    let e = err(
        &common::tiny_config(),
        &["trainer.epochs=5", "trainer.iterations=null"],
    );
    assert_eq!(e.key, "trainer.epochs", "{e}");
    assert!(e.to_string().contains("trainer.iterations"), "{e}");
    assert!(e.to_string().contains("--set trainer.epochs=5"), "{e}");
}

#[test]
fn first_layer_slope_and_fit_window_are_checked_and_uci_refuses_the_slope() {
    let ok = load_text(&common::tiny_config(), &["model.first_layer_slope=20"]).unwrap();
    assert_eq!(ok.runs[0].model.first_layer_slope, Some(20.0));
    assert!(matches!(&ok.runs[0].study, StudyConfig::Co2(c) if c.fit_window == 12));
    for bad in ["0", "-3", ".nan"] {
        let e = err(
            &common::tiny_config(),
            &[&format!("model.first_layer_slope={bad}")],
        );
        assert_eq!(e.key, "model.first_layer_slope", "{e}");
        assert!(e.to_string().contains("> 0"), "{e}");
    }
    let e = err(&common::tiny_config(), &["co2.fit_window=2"]);
    assert_eq!(e.key, "co2.fit_window", "{e}");
    assert!(e.to_string().contains("at least 3"), "{e}");
    // The uci study builds its nets with the authors' init: a slope there would be ignored.
    let e = err(&uci_text(), &["model.first_layer_slope=20"]);
    assert_eq!(e.key, "model.first_layer_slope", "{e}");
}

#[test]
fn co2_report_defaults_to_the_paper_and_to_sd_curves_under_a_sweep() {
    use mcd_experiments::config::Co2Report;
    let co2 = |exp: &config::Experiment| match &exp.runs[0].study {
        StudyConfig::Co2(c) => *c,
        other => panic!("{other:?}"),
    };
    let plain = load_text(&common::tiny_config(), &[]).unwrap();
    assert_eq!(co2(&plain).report, Co2Report::Paper);
    assert!(co2(&plain).gp);
    let swept_text = format!(
        "{}sweep:\n  model.dropout: [0.1, 0.3]\n",
        common::tiny_config()
    );
    let swept = load_text(&swept_text, &[]).unwrap();
    assert_eq!(co2(&swept).report, Co2Report::SdCurves);
    assert!(!co2(&swept).gp, "no GP is drawn in sd curves");
    // Variants can pair each rate with its own width: sd curves without a sweep.
    let curves = load_text(&common::tiny_config(), &["co2.report=sd_curves"]).unwrap();
    assert_eq!(co2(&curves).report, Co2Report::SdCurves);
    assert!(!co2(&curves).gp);
    // The paper's figure draws one run per activation: not a sweep's several.
    let e = err(&swept_text, &["co2.report=paper"]);
    assert_eq!(e.key, "co2.report", "{e}");
    assert!(e.to_string().contains("sd_curves"), "{e}");
    // A GP that no figure would draw.
    let e = err(&swept_text, &["co2.gp=true"]);
    assert_eq!(e.key, "co2.gp", "{e}");
    assert!(e.to_string().contains("remove co2.gp"), "{e}");
    let e = err(&common::tiny_config(), &["co2.report=curves"]);
    assert_eq!(e.key, "co2.report", "{e}");
}

#[test]
fn dropout_warmup_is_a_fraction_for_nets_with_fixed_drop_rates() {
    let ok = load_text(&common::tiny_config(), &["trainer.dropout_warmup=0.5"]).unwrap();
    assert_eq!(ok.runs[0].trainer.dropout_warmup, 0.5);
    assert_eq!(ok.runs[0].trainer.dropout_warmup_steps(64_000), 32_000);
    let off = load_text(&common::tiny_config(), &[]).unwrap();
    assert_eq!(off.runs[0].trainer.dropout_warmup_steps(64_000), 0);
    for bad in ["1", "-0.1", "1.5", ".nan"] {
        let e = err(
            &common::tiny_config(),
            &[&format!("trainer.dropout_warmup={bad}")],
        );
        assert_eq!(e.key, "trainer.dropout_warmup", "{e}");
        assert!(e.to_string().contains("[0, 1)"), "{e}");
    }
    // Nothing to warm up: a method that learns its rates, or a net without dropout.
    let e = err(
        &common::tiny_config(),
        &[
            "trainer.dropout_warmup=0.5",
            "model.method=concrete_dropout",
        ],
    );
    assert_eq!(e.key, "trainer.dropout_warmup", "{e}");
    assert!(e.to_string().contains("concrete_dropout"), "{e}");
    let e = err(
        &common::tiny_config(),
        &["trainer.dropout_warmup=0.5", "model.dropout=0"],
    );
    assert_eq!(e.key, "trainer.dropout_warmup", "{e}");
    assert!(e.to_string().contains("no dropout"), "{e}");
    // Only the co2 study reads it.
    let e = err(&uci_text(), &["trainer.dropout_warmup=0.5"]);
    assert_eq!(e.key, "trainer.dropout_warmup", "{e}");
}

#[test]
fn adversarial_training_is_a_fraction_for_ensembles_only() {
    let ens = ["model.method=ensemble", "model.dropout=0"];
    let ok = load_text(
        &common::tiny_config(),
        &[ens[0], ens[1], "trainer.adversarial=0.01"],
    )
    .unwrap();
    assert!(ok.runs.iter().all(|r| r.trainer.adversarial == 0.01));
    let off = load_text(&common::tiny_config(), &[]).unwrap();
    assert_eq!(off.runs[0].trainer.adversarial, 0.0);
    for bad in ["1", "-0.01", ".inf"] {
        let e = err(
            &common::tiny_config(),
            &[ens[0], ens[1], &format!("trainer.adversarial={bad}")],
        );
        assert_eq!(e.key, "trainer.adversarial", "{e}");
        assert!(e.to_string().contains("[0, 1)"), "{e}");
    }
    // MC dropout has no adversarial training: refused, naming the method.
    let e = err(&common::tiny_config(), &["trainer.adversarial=0.01"]);
    assert_eq!(e.key, "trainer.adversarial", "{e}");
    assert!(e.to_string().contains("mc_dropout"), "{e}");
    // Only the co2 study reads it.
    let e = err(&uci_text(), &["trainer.adversarial=0.01"]);
    assert_eq!(e.key, "trainer.adversarial", "{e}");
}

#[test]
fn a_base_value_one_variant_replaces_is_checked_where_it_is_kept() {
    // The ensemble variant needs `model.dropout: 0` and sets it; the other run keeps the base
    // 0.1, which is valid there. Once refused: the base value was checked in place of the
    // ensemble's 0 although a run reads it.
    let text = common::tiny_config().replace(
        "set: {model.activation: tanh, trainer.lr: 0.005}",
        "set: {model.method: ensemble, model.dropout: 0, model.members: 2}",
    );
    let exp = load_text(&text, &[]).unwrap();
    assert_eq!(exp.runs[0].model.dropout, 0.1);
    assert_eq!(exp.runs[1].model.dropout, 0.0);
}

#[test]
fn a_base_value_every_variant_replaces_is_still_checked() {
    // Both variants set the activation, so the base value was never checked.
    let text = common::tiny_config().replace("activation: relu\n", "activation: sigmoidish\n");
    let e = err(&text, &[]);
    assert_err(&e, "model.activation", Some(8), "sigmoidish");
    assert!(e.to_string().contains("base document"), "{e}");
    // Out of range under a sweep that replaces it.
    let text = common::tiny_config()
        .split("variants:")
        .next()
        .unwrap()
        .to_string()
        + "sweep:\n  model.dropout: [0.1, 0.2]\n";
    assert!(load_text(&text, &[]).is_ok());
    let e = err(&text.replace("  dropout: 0.1\n", "  dropout: 1.5\n"), &[]);
    assert_err(&e, "model.dropout", Some(9), "[0, 1)");
    // A whole section replaced by a variant: the base section's keys are checked too.
    let text = common::tiny_config()
        .replace("hidden: [16, 16]", "hidden: [16, -3]")
        .replace(
            "set: {model.activation: relu}",
            "set: {model: {hidden: [8], activation: relu, dropout: 0.1}}",
        )
        .replace(
            "set: {model.activation: tanh,",
            "set: {model: {hidden: [8], activation: tanh, dropout: 0.1},",
        );
    let e = err(&text, &[]);
    assert_eq!(e.key, "model.hidden", "{e}");
    assert!(e.to_string().contains("base document"), "{e}");
    // A valid base value that the variants replace stays fine.
    assert!(load_text(&common::tiny_config(), &[]).is_ok());
}
