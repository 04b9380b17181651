//! The one error type of this crate: every variant names the file it is about.

use std::path::PathBuf;

/// Anything that can go wrong while locating, verifying or parsing a data file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system (or the gzip decoder) failed on the file.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What was being done ("read", "gunzip", ...).
        action: &'static str,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not listed in the data root's `SHA256SUMS`, so it cannot be verified.
    #[error(
        "{}: not listed in the manifest {} (re-run data/vendor.sh or add its checksum)",
        path.display(),
        manifest.display()
    )]
    NotInManifest {
        /// File that was asked for.
        path: PathBuf,
        /// Manifest that was searched.
        manifest: PathBuf,
    },

    /// The file's sha256 differs from the manifest: corrupted or replaced.
    #[error("{}: sha256 mismatch: manifest says {expected}, file has {actual}", path.display())]
    ChecksumMismatch {
        /// File concerned.
        path: PathBuf,
        /// Hex digest listed in the manifest.
        expected: String,
        /// Hex digest of the bytes read.
        actual: String,
    },

    /// The file (or its header) is shorter than its format requires.
    #[error("{}: truncated: expected {expected} bytes, got {got}", path.display())]
    Truncated {
        /// File concerned.
        path: PathBuf,
        /// Bytes required.
        expected: usize,
        /// Bytes present.
        got: usize,
    },

    /// The binary file starts with the wrong magic number (wrong file or wrong format).
    #[error("{}: bad magic number {found} (expected {expected})", path.display())]
    BadMagic {
        /// File concerned.
        path: PathBuf,
        /// Magic number read.
        found: u32,
        /// Magic number required.
        expected: u32,
    },

    /// A text value could not be parsed (line and column are 1-based).
    #[error("{}:{line}: column {column}: {msg}", path.display())]
    Parse {
        /// File concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (CSV) or whitespace-separated field number.
        column: usize,
        /// What is wrong.
        msg: String,
    },

    /// An index read from a file points outside the data it indexes.
    #[error("{}:{line}: index {index} out of range (length {len})", path.display())]
    IndexOutOfRange {
        /// File concerned.
        path: PathBuf,
        /// 1-based line number of the index.
        line: usize,
        /// Offending index.
        index: usize,
        /// Length of what it indexes.
        len: usize,
    },

    /// The file parses but disagrees with itself or with a companion file.
    #[error("{}: {msg}", path.display())]
    Inconsistent {
        /// File concerned.
        path: PathBuf,
        /// What disagrees.
        msg: String,
    },

    /// A file the loader needs does not exist.
    #[error("{}: missing: {msg}", path.display())]
    Missing {
        /// File (or directory) that is absent.
        path: PathBuf,
        /// Why it was expected and what to do.
        msg: String,
    },
}

impl DataError {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            DataError::Io { path, .. }
            | DataError::NotInManifest { path, .. }
            | DataError::ChecksumMismatch { path, .. }
            | DataError::Truncated { path, .. }
            | DataError::BadMagic { path, .. }
            | DataError::Parse { path, .. }
            | DataError::IndexOutOfRange { path, .. }
            | DataError::Inconsistent { path, .. }
            | DataError::Missing { path, .. } => path,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
