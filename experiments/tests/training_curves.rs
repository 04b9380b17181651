//! Training curves through the `mcd` binary on a tiny co2 config (MC dropout and concrete
//! dropout side by side): the table ends at the logged final loss, follows concrete dropout's
//! p from its initial value, is the same when the weights come from the cache, and a cache
//! entry from before curves carried p still loads.

mod common;

use std::path::{Path, PathBuf};

use mcd_experiments::cache::{hex, TrainSummary};
use sha2::{Digest, Sha256};

/// The tiny co2 config with runs `relu` (MC dropout) and `cd` (concrete dropout), no GP.
fn config(dir: &Path) -> PathBuf {
    let text = common::tiny_config()
        .replace("  small_samples: 5\n", "  small_samples: 5\n  gp: false\n")
        .replace(
            "set: {model.activation: tanh, trainer.lr: 0.005}",
            "set: {model.method: concrete_dropout}",
        )
        .replace("  - name: tanh\n", "  - name: cd\n");
    common::write(dir, "curves.yaml", &text)
}

/// Header and rows of a CSV table (no quoted commas in these tables).
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// The cache entries' summaries (`results/.cache/weights/*.json`), with their paths.
fn entries(results: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out: Vec<_> = std::fs::read_dir(results.join(".cache/weights"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn co2_training_curves_end_at_the_final_loss_follow_p_and_survive_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let results = dir.path().join("results");
    common::mcd_run(&cfg, &results);
    let folder = results.join("tiny");
    for f in [
        "tables/training_curves.csv",
        "tables/training_curves.parquet",
        "tables/training_curves.md",
        "figures/training_curves.png",
        "figures/training_curves.svg",
        "figures/training_curves_p.png",
        "figures/training_curves_p.svg",
    ] {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let table_path = folder.join("tables/training_curves.csv");
    let (header, rows) = csv(&table_path);
    assert_eq!(
        header,
        ["run", "step", "loss", "p_before_layer1", "p_before_layer2"]
    );
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    let summaries = entries(&results);
    assert_eq!(summaries.len(), 2);
    for run in ["relu", "cd"] {
        let mine: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == run).collect();
        // 40 iterations logged every 10: steps 0, 10, 20, 30 and the last, 39.
        let steps: Vec<&str> = mine.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(steps, ["0", "10", "20", "30", "39"], "{run}");
        let last: f64 = mine[4][2].parse().unwrap();
        // The last loss is the final loss run.log reports, and exactly the one cached.
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("[{run}] 40 it, ")))
            .unwrap_or_else(|| panic!("no training line for {run}:\n{log}"));
        assert!(
            line.contains(&format!(", final loss {last:.4}, ")),
            "{run}: last loss {last}, but {line}"
        );
        let cached: Vec<f64> = summaries
            .iter()
            .map(|(_, v)| v["summary"]["final_loss"].as_f64().unwrap())
            .collect();
        assert!(cached.contains(&last), "{run}: {last} vs cached {cached:?}");
        for col in [3, 4] {
            let p: Vec<f64> = mine.iter().map(|r| r[col].parse().unwrap()).collect();
            if run == "relu" {
                assert!(p.iter().all(|v| v.is_nan()), "{run}: {p:?}");
            } else {
                // From the initial rate (model.dropout: 0.1), then learnt.
                assert!((p[0] - 0.1).abs() < 1e-6, "{}: {p:?}", header[col]);
                assert!(
                    (p[4] - p[0]).abs() > 1e-4,
                    "{} did not move: {p:?}",
                    header[col]
                );
                assert!(p.iter().all(|&v| v > 0.0 && v < 1.0), "{p:?}");
            }
        }
    }
    let first = std::fs::read(&table_path).unwrap();

    // From the cache: the same curves, byte for byte.
    common::mcd_run(&cfg, &results);
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert_eq!(log.matches("loaded cached weights").count(), 2, "{log}");
    assert_eq!(std::fs::read(&table_path).unwrap(), first);

    // Entries written before summaries carried `tracked`: rewritten as the old code wrote them
    // (no field, checksum over that text). They still load; the losses are the same, and the
    // concrete run's p is absent, which the log says.
    for (path, v) in entries(&results) {
        let mut summary: TrainSummary = serde_json::from_value(v["summary"].clone()).unwrap();
        summary.tracked = None;
        let text = serde_json::to_string(&summary).unwrap();
        assert!(!text.contains("tracked"));
        let entry = format!(
            r#"{{"weights_sha256":{},"summary_sha256":"{}","summary":{text}}}"#,
            v["weights_sha256"],
            hex(&Sha256::digest(text.as_bytes()))
        );
        std::fs::write(path, entry).unwrap();
    }
    common::mcd_run(&cfg, &results);
    let log = std::fs::read_to_string(folder.join("run.log")).unwrap();
    assert_eq!(log.matches("loaded cached weights").count(), 2, "{log}");
    assert!(
        log.contains("[cd] the cached weights") && log.contains("no p columns for it"),
        "{log}"
    );
    let (old_header, old_rows) = csv(&table_path);
    assert_eq!(old_header, ["run", "step", "loss"]);
    let losses = |rows: &[Vec<String>]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
            .collect()
    };
    assert_eq!(losses(&old_rows), losses(&rows));
    assert!(!folder.join("figures/training_curves_p.png").exists());
}
