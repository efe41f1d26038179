//! Whole-or-nothing output folders for every command.
//!
//! A [`Staging`] folder lives *inside* the output folder (`<out>/.clustersim-tmp-<pid>/`,
//! so on the same file system); a command renders every file there and [`Staging::commit`]
//! renames each into place only when all of them succeeded (a rename replaces its target
//! atomically). Dropping a `Staging` without committing removes it, so a failure leaves the
//! previous outputs untouched.
//!
//! Interruptions: every live staging folder is listed in a process-wide registry;
//! [`remove_all_registered`] (called by the CLI's SIGINT/SIGTERM handler, on its own
//! thread) removes them. It holds the registry lock, which [`Staging::commit`] also holds
//! while renaming, so an interruption lands either before a commit (nothing renamed) or
//! after it (everything renamed). A process killed outright (SIGKILL, power loss) leaves
//! its folder behind; the next [`Staging::new`] in that output folder removes every
//! `.clustersim-tmp-<pid>` whose process no longer runs (checked through `/proc`; where
//! there is no `/proc`, folders older than a day count as stale).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::ReportError;

/// Name prefix of staging folders.
pub const PREFIX: &str = ".clustersim-tmp-";

/// Staging folders of this process not yet committed or removed.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves the list itself intact.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every staging folder of this process (for a signal handler; best effort) and
/// returns the registry still locked: hold it until the process exits, so that no other
/// thread commits or stages anything meanwhile.
pub fn remove_all_registered() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut list = live();
    for dir in list.drain(..) {
        let _ = fs::remove_dir_all(&dir);
    }
    list
}

/// A staging folder inside an output folder.
#[derive(Debug)]
pub struct Staging {
    out_dir: PathBuf,
    dir: PathBuf,
    done: bool,
}

impl Staging {
    /// Creates `out_dir` if needed, sweeps stale staging folders of dead processes from it,
    /// and creates this process's staging folder there.
    pub fn new(out_dir: &Path) -> Result<Self, ReportError> {
        fs::create_dir_all(out_dir).map_err(|e| ReportError::io(out_dir, e))?;
        sweep_stale(out_dir);
        let dir = out_dir.join(format!("{PREFIX}{}", std::process::id()));
        let mut list = live();
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| ReportError::io(&dir, e))?;
        }
        fs::create_dir(&dir).map_err(|e| ReportError::io(&dir, e))?;
        list.push(dir.clone());
        Ok(Staging {
            out_dir: out_dir.to_path_buf(),
            dir,
            done: false,
        })
    }

    /// The folder to render into.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The final output folder.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Renames the staged files `names` into the output folder, then removes the files
    /// in `owned` (names this command may write) that were not produced this time, so the
    /// folder never mixes two runs. Returns the final paths.
    pub fn commit(
        mut self,
        names: &[String],
        owned: &[String],
    ) -> Result<Vec<PathBuf>, ReportError> {
        let mut list = live();
        if !list.contains(&self.dir) {
            return Err(ReportError::io(
                &self.dir,
                std::io::Error::other("staging folder removed (interrupted)"),
            ));
        }
        let mut written = Vec::with_capacity(names.len());
        for name in names {
            let target = self.out_dir.join(name);
            fs::rename(self.dir.join(name), &target).map_err(|e| ReportError::io(&target, e))?;
            written.push(target);
        }
        for stale in owned.iter().filter(|n| !names.contains(n)) {
            let path = self.out_dir.join(stale);
            if path.is_file() {
                fs::remove_file(&path).map_err(|e| ReportError::io(&path, e))?;
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        list.retain(|d| d != &self.dir);
        self.done = true;
        Ok(written)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let mut list = live();
            let _ = fs::remove_dir_all(&self.dir);
            list.retain(|d| d != &self.dir);
        }
    }
}

/// The pid a staging folder name carries.
fn staging_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

/// Whether process `pid` may still be running.
fn alive(pid: u32, modified: Option<SystemTime>) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if proc_root.join("self").exists() {
        return proc_root.join(pid.to_string()).exists();
    }
    let day = Duration::from_secs(86_400);
    match modified.and_then(|m| m.elapsed().ok()) {
        Some(age) => age < day,
        None => true,
    }
}

/// Removes staging folders in `out_dir` left by processes that no longer run (best
/// effort: an unreadable folder is left alone). Returns how many it removed.
pub fn sweep_stale(out_dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(out_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = staging_pid(&name.to_string_lossy()) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_dir() || alive(pid, meta.modified().ok()) {
            continue;
        }
        if fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("clustersim-staging-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commit_moves_files_and_drop_cleans_up() {
        let out = tmp("commit");
        let s = Staging::new(&out).unwrap();
        fs::write(s.path().join("a.csv"), "x").unwrap();
        let staged = s.path().to_path_buf();
        let files = s.commit(&["a.csv".into()], &["a.csv".into()]).unwrap();
        assert_eq!(files, vec![out.join("a.csv")]);
        assert!(!staged.exists());
        let s = Staging::new(&out).unwrap();
        fs::write(s.path().join("b.csv"), "partial").unwrap();
        let staged = s.path().to_path_buf();
        drop(s);
        assert!(!staged.exists() && !out.join("b.csv").exists());
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn stale_folders_of_dead_processes_are_swept() {
        let out = tmp("stale");
        fs::create_dir_all(&out).unwrap();
        // pid_max on Linux is at most 2^22: this pid cannot run.
        let dead = out.join(format!("{PREFIX}{}", 4_294_967_290u32));
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("timeline.json"), "[").unwrap();
        let other = out.join(".clustersim-tmp-notapid");
        fs::create_dir(&other).unwrap();
        let s = Staging::new(&out).unwrap();
        assert!(!dead.exists());
        assert!(other.exists(), "only folders named with a pid are ours");
        drop(s);
        fs::remove_dir_all(&out).unwrap();
    }
}
