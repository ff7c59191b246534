//! Why a source failed ([`Failure`], [`SourceFailure`]), and the last step
//! of every fetch: check the hash of a finished temporary file and only then
//! rename it into place.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::spec::{FileSpec, Source};
use crate::error::{DataError, Result};
use crate::hash::content_sha256;
use crate::mnist::candidates;

/// Why one source did not yield a file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The local directory does not exist or is not a directory.
    MissingDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// The local directory has no file under any accepted spelling.
    MissingFile {
        /// The directory.
        dir: PathBuf,
        /// Every path looked for.
        tried: Vec<PathBuf>,
    },
    /// The server answered with an HTTP error status.
    Http {
        /// The URL requested.
        url: String,
        /// The status code, such as 404.
        status: u16,
    },
    /// The request failed before or while the body arrived: no connection,
    /// a timeout, or a connection closed half-way.
    Transport {
        /// The URL requested.
        url: String,
        /// What the HTTP client reported.
        message: String,
    },
    /// A local file could not be read, or the temporary file written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        message: String,
    },
    /// The data arrived but starts like gzip and does not decompress.
    CorruptGzip {
        /// Where the data came from (a URL or a path).
        origin: String,
        /// What the decoder reported.
        message: String,
    },
    /// The data arrived but its decompressed content has another SHA-256.
    Checksum {
        /// Where the data came from (a URL or a path).
        origin: String,
        /// The SHA-256 the spec calls for.
        expected: String,
        /// The SHA-256 of what arrived.
        found: String,
        /// Whether what arrived starts like an HTML page (an error page
        /// served with status 200).
        html: bool,
    },
}

impl Failure {
    /// Whether trying the same source again may help: timeouts, dropped
    /// connections and server errors, not missing files or wrong data.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Transport { .. } => true,
            Failure::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MissingDirectory { dir } => write!(f, "{} is not a directory", dir.display()),
            Failure::MissingFile { dir, tried } => {
                let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}: no such file (tried {})", dir.display(), tried.join(", "))
            }
            Failure::Http { url, status } => write!(f, "{url}: HTTP status {status}"),
            Failure::Transport { url, message } => write!(f, "{url}: {message}"),
            Failure::Io { path, message } => write!(f, "{}: {message}", path.display()),
            Failure::CorruptGzip { origin, message } => write!(f, "{origin}: corrupt gzip data: {message}"),
            Failure::Checksum {
                origin,
                expected,
                found,
                html,
            } => {
                write!(
                    f,
                    "{origin}: wrong content, SHA-256 {found} where {expected} was expected"
                )?;
                if *html {
                    f.write_str(" (the server sent an HTML page)")?;
                }
                Ok(())
            }
        }
    }
}

/// A source that was tried for a file, and why it failed; displayed as the
/// failure, which names the directory, path or URL concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFailure {
    /// The source.
    pub source: Source,
    /// How many times it was tried.
    pub attempts: u32,
    /// Why its last attempt failed.
    pub failure: Failure,
}

impl fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every failure names the directory, file or URL it concerns, which
        // lies within the source.
        write!(f, "{}", self.failure)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// Whether the file at `path` starts with the gzip magic bytes.
fn starts_like_gzip(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 2];
    let mut file = File::open(path)?;
    let mut n = 0;
    while n < 2 {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == 2 && head == [0x1f, 0x8b])
}

/// Whether the file at `path` starts (after blanks) like HTML or XML.
fn starts_like_html(path: &Path) -> bool {
    let mut head = Vec::with_capacity(64);
    let read = File::open(path).and_then(|f| f.take(64).read_to_end(&mut head));
    read.is_ok() && {
        // IDX data starts with a zero byte and gzip with 0x1f: `<` is markup.
        String::from_utf8_lossy(&head).trim_start().starts_with('<')
    }
}

/// Checks the decompressed SHA-256 of the finished download `tmp`, which
/// came from `origin`; when it matches, renames it into `dest_dir` as
/// `<base>.gz` or `<base>` (gzip or raw content) and removes any other
/// spelling of the same file there that does not verify, so that the loader
/// finds this one. Otherwise `tmp` is deleted.
///
/// The outer error is about the destination (fatal); the inner one about
/// the data (the source failed).
pub(crate) fn install(
    tmp: NamedTempFile,
    origin: &str,
    dest_dir: &Path,
    file: &FileSpec<'_>,
) -> Result<std::result::Result<PathBuf, Failure>> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    let found = match content_sha256(tmp.path()) {
        Ok(found) => found,
        Err(DataError::CorruptGzip { source, .. }) => {
            return Ok(Err(Failure::CorruptGzip {
                origin: origin.to_owned(),
                message: source.to_string(),
            }));
        }
        Err(other) => return Err(other),
    };
    if found != file.sha256 {
        return Ok(Err(Failure::Checksum {
            origin: origin.to_owned(),
            expected: file.sha256.to_owned(),
            found,
            html: starts_like_html(tmp.path()),
        }));
    }
    let gzip = starts_like_gzip(tmp.path()).map_err(io_err(tmp.path()))?;
    let target = dest_dir.join(if gzip {
        format!("{}.gz", file.base)
    } else {
        file.base.to_owned()
    });
    tmp.persist(&target).map_err(|e| DataError::Io {
        path: target.clone(),
        source: e.error,
    })?;
    // Make the rename itself durable; not every platform can open a
    // directory, so a failure here is not an error.
    if let Ok(dir) = File::open(dest_dir) {
        let _ = dir.sync_all();
    }
    for other in candidates(dest_dir, file.base) {
        if other != target && other.is_file() && !verifies(&other, file) {
            std::fs::remove_file(&other).map_err(io_err(&other))?;
        }
    }
    Ok(Ok(target))
}

/// Whether `path` holds the content `file` calls for.
pub(crate) fn verifies(path: &Path, file: &FileSpec<'_>) -> bool {
    content_sha256(path).is_ok_and(|found| found == file.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_source_and_what_was_expected() {
        let failure = SourceFailure {
            source: Source::Url("http://m/".into()),
            attempts: 3,
            failure: Failure::Transport {
                url: "http://m/a.gz".into(),
                message: "timeout".into(),
            },
        };
        assert_eq!(failure.to_string(), "http://m/a.gz: timeout (after 3 attempts)");
        let checksum = Failure::Checksum {
            origin: "http://m/a.gz".into(),
            expected: "ab".into(),
            found: "cd".into(),
            html: true,
        };
        assert_eq!(
            checksum.to_string(),
            "http://m/a.gz: wrong content, SHA-256 cd where ab was expected (the server sent an HTML page)"
        );
        assert!(!checksum.is_transient());
        let server_error = Failure::Http {
            url: "u".into(),
            status: 503,
        };
        assert!(server_error.is_transient());
        assert!(
            !Failure::Http {
                url: "u".into(),
                status: 404
            }
            .is_transient()
        );
    }

    #[test]
    fn html_and_gzip_are_told_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page");
        std::fs::write(&page, b"\n  <!DOCTYPE html><html>Not Found</html>").unwrap();
        assert!(starts_like_html(&page));
        assert!(!starts_like_gzip(&page).unwrap());
        let gz = dir.path().join("gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8]).unwrap();
        assert!(starts_like_gzip(&gz).unwrap() && !starts_like_html(&gz));
        let short = dir.path().join("short");
        std::fs::write(&short, [0x1f]).unwrap();
        assert!(!starts_like_gzip(&short).unwrap());
    }
}
