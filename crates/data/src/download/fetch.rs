//! One attempt at one file from one source: stream it from a local directory
//! or over HTTP into a temporary file, reporting bytes as they arrive.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use super::spec::{FileSpec, Source};
use super::verify::Failure;
use crate::error::{DataError, Result};
use crate::mnist::{candidates, find_file};

/// What an attempt reports while it runs.
pub(crate) enum Step<'a> {
    /// The data was found: its origin (a URL or a path) and size if known.
    Start { origin: &'a str, total: Option<u64> },
    /// Bytes received so far.
    Bytes(u64),
}

/// An HTTP client with the timeouts of a download, and the size limit.
pub(crate) struct Fetcher {
    agent: ureq::Agent,
    max_bytes: u64,
}

impl Fetcher {
    /// Connections time out after `connect_timeout`; a response whose
    /// headers, or any read of whose body, takes longer than `read_timeout`
    /// fails; bodies over `max_bytes` are cut off.
    pub(crate) fn new(connect_timeout: Duration, read_timeout: Duration, max_bytes: u64) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_recv_response(Some(read_timeout))
            .timeout_per_read(Some(read_timeout))
            .user_agent(concat!("backprop-data/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher { agent, max_bytes }
    }

    /// Copies `file` from `source` into `out` (the temporary file at
    /// `out_path`) and returns where it came from. The outer error is about
    /// the temporary file (fatal); the inner one about the source.
    pub(crate) fn fetch(
        &self,
        source: &Source,
        file: &FileSpec<'_>,
        out: &mut File,
        out_path: &Path,
        step: &mut dyn FnMut(Step<'_>),
    ) -> Result<std::result::Result<String, Failure>> {
        match source {
            Source::Dir(dir) => fetch_local(dir, file.base, out, out_path, step),
            Source::Url(base_url) => self.fetch_url(&Source::file_url(base_url, file.base), out, out_path, step),
        }
    }

    fn fetch_url(
        &self,
        url: &str,
        out: &mut File,
        out_path: &Path,
        step: &mut dyn FnMut(Step<'_>),
    ) -> Result<std::result::Result<String, Failure>> {
        let response = match self.agent.get(url).call() {
            Ok(response) => response,
            Err(ureq::Error::StatusCode(status)) => {
                return Ok(Err(Failure::Http {
                    url: url.to_owned(),
                    status,
                }));
            }
            Err(e) => {
                return Ok(Err(Failure::Transport {
                    url: url.to_owned(),
                    message: e.to_string(),
                }));
            }
        };
        let total = response.body().content_length();
        step(Step::Start { origin: url, total });
        let mut reader = response.into_body().into_with_config().limit(self.max_bytes).reader();
        Ok(match copy(&mut reader, out, out_path, step)? {
            Ok(_) => Ok(url.to_owned()),
            Err((e, received)) => Err(Failure::Transport {
                url: url.to_owned(),
                message: match total {
                    Some(total) => format!("{e} (after {received} of {total} bytes)"),
                    None => format!("{e} (after {received} bytes)"),
                },
            }),
        })
    }
}

fn fetch_local(
    dir: &Path,
    base: &str,
    out: &mut File,
    out_path: &Path,
    step: &mut dyn FnMut(Step<'_>),
) -> Result<std::result::Result<String, Failure>> {
    if !dir.is_dir() {
        return Ok(Err(Failure::MissingDirectory { dir: dir.to_path_buf() }));
    }
    let Some(path) = find_file(dir, base) else {
        return Ok(Err(Failure::MissingFile {
            dir: dir.to_path_buf(),
            tried: candidates(dir, base),
        }));
    };
    let io_failure = |e: io::Error| Failure::Io {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut input = match File::open(&path) {
        Ok(input) => input,
        Err(e) => return Ok(Err(io_failure(e))),
    };
    let origin = path.display().to_string();
    let total = input.metadata().ok().map(|m| m.len());
    step(Step::Start { origin: &origin, total });
    Ok(match copy(&mut input, out, out_path, step)? {
        Ok(_) => Ok(origin),
        Err((e, _)) => Err(io_failure(e)),
    })
}

/// Copies `input` to `out`, reporting the running total. A read error comes
/// back with the bytes copied before it; a write error is fatal.
fn copy(
    input: &mut impl Read,
    out: &mut File,
    out_path: &Path,
    step: &mut dyn FnMut(Step<'_>),
) -> Result<std::result::Result<u64, (io::Error, u64)>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Err((e, done))),
        };
        out.write_all(&buf[..n]).map_err(|source| DataError::Io {
            path: out_path.to_path_buf(),
            source,
        })?;
        done += n as u64;
        step(Step::Bytes(done));
    }
    Ok(Ok(done))
}
