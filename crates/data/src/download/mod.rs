//! Fetching a data set into a directory from the first source that yields
//! verified data (feature `download`); see [`download`].

mod fetch;
mod spec;
mod verify;

#[cfg(test)]
mod test_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use spec::{DatasetSpec, FASHION_MNIST, FileSpec, KnownDataset, MIRROR_ENV, MNIST, Source};
pub use verify::{Failure, SourceFailure};

use crate::error::{DataError, Result};
use crate::mnist::find_file;
use fetch::{Fetcher, Step};
use verify::{install, verifies};

/// Limits of a download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Tries per source when a failure may be transient (at least 1).
    pub attempts: u32,
    /// Pause before the second try of a source; doubled before each further try.
    pub retry_delay: Duration,
    /// Longest wait for a TCP connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// Longest wait for the response headers, and for any one read of the body.
    pub read_timeout: Duration,
    /// Largest body accepted for one file, in bytes.
    pub max_bytes: u64,
}

impl Default for Options {
    /// Three tries per source, one second apart then two, 15 s to connect,
    /// 30 s per read, 256 MiB per file.
    fn default() -> Options {
        Options {
            attempts: 3,
            retry_delay: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            max_bytes: 256 << 20,
        }
    }
}

/// What [`download`] reports to its caller as it goes. `file` is always the
/// standard base name, such as `train-images-idx3-ubyte`.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// The file is already in the destination and verifies; it is kept.
    Present {
        /// The file.
        file: &'a str,
        /// Where it is.
        path: &'a Path,
    },
    /// A source has the file and the transfer begins.
    Start {
        /// The file.
        file: &'a str,
        /// The URL or path being read.
        origin: &'a str,
        /// The try of this source, from 1.
        attempt: u32,
        /// The size in bytes, when the source tells it.
        total: Option<u64>,
    },
    /// Bytes received so far of the current transfer.
    Bytes {
        /// The file.
        file: &'a str,
        /// Bytes received.
        done: u64,
    },
    /// A try of a source failed.
    Failed {
        /// The file.
        file: &'a str,
        /// The source.
        source: &'a Source,
        /// Why.
        failure: &'a Failure,
        /// Whether the same source is tried again next.
        retrying: bool,
    },
    /// The file arrived, verified, and was renamed into place.
    Installed {
        /// The file.
        file: &'a str,
        /// Where it now is.
        path: &'a Path,
        /// The URL or path it came from.
        origin: &'a str,
    },
}

/// One file of a finished [`download`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The standard base name.
    pub file: String,
    /// Where the verified file is.
    pub path: PathBuf,
    /// The URL or path it was copied from, or `None` if it was already there.
    pub origin: Option<String>,
}

