//! The identity of a data file: the SHA-256 of its content after gzip
//! decompression, so the same data gives the same hash whether a mirror
//! serves it raw or recompressed.

use crate::gzip::{GZIP_MAGIC, GzipMembers};
use crate::{DataError, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// The SHA-256, as 64 lowercase hex digits, of the file's content after
/// decompressing it when it is gzip (detected by its first two bytes; every
/// member, and zero padding after the last one is skipped, as
/// [`read_images`](crate::read_images) reads it).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, and
/// [`DataError::CorruptGzip`] when it starts like gzip but does not decode.
pub fn content_sha256(path: &Path) -> Result<String> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    let is_gzip = reader.fill_buf().map_err(io_err)?.starts_with(&GZIP_MAGIC);
    let mut hasher = Sha256::new();
    if is_gzip {
        copy_into(GzipMembers::new(reader), &mut hasher).map_err(|source| DataError::CorruptGzip {
            path: path.to_path_buf(),
            source,
        })?;
    } else {
        copy_into(reader, &mut hasher).map_err(io_err)?;
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn copy_into(mut reader: impl Read, hasher: &mut Sha256) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    #[test]
    fn raw_and_gzip_of_the_same_content_hash_alike() {
        let dir = tempfile::tempdir().unwrap();
        // SHA-256("abc"), from FIPS 180-2, appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        std::fs::write(dir.path().join("raw"), b"abc").unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(b"abc").unwrap();
        std::fs::write(dir.path().join("gz"), enc.finish().unwrap()).unwrap();
        assert_eq!(content_sha256(&dir.path().join("raw")).unwrap(), abc);
        assert_eq!(content_sha256(&dir.path().join("gz")).unwrap(), abc);
        // Zero padding after the gzip data (as a tape archive writes it)
        // changes nothing.
        let mut padded = std::fs::read(dir.path().join("gz")).unwrap();
        padded.resize(512, 0);
        std::fs::write(dir.path().join("padded"), padded).unwrap();
        assert_eq!(content_sha256(&dir.path().join("padded")).unwrap(), abc);
    }

    #[test]
    fn corrupt_gzip_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.gz");
        std::fs::write(&bad, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad]).unwrap();
        let err = content_sha256(&bad).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err}");
        assert!(err.to_string().contains("bad.gz"));
        let err = content_sha256(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(err, DataError::Io { .. }) && err.to_string().contains("absent"),
            "{err}"
        );
    }
}
