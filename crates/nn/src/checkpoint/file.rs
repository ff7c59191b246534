//! The checkpoint file: header, checksum, reading and atomic writing.

use super::check::Invalid;
use super::v1::CheckpointV1;
use super::v2::CheckpointV2;
use super::{CHECKPOINT_FORMAT_VERSION, Checkpoint};
use crate::atomic::{Special, write_atomic};
use crate::{NnError, Result, codec};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The first eight bytes of every checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"BACKPROP";

/// Header bytes before the payload: magic, version, length, CRC-32.
pub const CHECKPOINT_HEADER_LEN: usize = 24;

/// The largest payload written or read: 4 GiB, room for the
/// [`crate::MAX_PARAMETERS`] weights with two optimiser slots each.
pub const MAX_PAYLOAD: u64 = 1 << 32;

// Whatever trains can be saved: the largest network's weights and biases
// with the two state slots of Adam, plus 256 MiB for everything else (the
// history of `MAX_EPOCHS` epochs takes at most 60 MiB), fit the payload.
const _: () = assert!(3 * 4 * crate::MAX_PARAMETERS as u64 + (256 << 20) <= MAX_PAYLOAD);

pub(super) fn to_bytes(c: &Checkpoint) -> Result<Vec<u8>> {
    let memory = Path::new("<memory>");
    c.check().map_err(|e| e.at(memory))?;
    let payload = codec::encode(c).map_err(|reason| NnError::InvalidCheckpoint {
        path: memory.to_path_buf(),
        field: "payload".into(),
        reason,
    })?;
    if payload.len() as u64 > MAX_PAYLOAD {
        return Err(NnError::InvalidCheckpoint {
            path: memory.to_path_buf(),
            field: "payload".into(),
            reason: format!("{} bytes exceed the {MAX_PAYLOAD}-byte limit", payload.len()),
        });
    }
    let mut bytes = Vec::with_capacity(CHECKPOINT_HEADER_LEN + payload.len());
    bytes.extend_from_slice(&CHECKPOINT_MAGIC);
    bytes.extend_from_slice(&c.format_version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

pub(super) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let head = &bytes[..bytes.len().min(CHECKPOINT_HEADER_LEN)];
    let header = Header::parse(head, bytes.len() as u64, path)?;
    let payload = &bytes[CHECKPOINT_HEADER_LEN..];
    header.check_crc(crc32fast::hash(payload), path)?;
    decode_payload(payload, &header, path)
}

pub(super) fn save(c: &Checkpoint, path: &Path) -> Result<()> {
    let bytes = to_bytes(c)?;
    save_bytes(path, &bytes, |file, bytes| file.write_all(bytes))
}

/// Writes `bytes` atomically through `write` (tests inject one that fails
/// part-way), proving the written file loads before it replaces `path`.
pub(super) fn save_bytes(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut File, &[u8]) -> io::Result<()>,
) -> Result<()> {
    let prove = |written: &Path| -> io::Result<()> {
        load(written)
            .map(drop)
            .map_err(|e| io::Error::other(format!("the file written does not load back: {e}")))
    };
    write_atomic(path, Special::Refuse, |file| write(file, bytes), Some(&prove))
        .map_err(|(path, source)| NnError::Io { path, source })
}

pub(super) fn load(path: &Path) -> Result<Checkpoint> {
    let io_err = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_regular(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut head = [0u8; CHECKPOINT_HEADER_LEN];
    let n = read_up_to(&mut file, &mut head).map_err(io_err)?;
    let header = Header::parse(&head[..n], file_len, path)?;
    // The checksum first, streaming, so that a damaged file is refused
    // before its payload is held in memory.
    let len = header.payload_len;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    loop {
        let k = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        seen += k as u64;
        hasher.update(&buf[..k]);
    }
    if seen != len {
        return Err(changed(path, len, seen));
    }
    header.check_crc(hasher.finalize(), path)?;
    // `parse` checked the declared length against the file's size and the
    // limit, so this allocation is bounded by real bytes on disk.
    let mut payload = Vec::with_capacity(len as usize);
    open_regular(path)
        .map_err(io_err)?
        .take(CHECKPOINT_HEADER_LEN as u64 + len + 1)
        .read_to_end(&mut payload)
        .map_err(io_err)?;
    if payload.len() as u64 != CHECKPOINT_HEADER_LEN as u64 + len {
        return Err(changed(
            path,
            len,
            payload.len().saturating_sub(CHECKPOINT_HEADER_LEN) as u64,
        ));
    }
    let payload = &payload[CHECKPOINT_HEADER_LEN..];
    header.check_crc(crc32fast::hash(payload), path)?;
    decode_payload(payload, &header, path)
}

/// Opens `path` for reading only if it is a regular file. The open itself
/// never blocks (`O_NONBLOCK`: a FIFO with no writer would block a plain
/// open forever), and the check is made on the opened file, so nothing
/// swapped in between can slip through.
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; a checkpoint is a file written by `backprop train --save`",
        ));
    }
    Ok(file)
}

