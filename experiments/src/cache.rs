//! Trained weights cached under a key derived from everything that determines them (resolved
//! model and trainer settings, seed, data: a [`Key`]), so re-drawing or re-evaluating never
//! retrains.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;

use crate::output::OutputDir;

/// What training measured, kept beside the weights: with `losses` and `tracked` it is the run's
/// training curve, so a run that loads cached weights has the curve of the training that made
/// them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    pub iterations: usize,
    pub seconds: f64,
    pub final_loss: f64,
    pub losses: Vec<(usize, f64)>,
    /// The objective's tracked values at the same steps as `losses`
    /// (`mcd_trainer::TrainReport::tracked`; concrete dropout: p per layer). `None`: an entry
    /// written before they were recorded (such entries have no field, so their checksum is
    /// unchanged and they still load); `Some(empty)`: nothing was tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<Vec<(String, Vec<f64>)>>,
}

/// The `<key>.json` beside `<key>.ot`: the summary, and sha256s of the weights file and of the
/// summary. Both are checked before anything is used: a damaged weights file must be retrained,
/// never handed to libtorch's parser, and a damaged summary must not reach the tables.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    weights_sha256: String,
    summary_sha256: String,
    summary: TrainSummary,
}

fn summary_digest(summary: &TrainSummary) -> String {
    // serde_json writes floats in their shortest exact form, so this text round-trips.
    hex(&Sha256::digest(
        serde_json::to_string(summary)
            .unwrap_or_default()
            .as_bytes(),
    ))
}

/// A folder of `<key>.ot` + `<key>.json` pairs.
#[derive(Debug, Clone)]
pub struct WeightCache {
    dir: PathBuf,
}

/// Version of what a key's entry means. Bump it when code changes what the same settings give
/// (other weights, another split result), so that old entries are no longer found. (Before keys
/// were structs, versions sat in each study's key string: co2 v3, mnist v2, uci protocol v2.)
pub const SCHEMA: u32 = 1;

/// Everything that determines a cache entry (trained weights, a UCI split's result), serialised
/// as JSON and hashed: a setting added to a spec enters the key by itself, and the `schema`
/// version is one constant ([`SCHEMA`]).
#[derive(Debug, Serialize)]
pub struct Key<'a, M: Serialize, T: Serialize> {
    pub schema: u32,
    /// The study (`co2`, `mnist_rotated`, `uci`).
    pub study: crate::config::StudyKind,
    /// The network's spec.
    pub model: &'a M,
    /// The complete training settings.
    pub train: &'a T,
    pub seed: u64,
    pub data: &'a DataFingerprint,
    /// The method (`model.method`); left out for MC dropout, so its keys are those from before
    /// methods were named.
    #[serde(skip_serializing_if = "is_mc_dropout")]
    pub method: &'a str,
    /// Steps of dropout warm-up (`trainer.dropout_warmup`); left out when 0, so keys from
    /// before the warm-up existed are unchanged.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropout_warmup: usize,
}

fn is_zero(steps: &usize) -> bool {
    *steps == 0
}

fn is_mc_dropout(method: &&str) -> bool {
    *method == "mc_dropout"
}

impl<M: Serialize, T: Serialize> Key<'_, M, T> {
    /// Hex key: the first 16 bytes of the sha256 of the key's JSON.
    pub fn hash(&self) -> Result<String> {
        let json = serde_json::to_string(self).context("serialising a cache key")?;
        Ok(key_of(&json))
    }
}

/// What a cache entry was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFingerprint {
    /// sha256 (hex) over the training inputs' and targets' values (f32, little-endian).
    Values(String),
    /// The first `rows` rows of vendored files, by their manifest sha256s.
    Files { sha256: Vec<String>, rows: usize },
    /// A data set by name (an own table's name carries its fingerprint).
    Named(String),
}

impl DataFingerprint {
    /// [`DataFingerprint::Values`] of inputs `x` and targets `y`.
    pub fn of_values(x: &[f32], y: &[f32]) -> Self {
        let mut h = Sha256::new();
        for v in [x, y] {
            h.update((v.len() as u64).to_le_bytes());
            for f in v {
                h.update(f.to_le_bytes());
            }
        }
        DataFingerprint::Values(hex(&h.finalize()))
    }
}

/// Hex key (first 16 bytes of sha256) of a description.
pub fn key_of(description: &str) -> String {
    hex(&Sha256::digest(description.as_bytes())[..16])
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    /// Loads weights into `vs` when present, intact (sha256 as recorded) and of the model's
    /// shapes; `None` means "train".
    pub fn load(&self, key: &str, vs: &mut VarStore) -> Option<TrainSummary> {
        let (weights, meta) = self.paths(key);
        let entry: Entry = serde_json::from_str(&fs::read_to_string(meta).ok()?).ok()?;
        let bytes = fs::read(&weights).ok()?;
        if hex(&Sha256::digest(&bytes)) != entry.weights_sha256
            || summary_digest(&entry.summary) != entry.summary_sha256
        {
            return None;
        }
        vs.load_from_stream(std::io::Cursor::new(bytes)).ok()?;
        Some(entry.summary)
    }

    /// Stores weights and summary. libtorch serialises into memory and Rust writes the file, so
    /// a full disk is an I/O error naming the file (libtorch's own writer aborts the process
    /// then); both files go to temporary names first, the summary last, so an entry is either
    /// whole or absent.
    pub fn store(&self, key: &str, vs: &VarStore, summary: &TrainSummary) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let (weights, meta) = self.paths(key);
        let mut bytes = Vec::new();
        vs.save_to_stream(&mut bytes)
            .with_context(|| format!("serialising the weights for {}", weights.display()))?;
        let entry = Entry {
            weights_sha256: hex(&Sha256::digest(&bytes)),
            summary_sha256: summary_digest(summary),
            summary: summary.clone(),
        };
        let json = serde_json::to_string_pretty(&entry)?;
        write_atomically(&weights, &bytes)?;
        write_atomically(&meta, json.as_bytes())
    }
}

