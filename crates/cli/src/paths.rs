//! Guards on the files a command writes: never one of its own inputs, and
//! never a checkpoint that another training run is writing.

use anyhow::{Result, bail};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The file `path` names once symbolic links are followed, if it exists.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether `a` and `b` name the same file (the same path, or one existing
/// file by two names).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (identity(a).is_some() && identity(a) == identity(b))
}

/// Refuses an output (`flag OUT`) that is one of the command's inputs:
/// writing it would destroy what the command reads (a model exported over
/// itself, predictions written over the data).
pub(crate) fn refuse_overwriting_inputs(flag: &str, out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let Some(out_id) = identity(out) else { return Ok(()) };
    if let Some(input) = inputs.iter().find(|i| identity(i) == Some(out_id)) {
        bail!(
            "{flag} {} is the input {}; writing it would destroy it: choose another file",
            out.display(),
            input.display()
        );
    }
    Ok(())
}

/// The files a `--data` argument reads: a CSV file, or the IDX files found
/// in a directory.
pub(crate) fn data_files(data: &Path) -> Vec<PathBuf> {
    if data.is_dir() {
        backprop_data::FILES
            .iter()
            .filter_map(|name| backprop_data::find_file(data, name))
            .collect()
    } else {
        vec![data.to_path_buf()]
    }
}

/// An advisory lock on a checkpoint path, held for a whole training run so
/// that a second run saving to the same file is refused instead of silently
/// replacing the first run's results. The lock is `.NAME.lock` beside the
/// checkpoint (left in place: removing it would let a waiting run and a new
/// one lock different files); it is released when the run ends, however it
/// ends.
pub(crate) struct SaveLock {
    _file: File,
}

impl SaveLock {
    /// Takes the lock for `checkpoint`.
    pub(crate) fn take(checkpoint: &Path) -> Result<SaveLock> {
        use std::os::unix::io::AsRawFd;
        // The file the saves replace: two runs saving through a link and
        // through its target take the same lock.
        let resolved = backprop_nn::atomic::resolve_links(checkpoint)
            .map_err(|e| anyhow::anyhow!("{}: {e}", checkpoint.display()))?;
        let checkpoint = resolved.as_path();
        let dir = match checkpoint.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = checkpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(".{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot create the lock file {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            bail!(
                "another training run is saving to {} (it holds {}); wait for it, or save elsewhere",
                checkpoint.display(),
                path.display()
            );
        }
        Ok(SaveLock { _file: file })
    }
}