fn changed(path: &Path, expected: u64, found: u64) -> NnError {
    NnError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: format!("the file changed while it was read: expected {expected} payload bytes, read {found}"),
    }
}

fn decode_payload(payload: &[u8], header: &Header, path: &Path) -> Result<Checkpoint> {
    let corrupt = |e: String| NnError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: format!("the payload does not decode: {e}"),
    };
    let (version, checkpoint) = match header.version {
        1 => {
            let v1: CheckpointV1 = codec::decode(payload).map_err(corrupt)?;
            v1.into_current()
                .map_err(|(field, reason)| Invalid::new(field, reason).at(path))?
        }
        2 => {
            let v2: CheckpointV2 = codec::decode(payload).map_err(corrupt)?;
            v2.into_current()
        }
        _ => {
            let c: Checkpoint = codec::decode(payload).map_err(corrupt)?;
            (c.format_version, c)
        }
    };
    if version != header.version {
        return Err(Invalid::new(
            "format_version",
            format!("the payload says {version} but the header says {}", header.version),
        )
        .at(path));
    }
    checkpoint.check().map_err(|e| e.at(path))?;
    Ok(checkpoint)
}

/// The fixed-size header, checked against the file's size.
struct Header {
    version: u32,
    payload_len: u64,
    crc: u32,
}

impl Header {
    /// Parses the first `min(24, total_len)` bytes of a file of `total_len`
    /// bytes.
    fn parse(head: &[u8], total_len: u64, path: &Path) -> Result<Header> {
        let corrupt = |reason: String| NnError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let truncated_header = || {
            corrupt(format!(
                "truncated: the file has {total_len} bytes, fewer than the {CHECKPOINT_HEADER_LEN}-byte header"
            ))
        };
        let not_a_checkpoint = |reason| NnError::NotACheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let magic = &CHECKPOINT_MAGIC[..];
        if head.is_empty() {
            return Err(not_a_checkpoint("the file is empty".into()));
        }
        if head.len() < magic.len() {
            if magic.starts_with(head) {
                return Err(truncated_header());
            }
            return Err(not_a_checkpoint(describe_start(head)));
        }
        if &head[..8] != magic {
            return Err(not_a_checkpoint(describe_start(head)));
        }
        if head.len() < 12 {
            return Err(truncated_header());
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if !(1..=CHECKPOINT_FORMAT_VERSION).contains(&version) {
            return Err(NnError::CheckpointVersion {
                path: path.to_path_buf(),
                found: version,
                supported: CHECKPOINT_FORMAT_VERSION,
            });
        }
        if head.len() < CHECKPOINT_HEADER_LEN {
            return Err(truncated_header());
        }
        let payload_len = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(head[20..24].try_into().expect("4 bytes"));
        let Some(present) = total_len.checked_sub(CHECKPOINT_HEADER_LEN as u64) else {
            return Err(truncated_header());
        };
        if payload_len != present {
            return Err(corrupt(format!(
                "the header declares a payload of {payload_len} bytes, but the file holds {present} after the header"
            )));
        }
        if payload_len > MAX_PAYLOAD {
            return Err(corrupt(format!(
                "a payload of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"
            )));
        }
        Ok(Header {
            version,
            payload_len,
            crc,
        })
    }

    fn check_crc(&self, crc: u32, path: &Path) -> Result<()> {
        if crc != self.crc {
            return Err(NnError::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "checksum mismatch: the header says CRC-32 {:08x}, the payload's is {crc:08x}",
                    self.crc
                ),
            });
        }
        Ok(())
    }
}

/// What a file starts with, for the "not a checkpoint" message.
fn describe_start(head: &[u8]) -> String {
    let shown = &head[..head.len().min(8)];
    let text: String = shown
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!(
        "it starts with {text:?} ({}), not {:?}",
        shown.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(&CHECKPOINT_MAGIC)
    )
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
