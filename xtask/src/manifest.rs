//! The completion marker of a libtorch cache: every kept file with its size and sha256.
//!
//! It is written last, inside the staging directory, before the atomic rename; so a cache directory
//! with a manifest was complete when it was made, and checking the manifest tells whether it still is.

use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

/// File name of the marker inside the cache directory.
pub const MANIFEST_NAME: &str = "mcdrop-manifest.txt";

const HEADER: &str = "# mcdrop libtorch cache manifest v1: sha256 size path (written last)";

/// One kept file, its path relative to the cache root with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, e.g. `lib/libc10.so`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
}

/// Renders entries (sorted by path) as manifest text.
pub fn render(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::from(HEADER);
    out.push('\n');
    for e in sorted {
        out.push_str(&format!("{} {} {}\n", e.sha256, e.size, e.path));
    }
    out
}

/// Parses manifest text; the error names the offending line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first == HEADER => {}
        _ => return Err("line 1: not an mcdrop libtorch manifest (header missing)".to_string()),
    }
    let mut entries = Vec::new();
    for (idx, line) in lines {
        let n = idx + 1;
        let mut parts = line.splitn(3, ' ');
        let (Some(sha256), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "line {n}: expected `sha256 size path`, got {line:?}"
            ));
        };
        if !crate::pins::is_sha256_hex(sha256) {
            return Err(format!("line {n}: {sha256:?} is not a sha256"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| format!("line {n}: size {size:?} is not a number"))?;
        if !is_plain_relative(path) {
            return Err(format!(
                "line {n}: path {path:?} is not a plain relative path"
            ));
        }
        entries.push(Entry {
            path: path.to_string(),
            size,
            sha256: sha256.to_string(),
        });
    }
    if entries.is_empty() {
        return Err("the manifest lists no files".to_string());
    }
    Ok(entries)
}

/// True when `path` stays inside the directory it is joined to (no `..`, not absolute).
pub(crate) fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Why a cached file no longer matches its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is gone.
    Missing { path: String },
    /// The file has another size than recorded.
    SizeChanged {
        path: String,
        expected: u64,
        found: u64,
    },
    /// The file has the recorded size but another content.
    HashChanged {
        path: String,
        expected: String,
        found: String,
    },
    /// The file could not be read.
    Unreadable { path: String, error: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { path } => write!(f, "{path} is missing"),
            Problem::SizeChanged {
                path,
                expected,
                found,
            } => write!(f, "{path} is {found} bytes, the manifest says {expected}"),
            Problem::HashChanged {
                path,
                expected,
                found,
            } => write!(f, "{path} has sha256 {found}, the manifest says {expected}"),
            Problem::Unreadable { path, error } => write!(f, "{path} cannot be read: {error}"),
        }
    }
}

/// Checks every entry's size under `root`, and its sha256 too when `full` is set.
pub fn check(root: &Path, entries: &[Entry], full: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    for e in entries {
        let file = root.join(&e.path);
        let path = e.path.clone();
        let found = match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                problems.push(Problem::Unreadable {
                    path,
                    error: "not a regular file".to_string(),
                });
                continue;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                problems.push(Problem::Missing { path });
                continue;
            }
            Err(err) => {
                problems.push(Problem::Unreadable {
                    path,
                    error: err.to_string(),
                });
                continue;
            }
        };
        if found != e.size {
            problems.push(Problem::SizeChanged {
                path,
                expected: e.size,
                found,
            });
            continue;
        }
        if full {
            match sha256_file(&file) {
                Ok((_, hash)) if hash == e.sha256 => {}
                Ok((_, hash)) => problems.push(Problem::HashChanged {
                    path,
                    expected: e.sha256.clone(),
                    found: hash,
                }),
                Err(err) => problems.push(Problem::Unreadable {
                    path,
                    error: err.to_string(),
                }),
            }
        }
    }
    problems
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Returns the inner writer, the byte count and the lower-case hex sha256.
    pub fn finish(self) -> (W, u64, String) {
        let digest = self.hasher.finalize();
        (self.inner, self.len, hex(&digest))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut w = HashingWriter::new(io::sink());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    let (_, len, hash) = w.finish();
    Ok((len, hash))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc") from FIPS 180-2, appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    // sha256("abd"), computed independently with coreutils `printf abd | sha256sum`.
    const ABD: &str = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9";

    fn cache_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Vec<Entry>) {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for (path, content) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            let (size, sha256) = sha256_file(&full).unwrap();
            entries.push(Entry {
                path: path.to_string(),
                size,
                sha256,
            });
        }
        (dir, entries)
    }

    #[test]
    fn hashes_match_published_vectors() {
        let (dir, entries) = cache_with(&[("a", b"abc"), ("b", b"abd")]);
        assert_eq!(entries[0].sha256, ABC);
        assert_eq!(entries[0].size, 3);
        assert_eq!(entries[1].sha256, ABD);
        assert!(check(dir.path(), &entries, true).is_empty());
    }

    #[test]
    fn render_then_parse_round_trips_sorted() {
        let entries = vec![
            Entry {
                path: "lib/libc10.so".into(),
                size: 12,
                sha256: ABD.into(),
            },
            Entry {
                path: "include/a b.h".into(),
                size: 0,
                sha256: ABC.into(),
            },
        ];
        let text = render(&entries);
        assert!(text.starts_with(HEADER));
        let back = parse(&text).unwrap();
        assert_eq!(back, vec![entries[1].clone(), entries[0].clone()]);
    }

    #[test]
    fn parse_rejects_damaged_text() {
        let good = format!("{HEADER}\n{ABC} 3 lib/a.so\n");
        assert!(parse(&good).is_ok());
        let cases = [
            (format!("{ABC} 3 lib/a.so\n"), "header missing"),
            (format!("{HEADER}\n"), "lists no files"),
            (format!("{HEADER}\n{ABC} 3\n"), "line 2: expected"),
            (format!("{HEADER}\n{ABC} x lib/a.so\n"), "not a number"),
            (
                format!("{HEADER}\n{} 3 lib/a.so\n", &ABC[2..]),
                "not a sha256",
            ),
            (
                format!("{HEADER}\n{ABC} 3 ../a.so\n"),
                "not a plain relative",
            ),
            (
                format!("{HEADER}\n{ABC} 3 /etc/a.so\n"),
                "not a plain relative",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }

    #[test]
    fn size_check_detects_changed_and_missing_files() {
        let (dir, entries) = cache_with(&[("lib/x.so", b"abc"), ("include/y.h", b"abd")]);
        std::fs::write(dir.path().join("lib/x.so"), b"abcd").unwrap();
        std::fs::remove_file(dir.path().join("include/y.h")).unwrap();
        let problems = check(dir.path(), &entries, false);
        assert_eq!(
            problems,
            vec![
                Problem::SizeChanged {
                    path: "lib/x.so".into(),
                    expected: 3,
                    found: 4
                },
                Problem::Missing {
                    path: "include/y.h".into()
                },
            ]
        );
        assert_eq!(
            problems[0].to_string(),
            "lib/x.so is 4 bytes, the manifest says 3"
        );
    }

    #[test]
    fn only_the_full_check_sees_same_size_corruption() {
        let (dir, entries) = cache_with(&[("lib/x.so", b"abc")]);
        std::fs::write(dir.path().join("lib/x.so"), b"abd").unwrap();
        assert!(check(dir.path(), &entries, false).is_empty());
        assert_eq!(
            check(dir.path(), &entries, true),
            vec![Problem::HashChanged {
                path: "lib/x.so".into(),
                expected: ABC.into(),
                found: ABD.into(),
            }]
        );
    }
}
