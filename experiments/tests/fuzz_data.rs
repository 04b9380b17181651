//! Fuzzing the data parsers and the weight cache: damaged bytes (truncated, flipped, inserted,
//! header fields set to extremes, lines doubled or dropped, numbers made absurd) in the CO2
//! CSVs, the UCI data, index and settings files, gzip IDX images and labels, the checksum
//! manifest and the weight cache. A data file gives a typed error naming that file; a damaged
//! cache entry is not loaded (the net is retrained). Never a panic or an abort.
//!
//! Bounded for CI; `MCD_FUZZ_CASES=N` and `MCD_FUZZ_SEED=S` run more or other cases.

mod mutate;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mcd_datasets::{co2, mnist, uci, DataError, DataRoot, Split, UciName};
use mcd_experiments::cache::{TrainSummary, WeightCache};
use mcd_models::mlp::{Activation, InitScheme, Mlp, MlpSpec};
use mutate::Rng;
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::Device;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("vendored files gunzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// A data folder with its own manifest; files are kept in memory (uncompressed) and written
/// gzip-compressed.
struct Fixture {
    dir: tempfile::TempDir,
    /// Relative path -> stored (compressed) bytes.
    files: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    fn new() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
        let mut files = BTreeMap::new();
        for rel in [co2::GAL_TRAIN, co2::GAL_TEST_X, co2::WEEKLY] {
            files.insert(rel.to_string(), std::fs::read(repo.join(rel)).expect(rel));
        }
        let boston = repo.join("uci/bostonHousing");
        for entry in std::fs::read_dir(&boston).expect("uci/bostonHousing") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let stored = std::fs::read(boston.join(&name)).expect("a Boston file");
            files.insert(format!("uci/bostonHousing/{name}"), stored);
        }
        // Twenty MNIST test images and their labels, as small IDX files.
        let images = gunzip(&std::fs::read(repo.join("mnist/t10k-images-idx3-ubyte.gz")).unwrap());
        let labels = gunzip(&std::fs::read(repo.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap());
        let n = 20u32;
        let mut img = images[..16].to_vec();
        img[4..8].copy_from_slice(&n.to_be_bytes());
        img.extend_from_slice(&images[16..16 + 20 * 28 * 28]);
        let mut lab = labels[..8].to_vec();
        lab[4..8].copy_from_slice(&n.to_be_bytes());
        lab.extend_from_slice(&labels[8..28]);
        files.insert("mnist/t10k-images-idx3-ubyte.gz".into(), gzip(&img));
        files.insert("mnist/t10k-labels-idx1-ubyte.gz".into(), gzip(&lab));
        let f = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            files,
        };
        for (rel, stored) in &f.files {
            f.write(rel, stored);
        }
        f.write_manifest(None);
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, stored: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, stored).expect("write");
    }

    /// The manifest of the files as kept, with `replaced` (path, stored bytes) in place.
    fn write_manifest(&self, replaced: Option<(&str, &[u8])>) {
        let text: String = self
            .files
            .iter()
            .map(|(rel, stored)| {
                let bytes = match replaced {
                    Some((r, b)) if r == rel => b,
                    _ => stored.as_slice(),
                };
                format!("{}  {rel}\n", hex(bytes))
            })
            .collect();
        std::fs::write(self.path("SHA256SUMS"), text).expect("manifest");
    }
}

/// Runs the loader that reads `rel`, through every function that parses or checks it.
fn load_what_reads(dir: &Path, rel: &str) -> Result<(), DataError> {
    let root = DataRoot::open(dir)?;
    if rel.starts_with("co2/") {
        co2::load_gal(&root)?;
        co2::load_weekly(&root)?;
    } else if rel.starts_with("uci/") {
        let ds = uci::load(&root, UciName::BostonHousing)?;
        for k in 0..ds.splits.len() {
            ds.split(k, false)?;
            ds.split(k, true)?;
        }
    } else {
        mnist::load(&root, Split::Test)?;
    }
    Ok(())
}

