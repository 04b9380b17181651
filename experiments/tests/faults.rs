//! Fault injection on the `mcd` binary: runs killed (SIGKILL) while training, during the MC
//! passes and while writing tables, then rerun, end with the tables of an uninterrupted run;
//! SIGINT / SIGTERM clean up and exit 130 / 143; a full disk (a small tmpfs, when the tests run
//! as root) is one clear error and loses nothing; a closed stdout ends the output quietly.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// One run (no variants), long enough to be caught in each phase: training (3000 steps),
/// MC passes (T = 1000 and T = 5), the GP, then tables and figures.
fn config(dir: &Path) -> PathBuf {
    let text = common::tiny_config()
        .split("variants:")
        .next()
        .expect("the tiny config")
        .replace("name: tiny", "name: faults")
        .replace("hidden: [16, 16]", "hidden: [64, 64]")
        .replace("iterations: 40", "iterations: 3000")
        .replace("log_every: 10", "log_every: 50")
        .replace("samples: 20", "samples: 1000");
    common::write(dir, "faults.yaml", &text)
}

fn mcd(cfg: &Path, results: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcd"));
    c.arg("run")
        .arg(cfg)
        .args(["--plain", "--threads", "1", "--results"])
        .arg(results)
        .args(extra);
    c
}

fn run_to_end(cfg: &Path, results: &Path, extra: &[&str]) -> Output {
    mcd(cfg, results, extra).output().expect("running mcd")
}

/// A run that must succeed; returns its stderr.
fn succeed(cfg: &Path, results: &Path) -> String {
    let out = run_to_end(cfg, results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mcd failed:\n{stderr}");
    stderr
}

/// Starts a run and returns it once a stderr line contains `marker` (the rest of stderr is
/// collected in the background).
fn start_until(
    cfg: &Path,
    results: &Path,
    extra: &[&str],
    marker: &str,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = mcd(cfg, results, extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting mcd");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.expect("reading stderr");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            let rest = std::thread::spawn(move || {
                lines.fold(seen, |mut acc, l| {
                    acc.push_str(&l.unwrap_or_default());
                    acc.push('\n');
                    acc
                })
            });
            return (child, rest);
        }
    }
    let status = child.wait().expect("waiting");
    panic!("the run ended ({status}) before printing `{marker}`:\n{seen}");
}

/// Every file under `dir` with its bytes (the CSV timing column cut out).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A CSV without its `train_seconds` column (the one value a rerun may change).
fn without_timing(csv: &[u8]) -> String {
    let text = String::from_utf8_lossy(csv);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let skip = header.iter().position(|h| *h == "train_seconds");
    let keep = |row: &str| -> String {
        row.split(',')
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, f)| f)
            .collect::<Vec<_>>()
            .join(",")
    };
    std::iter::once(keep(&header.join(",")))
        .chain(lines.map(keep))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tables(folder: &Path) -> Vec<(String, String)> {
    ["summary.csv", "predictions.csv"]
        .iter()
        .map(|t| {
            let bytes =
                std::fs::read(folder.join("tables").join(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
            (t.to_string(), without_timing(&bytes))
        })
        .collect()
}

/// Names in `dir` (recursively) that a run writes only while it lives.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name.starts_with(".old-") || name.contains(".tmp-") {
                out.push(e.path().display().to_string());
            }
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn killed_at_each_phase_then_rerun_gives_the_uninterrupted_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let reference_root = dir.path().join("reference");
    succeed(&cfg, &reference_root);
    let reference = tables(&reference_root.join("faults"));

    // Markers: a training progress line; the line logged after training (the MC passes come
    // next); the GP's line (tables and figures come next).
    for (phase, marker) in [
        ("training", "it (30%)"),
        ("MC passes", "final loss"),
        ("tables", "GP: length-scale"),
    ] {
        let root = dir.path().join(phase.replace(' ', "_"));
        let (mut child, rest) = start_until(&cfg, &root, &[], marker);
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        let stderr = rest.join().unwrap();
        assert!(
            !status.success(),
            "{phase}: the run finished before the kill:\n{stderr}"
        );
        assert!(
            !root.join("faults").exists(),
            "{phase}: a killed run must not leave a result folder"
        );
        let log = succeed(&cfg, &root);
        assert_eq!(
            leftovers(&root),
            Vec::<String>::new(),
            "{phase}: the rerun must remove what the killed run left"
        );
        assert!(
            log.contains("left by a run that was killed"),
            "{phase}: the rerun should say what it removed:\n{log}"
        );
        assert_eq!(
            tables(&root.join("faults")),
            reference,
            "{phase}: the rerun's tables differ from the uninterrupted run's"
        );
    }
}

