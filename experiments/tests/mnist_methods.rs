//! MNIST methods (configs/mnist_methods.yaml): a deep ensemble of LeNets and a concrete-dropout
//! LeNet-all next to MC dropout. The ensemble's predictive by hand, the config errors of bad
//! method settings on the mnist_rotated study (located, exit 2, no panic, no result folder
//! touched), and a tiny three-method run that writes the methods table, the rotated-digit
//! figures per method and the training curves with the learnt p.

mod common;

use std::process::Command;

use mcd_evaluation::classification as cls;
use mcd_evaluation::ProbSamples;
use mcd_experiments::config::ConfigError;
use mcd_experiments::methods::classification::{Classifier, LeNetEnsemble};
use mcd_models::lenet::{LeNetDropout, LeNetSpec};
use mcd_models::mc::McConfig;
use tch::{nn, Device, Kind, Tensor};

use common::assert_config_error as assert_err;

/// The tiny MNIST config with its `dropout: 0.25` line (line 9) replaced by `lines`.
fn with_model(lines: &str) -> String {
    common::tiny_mnist_config().replace("  dropout: 0.25\n", lines)
}

fn err(text: &str, overrides: &[&str]) -> ConfigError {
    common::load_text(text, overrides).expect_err("the config should be refused")
}

/// Two members whose logits are fixed by their last bias (every weight 0): member 0 gives
/// softmax (1/4, 1/4, 1/2), member 1 (3/4, 1/8, 1/8), for any image.
#[test]
fn the_ensemble_predictive_is_the_mean_of_its_members_softmax() {
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = LeNetSpec {
        side: 28,
        classes: 3,
        dropout: 0.0,
        placement: LeNetDropout::Fc,
    };
    let e = LeNetEnsemble::new(&vs.root(), &spec, &[11, 12]);
    let biases = [[1f64, 1.0, 2.0], [6.0, 1.0, 1.0]].map(|b| b.map(f64::ln));
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            let m = usize::from(name.starts_with("member1"));
            if name.ends_with("fc2.bias") {
                v.copy_(&Tensor::from_slice(&biases[m].map(|b| b as f32)));
            } else {
                let _ = v.zero_();
            }
        }
    });
    let x = Tensor::rand([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let mc = McConfig {
        samples: 50,
        memory_budget_bytes: 1 << 24,
        seed: 3,
    };
    // The study's path: the members' logits, their softmax, the classification measures.
    let passes = e.logit_passes(&x, &mc);
    assert_eq!(passes.size(), [2, 2, 3], "one pass per member, whatever T");
    let probs: Vec<f32> = Vec::try_from(passes.softmax(-1, Kind::Float).view([-1])).unwrap();
    let set = ProbSamples::new(&probs, 2, 2, 3).unwrap();
    let mean = cls::mean_probs(&set);
    let want = [0.5, 0.1875, 0.3125];
    for i in 0..2 {
        let row = mean.row(i).unwrap();
        for (g, w) in row.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "image {i}: {row:?} vs {want:?}");
        }
    }
    let h = |p: &[f64]| -p.iter().map(|p| p * p.ln()).sum::<f64>();
    let entropy = h(&want);
    let mi = entropy - 0.5 * (h(&[0.25, 0.25, 0.5]) + h(&[0.75, 0.125, 0.125]));
    for (got, w) in [
        (cls::predictive_entropy(&set), entropy),
        (cls::mutual_information(&set), mi),
        // The members' classes are 2 and 0: the modal class has one vote of two.
        (cls::variation_ratio(&set), 0.5),
    ] {
        assert!(got.iter().all(|g| (g - w).abs() < 1e-6), "{got:?} vs {w}");
    }
    // The standard prediction is the first member alone.
    let first: Vec<f32> =
        Vec::try_from(e.standard_logits(&x).softmax(-1, Kind::Float).view([-1])).unwrap();
    assert!((first[2] - 0.5).abs() < 1e-6 && (first[0] - 0.25).abs() < 1e-6);
}

