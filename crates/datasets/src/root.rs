//! A data folder with a `SHA256SUMS` manifest; every read is verified against it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// Name of the manifest file inside a data root.
pub const MANIFEST: &str = "SHA256SUMS";

/// The repository's vendored data folder (`<workspace>/data`), fixed at compile time.
pub const REPO_DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

/// A verified data folder: `dir` plus the checksums of `dir/SHA256SUMS`.
#[derive(Debug, Clone)]
pub struct DataRoot {
    dir: PathBuf,
    /// Relative path (as written in the manifest, without `./`) -> lowercase hex sha256.
    sums: HashMap<String, String>,
}

impl DataRoot {
    /// Opens `dir` and reads its `SHA256SUMS` (`sha256sum` format).
    pub fn open(dir: impl AsRef<Path>) -> Result<DataRoot> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = dir.join(MANIFEST);
        let bytes = std::fs::read(&manifest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DataError::Missing {
                    path: manifest.clone(),
                    msg: "no checksum manifest in this data folder (data/vendor.sh writes it)"
                        .into(),
                }
            } else {
                DataError::Io {
                    path: manifest.clone(),
                    action: "read",
                    source: e,
                }
            }
        })?;
        let text = utf8(bytes, &manifest)?;
        let sums = parse_manifest(&text, &manifest)?;
        Ok(DataRoot { dir, sums })
    }

    /// Opens the repository's vendored `data/` folder ([`REPO_DATA_DIR`]).
    pub fn open_repo() -> Result<DataRoot> {
        DataRoot::open(REPO_DATA_DIR)
    }

    /// The folder this root reads from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Full path of a file given relative to the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(normalise(rel))
    }

    /// The manifest's sha256 (lowercase hex) of `rel`, if it lists the file. Every read is
    /// checked against it, so it fingerprints what a read returns.
    pub fn sha256(&self, rel: &str) -> Option<&str> {
        self.sums.get(normalise(rel)).map(String::as_str)
    }

    /// Whether the manifest lists `rel`.
    pub fn contains(&self, rel: &str) -> bool {
        self.sums.contains_key(normalise(rel))
    }

    /// Reads `rel`, checks its sha256 against the manifest, and gunzips it when it ends in `.gz`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let rel = normalise(rel);
        let path = self.dir.join(rel);
        let expected = self.sums.get(rel).ok_or_else(|| DataError::NotInManifest {
            path: path.clone(),
            manifest: self.dir.join(MANIFEST),
        })?;
        let raw = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DataError::Missing {
                    path: path.clone(),
                    msg: "listed in the manifest but not on disk".into(),
                }
            } else {
                DataError::Io {
                    path: path.clone(),
                    action: "read",
                    source: e,
                }
            }
        })?;
        let actual = hex(&Sha256::digest(&raw));
        if &actual != expected {
            return Err(DataError::ChecksumMismatch {
                path,
                expected: expected.clone(),
                actual,
            });
        }
        if rel.ends_with(".gz") {
            let mut out = Vec::with_capacity(raw.len() * 4);
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| DataError::Io {
                    path,
                    action: "gunzip",
                    source: e,
                })?;
            Ok(out)
        } else {
            Ok(raw)
        }
    }

    /// [`DataRoot::read`] for text files: the bytes must be UTF-8.
    pub fn read_text(&self, rel: &str) -> Result<String> {
        let bytes = self.read(rel)?;
        utf8(bytes, &self.path(rel))
    }
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Manifest keys are written without a leading `./`.
fn normalise(rel: &str) -> &str {
    rel.trim_start_matches("./")
}

pub(crate) fn utf8(bytes: Vec<u8>, path: &Path) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| DataError::Inconsistent {
        path: path.to_path_buf(),
        msg: format!(
            "not valid UTF-8 text (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Parses `sha256sum` output: `<64 hex>  <path>` or `<64 hex> *<path>` per line.
fn parse_manifest(text: &str, manifest: &Path) -> Result<HashMap<String, String>> {
    let mut sums = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |column: usize, msg: &str| DataError::Parse {
            path: manifest.to_path_buf(),
            line: line_no,
            column,
            msg: msg.to_string(),
        };
        let (digest, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad(1, "expected '<sha256>  <path>'"))?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(1, &format!("{digest:?} is not a 64-digit hex sha256")));
        }
        // The second character is ' ' (text mode) or '*' (binary mode) in sha256sum's format.
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| bad(66, "expected two spaces or ' *' between digest and path"))?;
        let name = normalise(name);
        if name.is_empty() {
            return Err(bad(67, "empty path"));
        }
        let digest = digest.to_ascii_lowercase();
        if let Some(prev) = sums.insert(name.to_string(), digest.clone()) {
            if prev != digest {
                return Err(bad(67, &format!("{name} listed twice with different sums")));
            }
        }
    }
    Ok(sums)
}
