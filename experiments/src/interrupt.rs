//! Ctrl-C and `kill`: on SIGINT, SIGTERM or SIGHUP the process removes what it was writing (its
//! temporary result folder, a half-written cache file), says so, and exits with 128 + the
//! signal's number (130, 143, 129). A result folder being moved into place finishes first.
//!
//! Paths are registered while they are being written ([`remove_on_interrupt`]); a `kill -9`
//! leaves them behind, and the next run over the same results folder removes them
//! (`output::remove_stale`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Paths to remove on an interrupt, by registration id.
static PENDING: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Held while a result folder is being swapped into place: the handler waits for it.
static CRITICAL: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the clean-up: the data is a plain list.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread that handles SIGINT, SIGTERM and SIGHUP for the rest of the process.
pub fn install() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("mcd-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                clean_up_and_exit(signal);
            }
        })?;
    Ok(())
}

fn clean_up_and_exit(signal: i32) -> ! {
    let _swap = lock(&CRITICAL);
    let pending: Vec<PathBuf> = lock(&PENDING).drain(..).map(|(_, p)| p).collect();
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    let mut removed = Vec::new();
    for path in &pending {
        if remove(path) {
            removed.push(path.display().to_string());
        }
    }
    if removed.is_empty() {
        eprintln!("\ninterrupted ({name}); nothing was half-written");
    } else {
        eprintln!(
            "\ninterrupted ({name}); removed what was being written: {} (earlier results are untouched)",
            removed.join(", ")
        );
    }
    // _exit: other threads may be inside libtorch, whose static destructors must not run now.
    signal_hook::low_level::exit(128 + signal)
}

/// Removes a file or a folder; workers may still be creating files in it, so a folder is tried
/// a few times. True when something was there and is gone.
fn remove(path: &Path) -> bool {
    for _ in 0..5 {
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match gone {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

/// While the returned guard lives, an interrupt removes `path`.
#[must_use = "the path is unregistered when the guard is dropped"]
pub fn remove_on_interrupt(path: &Path) -> Registered {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&PENDING).push((id, path.to_path_buf()));
    Registered { id }
}

/// A path registered with [`remove_on_interrupt`]; dropping it unregisters the path.
#[derive(Debug)]
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&PENDING).retain(|(id, _)| *id != self.id);
    }
}

/// Holds off an interrupt's clean-up while the result folders are swapped.
pub fn swapping() -> MutexGuard<'static, ()> {
    lock(&CRITICAL)
}
