//! Shared helpers: the repository data folder and throw-away fixture folders with their own
//! `SHA256SUMS`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The vendored data folder of the repository.
pub const REPO_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

/// A temporary data folder; files written with `put` are listed in its manifest on `finish`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    sums: Vec<(String, String)>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            sums: Vec::new(),
        }
    }

    /// Writes `content` to `rel` (gzip-compressed when `rel` ends in .gz) and records its sha256.
    pub fn put(&mut self, rel: &str, content: &[u8]) -> &mut Self {
        let stored = if rel.ends_with(".gz") {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(content).expect("gzip");
            enc.finish().expect("gzip")
        } else {
            content.to_vec()
        };
        self.put_raw(rel, &stored)
    }

    /// Writes `stored` to `rel` as is and records its sha256.
    pub fn put_raw(&mut self, rel: &str, stored: &[u8]) -> &mut Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, stored).expect("write");
        self.sums.push((sha256_hex(stored), rel.to_string()));
        self
    }

    /// Writes `SHA256SUMS` in `sha256sum` format.
    pub fn finish(&self) -> &Self {
        let text: String = self
            .sums
            .iter()
            .map(|(h, p)| format!("{h}  {p}\n"))
            .collect();
        std::fs::write(self.path("SHA256SUMS"), text).expect("write manifest");
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> mcd_datasets::DataRoot {
        mcd_datasets::DataRoot::open(self.dir.path()).expect("fixture root opens")
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An IDX image file: magic, n, rows, cols, then the pixels given.
pub fn idx_images(magic: u32, n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, n, rows, cols] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// An IDX label file: magic, n, then the labels given.
pub fn idx_labels(magic: u32, n: u32, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, n] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

/// Asserts that an error message names `path`.
pub fn names_file(err: &mcd_datasets::DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error {msg:?} does not name {}",
        path.display()
    );
    assert_eq!(err.path(), path, "DataError::path() of {msg:?}");
}
