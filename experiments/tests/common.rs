//! Shared fixtures for the experiment tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mcd_experiments::config::{self, parse_override, ConfigError};

/// The repository's vendored data folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .canonicalize()
        .expect("repo data folder")
}

/// A small valid CO2 config (tiny nets, few iterations) whose data dir points at the repo data.
pub fn tiny_config() -> String {
    format!(
        "study: co2
name: tiny
seed: 3
data:
  dir: {data}
model:
  hidden: [16, 16]
  activation: relu
  dropout: 0.1
  init: torch
trainer:
  iterations: 40
  batch_size: full
  optimizer: adam
  lr: 0.01
  schedule: {{kind: cosine, final_fraction: 0.1}}
  weight_decay: 1.0e-6
  log_every: 10
precision:
  length_scale: 0.25
predict:
  samples: 20
  memory_budget_mb: 16
co2:
  x_star: 3.5
  small_samples: 5
variants:
  - name: relu
    set: {{model.activation: relu}}
  - name: tanh
    set: {{model.activation: tanh, trainer.lr: 0.005}}
",
        data = data_dir().display()
    )
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a test config");
    p
}

/// A small valid rotated-MNIST config: a few hundred images, one epoch, few passes.
pub fn tiny_mnist_config() -> String {
    format!(
        "study: mnist_rotated
name: tiny_mnist
seed: 1
data:
  dir: {data}
model:
  arch: lenet
  placement: all
  dropout: 0.25
trainer:
  epochs: 1
  batch_size: 64
  optimizer: sgd
  momentum: 0.9
  lr: 0.01
  schedule: {{kind: inv, gamma: 0.0001, power: 0.75}}
  weight_decay: 0.0005
  log_every: 2
predict:
  memory_budget_mb: 32
mnist:
  digit_index: 9978
  angles: [0, 30, 60, 90]
  rotation_samples: 8
  test_samples: 4
  train_limit: 256
  test_limit: 200
  monitor_images: 100
",
        data = data_dir().display()
    )
}

/// A tiny concrete_synthetic config: two sizes, two repetitions, 32-wide nets, 400 steps. Line
/// numbers matter to the config-error tests (`concrete_synthetic.rs`): `dropout` is on line 6,
/// `temperature` on 10, `iterations` on 12, `samples` on 21, `sizes` on 23, `repeats` on 24.
pub fn tiny_synthetic_config() -> String {
    "study: concrete_synthetic
name: tiny_synthetic
seed: 4
model:
  hidden: [32, 32, 32]
  dropout: 0.1
  input_dropout: 0.1
  activation: relu
  method: concrete_dropout
  temperature: 0.1
trainer:
  iterations: 400
  batch_size: 20
  optimizer: adam
  lr: 0.001
  log_every: 100
precision:
  length_scale: 1.0e-4
  tau: 1
predict:
  samples: 10
concrete_synthetic:
  sizes: [10, 2000]
  repeats: 2
  test_points: 200
"
    .to_string()
}

/// A tiny active_learning config: two functions, one repeat, three rounds of 5 images from a
/// 40-image pool subset, 2 epochs, T = 4, 200 test images. Line numbers matter to the
/// config-error tests (`active_learning.rs`): `epochs` is on line 10, `functions` on 19,
/// `rounds` on 21, `initial` on 23, `pool_subset` on 25.
pub fn tiny_active_learning_config() -> String {
    format!(
        "study: active_learning
name: tiny_al
seed: 5
data:
  dir: {data}
model:
  arch: cnn
  dropout: 0.5
trainer:
  epochs: 2
  batch_size: 16
  optimizer: adam
  lr: 0.001
  weight_decay: 0
predict:
  samples: 4
active_learning:
  repeats: 1
  functions: [bald, random]
  acquire: 5
  rounds: 3
  validation: 20
  initial: 10
  test_images: 200
  pool_subset: 40
  dense_l2: 2.5
",
        data = data_dir().display()
    )
}

/// Loads `text` as a config file in a temporary folder, with `--set` overrides.
#[allow(clippy::result_large_err)] // the loader's own error type
pub fn load_text(text: &str, overrides: &[&str]) -> Result<config::Experiment, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "exp.yaml", text);
    let o: Vec<_> = overrides
        .iter()
        .map(|s| parse_override(s).unwrap())
        .collect();
    config::load(&path, &o)
}

/// Runs `mcd run <cfg> --plain --threads 2 --results <results>`, fails the test with mcd's stderr
/// unless it succeeds, and returns its output.
pub fn mcd_run(cfg: &Path, results: &Path) -> std::process::Output {
    succeeded(
        std::process::Command::new(env!("CARGO_BIN_EXE_mcd"))
            .args([
                "run",
                cfg.to_str().unwrap(),
                "--plain",
                "--threads",
                "2",
                "--results",
            ])
            .arg(results)
            .output()
            .expect("running mcd"),
    )
}

/// `out`, after failing the test with mcd's stderr unless the command succeeded.
pub fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "mcd failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts a config error names `key`, `line`, the file `exp.yaml` and each of `needles`.
pub fn assert_config_error(e: &ConfigError, key: &str, line: Option<usize>, needles: &[&str]) {
    let msg = e.to_string();
    assert_eq!(e.key, key, "{msg}");
    assert_eq!(e.line, line, "{msg}");
    assert!(msg.contains("exp.yaml"), "`{msg}` should name the file");
    for n in needles {
        assert!(msg.contains(n), "`{msg}` should mention `{n}`");
    }
}
