//! Own data (`data.csv`): the shipped example table is what its generator writes; it runs in
//! the UCI protocol and in the 1-D study end to end; bad tables and bad `data:` sections give
//! one error naming the file, the column and the row, and write nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example table: 240 rows of `x1, x2, x3, y` with y = sin(2 x1) + 0.5 x2 + 0.1 noise
/// (x3 is pure noise), from a fixed SplitMix64 stream.
fn example_csv() -> String {
    let mut state = 0x0DA7_A5E7_u64;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("x1,x2,x3,y\n");
    for _ in 0..240 {
        let x1 = -2.0 + 4.0 * uniform();
        let x2 = uniform();
        let x3 = uniform();
        // Box-Muller from two uniforms.
        let noise =
            (-2.0 * (1.0 - uniform()).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        let y = (2.0 * x1).sin() + 0.5 * x2 + 0.1 * noise;
        out.push_str(&format!("{x1:.5},{x2:.5},{x3:.5},{y:.5}\n"));
    }
    out
}

#[test]
fn the_shipped_example_table_is_what_its_generator_writes() {
    let shipped = std::fs::read_to_string(repo().join("examples/own_data.csv")).unwrap_or_default();
    assert!(
        shipped == example_csv(),
        "examples/own_data.csv differs from example_csv() in experiments/tests/own_data.rs: \
         write it anew with MCD_WRITE_EXAMPLE=1 cargo xtask test -p mcd-experiments --test own_data -- --ignored write_the_example_table"
    );
}

#[test]
#[ignore = "writes examples/own_data.csv: MCD_WRITE_EXAMPLE=1 ... -- --ignored"]
fn write_the_example_table() {
    if std::env::var_os("MCD_WRITE_EXAMPLE").is_some() {
        std::fs::write(repo().join("examples/own_data.csv"), example_csv()).unwrap();
    }
}

fn mcd_run(dir: &Path, config: &str) -> (Output, PathBuf) {
    let cfg = common::write(dir, "own.yaml", config);
    let results = dir.join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .arg("run")
        .arg(&cfg)
        .args(["--plain", "--threads", "2", "--results"])
        .arg(&results)
        .current_dir(dir)
        .output()
        .expect("running mcd");
    (out, results)
}

fn uci_config(csv: &str) -> String {
    format!(
        "study: uci
name: own_uci
seed: 2
data:
  csv: {csv}
  target: y
  features: [x1, x2, x3]
  split: {{test_fraction: 0.2, count: 2, seed: 5}}
model:
  hidden: [20]
  activation: relu
  init: glorot_uniform
trainer:
  optimizer: adam
  lr: 0.005
  batch_size: 32
precision:
  length_scale: 0.01
predict:
  samples: 100
uci:
  epochs: 30
  dropout_rates: [0.01, 0.1]
  tau_values: [10, 100]
  validation_samples: 20
"
    )
}

#[test]
fn an_own_table_runs_the_uci_protocol() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.csv"), example_csv()).unwrap();
    let (out, results) = mcd_run(dir.path(), &uci_config("mine.csv"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let folder = results.join("own_uci");
    let table = std::fs::read_to_string(folder.join("tables/table1.csv")).unwrap();
    let row = table.lines().nth(1).expect("one data row");
    assert!(row.starts_with("mine,2,"), "{table}");
    // Test RMSE in the target's units: the noise sd is 0.1 and sin(2 x1) spans [-1, 1].
    let rmse: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
    assert!(rmse > 0.05 && rmse < 0.8, "rmse {rmse}");
    let sha = std::fs::read_to_string(folder.join("data.sha256")).unwrap();
    let expected = {
        use sha2::Digest;
        sha2::Sha256::digest(example_csv().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(sha.starts_with(&expected), "{sha}");
    assert!(std::fs::read_to_string(folder.join("run.log"))
        .unwrap()
        .contains(&expected));
}

#[test]
fn a_spreadsheet_export_reads_like_the_plain_file() {
    // A byte-order mark and Windows line ends, as spreadsheets write them.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.csv");
    let export = dir.path().join("export.csv");
    std::fs::write(&plain, example_csv()).unwrap();
    std::fs::write(
        &export,
        format!("\u{feff}{}", example_csv().replace('\n', "\r\n")),
    )
    .unwrap();
    let read = |p: &Path| mcd_datasets::own::read_csv(p, "y", None).unwrap();
    let (a, b) = (read(&plain), read(&export));
    assert_eq!(a.features, ["x1", "x2", "x3"]);
    assert_eq!((a.x, a.y, a.features), (b.x, b.y, b.features));
}

#[test]
fn an_own_table_runs_the_1d_study() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.csv"), example_csv()).unwrap();
    let config = "study: co2
name: own_1d
seed: 1
data:
  csv: mine.csv
  target: y
  features: [x1]
model:
  hidden: [32, 32]
  activation: relu
  dropout: 0.1
  init: torch
trainer:
  iterations: 300
  optimizer: adam
  lr: 0.01
  weight_decay: 1.0e-5
  log_every: 50
precision:
  length_scale: 0.5
predict:
  samples: 50
co2:
  x_star: 3.0
  small_samples: 5
";
    let (out, results) = mcd_run(dir.path(), config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let folder = results.join("own_1d");
    for f in [
        "figures/fig2_co2.png",
        "tables/summary.csv",
        "tables/predictions.csv",
        "data.sha256",
    ] {
        assert!(folder.join(f).is_file(), "{f} missing");
    }
    let summary = std::fs::read_to_string(folder.join("tables/summary.csv")).unwrap();
    assert!(summary.contains("MC dropout run"), "{summary}");
}

#[test]
fn bad_tables_name_the_file_column_and_row_and_write_nothing() {
    let good = example_csv();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "missing target",
            good.replacen("x1,x2,x3,y", "x1,x2,x3,z", 1),
            vec!["no target column `y`", "x1, x2, x3, z"],
        ),
        (
            "missing feature",
            good.replacen("x1,x2,x3,y", "x1,x2,q,y", 1),
            vec!["no feature column `x3`"],
        ),
        (
            "text cell",
            good.replacen("\n", "\n1,oops,3,4\n", 1),
            vec![":2: column 2", "column `x2`", "`oops` is not a number"],
        ),
        (
            "NaN cell",
            good.replacen("\n", "\n1,2,3,NaN\n", 1),
            vec![":2: column 4", "column `y`", "not a finite number"],
        ),
        (
            "short row",
            good.replacen("\n", "\n1,2\n", 1),
            vec![":2: column 3", "2 cells"],
        ),
        (
            "too few rows",
            good.lines().take(5).collect::<Vec<_>>().join("\n"),
            vec!["4 data rows", "at least 10"],
        ),
    ];
    for (what, text, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("mine.csv");
        std::fs::write(&csv, text).unwrap();
        let (out, results) = mcd_run(dir.path(), &uci_config("mine.csv"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("mine.csv"),
            "{what}: the error should name the file:\n{stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{what}: `{n}` missing from:\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{what}:\n{stderr}");
        assert!(
            !results.join("own_uci").exists(),
            "{what}: a result folder was written"
        );
    }
}

#[test]
fn bad_data_sections_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.csv"), example_csv()).unwrap();
    let base = uci_config("mine.csv");
    let cases = [
        (
            "no such file",
            base.replace("csv: mine.csv", "csv: nope.csv"),
            "data.csv",
            "not a file",
        ),
        (
            "dir and csv",
            base.replace("  target: y\n", "  target: y\n  dir: data\n"),
            "data.dir",
            "not both",
        ),
        (
            "no target",
            base.replace("  target: y\n", ""),
            "data.target",
            "missing",
        ),
        (
            "no split",
            base.replace("  split: {test_fraction: 0.2, count: 2, seed: 5}\n", ""),
            "data.split",
            "missing",
        ),
        (
            "fraction 1",
            base.replace("test_fraction: 0.2", "test_fraction: 1.0"),
            "data.split.test_fraction",
            "(0, 1)",
        ),
        (
            "no epochs",
            base.replace("  epochs: 30\n", ""),
            "uci.epochs",
            "missing",
        ),
        (
            "multiplier",
            base.replace("  epochs: 30\n", "  epochs: 30\n  epoch_multiplier: 2\n"),
            "uci.epoch_multiplier",
            "uci.epochs",
        ),
        (
            "named sets",
            base.replace("uci:\n", "uci:\n  datasets: [yacht]\n"),
            "uci.datasets",
            "data.csv",
        ),
        (
            "no tau grid",
            base.replace("  tau_values: [10, 100]\n", ""),
            "uci.tau_values",
            "missing",
        ),
    ];
    for (what, text, key, needle) in cases {
        let (out, results) = mcd_run(dir.path(), &text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains(&format!("key `{key}`")), "{what}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{what}: `{needle}` missing: {stderr}"
        );
        assert!(
            stderr.contains("own.yaml:"),
            "{what}: no file and line: {stderr}"
        );
        assert!(!results.exists(), "{what}: nothing may be written");
    }
}
