//! Result folders: everything is written into a temporary sibling folder and only moved to
//! `results/<name>/` when the run succeeded, so an existing result is never half-overwritten.
//! The temporary folder is locked (flock) while its run lives; what a killed run left behind is
//! removed by the next run over the same results folder ([`remove_stale`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::interrupt::Registered;

/// A result folder being written.
#[derive(Debug)]
pub struct OutputDir {
    tmp: PathBuf,
    final_dir: PathBuf,
    log: Mutex<Log>,
    /// Holds the flock on `tmp` that tells other runs this folder is alive.
    _lock: fs::File,
    /// Removes `tmp` on Ctrl-C or `kill`.
    _interrupt: Registered,
}

#[derive(Debug)]
struct Log {
    file: fs::File,
    /// The first failed write: the folder is then not committed (its log would be cut short).
    failed: Option<std::io::Error>,
}

impl OutputDir {
    /// Starts `<root>/<name>/` by creating `<root>/.tmp-<name>-<pid>/`, after removing what
    /// killed runs left in `root` (logged in the new run.log).
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating the results folder {}", root.display()))?;
        let cleaned = remove_stale(root);
        let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
        }
        let interrupt = crate::interrupt::remove_on_interrupt(&tmp);
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let lock = fs::File::open(&tmp)
            .and_then(|f| f.lock().map(|()| f))
            .with_context(|| format!("locking {}", tmp.display()))?;
        let log = fs::File::create(tmp.join("run.log"))
            .with_context(|| format!("creating {}/run.log", tmp.display()))?;
        let out = Self {
            tmp,
            final_dir: root.join(name),
            log: Mutex::new(Log {
                file: log,
                failed: None,
            }),
            _lock: lock,
            _interrupt: interrupt,
        };
        for line in cleaned {
            out.log(&line);
        }
        Ok(out)
    }

    /// Path of a file inside the (temporary) folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.join(rel)
    }

    /// Creates and returns a subfolder.
    pub fn subdir(&self, rel: &str) -> Result<PathBuf> {
        let p = self.tmp.join(rel);
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    /// Where the results will be once committed.
    pub fn final_dir(&self) -> &Path {
        &self.final_dir
    }

    /// Writes a line to run.log and to stderr. A failed write (a full disk) is kept and makes
    /// [`OutputDir::commit`] fail.
    pub fn log(&self, line: &str) {
        eprintln!("{line}");
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.failed.is_none() {
            if let Err(e) = writeln!(log.file, "{line}") {
                log.failed = Some(e);
            }
        }
    }

    /// Writes a text file into the folder.
    pub fn write(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let p = self.path(rel);
        fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// Moves the finished folder into place, replacing a previous result only now.
    pub fn commit(self) -> Result<PathBuf> {
        let OutputDir {
            tmp,
            final_dir,
            log,
            _lock,
            _interrupt,
        } = self;
        let Log { file, failed } = log.into_inner().unwrap_or_else(|e| e.into_inner());
        let synced = match failed {
            Some(e) => Err(e),
            None => file.sync_all(),
        };
        if let Err(e) = synced {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.join("run.log").display()));
        }
        // An interrupt now waits until both renames are done.
        let _swap = crate::interrupt::swapping();
        if final_dir.exists() {
            let old = final_dir.with_file_name(format!(
                ".old-{}-{}",
                final_dir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            fs::rename(&final_dir, &old)
                .with_context(|| format!("moving the previous {} aside", final_dir.display()))?;
            if let Err(e) = fs::rename(&tmp, &final_dir) {
                // Put the previous result back: nothing is lost.
                let _ = fs::rename(&old, &final_dir);
                return Err(e)
                    .with_context(|| format!("moving results into {}", final_dir.display()));
            }
            fs::remove_dir_all(&old)
                .with_context(|| format!("removing the previous result {}", old.display()))?;
        } else {
            fs::rename(&tmp, &final_dir)
                .with_context(|| format!("moving results into {}", final_dir.display()))?;
        }
        Ok(final_dir)
    }

    /// Removes the temporary folder (on failure); the previous result stays untouched.
    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// Removes what killed runs left in a results folder, and says what it did:
/// - `.tmp-<name>-<pid>/` whose lock nobody holds and whose process is gone;
/// - `.old-<name>-<pid>/` of a process that no longer exists: a run killed while swapping
///   folders; it is moved back to `<name>/` where that is missing, else removed;
/// - `*.tmp-<pid>` files under `.cache/` of processes that no longer exist.
pub fn remove_stale(root: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return done;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") && path.is_dir() {
            // Unlocked and its process gone: a live run's folder is unlocked for a moment
            // between its creation and its lock, and a run in another pid namespace holds
            // the lock.
            let owner_alive = name
                .rsplit_once('-')
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(process_alive);
            let unlocked = fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
            if unlocked && !owner_alive && fs::remove_dir_all(&path).is_ok() {
                done.push(format!(
                    "removed {}, left by a run that was killed",
                    path.display()
                ));
            }
        } else if let Some(rest) = name.strip_prefix(".old-") {
            let Some((result, pid)) = rest.rsplit_once('-') else {
                continue;
            };
            if !pid.parse::<u32>().is_ok_and(|p| !process_alive(p)) {
                continue;
            }
            let final_dir = root.join(result);
            if !final_dir.exists() && fs::rename(&path, &final_dir).is_ok() {
                done.push(format!(
                    "restored {} from {} (a run was killed while replacing it)",
                    final_dir.display(),
                    path.display()
                ));
            } else if fs::remove_dir_all(&path).is_ok() {
                done.push(format!(
                    "removed {}, the previous result a killed run had replaced",
                    path.display()
                ));
            }
        }
    }
    remove_stale_files(&root.join(".cache"), &mut done);
    done
}

/// `*.tmp-<pid>` files of dead processes, in `dir` and below.
fn remove_stale_files(dir: &Path, done: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_stale_files(&path, done);
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let dead = name
            .rsplit_once(".tmp-")
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !process_alive(pid));
        if dead && fs::remove_file(&path).is_ok() {
            done.push(format!(
                "removed {}, left by a run that was killed",
                path.display()
            ));
        }
    }
}

/// Whether a process with this id exists (Linux: `/proc/<pid>`). A recycled id only delays
/// the clean-up; it never removes a live run's files.
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
