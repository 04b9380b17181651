//! Finding, or building from pinned PyPI wheels, the CPU libtorch that every child cargo links.
//!
//! pytorch.org is unreachable on the project's machines and CI, so the libtorch zip cannot be fetched;
//! the same headers and shared libraries ship inside the PyPI `torch` wheel (plus two small NVIDIA
//! runtime libraries that `libtorch_cpu.so` links against), which pip can fetch from the registry.

use crate::manifest::{self, Entry, HashingWriter, MANIFEST_NAME};
use crate::pins::{self, Pin, PINS_TXT};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The libtorch version tch 0.24 requires.
pub const LIBTORCH_VERSION: &str = "2.11.0";
/// Name of the managed cache directory under `<cache home>/mcdrop/`.
pub const CACHE_NAME: &str = "libtorch-2.11.0-cpu";
/// `build-version` file that torch-sys reads to check the version.
const VERSION_FILE: &str = "build-version";

/// Python version and newest glibc given to `pip download`, so the same wheel files come whatever the
/// local python is.
const PIP_PYTHON_VERSION: &str = "3.11";
const PIP_MAX_GLIBC_MINOR: u32 = 28;
/// Oldest manylinux glibc (manylinux2014 = manylinux_2_17) that wheels are accepted for.
const PIP_MIN_GLIBC_MINOR: u32 = 17;

/// Wheel members kept in `<cache>/lib`, by their path inside the wheel.
const KEPT_LIBS: [(&str, &str); 6] = [
    ("torch/lib/libtorch_cpu.so", "libtorch_cpu.so"),
    ("torch/lib/libc10.so", "libc10.so"),
    ("torch/lib/libtorch.so", "libtorch.so"),
    ("torch/lib/libgomp.so.1", "libgomp.so.1"),
    ("nvidia/cu13/lib/libcudart.so.13", "libcudart.so.13"),
    ("nvidia/cu13/lib/libcupti.so.13", "libcupti.so.13"),
];
/// Wheel prefix copied whole to `<cache>/include`.
const INCLUDE_PREFIX: &str = "torch/include/";
/// Header torch-sys's second include root must hold; its absence means a wheel of another layout.
const REQUIRED_HEADER: &str = "include/torch/csrc/api/include/torch/torch.h";

/// Where the libtorch in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The user's `LIBTORCH`.
    Env,
    /// xtask's managed cache.
    Cache,
}

/// The libtorch every child cargo gets as `LIBTORCH`.
#[derive(Debug, Clone)]
pub struct Libtorch {
    /// Absolute directory holding `lib/` and `include/`.
    pub dir: PathBuf,
    /// Content of `build-version`, if there is one.
    pub version: Option<String>,
    /// Where it came from.
    pub source: Source,
}

impl Libtorch {
    /// One line saying which libtorch is used.
    pub fn describe(&self) -> String {
        let version = self.version.as_deref().unwrap_or("of unknown version");
        let from = match self.source {
            Source::Env => "from LIBTORCH",
            Source::Cache => "xtask cache",
        };
        format!("libtorch {version} at {} ({from})", self.dir.display())
    }
}

/// Where libtorch should come from, decided from the environment alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The user set `LIBTORCH`; it wins. Made absolute, since rpath.rs embeds it in binaries.
    UserSet(PathBuf),
    /// The managed cache directory.
    Cache(PathBuf),
}

/// Picks the libtorch directory from `LIBTORCH`, `XDG_CACHE_HOME` and `HOME` (empty counts as unset).
pub fn choose(
    libtorch: Option<&OsStr>,
    xdg_cache_home: Option<&OsStr>,
    home: Option<&OsStr>,
    cwd: &Path,
) -> Result<Choice, String> {
    let set = |v: Option<&OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(libtorch) {
        return Ok(Choice::UserSet(cwd.join(dir)));
    }
    // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    let cache_home = match (set(xdg_cache_home).filter(|p| p.is_absolute()), set(home)) {
        (Some(xdg), _) => xdg,
        (None, Some(home)) => home.join(".cache"),
        (None, None) => {
            return Err("neither XDG_CACHE_HOME nor HOME is set, so xtask has no cache directory \
                 for libtorch; set LIBTORCH to a libtorch directory (one holding lib/ and include/)"
                .to_string())
        }
    };
    Ok(Choice::Cache(cache_home.join("mcdrop").join(CACHE_NAME)))
}