/// Writes `path` through `<path>.tmp-<pid>` and a rename; on failure the temporary file is
/// removed and `path` keeps what it had. An interrupt while writing removes it too.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        "{}.tmp-{}",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let guard = crate::interrupt::remove_on_interrupt(&tmp);
    let written = (|| -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    drop(guard);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

impl From<mcd_trainer::TrainReport> for TrainSummary {
    fn from(r: mcd_trainer::TrainReport) -> Self {
        Self {
            iterations: r.iterations,
            seconds: r.seconds,
            final_loss: r.losses.last().map_or(f64::NAN, |l| l.1),
            losses: r.losses,
            tracked: Some(r.tracked),
        }
    }
}

/// Loads the weights cached under `key` into `vs` (unless `retrain`), or trains with `train`
/// and caches the result. Logs which happened under the run's `name`.
pub fn load_or_train(
    cache: &WeightCache,
    key: &str,
    vs: &mut VarStore,
    ctx: &crate::Context,
    out: &OutputDir,
    name: &str,
    train: impl FnOnce(&VarStore) -> Result<mcd_trainer::TrainReport>,
) -> Result<TrainSummary> {
    if ctx.mode == crate::Mode::CachedOnly {
        return cache.load(key, vs).with_context(|| {
            format!(
                "run `{name}`: no intact cached weights ({key}): its task has not finished \
                 (`mcd task ... --index` for it, then collect again)"
            )
        });
    }
    if !ctx.retrain {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StudyKind;

    /// An entry written before summaries had `tracked` (checksummed over the old text) still
    /// loads, its curve of losses intact and `tracked` `None`; a new one keeps what it tracked.
    #[test]
    fn an_entry_from_before_tracked_values_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WeightCache::new(dir.path());
        let vs = VarStore::new(tch::Device::Cpu);
        let _w = vs.root().zeros("w", &[2, 3]);
        let old = TrainSummary {
            iterations: 3,
            seconds: 0.5,
            final_loss: 0.25,
            losses: vec![(0, 1.0), (2, 0.25)],
            tracked: None,
        };
        cache.store("old", &vs, &old).unwrap();
        let text = fs::read_to_string(dir.path().join("old.json")).unwrap();
        assert!(!text.contains("tracked"), "{text}");
        // The summary's checksum is the one the code before `tracked` computed.
        let before =
            r#"{"iterations":3,"seconds":0.5,"final_loss":0.25,"losses":[[0,1.0],[2,0.25]]}"#;
        assert!(
            text.contains(&hex(&Sha256::digest(before.as_bytes()))),
            "{text}"
        );
        let mut fresh = VarStore::new(tch::Device::Cpu);
        let _w = fresh.root().zeros("w", &[2, 3]);
        assert_eq!(cache.load("old", &mut fresh), Some(old.clone()));

        let new = TrainSummary {
            tracked: Some(vec![("p_before_layer1".into(), vec![0.1, 0.08])]),
            ..old
        };
        cache.store("new", &vs, &new).unwrap();
        assert_eq!(cache.load("new", &mut fresh), Some(new));
    }

    #[test]
    fn a_key_is_its_settings_json_hashed() {
        #[derive(Serialize)]
        struct Spec {
            width: usize,
            p: f64,
        }
        let data = DataFingerprint::of_values(&[1.0, 2.0], &[3.0, 4.0]);
        let key = |width, p, seed, dropout_warmup| {
            Key {
                schema: SCHEMA,
                study: StudyKind::Co2,
                model: &Spec { width, p },
                train: &"adam",
                seed,
                data: &data,
                method: "mc_dropout",
                dropout_warmup,
            }
            .hash()
            .unwrap()
        };
        let base = key(8, 0.1, 0, 0);
        assert_eq!(base.len(), 32);
        assert_eq!(base, key(8, 0.1, 0, 0));
        for other in [
            key(9, 0.1, 0, 0),
            key(8, 0.2, 0, 0),
            key(8, 0.1, 1, 0),
            key(8, 0.1, 0, 100),
        ] {
            assert_ne!(base, other);
        }
        let json = serde_json::to_string(&Key {
            schema: SCHEMA,
            study: StudyKind::MnistRotated,
            model: &Spec { width: 1, p: 0.5 },
            train: &1,
            seed: 2,
            data: &DataFingerprint::Named("x".into()),
            method: "mc_dropout",
            dropout_warmup: 0,
        })
        .unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"schema":{SCHEMA},"study":"mnist_rotated","model":{{"width":1,"p":0.5}},"train":1,"seed":2,"data":{{"named":"x"}}}}"#
            )
        );
        // The data's values, not only their number, tell entries apart.
        assert_ne!(
            DataFingerprint::of_values(&[1.0], &[2.0]),
            DataFingerprint::of_values(&[1.0], &[2.5])
        );
    }
}