#[test]
fn sigint_and_sigterm_clean_up_and_exit_130_and_143() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let root = dir.path().join("results");
    succeed(&cfg, &root);
    let before = snapshot(&root.join("faults"));
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        // --retrain: the weights of the first run are cached, and the interrupt should land in
        // training.
        let (child, rest) = start_until(&cfg, &root, &["--retrain"], "it (30%)");
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success());
        let mut child = child;
        let status = child.wait().unwrap();
        let stderr = rest.join().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}:\n{stderr}");
        assert!(
            stderr.contains(&format!("interrupted (SIG{signal})")),
            "SIG{signal}: no word of the interrupt:\n{stderr}"
        );
        assert_eq!(leftovers(&root), Vec::<String>::new(), "SIG{signal}");
        assert!(
            snapshot(&root.join("faults")) == before,
            "SIG{signal}: the previous result changed"
        );
    }
}

#[test]
fn zero_threads_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let root = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
        .arg("run")
        .arg(&cfg)
        .args(["--threads", "0", "--results"])
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--threads") && stderr.contains('0'),
        "{stderr}"
    );
    assert!(!root.exists(), "nothing may be written");
}

/// `mcd keys | head` and `mcd check ... | head`: the reader has gone before the output is
/// written. Writing then fails with a broken pipe; that ends the output quietly (exit 0), with
/// no panic on stderr, as it does for other command-line tools.
#[test]
fn a_closed_stdout_ends_the_output_without_a_panic() {
    let regression = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/regression.yaml");
    let commands: [&[&std::ffi::OsStr]; 2] = [
        &["keys".as_ref()],
        &["check".as_ref(), regression.as_os_str()],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_mcd"))
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A tmpfs of `size` mounted on `at` for the test's duration.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None (with a message) where mounting is not allowed: not root, or no mount namespace.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: full-disk test needs to mount a tmpfs (as root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: full-disk test cannot run `mount`: {e}");
                None
            }
        }
    }

    /// Fills the file system, then frees `leave` bytes.
    fn fill_leaving(&self, leave: u64) {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        f.set_len(written.saturating_sub(leave)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Whether two weight files hold the same named tensors.
fn same_tensors(a: &[u8], b: &[u8]) -> bool {
    let read = |bytes: &[u8]| {
        let mut named = tch::Tensor::load_multi_from_stream(std::io::Cursor::new(bytes.to_vec()))
            .expect("a readable weights file");
        named.sort_by(|x, y| x.0.cmp(&y.0));
        named
    };
    let (a, b) = (read(a), read(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

fn assert_clean_failure(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit 1 (an error, not an abort):\n{stderr}"
    );
    assert!(
        stderr.contains("No space left on device"),
        "{what}: the error should say the disk is full:\n{stderr}"
    );
    assert!(!stderr.contains("terminate called"), "{what}:\n{stderr}");
    stderr
}

#[test]
fn a_full_disk_is_one_clear_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());

    // 1. The weight cache on a full file system (where libtorch's writer used to abort).
    let root = dir.path().join("results");
    succeed(&cfg, &root);
    let before = snapshot(&root.join("faults"));
    let cache = root.join(".cache");
    let cached = snapshot(&cache);
    std::fs::rename(&cache, dir.path().join("cache-aside")).unwrap();
    let Some(fs) = Tmpfs::mount(&cache, "1m") else {
        return;
    };
    fs.fill_leaving(0);
    let out = run_to_end(&cfg, &root, &["--retrain"]);
    let stderr = assert_clean_failure(&out, "full cache");
    assert!(
        stderr.contains(".cache/weights/"),
        "the error should name the cache file:\n{stderr}"
    );
    let entries: Vec<_> = snapshot(&cache)
        .into_keys()
        .filter(|p| p != Path::new("filler"))
        .collect();
    assert!(
        entries.is_empty(),
        "a partial cache entry was left: {entries:?}"
    );
    assert!(
        snapshot(&root.join("faults")) == before,
        "the previous result changed"
    );
    assert_eq!(leftovers(&root), Vec::<String>::new());
    drop(fs);
    assert!(!cached.is_empty());

    // 2. The whole results folder on a small file system, full or nearly full.
    for leave in [0u64, 48 * 1024, 160 * 1024] {
        let root = dir.path().join(format!("small-{leave}"));
        let Some(fs) = Tmpfs::mount(&root, "24m") else {
            return;
        };
        succeed(&cfg, &root);
        let before = snapshot(&root.join("faults"));
        let cached = snapshot(&root.join(".cache"));
        fs.fill_leaving(leave);
        let out = run_to_end(&cfg, &root, &["--retrain"]);
        let what = format!("results on a full disk with {leave} bytes free");
        assert_clean_failure(&out, &what);
        assert!(
            snapshot(&root.join("faults")) == before,
            "{what}: the previous result changed"
        );
        // A retrained entry may be rewritten (its timing changes), but whole: the same files,
        // the same weights.
        let after = snapshot(&root.join(".cache"));
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            cached.keys().collect::<Vec<_>>(),
            "{what}: the cache's files changed"
        );
        for (p, bytes) in &cached {
            if p.extension().is_some_and(|e| e == "ot") {
                // libtorch's archive orders tensors by a hash map: compare the tensors.
                assert!(
                    same_tensors(&after[p], bytes),
                    "{what}: the weights in {} changed",
                    p.display()
                );
            }
        }
        assert_eq!(leftovers(&root), Vec::<String>::new(), "{what}");
        drop(fs);
    }
}