/// Accepts a user-set `LIBTORCH` if it has a `lib/` directory.
pub fn check_user_dir(dir: &Path) -> Result<Libtorch> {
    if !dir.join("lib").is_dir() {
        bail!(
            "LIBTORCH is set to {dir}, but {dir}/lib is not a directory.\n\
             Point LIBTORCH at a libtorch directory (one holding lib/ and include/), or unset it \
             so that xtask uses (and if needed builds) its own cache.",
            dir = dir.display()
        );
    }
    Ok(Libtorch {
        dir: dir.to_path_buf(),
        version: read_version(dir),
        source: Source::Env,
    })
}

fn read_version(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(VERSION_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What is in the cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// Nothing there yet.
    Absent,
    /// A directory without manifest: never finished, or not made by xtask.
    NoMarker,
    /// It has a manifest but does not match it (why).
    Damaged(String),
    /// Matches its manifest (sizes checked).
    Complete(Vec<Entry>),
}

/// Inspects a cache directory, checking every file's size against the manifest.
pub fn inspect(dir: &Path) -> CacheState {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return CacheState::Absent,
        Err(e) => return CacheState::Damaged(format!("it cannot be read: {e}")),
        Ok(_) if !dir.is_dir() => return CacheState::Damaged("it is not a directory".into()),
        Ok(_) => {}
    }
    let text = match fs::read_to_string(dir.join(MANIFEST_NAME)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return CacheState::NoMarker,
        Err(e) => return CacheState::Damaged(format!("its {MANIFEST_NAME} cannot be read: {e}")),
        Ok(text) => text,
    };
    let entries = match manifest::parse(&text) {
        Ok(entries) => entries,
        Err(e) => return CacheState::Damaged(format!("its {MANIFEST_NAME} is malformed: {e}")),
    };
    let problems = manifest::check(dir, &entries, false);
    if !problems.is_empty() {
        return CacheState::Damaged(summarize(&problems));
    }
    CacheState::Complete(entries)
}

fn summarize(problems: &[manifest::Problem]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(|p| p.to_string()).collect();
    let mut s = shown.join("; ");
    if problems.len() > 3 {
        s.push_str(&format!(" (and {} more)", problems.len() - 3));
    }
    s
}

fn damaged_message(dir: &Path, why: &str) -> String {
    format!(
        "the libtorch cache {dir} is damaged: {why}.\n\
         Remove it and rebuild it: rm -rf '{dir}' && cargo xtask libtorch",
        dir = dir.display()
    )
}

/// Finds libtorch (user's `LIBTORCH`, else the cache, built if absent); `verify` hashes every file.
pub fn ensure(verify: bool) -> Result<Libtorch> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let choice = choose(
        std::env::var_os("LIBTORCH").as_deref(),
        std::env::var_os("XDG_CACHE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
        &cwd,
    )
    .map_err(anyhow::Error::msg)?;
    let libtorch = match choice {
        Choice::UserSet(dir) => {
            let lt = check_user_dir(&dir)?;
            if verify {
                verify_full(&dir, Source::Env)?;
            }
            lt
        }
        Choice::Cache(dir) => {
            match inspect(&dir) {
                CacheState::Complete(_) => {}
                CacheState::Absent => build(&dir)?,
                CacheState::NoMarker => {
                    eprintln!(
                        "xtask: {} has no {MANIFEST_NAME} (an interrupted or hand-made cache); \
                         rebuilding it",
                        dir.display()
                    );
                    build(&dir)?
                }
                CacheState::Damaged(why) => bail!(damaged_message(&dir, &why)),
            }
            if verify {
                verify_full(&dir, Source::Cache)?;
            }
            Libtorch {
                version: read_version(&dir),
                dir,
                source: Source::Cache,
            }
        }
    };
    if libtorch.version.as_deref() != Some(LIBTORCH_VERSION) {
        eprintln!(
            "xtask: warning: tch 0.24 needs libtorch {LIBTORCH_VERSION}, but {} says {}",
            libtorch.dir.join(VERSION_FILE).display(),
            libtorch.version.as_deref().unwrap_or("nothing")
        );
    }
    Ok(libtorch)
}

