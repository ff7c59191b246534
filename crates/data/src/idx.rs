//! Reading and writing IDX files of `u8` images and labels, raw or gzip.
//!
//! An IDX images file is the magic number `0x00000803`, then the image count,
//! rows and columns as big-endian `u32`s, then `count * rows * cols` pixel
//! bytes. A labels file is `0x00000801`, the count, then `count` label bytes.
//!
//! Whether a file is gzip-compressed is decided by its first two bytes
//! (`1f 8b`), never by its name. A gzip file may hold several members, and
//! zero bytes after the last one are skipped as padding (see
//! [`crate::gzip`]).
//!
//! No allocation follows from the header alone:
//!
//! - a header may declare at most [`MAX_IDX_BYTES`] of payload;
//! - a raw file's declared size is compared with the file's real length
//!   before anything is allocated, so a short or long file fails at once,
//!   and only a file that really holds the payload gets a buffer of that
//!   size;
//! - a gzip stream whose compressed size cannot expand to the declared size
//!   (deflate expands at most [`MAX_DEFLATE_RATIO`] times) is decompressed
//!   only to count its bytes for the error, keeping none of them; any other
//!   gzip stream (and a raw stream of unknown length, such as a pipe) is read
//!   into a buffer that grows with the bytes actually decompressed, never
//!   past the declared size.
//!
//! Either way a payload longer than declared is detected by reading one byte
//! past it, never by reading the rest.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{DataError, Result};
use crate::gzip::{GZIP_MAGIC, GzipMembers};

/// The magic number of an IDX file of `u8` images (three dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of `u8` labels (one dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The most payload bytes (pixels or labels, the header excluded) that an
/// IDX header may declare: `i32::MAX`, 2 GiB less one byte.
///
/// Why this value:
///
/// - it is the largest buffer every supported target can allocate (on a
///   32-bit target no allocation may exceed `isize::MAX`, which is this), so
///   the same file loads or fails alike everywhere;
/// - it is about four times the largest IDX data set in common use (EMNIST
///   ByClass, 697,932 training images of 28x28: 547 MB) and 45 times MNIST's
///   training images (47 MB), so no real data set comes near it;
/// - a labels file within it has fewer than 2^31 labels, so every example of
///   a loaded [`Dataset`](crate::Dataset) fits the `u32` index that
///   `backprop_nn::Batcher` shuffles;
/// - nothing larger can be trusted from a header: a sparse raw file or a
///   gzip bomb of a few megabytes costs nothing to make, and a declared size
///   is otherwise only checked by reading that much.
///
/// A header declaring more is [`DataError::TooLarge`], reported before any
/// payload is read or allocated.
pub const MAX_IDX_BYTES: u64 = i32::MAX as u64;

/// The largest expansion ratio deflate can achieve (a 258-byte match coded
/// in 2 bits), bounding how much a gzip stream of a given size can
/// decompress to: a stream of `n` bytes never yields more than
/// `n * MAX_DEFLATE_RATIO` bytes.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The least a payload buffer grows by when its final size is not known to
/// be present (gzip, or a raw stream of unknown length); after the first
/// step it grows by the bytes read so far (doubling), never past the
/// declared size.
const GROWTH_STEP: usize = 1 << 20;

/// The buffer between a gzip file and its decompressor.
const GZIP_INPUT_BUFFER: usize = 64 << 10;

/// The images of an IDX images file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// The number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

/// The labels of an IDX labels file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxLabels {
    /// One label per example.
    pub labels: Vec<u8>,
}

/// How [`write_images`] and [`write_labels`] store a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Plain IDX bytes.
    Raw,
    /// IDX bytes in a gzip stream, as the MNIST files are distributed.
    Gzip,
}

