//! `--watch`: poll the checkpoint's size, modification time and (on Unix)
//! inode, and when they change, load the new file fully, check it, and only
//! then swap it in. `backprop train --save` replaces a checkpoint by an
//! atomic rename, and `Checkpoint::load` refuses anything that is not a whole,
//! valid checkpoint (CRC included), so a half-written file is never served:
//! a failed load keeps the old model, says why on stderr, and is retried
//! when the file changes again.

use super::model::Served;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the file is looked at.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What tells one version of the file from the next.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        inode,
    })
}

/// Starts the watcher thread.
pub(crate) fn spawn(path: PathBuf, served: Arc<RwLock<Arc<Served>>>, interval: Duration) -> Result<()> {
    let mut seen = fingerprint(&path);
    std::thread::Builder::new()
        .name("serve-watch".to_owned())
        .spawn(move || {
            let mut generation = 1;
            loop {
                std::thread::sleep(interval);
                let now = fingerprint(&path);
                if now == seen || now.is_none() {
                    // Unchanged, or gone for a moment (between an unlink and
                    // a rename): keep serving what is loaded.
                    continue;
                }
                seen = now;
                match Served::load(&path, generation + 1) {
                    Ok(next) => {
                        generation += 1;
                        eprintln!(
                            "reloaded {} (layers {}, epoch {}, generation {generation})",
                            path.display(),
                            next.summary.architecture,
                            next.summary.epoch
                        );
                        let next = Arc::new(next);
                        match served.write() {
                            Ok(mut guard) => *guard = next,
                            Err(poisoned) => *poisoned.into_inner() = next,
                        }
                    }
                    Err(err) => eprintln!("warning: keeping the model loaded before: {err:#}"),
                }
            }
        })?;
    Ok(())
}
