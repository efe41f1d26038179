//! Reading input files safely: only regular files, no larger than [`MAX_INPUT_BYTES`],
//! checked before a byte is read (a FIFO would block, `/dev/urandom` never ends); and
//! where a path written in a file may point ([`check_reference`]): inside that file's own
//! folder tree, the shipped `scenarios/` and `topologies/`, or a folder the user allowed
//! (`--allow-path DIR`, [`allow_path`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Largest input file read (scenario, topology, sweep, calibration table, compare.json).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Folders the user allowed with `--allow-path` (canonical paths).
static ALLOWED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Allows paths written in scenarios and sweeps to point inside `dir` (`--allow-path`).
pub fn allow_path(dir: &Path) -> io::Result<()> {
    let canonical = dir.canonicalize()?;
    let mut list = ALLOWED.lock().unwrap_or_else(|p| p.into_inner());
    if !list.contains(&canonical) {
        list.push(canonical);
    }
    Ok(())
}

/// Reads a text input file after checking it is a regular file of at most
/// [`MAX_INPUT_BYTES`].
pub fn read_text(path: &Path) -> io::Result<String> {
    check_file(path)?;
    std::fs::read_to_string(path)
}

/// Reads an input file's bytes with the same checks as [`read_text`].
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    check_file(path)?;
    std::fs::read(path)
}

fn check_file(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}; input files must be regular files"),
        ));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} bytes, above the {} MiB limit on input files",
                meta.len(),
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(())
}

/// The shipped folders every scenario may reference (when this build's source tree is
/// present).
fn shipped_roots() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["scenarios", "topologies"]
        .iter()
        .filter_map(|d| root.join(d).canonicalize().ok())
        .collect()
}

/// Checks that `target` (a path written in `written_in`, already joined to that file's
/// folder) lies inside `written_in`'s folder tree, a shipped folder, or an allowed one.
/// A target that does not exist passes (reading it then fails with its own message).
/// Returns the message to show when it does not.
pub fn check_reference(target: &Path, written_in: Option<&Path>) -> Result<(), String> {
    let Ok(canonical) = target.canonicalize() else {
        return Ok(());
    };
    let mut roots = shipped_roots();
    roots.extend(
        ALLOWED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned(),
    );
    // Paths given on the command line (`--set`) resolve inside the working directory.
    let own = written_in
        .and_then(|f| f.canonicalize().ok())
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .or_else(|| std::env::current_dir().ok());
    if let Some(dir) = &own {
        roots.push(dir.clone());
    }
    if roots.iter().any(|r| canonical.starts_with(r)) {
        return Ok(());
    }
    let own = own.map_or_else(String::new, |d| d.display().to_string());
    Err(format!(
        "`{}` is outside the folder that names it ({own}) and the shipped \
         scenarios/ and topologies/; allowed: a path inside those folders, or add \
         `--allow-path DIR` to allow a folder",
        crate::units::shorten(&target.display().to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_large_files_are_refused_before_reading() {
        let e = read_text(Path::new("/dev/urandom")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_text(Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn references_stay_in_their_folder_tree() {
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/llama3-70b-1k.yaml");
        let topo = scenario
            .parent()
            .unwrap()
            .join("../topologies/dgx-h100-ndr.yaml");
        assert!(check_reference(&topo, Some(&scenario)).is_ok());
        let e = check_reference(Path::new("/etc/passwd"), Some(&scenario)).unwrap_err();
        assert!(e.contains("--allow-path"), "{e}");
        assert!(check_reference(Path::new("/etc/passwd"), None).is_err());
    }
}