#[test]
fn the_mnist_study_takes_an_ensemble_and_concrete_dropout() {
    let exp = common::load_text(
        &with_model("  dropout: 0\n  method: ensemble\n  members: 3\n"),
        &[],
    )
    .unwrap();
    assert_eq!(exp.runs[0].model.method.name(), "ensemble");
    let exp = common::load_text(
        &with_model("  dropout: 0.1\n  method: concrete_dropout\n  temperature: 0.2\n"),
        &[],
    )
    .unwrap();
    assert_eq!(exp.runs[0].model.method.name(), "concrete_dropout");
    for shipped in ["mnist_methods.yaml", "mnist_methods_quick.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(shipped);
        let exp = mcd_experiments::config::load(&path, &[]).unwrap();
        let methods: Vec<&str> = exp.runs.iter().map(|r| r.model.method.name()).collect();
        assert_eq!(methods, ["mc_dropout", "ensemble", "concrete_dropout"]);
    }
}

#[test]
fn bad_method_settings_on_mnist_are_located_errors() {
    // (model lines replacing line 9, the key, its line, what the message must say)
    let cases: Vec<(&str, &str, usize, Vec<&str>)> = vec![
        (
            "  dropout: 0.25\n  method: bayes\n",
            "model.method",
            10,
            vec!["got `bayes`", "allowed: mc_dropout", "ensemble"],
        ),
        (
            "  dropout: 0.25\n  method: heteroscedastic\n",
            "model.method",
            10,
            vec![
                "`heteroscedastic`",
                "mnist_rotated",
                "allowed here: mc_dropout, concrete_dropout, ensemble",
            ],
        ),
        (
            "  dropout: 0\n  method: ensemble\n  members: 0\n",
            "model.members",
            11,
            vec!["got 0", "positive integer"],
        ),
        (
            "  dropout: 0.25\n  method: ensemble\n",
            "model.dropout",
            9,
            vec!["got 0.25", "`model.method: ensemble`: 0"],
        ),
        (
            "  dropout: 0.1\n  method: concrete_dropout\n  temperature: 0\n",
            "model.temperature",
            11,
            vec!["got 0", "a temperature > 0"],
        ),
        (
            "  dropout: 0.1\n  method: concrete_dropout\n  temperature: -0.1\n",
            "model.temperature",
            11,
            vec!["got -0.1", "a temperature > 0"],
        ),
        (
            "  dropout: 0\n  method: concrete_dropout\n",
            "model.dropout",
            9,
            vec!["got 0", "(0, 1)"],
        ),
        (
            "  dropout: 1\n  method: concrete_dropout\n",
            "model.dropout",
            9,
            vec!["got 1", "[0, 1)"],
        ),
        (
            "  dropout: 0.25\n  temperature: 0.1\n",
            "model.temperature",
            10,
            vec!["only `model.method: concrete_dropout`", "`mc_dropout`"],
        ),
    ];
    for (lines, key, line, needles) in cases {
        let e = err(&with_model(lines), &[]);
        assert_err(&e, key, Some(line), &needles);
    }
}

/// `mcd run` on a bad method setting: exit 2, the located error on stderr, no panic, and the
/// previous result folder left as it was.
#[test]
fn mcd_run_refuses_bad_method_settings_without_touching_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let previous = results.join("tiny_mnist");
    std::fs::create_dir_all(&previous).unwrap();
    std::fs::write(previous.join("run.log"), "an earlier run\n").unwrap();
    for (lines, key) in [
        (
            "  dropout: 0\n  method: ensemble\n  members: 0\n",
            "model.members",
        ),
        (
            "  dropout: 0.1\n  method: concrete_dropout\n  temperature: 0\n",
            "model.temperature",
        ),
        (
            "  dropout: 0.25\n  method: gaussian_dropout\n",
            "model.method",
        ),
    ] {
        let cfg = common::write(dir.path(), "bad.yaml", &with_model(lines));
        let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
            .args(["run", cfg.to_str().unwrap(), "--plain", "--results"])
            .arg(&results)
            .output()
            .expect("running mcd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A config error: exit 2 (README, "What happens when things go wrong").
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains("bad.yaml") && stderr.contains(key),
            "{key}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{key}: {stderr}");
        let entries: Vec<_> = std::fs::read_dir(&results)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["tiny_mnist"], "{key}");
        assert_eq!(
            std::fs::read_to_string(previous.join("run.log")).unwrap(),
            "an earlier run\n"
        );
    }
}

