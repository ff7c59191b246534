//! Writing a file so that nothing the user had is lost: the one helper that
//! checkpoints, exports and downloads share.
//!
//! The bytes go to a temporary file in the same directory, are flushed and
//! synced, optionally proven (a checkpoint is read back and decoded), and
//! only then renamed over the destination, and the directory is synced. If
//! anything fails, the destination keeps its previous content and the
//! temporary file is removed.
//!
//! The destination is what the user meant, not just a path:
//! - a symbolic link is followed, and its target replaced (the link stays);
//! - an existing file that is not a regular file (a device, a FIFO, a
//!   directory) is never replaced: it is refused, or, where the caller allows
//!   it (`/dev/stdout` for an export), written directly;
//! - an existing read-only file is refused;
//! - the replacement keeps the permission bits of the file it replaces.
//!
//! Temporary files are named `.NAME.tmp-PID-N`; those left by processes that
//! no longer exist (a crash or `SIGKILL` mid-write), once a minute old, are
//! removed on the next write to the same destination.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What to do when the destination exists and is not a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// Refuse with an error (checkpoints: a device is never a model).
    Refuse,
    /// Write to it directly, without a temporary file (exports and
    /// prediction lists sent to `/dev/stdout` or a pipe).
    WriteDirectly,
}

/// A check of the file written, by its path, before it replaces anything.
pub type Proof<'a> = dyn Fn(&Path) -> io::Result<()> + 'a;

/// Writes `path` atomically (see the module docs): `write` fills the
/// temporary file, then `prove` (if given) checks what was written, by path,
/// before it replaces anything.
///
/// # Errors
/// The I/O error, with the path it concerns, when the destination is
/// refused or any step fails; `path` is then unchanged.
pub fn write_atomic(
    path: &Path,
    special: Special,
    write: impl FnOnce(&mut File) -> io::Result<()>,
    prove: Option<&Proof<'_>>,
) -> Result<(), (PathBuf, io::Error)> {
    let target = resolve_links(path).map_err(|e| (path.to_path_buf(), e))?;
    match fs::metadata(&target) {
        Ok(meta) if !meta.is_file() => {
            if special == Special::WriteDirectly && !meta.is_dir() {
                let mut file = File::options()
                    .write(true)
                    .open(&target)
                    .map_err(|e| (target.clone(), e))?;
                return write(&mut file).and_then(|()| file.flush()).map_err(|e| (target, e));
            }
            return Err((
                target,
                refuse("exists and is not a regular file; refusing to replace it"),
            ));
        }
        Ok(meta) if meta.permissions().readonly() => {
            return Err((target, refuse("is read-only; refusing to replace it")));
        }
        _ => {}
    }
    let (dir, name) = split(&target).map_err(|e| (target.clone(), e))?;
    remove_stale_temps(&dir, name);
    let (tmp_path, mut file) = create_temp(&dir, name).map_err(|e| (dir.clone(), e))?;
    let result = (|| {
        // The mode of the file replaced, before any byte is written: a 0600
        // checkpoint is never readable by others, even for a moment.
        if let Ok(meta) = fs::metadata(&target) {
            file.set_permissions(meta.permissions())?;
        }
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        if let Some(prove) = prove {
            prove(&tmp_path)?;
        }
        fs::rename(&tmp_path, &target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err((target, e));
    }
    #[cfg(unix)]
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| (dir, e))?;
    Ok(())
}

fn refuse(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

/// Follows symbolic links from `path` to the file they name (which may not
/// exist yet), at most 40 deep: the file [`write_atomic`] replaces.
///
/// # Errors
/// A link that cannot be read, or more than 40 levels of links.
pub fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// The directory and file name of `path` (`.` for a bare name).
fn split(path: &Path) -> io::Result<(PathBuf, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path must name a file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// The prefix of temporary files for `name`: `.NAME.tmp-`.
fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    prefix
}

/// Creates a new temporary file `.NAME.tmp-PID-N` in `dir`.
fn create_temp(dir: &Path, name: &OsStr) -> io::Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = temp_prefix(name);
        tmp_name.push(format!("{}-{n}", std::process::id()));
        let tmp_path = dir.join(tmp_name);
        match File::options().write(true).create_new(true).open(&tmp_path) {
            Ok(file) => return Ok((tmp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// How old a temporary file of a dead process must be before it is removed.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes `.NAME.tmp-PID-N` files in `dir` whose process no longer exists
/// and that are older than [`STALE_AFTER`].
/// Best effort: errors are ignored.
fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let prefix = temp_prefix(name);
    let Some(prefix) = prefix.to_str() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // The process must be gone and the file a minute old: a writer on
        // another machine sharing the directory (whose pid means nothing
        // here) is never cut off mid-write.
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if pid != std::process::id() && old && !process_exists(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (on Linux, by `/proc`; elsewhere
/// assumed to, so nothing is removed).
fn process_exists(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bytes(bytes: &'static [u8]) -> impl FnOnce(&mut File) -> io::Result<()> {
        move |f| f.write_all(bytes)
    }

    #[test]
    fn replaces_through_symlinks_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.ckpt");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.ckpt");
        std::os::unix::fs::symlink("real.ckpt", &link).unwrap();
        write_atomic(&link, Special::Refuse, write_bytes(b"new"), None).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn refuses_special_and_read_only_files() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let (path, err) = write_atomic(Path::new("/dev/null"), Special::Refuse, write_bytes(b"x"), None).unwrap_err();
        assert_eq!(path, Path::new("/dev/null"));
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        write_atomic(Path::new("/dev/null"), Special::WriteDirectly, write_bytes(b"x"), None).unwrap();
        let err = write_atomic(dir.path(), Special::WriteDirectly, write_bytes(b"x"), None).unwrap_err();
        assert!(err.1.to_string().contains("not a regular file"));

        let ro = dir.path().join("ro.ckpt");
        fs::write(&ro, b"keep").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
        let err = write_atomic(&ro, Special::Refuse, write_bytes(b"x"), None).unwrap_err();
        assert!(err.1.to_string().contains("read-only"));
        assert_eq!(fs::read(&ro).unwrap(), b"keep");
    }

    #[test]
    fn a_failed_proof_keeps_the_old_file_and_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ckpt");
        fs::write(&path, b"old").unwrap();
        // A temporary file of a process that cannot exist (pid 0 is never a user process).
        let stale = dir.path().join(".m.ckpt.tmp-4294967295-0");
        fs::write(&stale, b"junk").unwrap();
        let young = dir.path().join(".m.ckpt.tmp-4294967295-1");
        fs::write(&young, b"maybe a writer on another host").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let prove: &dyn Fn(&Path) -> io::Result<()> = &|p| {
            assert_eq!(fs::read(p)?, b"new");
            Err(io::Error::other("does not decode"))
        };
        let err = write_atomic(&path, Special::Refuse, write_bytes(b"new"), Some(prove)).unwrap_err();
        assert!(err.1.to_string().contains("does not decode"));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!stale.exists(), "the dead process's old temporary file is removed");
        assert!(young.exists(), "a recent one is left alone");
        fs::remove_file(&young).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("m.ckpt")]);
    }
}