/// Reads an IDX images file, raw or gzip (decided by content).
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::CorruptGzip`],
/// [`DataError::Empty`], [`DataError::BadMagic`], [`DataError::BadDimensions`],
/// [`DataError::TooLarge`], [`DataError::Truncated`] or
/// [`DataError::TrailingBytes`] if its content is not a well-formed IDX
/// images file of at most [`MAX_IDX_BYTES`] of pixels.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_file(path, Kind::Images)?;
    Ok(IdxImages {
        count: dims.count,
        rows: dims.rows,
        cols: dims.cols,
        pixels,
    })
}

/// Reads an IDX labels file, raw or gzip (decided by content).
///
/// # Errors
/// As for [`read_images`], except that there are no dimensions to reject
/// (but still at most [`MAX_IDX_BYTES`] labels).
pub fn read_labels(path: &Path) -> Result<IdxLabels> {
    let (_, labels) = read_file(path, Kind::Labels)?;
    Ok(IdxLabels { labels })
}

/// Parses the bytes of an IDX images file, raw or gzip (decided by content);
/// `path` only names the data in errors.
///
/// # Errors
/// As for [`read_images`], except [`DataError::Io`].
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = decode(bytes, path, Kind::Images, Some(bytes.len() as u64))?;
    Ok(IdxImages {
        count: dims.count,
        rows: dims.rows,
        cols: dims.cols,
        pixels,
    })
}

/// Parses the bytes of an IDX labels file, raw or gzip (decided by content);
/// `path` only names the data in errors.
///
/// # Errors
/// As for [`read_labels`], except [`DataError::Io`].
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<IdxLabels> {
    let (_, labels) = decode(bytes, path, Kind::Labels, Some(bytes.len() as u64))?;
    Ok(IdxLabels { labels })
}

/// The raw IDX bytes of images of `rows x cols` pixels, `pixels.len() / (rows * cols)` of them.
///
/// # Panics
/// If `rows` or `cols` is zero, if `pixels.len()` is not a multiple of
/// `rows * cols`, or if a dimension exceeds `u32::MAX`.
#[track_caller]
pub fn encode_images(rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
    assert!(
        rows > 0 && cols > 0,
        "encode_images: image size {rows}x{cols} must be positive"
    );
    let per_image = rows * cols;
    assert!(
        pixels.len().is_multiple_of(per_image),
        "encode_images: {} pixels is not a whole number of {rows}x{cols} images",
        pixels.len()
    );
    let mut out = Vec::with_capacity(16 + pixels.len());
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for dim in [pixels.len() / per_image, rows, cols] {
        let dim = u32::try_from(dim).unwrap_or_else(|_| panic!("encode_images: dimension {dim} exceeds u32::MAX"));
        out.extend_from_slice(&dim.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// The raw IDX bytes of `labels`.
///
/// # Panics
/// If there are more than `u32::MAX` labels.
#[track_caller]
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let count = u32::try_from(labels.len()).expect("encode_labels: more than u32::MAX labels");
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Writes an IDX images file (see [`encode_images`]), raw or gzip.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be written.
///
/// # Panics
/// As for [`encode_images`].
#[track_caller]
pub fn write_images(path: &Path, rows: usize, cols: usize, pixels: &[u8], encoding: Encoding) -> Result<()> {
    write_bytes(path, &encode_images(rows, cols, pixels), encoding)
}

/// Writes an IDX labels file (see [`encode_labels`]), raw or gzip.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be written.
///
/// # Panics
/// As for [`encode_labels`].
#[track_caller]
pub fn write_labels(path: &Path, labels: &[u8], encoding: Encoding) -> Result<()> {
    write_bytes(path, &encode_labels(labels), encoding)
}

fn write_bytes(path: &Path, bytes: &[u8], encoding: Encoding) -> Result<()> {
    let write = || -> io::Result<()> {
        let file = File::create(path)?;
        match encoding {
            Encoding::Raw => {
                let mut file = file;
                file.write_all(bytes)?;
                file.sync_all()
            }
            Encoding::Gzip => {
                let mut encoder = GzEncoder::new(file, Compression::default());
                encoder.write_all(bytes)?;
                encoder.finish()?.sync_all()
            }
        }
    };
    write().map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Which of the two IDX file kinds is expected.
#[derive(Clone, Copy)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }

    fn header_len(self) -> usize {
        match self {
            Kind::Images => 16,
            Kind::Labels => 8,
        }
    }
}

/// The sizes a header states (`rows` and `cols` are 1 for labels).
#[derive(Debug)]
struct Dims {
    count: usize,
    rows: usize,
    cols: usize,
    payload_len: usize,
}

fn read_file(path: &Path, kind: Kind) -> Result<(Dims, Vec<u8>)> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let metadata = file.metadata().map_err(io_err)?;
    // Only a regular file's length says how many bytes reading will yield.
    let file_len = metadata.is_file().then_some(metadata.len());
    decode(file, path, kind, file_len)
}

/// Detects gzip by content, then reads and validates one IDX file from
/// `source`, which holds exactly `source_len` bytes when that is known.
fn decode(mut source: impl Read, path: &Path, kind: Kind, source_len: Option<u64>) -> Result<(Dims, Vec<u8>)> {
    let mut prefix = [0u8; 2];
    let n = read_full(&mut source, &mut prefix).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let source = (&prefix[..n]).chain(source);
    if prefix[..n] == GZIP_MAGIC {
        let members = GzipMembers::new(BufReader::with_capacity(GZIP_INPUT_BUFFER, source));
        read_idx(members, path, kind, Container::Gzip { len: source_len })
    } else {
        read_idx(source, path, kind, Container::Raw { len: source_len })
    }
}

/// What the bytes [`read_idx`] reads come from, with the stored length when
/// it is known.
#[derive(Clone, Copy)]
enum Container {
    /// The IDX bytes themselves: `len` is their exact number.
    Raw { len: Option<u64> },
    /// A gzip file of `len` compressed bytes.
    Gzip { len: Option<u64> },
}

/// Reads the header, validates it, checks the declared size against what
/// the container can hold, then reads exactly the declared payload and one
/// byte more (to detect trailing data).
fn read_idx(mut reader: impl Read, path: &Path, kind: Kind, container: Container) -> Result<(Dims, Vec<u8>)> {
    let gzip = matches!(container, Container::Gzip { .. });
    let read_err = |source| {
        let path = path.to_path_buf();
        if gzip {
            DataError::CorruptGzip { path, source }
        } else {
            DataError::Io { path, source }
        }
    };
    let header_len = kind.header_len();
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let n = read_full(&mut reader, header).map_err(read_err)?;
    if n == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    if n >= 4 {
        let found = be_u32(header, 0);
        if found != kind.magic() {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                expected: kind.magic(),
                found,
            });
        }
    }
    if n < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: header_len as u64,
            found_bytes: n as u64,
        });
    }
    let dims = parse_dims(header, kind, path)?;

    let payload_len = dims.payload_len;
    let expected_bytes = header_len as u64 + payload_len as u64;
    let truncated = |found_bytes| DataError::Truncated {
        path: path.to_path_buf(),
        expected_bytes,
        found_bytes,
    };
    let trailing = || DataError::TrailingBytes {
        path: path.to_path_buf(),
        expected_bytes,
    };
    // A stated length shorter than the header just read (as procfs and some
    // network file systems report) is no length at all.
    let container = match container {
        Container::Raw { len: Some(len) } if len < header_len as u64 => Container::Raw { len: None },
        other => other,
    };
    let first_step = match container {
        // The file's length is known: a mismatch needs no reading, and a
        // match means the payload really is there to fill the buffer.
        Container::Raw { len: Some(len) } if len < expected_bytes => return Err(truncated(len)),
        Container::Raw { len: Some(len) } if len > expected_bytes => return Err(trailing()),
        Container::Raw { len: Some(_) } => payload_len,
        // No gzip stream of this size expands to the declared size: count
        // what it does hold, keeping none of it.
        Container::Gzip { len: Some(len) } if expected_bytes > len.saturating_mul(MAX_DEFLATE_RATIO) => {
            let rest = io::copy(&mut reader, &mut io::sink()).map_err(read_err)?;
            return Err(truncated(header_len as u64 + rest));
        }
        // Otherwise trust only the bytes that arrive.
        Container::Gzip { .. } | Container::Raw { len: None } => GROWTH_STEP,
    };
    let payload = read_payload(&mut reader, payload_len, first_step).map_err(read_err)?;
    if payload.len() < payload_len {
        return Err(truncated(header_len as u64 + payload.len() as u64));
    }
    if read_full(&mut reader, &mut [0u8; 1]).map_err(read_err)? > 0 {
        return Err(trailing());
    }
    Ok((dims, payload))
}

/// Reads up to `len` bytes from `reader` (fewer if it ends first). The buffer
/// first reserves `first_step` bytes, then, each time it is full, as many
/// again as it holds (at least [`GROWTH_STEP`]), never more than `len` in
/// all: its capacity stays within `max(first_step, GROWTH_STEP, 2 * bytes
/// read)` and `len`, whatever `len` is.
fn read_payload(reader: &mut impl Read, len: usize, first_step: usize) -> io::Result<Vec<u8>> {
    let mut payload = Vec::new();
    let mut step = first_step.max(1);
    while payload.len() < len {
        let step_now = step.min(len - payload.len());
        payload.reserve_exact(step_now);
        let read = reader.by_ref().take(step_now as u64).read_to_end(&mut payload)?;
        if read < step_now {
            break;
        }
        step = payload.len().max(GROWTH_STEP);
    }
    Ok(payload)
}

/// Validates the sizes in a complete header whose magic is already checked.
fn parse_dims(header: &[u8], kind: Kind, path: &Path) -> Result<Dims> {
    let count = be_u32(header, 4);
    let (rows, cols) = match kind {
        Kind::Labels => (1, 1),
        Kind::Images => (be_u32(header, 8), be_u32(header, 12)),
    };
    let declared = u64::from(count)
        .checked_mul(u64::from(rows))
        .and_then(|n| n.checked_mul(u64::from(cols)));
    let Some(declared_bytes) = declared.filter(|_| rows > 0 && cols > 0) else {
        return Err(DataError::BadDimensions {
            path: path.to_path_buf(),
            count,
            rows,
            cols,
        });
    };
    let payload_len = usize::try_from(declared_bytes)
        .ok()
        .filter(|_| declared_bytes <= MAX_IDX_BYTES)
        .ok_or_else(|| DataError::TooLarge {
            path: path.to_path_buf(),
            declared_bytes,
            max_bytes: MAX_IDX_BYTES,
        })?;
    Ok(Dims {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        payload_len,
    })
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Writes `bytes` to `name` in a fresh temporary directory.
    fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn assert_names(err: &DataError, name: &str) {
        assert!(err.to_string().contains(name), "message does not name {name}: {err}");
    }

    fn ten_images() -> Vec<u8> {
        encode_images(2, 3, &(0..60).collect::<Vec<u8>>())
    }

    #[test]
    fn empty_file_is_rejected_by_both_readers() {
        let (_dir, path) = temp_file("train-images-idx3-ubyte", b"");
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
        assert_names(&err, "train-images-idx3-ubyte");
        let err = read_labels(&path).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
        // A gzip stream of nothing is empty too.
        let err = parse_labels(&gzip(b""), Path::new("labels.gz")).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    }

    #[test]
    fn truncated_payload_reports_expected_and_found_sizes() {
        // The header says 10 images of 2x3; keep 9.5 of them.
        let bytes = ten_images();
        let cut = &bytes[..16 + 57];
        for (name, data) in [("imgs", cut.to_vec()), ("imgs.gz", gzip(cut))] {
            let (_dir, path) = temp_file(name, &data);
            let err = read_images(&path).unwrap_err();
            match &err {
                DataError::Truncated {
                    expected_bytes,
                    found_bytes,
                    ..
                } => {
                    assert_eq!((*expected_bytes, *found_bytes), (76, 73));
                }
                other => panic!("expected Truncated, got {other:?}"),
            }
            assert_names(&err, name);
        }
    }

    #[test]
    fn truncated_header_is_rejected() {
        let bytes = ten_images();
        let (_dir, path) = temp_file("short-header", &bytes[..10]);
        let err = read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 16,
                    found_bytes: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, "short-header");
        // Too short even for the magic number.
        let err = parse_labels(&[0, 0], Path::new("tiny")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 8,
                    found_bytes: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_labels(&[1, 2, 3]);
        bytes.extend_from_slice(&[0; 1000]);
        for (name, data) in [("labels", bytes.clone()), ("labels.gz", gzip(&bytes))] {
            let (_dir, path) = temp_file(name, &data);
            let err = read_labels(&path).unwrap_err();
            assert!(
                matches!(err, DataError::TrailingBytes { expected_bytes: 11, .. }),
                "{err:?}"
            );
            assert_names(&err, name);
        }
    }

    #[test]
    fn labels_file_given_as_images_is_bad_magic() {
        let (_dir, path) = temp_file("train-labels-idx1-ubyte", &encode_labels(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
        let err = read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    expected: IMAGES_MAGIC,
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, "train-labels-idx1-ubyte");
        let (_dir, path) = temp_file("imgs", &ten_images());
        let err = read_labels(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    expected: LABELS_MAGIC,
                    found: IMAGES_MAGIC,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn zero_or_huge_dimensions_are_rejected_without_allocating() {
        let mut zero_rows = ten_images();
        zero_rows[8..12].copy_from_slice(&0u32.to_be_bytes());
        let err = parse_images(&zero_rows, Path::new("zero-rows")).unwrap_err();
        assert!(matches!(err, DataError::BadDimensions { rows: 0, .. }), "{err:?}");
        assert_names(&err, "zero-rows");

        // u32::MAX^3 overflows u64.
        let mut huge = ten_images();
        huge[4..16].copy_from_slice(&[0xff; 12]);
        let err = parse_images(&huge, Path::new("huge")).unwrap_err();
        assert!(matches!(err, DataError::BadDimensions { .. }), "{err:?}");

        // A lying header within range: reports truncation, reading only what is there.
        let mut liar = ten_images();
        liar[4..8].copy_from_slice(&100_000_000u32.to_be_bytes());
        for data in [liar.clone(), gzip(&liar)] {
            let err = parse_images(&data, Path::new("liar.gz")).unwrap_err();
            match err {
                DataError::Truncated {
                    expected_bytes,
                    found_bytes,
                    ..
                } => {
                    assert_eq!(expected_bytes, 16 + 600_000_000);
                    assert_eq!(found_bytes, 76);
                }
                other => panic!("expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn headers_declaring_more_than_max_idx_bytes_are_too_large() {
        // 2^32 - 1 images of 28x28, as in a gzip bomb: refused from the header.
        let mut bomb = encode_images(28, 28, &[0; 784 * 4]);
        bomb[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let declared = u64::from(u32::MAX) * 784;
        for (name, data) in [("bomb-idx3-ubyte", bomb.clone()), ("bomb-idx3-ubyte.gz", gzip(&bomb))] {
            let (_dir, path) = temp_file(name, &data);
            let err = read_images(&path).unwrap_err();
            assert!(
                matches!(err, DataError::TooLarge { declared_bytes, max_bytes, .. }
                    if declared_bytes == declared && max_bytes == MAX_IDX_BYTES),
                "{err:?}"
            );
            let message = err.to_string();
            for part in [name, &declared.to_string(), &MAX_IDX_BYTES.to_string()] {
                assert!(message.contains(part), "{part} missing: {message}");
            }
        }
        // Labels: one past the limit is too large, the limit itself is only short.
        let mut labels = encode_labels(&[1, 2, 3]);
        labels[4..8].copy_from_slice(&(MAX_IDX_BYTES as u32 + 1).to_be_bytes());
        let err = parse_labels(&labels, Path::new("labels")).unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err:?}");
        labels[4..8].copy_from_slice(&(MAX_IDX_BYTES as u32).to_be_bytes());
        let err = parse_labels(&labels, Path::new("labels")).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { expected_bytes, found_bytes: 11, .. } if expected_bytes == 8 + MAX_IDX_BYTES),
            "{err:?}"
        );
    }

    /// A reader that counts the bytes taken from it.
    struct Counting<'a> {
        bytes: &'a [u8],
        taken: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.bytes.read(buf)?;
            self.taken += n;
            Ok(n)
        }
    }

    fn parse_images_with_len(bytes: &[u8], len: Option<u64>) -> Result<Vec<u8>> {
        decode(bytes, Path::new("stated"), Kind::Images, len).map(|(_, pixels)| pixels)
    }

    #[test]
    fn a_raw_file_of_the_wrong_length_fails_before_its_payload_is_read() {
        let bytes = ten_images();
        // The stored length says 40 bytes: truncated, found 40, nothing read past the header.
        let mut source = Counting {
            bytes: &bytes,
            taken: 0,
        };
        let err = decode(&mut source, Path::new("short"), Kind::Images, Some(40)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 76,
                    found_bytes: 40,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(source.taken, 16);
        // The stored length says 3 GB: trailing bytes, nothing read past the header.
        let mut source = Counting {
            bytes: &bytes,
            taken: 0,
        };
        let err = decode(&mut source, Path::new("long"), Kind::Images, Some(3 << 30)).unwrap_err();
        assert!(
            matches!(err, DataError::TrailingBytes { expected_bytes: 76, .. }),
            "{err:?}"
        );
        assert_eq!(source.taken, 16);
        // A stated length shorter than the header is ignored: the data decides.
        assert_eq!(parse_images_with_len(&bytes, Some(0)).unwrap().len(), 60);
        let err = parse_images_with_len(&bytes[..50], Some(3)).unwrap_err();
        assert!(matches!(err, DataError::Truncated { found_bytes: 50, .. }), "{err:?}");
        // A sparse raw file is judged by its length alone.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse-idx3-ubyte");
        let mut header = encode_images(28, 28, &[]);
        header[4..8].copy_from_slice(&2_000_000u32.to_be_bytes());
        std::fs::write(&path, &header).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(3 << 30)
            .unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(
            matches!(err, DataError::TrailingBytes { expected_bytes, .. } if expected_bytes == 16 + 2_000_000 * 784),
            "{err:?}"
        );
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { found_bytes, .. } if found_bytes == 1 << 30),
            "{err:?}"
        );
    }

    #[test]
    fn a_gzip_stream_too_small_for_its_header_is_counted_not_kept() {
        // 1.5 GB declared, 4 MiB of zeros (a few kilobytes compressed) present.
        let mut bytes = encode_labels(&[0; 4 << 20]);
        bytes[4..8].copy_from_slice(&1_500_000_000u32.to_be_bytes());
        let err = parse_labels(&gzip(&bytes), Path::new("bomb.gz")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected_bytes: 1_500_000_008,
                    found_bytes,
                    ..
                } if found_bytes == 8 + (4 << 20)
            ),
            "{err:?}"
        );
        // A damaged stream is still reported as such.
        let mut bad_crc = gzip(&bytes);
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let err = parse_labels(&bad_crc, Path::new("bomb.gz")).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
    }

    #[test]
    fn the_payload_buffer_grows_only_with_the_bytes_read() {
        // 10 bytes where a gigabyte is declared: one growth step at most.
        let payload = read_payload(&mut &[7u8; 10][..], 1 << 30, GROWTH_STEP).unwrap();
        assert_eq!(payload, [7; 10]);
        assert!(payload.capacity() <= GROWTH_STEP, "{}", payload.capacity());
        // 5 MiB: growth doubles with what has arrived.
        let data = vec![1u8; 5 << 20];
        let payload = read_payload(&mut &data[..], 1 << 30, GROWTH_STEP).unwrap();
        assert_eq!(payload.len(), 5 << 20);
        assert!(payload.capacity() <= 2 * (5 << 20), "{}", payload.capacity());
        // The declared size is never exceeded, and a known size is reserved once.
        let payload = read_payload(&mut &data[..], 3 << 20, GROWTH_STEP).unwrap();
        assert_eq!((payload.len(), payload.capacity()), (3 << 20, 3 << 20));
        let payload = read_payload(&mut &data[..], 5 << 20, 5 << 20).unwrap();
        assert_eq!((payload.len(), payload.capacity()), (5 << 20, 5 << 20));
        assert!(read_payload(&mut &data[..], 0, 0).unwrap().is_empty());
    }

    #[test]
    fn zero_padding_after_the_last_gzip_member_is_accepted() {
        let bytes = ten_images();
        let mut padded = gzip(&bytes[..30]);
        padded.extend_from_slice(&gzip(&bytes[30..]));
        // Padded to a whole tar record, as tape archives and some mirrors write.
        padded.resize(10240, 0);
        let (_dir, path) = temp_file("padded-idx3-ubyte.gz", &padded);
        let images = read_images(&path).unwrap();
        assert_eq!(images.pixels, (0..60).collect::<Vec<u8>>());
        // Anything else after the zeros is still rejected, naming the file.
        padded.push(1);
        let (_dir, path) = temp_file("garbage-idx3-ubyte.gz", &padded);
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
        assert_names(&err, "garbage-idx3-ubyte.gz");
        // A raw file has an exact size: zeros after it are trailing bytes.
        let mut raw = bytes.clone();
        raw.extend_from_slice(&[0; 100]);
        let err = parse_images(&raw, Path::new("raw")).unwrap_err();
        assert!(matches!(err, DataError::TrailingBytes { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_gzip_stream_is_reported_as_such() {
        let good = gzip(&ten_images());
        // A valid gzip header followed by garbage deflate data.
        let mut garbage = good[..10].to_vec();
        garbage.extend_from_slice(&[0xff; 64]);
        // A deflate stream cut short.
        let cut = good[..good.len() / 2].to_vec();
        // A damaged CRC in the trailer.
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        for (name, data) in [("garbage.gz", garbage), ("cut.gz", cut), ("crc.gz", bad_crc)] {
            let (_dir, path) = temp_file(name, &data);
            let err = read_images(&path).unwrap_err();
            assert!(matches!(err, DataError::CorruptGzip { .. }), "{name}: {err:?}");
            assert_names(&err, name);
            assert!(err.to_string().contains("corrupt gzip stream"), "{err}");
        }
    }

    #[test]
    fn missing_file_is_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere-idx1-ubyte");
        let err = read_labels(&path).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert_names(&err, "nowhere-idx1-ubyte");
    }

    #[test]
    fn encoding_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let raw_named_gz = dir.path().join("raw.gz");
        let gzip_named_raw = dir.path().join("gzip-idx3-ubyte");
        let pixels: Vec<u8> = (0..=255).collect();
        write_images(&raw_named_gz, 4, 4, &pixels, Encoding::Raw).unwrap();
        write_images(&gzip_named_raw, 4, 4, &pixels, Encoding::Gzip).unwrap();
        assert_eq!(std::fs::read(&gzip_named_raw).unwrap()[..2], GZIP_MAGIC);
        for path in [raw_named_gz, gzip_named_raw] {
            let images = read_images(&path).unwrap();
            assert_eq!((images.count, images.rows, images.cols), (16, 4, 4));
            assert_eq!(images.pixels, pixels);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_read_whole() {
        let bytes = encode_labels(&[3, 1, 4, 1, 5]);
        let mut data = gzip(&bytes[..6]);
        data.extend_from_slice(&gzip(&bytes[6..]));
        assert_eq!(
            parse_labels(&data, Path::new("multi.gz")).unwrap().labels,
            [3, 1, 4, 1, 5]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn write_then_read_round_trips(
            count in 0usize..6,
            rows in 1usize..6,
            cols in 1usize..6,
            gz in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = backprop_tensor::Rng::seed_from_u64(seed);
            let pixels: Vec<u8> = (0..count * rows * cols).map(|_| rng.next_u64() as u8).collect();
            let labels: Vec<u8> = (0..count).map(|_| rng.below(10) as u8).collect();
            let encoding = if gz { Encoding::Gzip } else { Encoding::Raw };
            let dir = tempfile::tempdir().unwrap();
            let (ip, lp) = (dir.path().join("images"), dir.path().join("labels"));
            write_images(&ip, rows, cols, &pixels, encoding).unwrap();
            write_labels(&lp, &labels, encoding).unwrap();
            let images = read_images(&ip).unwrap();
            prop_assert_eq!(images, IdxImages { count, rows, cols, pixels });
            prop_assert_eq!(read_labels(&lp).unwrap().labels, labels);
        }
    }
}
