//! Result folders: everything is written into a temporary sibling folder and only moved to
//! `results/<name>/` when the run succeeded, so an existing result is never half-overwritten.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// A result folder being written.
#[derive(Debug)]
pub struct OutputDir {
    tmp: PathBuf,
    final_dir: PathBuf,
    log: Mutex<fs::File>,
}

impl OutputDir {
    /// Starts `<root>/<name>/` by creating `<root>/.tmp-<name>-<pid>/`.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating the results folder {}", root.display()))?;
        let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("clearing {}", tmp.display()))?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let log = fs::File::create(tmp.join("run.log"))
            .with_context(|| format!("creating {}/run.log", tmp.display()))?;
        Ok(Self {
            tmp,
            final_dir: root.join(name),
            log: Mutex::new(log),
        })
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

    /// Writes a line to run.log and to stderr.
    pub fn log(&self, line: &str) {
        eprintln!("{line}");
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{line}");
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
        } = self;
        drop(log);
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
            fs::rename(&tmp, &final_dir)
                .with_context(|| format!("moving results into {}", final_dir.display()))?;
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