#[test]
fn damaged_data_files_give_typed_errors_naming_the_file() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path().to_path_buf();
    for rel in fixture.files.keys() {
        load_what_reads(&dir, rel).unwrap_or_else(|e| panic!("the intact fixture fails: {e}"));
    }
    let rels: Vec<String> = fixture.files.keys().cloned().collect();
    let cases = mutate::cases(400);
    let seed = mutate::seed();
    let mut rng = Rng::new(seed ^ 0xda7a);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..cases {
        // The manifest itself in one case of twenty.
        let manifest = rng.below(20) == 0;
        let rel = if manifest {
            rels[0].clone()
        } else {
            rng.pick(&rels).clone()
        };
        let stored = &fixture.files[&rel];
        let (damaged, what) = if manifest {
            fixture.write_manifest(None);
            let text = std::fs::read(fixture.path("SHA256SUMS")).unwrap();
            let (bytes, what) = mutate::mutate_bytes(&mut rng, &text);
            std::fs::write(fixture.path("SHA256SUMS"), &bytes).unwrap();
            (None, format!("SHA256SUMS: {what}"))
        } else if rng.below(4) == 0 {
            // The compressed bytes: a broken gzip stream.
            let (bytes, what) = mutate::mutate_bytes(&mut rng, stored);
            (Some(bytes), format!("{rel} (gzip stream): {what}"))
        } else {
            let (bytes, what) = mutate::mutate_bytes(&mut rng, &gunzip(stored));
            (Some(gzip(&bytes)), format!("{rel}: {what}"))
        };
        if let Some(bytes) = &damaged {
            fixture.write(&rel, bytes);
            fixture.write_manifest(Some((&rel, bytes)));
        }
        let result = catch_unwind(AssertUnwindSafe(|| load_what_reads(&dir, &rel)));
        let context = format!("case {case} (seed {seed}): {what}");
        match result {
            Err(_) => panic!("a loader panicked on {context}"),
            Ok(Ok(())) => *outcomes.entry("loaded".into()).or_default() += 1,
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    e.path().starts_with(&dir),
                    "{context}: the error names {} outside the data folder: {msg}",
                    e.path().display()
                );
                assert!(
                    msg.contains(&e.path().display().to_string()),
                    "{context}: the message does not name its file: {msg}"
                );
                let kind = format!("{e:?}");
                let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_string();
                *outcomes.entry(kind).or_default() += 1;
            }
        }
        // Put the file back for the next case.
        fixture.write(&rel, stored);
        fixture.write_manifest(None);
    }
    eprintln!("data fuzz: {cases} cases (seed {seed}): {outcomes:?}");
    assert!(
        outcomes.len() >= 3,
        "too few kinds of outcome: {outcomes:?}"
    );
}

fn small_net(vs: &VarStore) -> Mlp {
    let spec = MlpSpec {
        input_dim: 3,
        hidden: vec![8, 8],
        output_dim: 1,
        activation: Activation::Relu,
        dropout: 0.1,
        input_dropout: 0.0,
        init: InitScheme::Torch,
        first_layer: None,
    };
    Mlp::new(&vs.root(), &spec, 7)
}

#[test]
fn damaged_cache_entries_are_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = WeightCache::new(dir.path());
    let vs = VarStore::new(Device::Cpu);
    let _net = small_net(&vs);
    // Values whose shortest decimal form must parse back exactly: the summary's checksum is
    // over its serialised text (this failed before serde_json's float_roundtrip).
    let summary = TrainSummary {
        iterations: 3,
        seconds: 0.1 + 0.2,
        final_loss: 1.0 / 3.0,
        losses: vec![(0, 2.0f64.sqrt()), (2, 1.0 / 3.0)],
        tracked: Some(vec![("p_before_layer1".into(), vec![0.1, 0.1 + 0.2])]),
    };
    cache.store("k", &vs, &summary).unwrap();
    let weights = dir.path().join("k.ot");
    let meta = dir.path().join("k.json");
    let (good_ot, good_json) = (
        std::fs::read(&weights).unwrap(),
        std::fs::read(&meta).unwrap(),
    );
    let original: Vec<tch::Tensor> = vs.trainable_variables();

    let cases = mutate::cases(200);
    let seed = mutate::seed();
    let mut rng = Rng::new(seed ^ 0xcac4e);
    let (mut refused, mut loaded) = (0, 0);
    for case in 0..cases {
        let (target, good) = if rng.below(3) == 0 {
            (&meta, &good_json)
        } else {
            (&weights, &good_ot)
        };
        let (bytes, what) = mutate::mutate_bytes(&mut rng, good);
        std::fs::write(target, &bytes).unwrap();
        let mut fresh = VarStore::new(Device::Cpu);
        let _n = small_net(&fresh);
        let got = catch_unwind(AssertUnwindSafe(|| cache.load("k", &mut fresh)));
        let context = format!("case {case} (seed {seed}): {} {what}", target.display());
        match got {
            Err(_) => panic!("the cache panicked on {context}"),
            Ok(None) => refused += 1,
            Ok(Some(s)) => {
                // Only a change that leaves the entry meaning the same may load.
                assert_eq!(s, summary, "{context}");
                for (a, b) in original.iter().zip(fresh.trainable_variables()) {
                    assert!(a.equal(&b), "{context}: loaded different weights");
                }
                loaded += 1;
            }
        }
        std::fs::write(target, good).unwrap();
    }
    eprintln!(
        "cache fuzz: {cases} cases (seed {seed}): {refused} refused, {loaded} loaded unchanged"
    );
    assert!(refused > cases / 2, "{refused} of {cases} refused");
    // The intact entry still loads.
    let mut fresh = VarStore::new(Device::Cpu);
    let _n = small_net(&fresh);
    assert_eq!(cache.load("k", &mut fresh), Some(summary));
}

#[test]
fn a_huge_split_count_is_an_error_not_an_allocation() {
    // Found by the long fuzz run (MCD_FUZZ_CASES=5000 MCD_FUZZ_SEED=7): the loader reserved
    // room for n_splits.txt's number of splits and aborted on 99999999999.
    let fixture = Fixture::new();
    let rel = "uci/bostonHousing/n_splits.txt.gz";
    let bytes = gzip(b"99999999999\n");
    fixture.write(rel, &bytes);
    fixture.write_manifest(Some((rel, &bytes)));
    let err = load_what_reads(fixture.dir.path(), rel).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("index file"), "{err}");
}