/// The quick config's three methods on a tiny slice (256 training images, 200 test images):
/// one row per method in `methods`, the learnt p of concrete dropout's three positions in it
/// and in the training curves, the rotated digit per method.
#[test]
fn tiny_three_method_run_writes_the_methods_table() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}variants:
  - name: mc
    set: {{model.method: mc_dropout}}
  - name: ens
    set: {{model.method: ensemble, model.members: 2, model.dropout: 0}}
  - name: cd
    set: {{model.method: concrete_dropout, model.dropout: 0.1}}
",
        common::tiny_mnist_config()
    );
    let cfg = common::write(dir.path(), "tiny_methods.yaml", &text);
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny_mnist");
    for run in ["mc", "ens", "cd"] {
        for f in [
            format!("figures/{run}_fig4b_softmax_output.png"),
            format!("figures/{run}_fig4a_softmax_input.svg"),
            format!("tables/{run}_rotation.csv"),
        ] {
            assert!(folder.join(&f).is_file(), "{f}");
        }
    }
    for f in [
        "tables/methods.csv",
        "tables/methods.md",
        "tables/methods.parquet",
        "figures/training_curves_p.png",
    ] {
        assert!(folder.join(f).is_file(), "{f}");
    }
    let table = std::fs::read_to_string(folder.join("tables/methods.csv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    assert_eq!(rows.len(), 3, "{table}");
    assert_eq!(
        rows.iter().map(|r| r[col("method")]).collect::<Vec<_>>(),
        ["MC dropout", "deep ensemble", "concrete dropout"]
    );
    assert_eq!(
        rows.iter().map(|r| r[col("passes")]).collect::<Vec<_>>(),
        ["T=4", "M=2", "T=4"]
    );
    for r in &rows {
        for c in ["accuracy", "nll", "auroc_entropy", "aupr_mutual_info"] {
            let v: f64 = r[col(c)].parse().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{c} = {v}");
        }
    }
    // Learnt rates: concrete dropout's three positions, none for the others.
    for name in ["p_after_conv1", "p_after_conv2", "p_after_fc1"] {
        let c = col(&format!("learnt_{name}"));
        let p: f64 = rows[2][c].parse().unwrap();
        assert!(p > 0.0 && p < 1.0 && p != 0.1, "{name} = {p}");
        assert_eq!(rows[0][c], "NaN", "{table}");
    }
    // The training curves carry them too, from the initial 0.1.
    let curves = std::fs::read_to_string(folder.join("tables/training_curves.csv")).unwrap();
    assert!(
        curves.starts_with("run,step,loss,p_after_conv1,p_after_conv2,p_after_fc1\n"),
        "{curves}"
    );
    let first_cd = curves.lines().find(|l| l.starts_with("cd,0,")).unwrap();
    assert!(
        first_cd
            .split(',')
            .skip(3)
            .all(|p| (p.parse::<f64>().unwrap() - 0.1).abs() < 1e-6),
        "{first_cd}"
    );
    // The ensemble's curve is its members' mean cross-entropy: near ln 10 at the start.
    let first_ens = curves.lines().find(|l| l.starts_with("ens,0,")).unwrap();
    let loss: f64 = first_ens.split(',').nth(2).unwrap().parse().unwrap();
    assert!((loss - 10f64.ln()).abs() < 0.5, "{first_ens}");
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert!(log.contains("[cd] learnt p_after_conv1"), "{log}");
}