/// Fills `dest_dir` (created if needed) with every file of `spec`, each from
/// the first of `sources` that yields the expected content. Usually `sources`
/// is [`DatasetSpec::sources`].
///
/// A file already in `dest_dir` (the one [`find_file`] picks) whose
/// decompressed SHA-256 matches is kept. Otherwise each source is tried in
/// order: the data is streamed into a temporary file beside its destination
/// (`.<name>.XXXXXX.part`), its decompressed SHA-256 is checked, and only
/// then is it renamed into place, as `<name>.gz` or `<name>` according to its
/// content; other spellings of the same file that do not verify are removed
/// so that the loader cannot pick them. A transfer that fails or brings the
/// wrong bytes (an HTML error page served with status 200, a truncated body)
/// deletes its temporary file, so nothing that looks complete is ever left
/// behind. Timeouts, dropped connections and server errors are retried up to
/// [`Options::attempts`] times per source; a missing file or wrong content
/// moves on to the next source at once.
///
/// Nothing is printed: progress goes to `on_event`.
///
/// # Errors
/// [`DataError::Download`] naming every source tried and why it failed,
/// when none yields a file; [`DataError::Io`] when the destination cannot be
/// written.
pub fn download(
    spec: &DatasetSpec<'_>,
    dest_dir: &Path,
    sources: &[Source],
    options: &Options,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<Vec<Fetched>> {
    // The directories this call creates, outermost first: removed again if
    // the download fails and leaves them empty.
    let created: Vec<PathBuf> = dest_dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    std::fs::create_dir_all(dest_dir).map_err(|source| DataError::Io {
        path: dest_dir.to_path_buf(),
        source,
    })?;
    let result = fetch_all(spec, dest_dir, sources, options, &mut on_event);
    if result.is_err() {
        // Innermost first; a directory that holds anything (a file that did
        // verify) is kept, and so are its parents.
        for dir in created.iter().rev() {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    result
}

/// [`download`] into an existing `dest_dir`.
fn fetch_all(
    spec: &DatasetSpec<'_>,
    dest_dir: &Path,
    sources: &[Source],
    options: &Options,
    on_event: &mut impl FnMut(Event<'_>),
) -> Result<Vec<Fetched>> {
    let fetcher = Fetcher::new(options.connect_timeout, options.read_timeout, options.max_bytes);
    let mut fetched = Vec::with_capacity(spec.files.len());
    'files: for file in spec.files {
        if let Some(path) = find_file(dest_dir, file.base).filter(|path| verifies(path, file)) {
            on_event(Event::Present {
                file: file.base,
                path: &path,
            });
            fetched.push(Fetched {
                file: file.base.to_owned(),
                path,
                origin: None,
            });
            continue;
        }
        let mut failures = Vec::new();
        for source in sources {
            let mut attempt = 0;
            let failure = loop {
                attempt += 1;
                let mut builder = tempfile::Builder::new();
                let prefix = format!(".{}.", file.base);
                builder.prefix(&prefix).suffix(".part");
                // The file is renamed into place: give it a data file's
                // permissions (less the umask), not a temporary file's 0600.
                #[cfg(unix)]
                builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
                let mut tmp = builder.tempfile_in(dest_dir).map_err(|source| DataError::Io {
                    path: dest_dir.to_path_buf(),
                    source,
                })?;
                let tmp_path = tmp.path().to_path_buf();
                let fetched_from = fetcher.fetch(source, file, tmp.as_file_mut(), &tmp_path, &mut |step| {
                    on_event(match step {
                        Step::Start { origin, total } => Event::Start {
                            file: file.base,
                            origin,
                            attempt,
                            total,
                        },
                        Step::Bytes(done) => Event::Bytes { file: file.base, done },
                    })
                })?;
                // Dropping `tmp` on any failure deletes it.
                let outcome = match fetched_from {
                    Ok(origin) => install(tmp, &origin, dest_dir, file)?.map(|path| (path, origin)),
                    Err(failure) => Err(failure),
                };
                match outcome {
                    Ok((path, origin)) => {
                        on_event(Event::Installed {
                            file: file.base,
                            path: &path,
                            origin: &origin,
                        });
                        fetched.push(Fetched {
                            file: file.base.to_owned(),
                            path,
                            origin: Some(origin),
                        });
                        continue 'files;
                    }
                    Err(failure) => {
                        let retrying = failure.is_transient() && attempt < options.attempts;
                        on_event(Event::Failed {
                            file: file.base,
                            source,
                            failure: &failure,
                            retrying,
                        });
                        if !retrying {
                            break failure;
                        }
                        std::thread::sleep(options.retry_delay.saturating_mul(1 << (attempt - 1).min(16)));
                    }
                }
            };
            failures.push(SourceFailure {
                source: source.clone(),
                attempts: attempt,
                failure,
            });
        }
        return Err(DataError::Download {
            dataset: spec.name.to_owned(),
            file: file.base.to_owned(),
            dest: dest_dir.to_path_buf(),
            failures,
        });
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Instant;

    use flate2::{Compression, write::GzEncoder};
    use sha2::{Digest, Sha256};

    use super::test_server::{Reply, Server};
    use super::*;
    use crate::{FILES, encode_images, encode_labels, load_dir};

    /// Four small IDX files (5 training and 3 test images of 2x3 pixels),
    /// raw and gzipped, and their hashes.
    struct Fixture {
        raw: Vec<Vec<u8>>,
        gz: Vec<Vec<u8>>,
        hashes: Vec<String>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let raw = vec![
                encode_images(2, 3, &(0..30).collect::<Vec<u8>>()),
                encode_labels(&[0, 1, 2, 3, 4]),
                encode_images(2, 3, &(100..118).collect::<Vec<u8>>()),
                encode_labels(&[9, 8, 7]),
            ];
            let gz = raw.iter().map(|r| gzip(r)).collect();
            let hashes = raw
                .iter()
                .map(|r| Sha256::digest(r).iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            Fixture { raw, gz, hashes }
        }

        fn files(&self) -> Vec<FileSpec<'_>> {
            FILES
                .iter()
                .zip(&self.hashes)
                .map(|(base, sha256)| FileSpec { base, sha256 })
                .collect()
        }

        /// A route that serves the four gzipped files as a mirror does.
        fn mirror(&self) -> impl Fn(&str) -> Reply + Send + 'static {
            let gz = self.gz.clone();
            move |path| match FILES.iter().position(|base| path == format!("/mirror/{base}.gz")) {
                Some(i) => Reply::Ok(gz[i].clone()),
                None => Reply::Status(404),
            }
        }
    }

    fn spec<'a>(files: &'a [FileSpec<'a>]) -> DatasetSpec<'a> {
        DatasetSpec {
            name: "synthetic",
            files,
            system_dirs: &[],
            mirrors: &[],
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn quick() -> Options {
        Options {
            attempts: 2,
            retry_delay: Duration::ZERO,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_bytes: 1 << 20,
        }
    }

    /// Runs a download, returning its result and every failure reported.
    fn run(
        files: &[FileSpec<'_>],
        dest: &Path,
        sources: &[Source],
        options: &Options,
    ) -> (Result<Vec<Fetched>>, Vec<Failure>) {
        let mut failures = Vec::new();
        let result = download(&spec(files), dest, sources, options, |event| {
            if let Event::Failed { failure, .. } = event {
                failures.push(failure.clone());
            }
        });
        (result, failures)
    }

    /// The sorted names in `dir`, hidden temporary files included.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    fn gz_names() -> Vec<String> {
        let mut names: Vec<String> = FILES.iter().map(|b| format!("{b}.gz")).collect();
        names.sort();
        names
    }

    fn assert_loads(dest: &Path) {
        let data = load_dir(dest).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (5, 3));
        assert_eq!(data.test.labels(), [9, 8, 7]);
    }

    #[test]
    fn a_good_mirror_fills_the_destination_once() {
        let fx = Fixture::new();
        let files = fx.files();
        let server = Server::start(fx.mirror());
        let dest = tempfile::tempdir().unwrap();
        let dest = dest.path().join("synthetic");
        let sources = [Source::Url(server.url.clone())];
        let (result, failures) = run(&files, &dest, &sources, &quick());
        let fetched = result.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(listing(&dest), gz_names());
        assert_eq!(fetched[0].origin, Some(format!("{}{}.gz", server.url, FILES[0])));
        assert_eq!(fetched[3].path, dest.join("t10k-labels-idx1-ubyte.gz"));
        assert_loads(&dest);
        // Present and valid: nothing is fetched again.
        assert_eq!(server.n_hits(), 4);
        let (again, _) = run(&files, &dest, &sources, &quick());
        assert!(again.unwrap().iter().all(|f| f.origin.is_none()));
        assert_eq!(server.n_hits(), 4);
    }

    #[test]
    fn each_bad_mirror_gives_way_to_the_next_source() {
        let fx = Fixture::new();
        let files = fx.files();
        let good = Server::start(fx.mirror());
        // Each bad mirror, the hits it gets for four files (two tries each
        // when the failure may be transient), and the failure it causes.
        let wrong = gzip(b"some other data");
        let whole = fx.gz[0].clone();
        type Check = fn(&Failure) -> bool;
        let cases: Vec<(Reply, usize, Check)> = vec![
            (Reply::Status(404), 4, |f| {
                matches!(f, Failure::Http { status: 404, .. })
            }),
            (Reply::HtmlPage, 4, |f| {
                matches!(f, Failure::Checksum { html: true, .. })
            }),
            (Reply::CloseHalfway(whole), 8, |f| {
                matches!(f, Failure::Transport { .. })
            }),
            (Reply::Ok(wrong), 4, |f| {
                matches!(f, Failure::Checksum { html: false, .. })
            }),
            (Reply::Status(503), 8, |f| {
                matches!(f, Failure::Http { status: 503, .. })
            }),
        ];
        for (reply, hits, expected) in cases {
            let label = format!("{reply:?}").chars().take(30).collect::<String>();
            let bad = Server::start(move |_| reply.clone());
            let dest = tempfile::tempdir().unwrap();
            let sources = [Source::Url(bad.url.clone()), Source::Url(good.url.clone())];
            let (result, failures) = run(&files, dest.path(), &sources, &quick());
            let fetched = result.unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(
                fetched
                    .iter()
                    .all(|f| f.origin.as_ref().unwrap().starts_with(&good.url)),
                "{label}"
            );
            assert_eq!(bad.n_hits(), hits, "{label}");
            assert_eq!(failures.len(), hits, "{label}");
            assert!(failures.iter().all(expected), "{label}: {failures:?}");
            assert_eq!(listing(dest.path()), gz_names(), "{label}");
            assert_loads(dest.path());
        }
    }

    #[test]
    fn when_every_source_fails_the_error_names_each_and_nothing_is_left() {
        let fx = Fixture::new();
        let files = fx.files();
        let missing = Server::start(|_| Reply::Status(404));
        let html = Server::start(|_| Reply::HtmlPage);
        let whole = fx.gz[0].clone();
        let halfway = Server::start(move |_| Reply::CloseHalfway(whole.clone()));
        let other = fx.gz[2].clone();
        let mismatch = Server::start(move |_| Reply::Ok(other.clone()));
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", listener.local_addr().unwrap())
        };
        let scratch = tempfile::tempdir().unwrap();
        let no_dir = scratch.path().join("no-such-copy");
        let empty_dir = tempfile::tempdir().unwrap();
        let sources = [
            Source::Dir(no_dir.clone()),
            Source::Dir(empty_dir.path().to_path_buf()),
            Source::Url(missing.url.clone()),
            Source::Url(html.url.clone()),
            Source::Url(halfway.url.clone()),
            Source::Url(mismatch.url.clone()),
            Source::Url(closed_port.clone()),
        ];
        let dest = scratch.path().join("dest");
        let (result, _) = run(&files, &dest, &sources, &quick());
        let err = result.unwrap_err();
        let DataError::Download {
            dataset,
            file,
            failures,
            ..
        } = &err
        else {
            panic!("expected a download error, got {err:?}");
        };
        assert_eq!((dataset.as_str(), file.as_str()), ("synthetic", FILES[0]));
        assert_eq!(
            failures.iter().map(|f| &f.source).collect::<Vec<_>>(),
            sources.iter().collect::<Vec<_>>()
        );
        assert!(matches!(failures[0].failure, Failure::MissingDirectory { .. }));
        assert!(matches!(&failures[1].failure, Failure::MissingFile { tried, .. } if tried.len() == 4));
        assert!(matches!(failures[2].failure, Failure::Http { status: 404, .. }));
        assert!(matches!(failures[3].failure, Failure::Checksum { html: true, .. }));
        assert!(matches!(failures[4].failure, Failure::Transport { .. }));
        assert_eq!(failures[4].attempts, 2);
        assert!(matches!(failures[5].failure, Failure::Checksum { html: false, .. }));
        assert!(matches!(failures[6].failure, Failure::Transport { .. }));
        let message = err.to_string();
        for source in &sources {
            assert!(message.contains(&source.to_string()), "{source} not in: {message}");
        }
        assert!(
            message.contains("HTML page") && message.contains("status 404"),
            "{message}"
        );
        assert!(message.contains("after 2 attempts"), "{message}");
        assert!(message.contains("`--from DIR`"), "{message}");
        // Nothing is left, not even a partial file or the empty directory
        // the download created.
        assert!(!dest.exists());
        assert!(scratch.path().is_dir());
    }

    #[test]
    fn a_failed_download_removes_only_the_directories_it_created() {
        let fx = Fixture::new();
        let files = fx.files();
        let empty = tempfile::tempdir().unwrap();
        let sources = [Source::Dir(empty.path().to_path_buf())];
        let scratch = tempfile::tempdir().unwrap();
        // Two levels created, both removed.
        let nested = scratch.path().join("data").join("synthetic");
        assert!(run(&files, &nested, &sources, &quick()).0.is_err());
        assert!(!scratch.path().join("data").exists());
        // An existing destination, and its files, are kept.
        let existing = scratch.path().join("kept");
        std::fs::create_dir(&existing).unwrap();
        assert!(run(&files, &existing, &sources, &quick()).0.is_err());
        assert!(existing.is_dir());
        // One file verifies, the next is missing: the verified file stays.
        let partial = tempfile::tempdir().unwrap();
        std::fs::write(partial.path().join(format!("{}.gz", FILES[0])), &fx.gz[0]).unwrap();
        let dest = scratch.path().join("partial");
        let sources = [Source::Dir(partial.path().to_path_buf())];
        assert!(run(&files, &dest, &sources, &quick()).0.is_err());
        assert_eq!(listing(&dest), [format!("{}.gz", FILES[0])]);
    }

    #[test]
    fn local_directories_with_gzip_raw_or_dotted_files() {
        let fx = Fixture::new();
        let files = fx.files();
        type Naming = fn(&str) -> String;
        let layouts: [(&str, Naming, bool); 4] = [
            ("gzip", |b| format!("{b}.gz"), true),
            ("raw", |b| b.to_owned(), false),
            ("dotted raw", |b| b.replacen("-idx", ".idx", 1), false),
            ("dotted gzip", |b| format!("{}.gz", b.replacen("-idx", ".idx", 1)), true),
        ];
        assert_eq!(layouts[2].1(FILES[0]), "train-images.idx3-ubyte");
        for (label, name, gz) in layouts {
            let copy = tempfile::tempdir().unwrap();
            for (i, base) in FILES.iter().enumerate() {
                let bytes = if gz { &fx.gz[i] } else { &fx.raw[i] };
                std::fs::write(copy.path().join(name(base)), bytes).unwrap();
            }
            let dest = tempfile::tempdir().unwrap();
            let sources = [Source::Dir(copy.path().to_path_buf())];
            let (result, failures) = run(&files, dest.path(), &sources, &quick());
            let fetched = result.unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(failures.is_empty(), "{label}: {failures:?}");
            assert_eq!(
                fetched[0].origin,
                Some(copy.path().join(name(FILES[0])).display().to_string())
            );
            // Installed under the standard name; `.gz` only for gzip content.
            let mut expected: Vec<String> = FILES
                .iter()
                .map(|b| if gz { format!("{b}.gz") } else { (*b).to_owned() })
                .collect();
            expected.sort();
            assert_eq!(listing(dest.path()), expected, "{label}");
            assert_loads(dest.path());
        }
    }

    #[test]
    fn a_wrong_file_in_the_destination_is_replaced() {
        let fx = Fixture::new();
        let files = fx.files();
        let copy = tempfile::tempdir().unwrap();
        for (i, base) in FILES.iter().enumerate() {
            std::fs::write(copy.path().join(format!("{base}.gz")), &fx.gz[i]).unwrap();
        }
        let dest = tempfile::tempdir().unwrap();
        // A stale raw file that the loader would pick before the `.gz`.
        std::fs::write(dest.path().join(FILES[0]), b"<html>stale</html>").unwrap();
        // A valid raw file is kept as it is.
        std::fs::write(dest.path().join(FILES[1]), &fx.raw[1]).unwrap();
        let (result, _) = run(&files, dest.path(), &[Source::Dir(copy.path().into())], &quick());
        let fetched = result.unwrap();
        assert!(fetched[0].origin.is_some() && fetched[1].origin.is_none());
        assert!(!dest.path().join(FILES[0]).exists());
        assert_eq!(find_file(dest.path(), FILES[1]), Some(dest.path().join(FILES[1])));
        assert_loads(dest.path());
    }

    #[test]
    fn corrupt_gzip_in_a_local_copy_is_refused() {
        let fx = Fixture::new();
        let files = fx.files();
        let copy = tempfile::tempdir().unwrap();
        let cut = &fx.gz[0][..fx.gz[0].len() / 2];
        std::fs::write(copy.path().join(format!("{}.gz", FILES[0])), cut).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let (result, _) = run(&files, dest.path(), &[Source::Dir(copy.path().into())], &quick());
        let err = result.unwrap_err();
        let DataError::Download { failures, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(matches!(failures[0].failure, Failure::CorruptGzip { .. }), "{err}");
        assert!(err.to_string().contains("train-images-idx3-ubyte.gz"), "{err}");
        assert_eq!(listing(dest.path()), Vec::<String>::new());
    }

    #[test]
    fn a_silent_server_times_out_after_the_bounded_retries() {
        let fx = Fixture::new();
        let files = fx.files();
        let silent = Server::start(|_| Reply::Silent);
        let good = Server::start(fx.mirror());
        let options = Options {
            read_timeout: Duration::from_millis(300),
            ..quick()
        };
        let dest = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let sources = [Source::Url(silent.url.clone()), Source::Url(good.url.clone())];
        let (result, failures) = run(&files[..1], dest.path(), &sources, &options);
        assert!(result.is_ok());
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            failures
                .iter()
                .all(|f| matches!(f, Failure::Transport { message, .. } if message.contains("timeout"))),
            "{failures:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert_eq!(listing(dest.path()), [format!("{}.gz", FILES[0])]);
    }
}
