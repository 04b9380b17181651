//! Trained weights cached under a key derived from everything that determines them (resolved
//! model and trainer settings, seed, data), so re-drawing or re-evaluating never retrains.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;

use crate::output::OutputDir;

/// What training measured, kept beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    pub iterations: usize,
    pub seconds: f64,
    pub final_loss: f64,
    pub losses: Vec<(usize, f64)>,
}

/// A folder of `<key>.ot` + `<key>.json` pairs.
#[derive(Debug, Clone)]
pub struct WeightCache {
    dir: PathBuf,
}

/// Hex key (first 16 bytes of sha256) of a description.
pub fn key_of(description: &str) -> String {
    let digest = Sha256::digest(description.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl WeightCache {
    /// Cache rooted at `dir` (created on first store).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.ot")),
            self.dir.join(format!("{key}.json")),
        )
    }

    /// Loads weights into `vs` when present and readable; `None` means "train".
    pub fn load(&self, key: &str, vs: &mut VarStore) -> Option<TrainSummary> {
        let (weights, meta) = self.paths(key);
        let summary: TrainSummary = serde_json::from_str(&fs::read_to_string(meta).ok()?).ok()?;
        vs.load(&weights).ok()?;
        Some(summary)
    }

    /// Stores weights and summary (weights first, so a summary always has its weights).
    pub fn store(&self, key: &str, vs: &VarStore, summary: &TrainSummary) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let (weights, meta) = self.paths(key);
        let tmp = weights.with_extension("ot.tmp");
        vs.save(&tmp)
            .with_context(|| format!("saving weights to {}", tmp.display()))?;
        fs::rename(&tmp, &weights)
            .with_context(|| format!("moving weights to {}", weights.display()))?;
        fs::write(&meta, serde_json::to_string_pretty(summary)?)
            .with_context(|| format!("writing {}", meta.display()))?;
        Ok(())
    }
}

impl From<mcd_trainer::TrainReport> for TrainSummary {
    fn from(r: mcd_trainer::TrainReport) -> Self {
        Self {
            iterations: r.iterations,
            seconds: r.seconds,
            final_loss: r.losses.last().map_or(f64::NAN, |l| l.1),
            losses: r.losses,
        }
    }
}

/// Loads the weights cached under `key` into `vs` (unless `retrain`), or trains with `train`
/// and caches the result. Logs which happened under the run's `name`.
pub fn load_or_train(
    cache: &WeightCache,
    key: &str,
    vs: &mut VarStore,
    retrain: bool,
    out: &OutputDir,
    name: &str,
    train: impl FnOnce(&VarStore) -> Result<mcd_trainer::TrainReport>,
) -> Result<TrainSummary> {
    if !retrain {
        if let Some(s) = cache.load(key, vs) {
            out.log(&format!(
                "[{name}] loaded cached weights {key} (trained {} it in {:.1}s)",
                s.iterations, s.seconds
            ));
            return Ok(s);
        }
    }
    let summary = TrainSummary::from(train(vs)?);
    cache.store(key, vs, &summary)?;
    Ok(summary)
}