/// Checks every file's sha256 against the manifest.
fn verify_full(dir: &Path, source: Source) -> Result<()> {
    let text = match fs::read_to_string(dir.join(MANIFEST_NAME)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && source == Source::Env => bail!(
            "cannot verify LIBTORCH={}: it has no {MANIFEST_NAME} to check against (only caches \
             built by `cargo xtask libtorch` have one)",
            dir.display()
        ),
        Err(e) => bail!(damaged_message(
            dir,
            &format!("its {MANIFEST_NAME} cannot be read: {e}")
        )),
    };
    let entries = manifest::parse(&text)
        .map_err(|e| anyhow::anyhow!(damaged_message(dir, &format!("bad manifest: {e}"))))?;
    let problems = manifest::check(dir, &entries, true);
    if !problems.is_empty() {
        bail!(damaged_message(dir, &summarize(&problems)));
    }
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    eprintln!(
        "xtask: verified {} files ({} MiB) of {} against their sha256",
        entries.len(),
        bytes >> 20,
        dir.display()
    );
    Ok(())
}

/// A directory removed when dropped, unless disarmed.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<Self> {
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, armed: true })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Builds the cache in a sibling directory, then renames it into place.
fn build(dir: &Path) -> Result<()> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "xtask builds libtorch from the PyPI torch wheel only on linux x86_64; on this platform \
             download libtorch {LIBTORCH_VERSION} yourself and set LIBTORCH to its directory \
             (the one holding lib/ and include/)"
        );
    }
    let parent = dir
        .parent()
        .with_context(|| format!("{} has no parent directory", dir.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    remove_stale_temps(parent);
    let pins = pins::parse_pins(PINS_TXT)?;
    check_pip()?;

    let pid = std::process::id();
    let wheels = TempDir::create(parent.join(format!(".{CACHE_NAME}.wheels-{pid}")))?;
    let mut staging = TempDir::create(parent.join(format!(".{CACHE_NAME}.tmp-{pid}")))?;
    eprintln!(
        "xtask: building libtorch {LIBTORCH_VERSION} (CPU) into {} from pinned PyPI wheels \
         (about 550 MB to download; pytorch.org is not used)",
        dir.display()
    );
    download(&pins, &wheels.path)?;
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    // Every wheel is checked before any is opened: a mismatch leaves nothing half-extracted.
    let verified = pins
        .iter()
        .map(|pin| verify_wheel(pin, &wheels.path))
        .collect::<Result<Vec<_>>>()?;
    for wheel in &verified {
        for entry in extract_wheel(wheel, &staging.path)? {
            if !seen.insert(entry.path.clone()) {
                bail!("two pinned wheels both provide {}", entry.path);
            }
            entries.push(entry);
        }
    }
    check_required(&entries)?;
    drop(wheels); // the wheels are no longer needed: free the disk before publishing

    entries.push(write_hashed(
        &staging.path,
        VERSION_FILE,
        LIBTORCH_VERSION.as_bytes(),
    )?);
    // The manifest is written last: its presence is what marks the cache complete.
    write_hashed(
        &staging.path,
        MANIFEST_NAME,
        manifest::render(&entries).as_bytes(),
    )?;

    match inspect(dir) {
        CacheState::Complete(_) => {
            eprintln!(
                "xtask: another xtask finished {} first; using it",
                dir.display()
            );
            return Ok(());
        }
        CacheState::Absent => {}
        CacheState::NoMarker => fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the incomplete {}", dir.display()))?,
        CacheState::Damaged(why) => bail!(damaged_message(dir, &why)),
    }
    if let Err(e) = fs::rename(&staging.path, dir) {
        // Another xtask may have published between the inspection and the rename.
        if matches!(inspect(dir), CacheState::Complete(_)) {
            return Ok(());
        }
        return Err(e).with_context(|| {
            format!(
                "cannot move {} to {}",
                staging.path.display(),
                dir.display()
            )
        });
    }
    staging.armed = false;
    eprintln!(
        "xtask: libtorch {LIBTORCH_VERSION} ready at {} ({} files)",
        dir.display(),
        entries.len() + 1
    );
    Ok(())
}

/// Removes staging/download directories left by xtask runs that were killed.
fn remove_stale_temps(parent: &Path) {
    let Ok(read) = fs::read_dir(parent) else {
        return;
    };
    for entry in read.flatten() {
        let name = entry.file_name();
        let Some(pid) = stale_temp_pid(&name.to_string_lossy()) else {
            continue;
        };
        // Ours has not been made yet, so one named with our pid is a leftover of a reused pid.
        if pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!(
                "xtask: removing {} left by an interrupted build",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in the name of an xtask staging or download directory.
fn stale_temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_prefix(CACHE_NAME)?;
    let pid = rest
        .strip_prefix(".tmp-")
        .or_else(|| rest.strip_prefix(".wheels-"))?;
    pid.parse().ok()
}

/// What to do when pip cannot provide the wheels; `fix` is the way to make pip work.
fn pip_help(fix: &str) -> String {
    format!(
        "xtask fetches the pinned wheels from PyPI with pip (never from pytorch.org).\n\
         Either {fix}, or set LIBTORCH to an existing libtorch {LIBTORCH_VERSION} directory (the one \
         holding lib/ and include/)."
    )
}

const PIP_INSTALL_FIX: &str = "make `python3 -m pip` work (e.g. apt-get install python3-pip)";

fn check_pip() -> Result<()> {
    let status = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!(
            "`python3 -m pip --version` failed ({s}): pip is missing.\n{}",
            pip_help(PIP_INSTALL_FIX)
        ),
        Err(e) => bail!("cannot run python3 ({e}).\n{}", pip_help(PIP_INSTALL_FIX)),
    }
}

fn download(pins: &[Pin], dest: &Path) -> Result<()> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", PIP_PYTHON_VERSION])
        .args(
            pip_platforms()
                .iter()
                .flat_map(|p| ["--platform", p.as_str()]),
        )
        .args(["--disable-pip-version-check", "--no-input"])
        .arg("-d")
        .arg(dest)
        .args(pins.iter().map(|p| p.requirement.as_str()))
        .stdin(Stdio::null());
    if !io::stderr().is_terminal() {
        cmd.args(["--progress-bar", "off"]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run python3.\n{}", pip_help(PIP_INSTALL_FIX)))?;
    if !status.success() {
        bail!(
            "`python3 -m pip download` of the pinned wheels failed ({status}); pip's output above \
             says why.\n{}",
            pip_help("make PyPI reachable for pip (its index settings apply) and rerun")
        );
    }
    Ok(())
}

/// `--platform` values for pip: every manylinux glibc from the newest down to 2.17.
///
/// pip (23.x at least) does not widen an explicit `--platform manylinux_2_28_x86_64` to the older
/// tags that a glibc 2.28 system also runs, so the NVIDIA wheels (manylinux_2_17 / _2_25) would be
/// refused; newer pips widen it themselves, which gives the same set.
fn pip_platforms() -> Vec<String> {
    (PIP_MIN_GLIBC_MINOR..=PIP_MAX_GLIBC_MINOR)
        .rev()
        .map(|minor| format!("manylinux_2_{minor}_x86_64"))
        .collect()
}

/// Checks a downloaded wheel against its pin and returns its path.
fn verify_wheel(pin: &Pin, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(&pin.file);
    if !path.is_file() {
        let mut got: Vec<String> = fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        bail!(
            "pip did not produce {} (it wrote: {}); the index serves other files than \
             xtask/libtorch-pins.txt pins. Nothing was installed.",
            pin.file,
            if got.is_empty() {
                "nothing".to_string()
            } else {
                got.join(", ")
            }
        );
    }
    let (_, found) =
        manifest::sha256_file(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if found != pin.sha256 {
        bail!(
            "{} has sha256 {found}, but xtask/libtorch-pins.txt pins {}; nothing was installed",
            pin.file,
            pin.sha256
        );
    }
    Ok(path)
}

/// Where a wheel member is kept in the cache (relative path), or `None` if it is dropped.
pub fn destination(member: &str) -> Option<String> {
    if let Some(rest) = member.strip_prefix(INCLUDE_PREFIX) {
        return (!rest.is_empty() && !rest.ends_with('/')).then(|| format!("include/{rest}"));
    }
    KEPT_LIBS
        .iter()
        .find(|(src, _)| *src == member)
        .map(|(_, name)| format!("lib/{name}"))
}

/// Extracts the kept members of one wheel under `root`, returning their manifest entries.
pub fn extract_wheel(wheel: &Path, root: &Path) -> Result<Vec<Entry>> {
    let shown = wheel.display();
    let file = File::open(wheel).with_context(|| format!("cannot open {shown}"))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{shown} is not a readable wheel (zip)"))?;
    let mut entries = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .with_context(|| format!("{shown}: cannot read member {i}"))?;
        if member.is_dir() {
            continue;
        }
        let name = member.name().to_string();
        let Some(dest) = destination(&name) else {
            continue;
        };
        if member.enclosed_name().is_none() || !manifest::is_plain_relative(&dest) {
            bail!("{shown}: member {name:?} would land outside the cache directory");
        }
        let out_path = root.join(&dest);
        if let Some(dir) = out_path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let out = File::create(&out_path)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        let mut w = HashingWriter::new(BufWriter::new(out));
        // Reading to the end makes the zip crate check the member's CRC-32.
        io::copy(&mut member, &mut w).with_context(|| format!("{shown}: cannot extract {name}"))?;
        let (buf, size, sha256) = w.finish();
        buf.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", out_path.display()))?;
        if dest.starts_with("lib/") {
            make_executable(&out_path)?;
        }
        entries.push(Entry {
            path: dest,
            size,
            sha256,
        });
    }
    Ok(entries)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

/// Fails unless every kept library and the C++ API header were extracted.
pub fn check_required(entries: &[Entry]) -> Result<()> {
    let have: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let missing: Vec<String> = KEPT_LIBS
        .iter()
        .map(|(_, name)| format!("lib/{name}"))
        .chain([REQUIRED_HEADER.to_string()])
        .filter(|p| !have.contains(p.as_str()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the pinned wheels lack {}; nothing was installed",
            missing.join(", ")
        );
    }
    Ok(())
}

fn write_hashed(root: &Path, name: &str, content: &[u8]) -> Result<Entry> {
    let path = root.join(name);
    let mut w = HashingWriter::new(
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    w.write_all(content)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let (file, size, sha256) = w.finish();
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Entry {
        path: name.to_string(),
        size,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn user_libtorch_wins_and_is_made_absolute() {
        let cwd = Path::new("/work/x");
        assert_eq!(
            choose(os("/opt/lt"), os("/xdg"), os("/home/u"), cwd),
            Ok(Choice::UserSet("/opt/lt".into()))
        );
        assert_eq!(
            choose(os("../lt"), None, None, cwd),
            Ok(Choice::UserSet("/work/x/../lt".into()))
        );
    }

    #[test]
    fn cache_dir_follows_xdg_then_home() {
        let cwd = Path::new("/w");
        let want = |base: &str| {
            Ok(Choice::Cache(
                Path::new(base).join("mcdrop").join(CACHE_NAME),
            ))
        };
        assert_eq!(choose(None, os("/xdg"), os("/h"), cwd), want("/xdg"));
        // Empty values count as unset, and a relative XDG_CACHE_HOME is ignored as the spec says.
        assert_eq!(choose(os(""), os(""), os("/h"), cwd), want("/h/.cache"));
        assert_eq!(choose(None, os("rel"), os("/h"), cwd), want("/h/.cache"));
        let err = choose(None, None, os(""), cwd).unwrap_err();
        assert!(err.contains("set LIBTORCH"), "{err}");
    }

    #[test]
    fn cache_name_carries_the_version() {
        assert_eq!(CACHE_NAME, format!("libtorch-{LIBTORCH_VERSION}-cpu"));
    }

    #[test]
    fn user_dir_without_lib_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_user_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("/lib is not a directory"), "{err}");
        assert!(err.contains("unset it"), "{err}");
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join(VERSION_FILE), "2.11.0\n").unwrap();
        let lt = check_user_dir(dir.path()).unwrap();
        assert_eq!(lt.version.as_deref(), Some("2.11.0"));
        assert_eq!(lt.source, Source::Env);
    }

    #[test]
    fn destinations_keep_only_headers_and_the_six_libraries() {
        assert_eq!(
            destination("torch/include/ATen/ATen.h").as_deref(),
            Some("include/ATen/ATen.h")
        );
        assert_eq!(
            destination("nvidia/cu13/lib/libcupti.so.13").as_deref(),
            Some("lib/libcupti.so.13")
        );
        assert_eq!(
            destination("torch/lib/libgomp.so.1").as_deref(),
            Some("lib/libgomp.so.1")
        );
        for dropped in [
            "torch/lib/libtorch_cuda.so",
            "torch/include/",
            "torch/__init__.py",
            "nvidia/cu13/lib/libcudart.so.13.0",
            "xtorch/include/a.h",
        ] {
            assert_eq!(destination(dropped), None, "{dropped}");
        }
    }

    #[test]
    fn pip_platforms_cover_the_tags_of_every_pinned_wheel() {
        let platforms = pip_platforms();
        assert_eq!(platforms.first().unwrap(), "manylinux_2_28_x86_64");
        assert_eq!(platforms.last().unwrap(), "manylinux_2_17_x86_64");
        assert_eq!(platforms.len(), 12);
        // Each pinned wheel's platform tag (after the last `-`) must be one pip is allowed to take,
        // or `pip download` refuses it (a compressed tag set `a.b` matches if any part does).
        for pin in pins::parse_pins(PINS_TXT).unwrap() {
            let tags = pin
                .file
                .trim_end_matches(".whl")
                .rsplit('-')
                .next()
                .unwrap();
            assert!(
                tags.split('.').any(|t| platforms.iter().any(|p| p == t)),
                "{}",
                pin.file
            );
        }
    }

    #[test]
    fn stale_temp_names_are_recognised() {
        assert_eq!(stale_temp_pid(&format!(".{CACHE_NAME}.tmp-42")), Some(42));
        assert_eq!(stale_temp_pid(&format!(".{CACHE_NAME}.wheels-7")), Some(7));
        assert_eq!(stale_temp_pid(CACHE_NAME), None);
        assert_eq!(stale_temp_pid(".libtorch-2.11.0.tmp-42"), None);
        assert_eq!(stale_temp_pid(&format!(".{CACHE_NAME}.tmp-x")), None);
    }

    /// Writes a small wheel-like zip with the given members.
    fn fake_wheel(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("fake.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let opts =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in members {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    #[test]
    fn extraction_keeps_mapped_members_with_their_hashes() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(
            src.path(),
            &[
                ("torch/include/torch/csrc/api/include/torch/torch.h", b"abc"),
                ("torch/lib/libc10.so", b"abd"),
                ("torch/lib/libtorch_cuda.so", b"dropped"),
                ("torch/version.py", b"dropped"),
            ],
        );
        let mut entries = extract_wheel(&wheel, out.path()).unwrap();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, [REQUIRED_HEADER, "lib/libc10.so"]);
        assert_eq!(
            fs::read(out.path().join("lib/libc10.so")).unwrap(),
            b"abd".to_vec()
        );
        assert_eq!(
            entries[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!out.path().join("lib/libtorch_cuda.so").exists());
        // A wheel with only some libraries is reported as lacking the rest.
        let err = check_required(&entries).unwrap_err().to_string();
        assert!(err.contains("lib/libtorch_cpu.so"), "{err}");
        assert!(!err.contains("lib/libc10.so"), "{err}");
        assert!(!err.contains("torch.h"), "{err}");
    }

    #[test]
    fn extraction_refuses_escaping_members() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(src.path(), &[("torch/include/../../evil.h", b"x")]);
        let err = extract_wheel(&wheel, out.path()).unwrap_err().to_string();
        assert!(err.contains("outside the cache"), "{err}");
        assert!(!out.path().join("evil.h").exists());
    }

    fn write_cache(dir: &Path, files: &[(&str, &[u8])]) {
        let mut entries = Vec::new();
        for (name, content) in files {
            if let Some(p) = Path::new(name).parent() {
                fs::create_dir_all(dir.join(p)).unwrap();
            }
            entries.push(write_hashed(dir, name, content).unwrap());
        }
        write_hashed(dir, MANIFEST_NAME, manifest::render(&entries).as_bytes()).unwrap();
    }

    #[test]
    fn inspect_tells_the_cache_states_apart() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join(CACHE_NAME);
        assert_eq!(inspect(&dir), CacheState::Absent);
        fs::create_dir(&dir).unwrap();
        fs::create_dir(dir.join("lib")).unwrap();
        assert_eq!(inspect(&dir), CacheState::NoMarker);
        write_cache(
            &dir,
            &[("lib/libc10.so", b"abc"), (VERSION_FILE, b"2.11.0")],
        );
        assert!(matches!(inspect(&dir), CacheState::Complete(ref e) if e.len() == 2));

        fs::write(dir.join("lib/libc10.so"), b"ab").unwrap();
        let CacheState::Damaged(why) = inspect(&dir) else {
            panic!("truncated file not detected");
        };
        assert_eq!(why, "lib/libc10.so is 2 bytes, the manifest says 3");
        let msg = damaged_message(&dir, &why);
        assert!(
            msg.contains("rm -rf") && msg.contains("cargo xtask libtorch"),
            "{msg}"
        );

        fs::write(dir.join(MANIFEST_NAME), "garbage\n").unwrap();
        assert!(matches!(inspect(&dir), CacheState::Damaged(ref w) if w.contains("malformed")));
    }

    #[test]
    fn full_verification_of_a_user_dir_needs_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_full(dir.path(), Source::Env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no mcdrop-manifest.txt"), "{err}");
        write_cache(dir.path(), &[("lib/libc10.so", b"abc")]);
        verify_full(dir.path(), Source::Env).unwrap();
        fs::write(dir.path().join("lib/libc10.so"), b"abd").unwrap();
        let err = verify_full(dir.path(), Source::Env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("has sha256"), "{err}");
    }
}
