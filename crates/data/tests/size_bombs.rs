//! Files whose headers declare far more data than they hold, or than is
//! sensible to load, must fail with memory near what they really hold.
//!
//! Each test measures the growth of this process's peak resident set
//! (`VmHWM` in `/proc/self/status`, reset through `/proc/self/clear_refs`
//! where the kernel allows it) around one read, so this file is its own test
//! binary, and the tests run one at a time under a lock. Linux only.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use backprop_data::{
    DataError, MAX_IDX_BYTES, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, encode_images, load_digit_image, read_images,
};
use flate2::Compression;
use flate2::write::GzEncoder;

/// The most the peak resident set may grow while a bomb is read: far below
/// the hundreds of megabytes to gigabytes each bomb declares or holds.
const BUDGET: u64 = 64 << 20;

/// One measurement at a time: the peak is the whole process's.
static LOCK: Mutex<()> = Mutex::new(());

/// The peak resident set so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb << 10
}

/// Runs `f` and returns its result with how much the peak resident set grew.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    // Resetting the peak to the current resident set makes earlier peaks
    // irrelevant; where it is not allowed, they only make the test lenient.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss();
    let out = f();
    (out, peak_rss().saturating_sub(before))
}

fn assert_within_budget(growth: u64, what: &str) {
    assert!(
        growth < BUDGET,
        "{what}: the peak resident set grew by {} MiB, budget {} MiB",
        growth >> 20,
        BUDGET >> 20
    );
}

/// A gzip file: the member `gzip(prefix)`, then `mib` members of one MiB of
/// zeros each (about a kilobyte apiece), so it decompresses to
/// `prefix.len() + mib` MiB while taking about `mib` KB.
fn zeros_bomb(prefix: &[u8], mib: usize) -> Vec<u8> {
    let member = |bytes: &[u8]| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let zeros = member(&vec![0; 1 << 20]);
    let mut out = member(prefix);
    for _ in 0..mib {
        out.extend_from_slice(&zeros);
    }
    out
}

/// An IDX images header declaring `count` images of 28x28.
fn header(count: u32) -> Vec<u8> {
    let mut header = encode_images(28, 28, &[]);
    header[4..8].copy_from_slice(&count.to_be_bytes());
    header
}

/// Writes `head` to `path`, then extends the file with a hole to `len` bytes.
fn sparse_file(path: &Path, head: &[u8], len: u64) {
    let mut file = File::create(path).unwrap();
    file.write_all(head).unwrap();
    file.set_len(len).unwrap();
}

#[test]
fn a_gzip_bomb_declaring_2_pow_32_images_is_refused_from_its_header() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb-idx3-ubyte.gz");
    // About 2 MB holding 2 GiB of zeros, under a header of 2^32 - 1 images.
    std::fs::write(&path, zeros_bomb(&header(u32::MAX), 2048)).unwrap();
    let (result, growth) = peak_growth(|| read_images(&path));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DataError::TooLarge { declared_bytes, .. } if declared_bytes == u64::from(u32::MAX) * 784),
        "{err:?}"
    );
    assert_within_budget(growth, "gzip bomb over MAX_IDX_BYTES");
}

#[test]
fn a_gzip_bomb_within_the_size_limit_is_counted_not_kept() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb-idx3-ubyte.gz");
    // 2.1 GB declared (within MAX_IDX_BYTES), 256 MiB of zeros present.
    let count = 2_700_000u32;
    assert!(u64::from(count) * 784 <= MAX_IDX_BYTES);
    std::fs::write(&path, zeros_bomb(&header(count), 256)).unwrap();
    let (result, growth) = peak_growth(|| read_images(&path));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated { expected_bytes, found_bytes, .. }
                if expected_bytes == 16 + u64::from(count) * 784 && found_bytes == 16 + (256 << 20)
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bomb-idx3-ubyte.gz"), "{err}");
    assert_within_budget(growth, "gzip bomb within MAX_IDX_BYTES");
}

#[test]
fn sparse_raw_files_are_judged_by_their_length() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse-idx3-ubyte");
    let count = 2_700_000u32;
    let expected = 16 + u64::from(count) * 784;

    // The 3 GB file with a header of 2^32 - 1 images: too large.
    sparse_file(&path, &header(u32::MAX), 3 << 30);
    let (result, growth) = peak_growth(|| read_images(&path));
    assert!(matches!(result, Err(DataError::TooLarge { .. })), "{result:?}");
    assert_within_budget(growth, "3 GB raw file over MAX_IDX_BYTES");

    // 1 GiB where 2.1 GB is declared: truncated, found the file's length.
    sparse_file(&path, &header(count), 1 << 30);
    let (result, growth) = peak_growth(|| read_images(&path));
    assert!(
        matches!(result, Err(DataError::Truncated { expected_bytes, found_bytes, .. })
            if expected_bytes == expected && found_bytes == 1 << 30),
        "{result:?}"
    );
    assert_within_budget(growth, "short raw file");

    // 3 GiB where 2.1 GB is declared: trailing bytes.
    sparse_file(&path, &header(count), 3 << 30);
    let (result, growth) = peak_growth(|| read_images(&path));
    assert!(
        matches!(result, Err(DataError::TrailingBytes { expected_bytes, .. }) if expected_bytes == expected),
        "{result:?}"
    );
    assert_within_budget(growth, "long raw file");
}

#[test]
fn huge_images_are_refused_before_decoding() {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();

    // A complete 19000x19000 PGM (361 MB, a hole on disk): too many pixels.
    let path = dir.path().join("big.pgm");
    let head = b"P5\n19000 19000\n255\n";
    sparse_file(&path, head, head.len() as u64 + 19000 * 19000);
    let (result, growth) = peak_growth(|| load_digit_image(&path));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DataError::ImageTooLarge { pixels: 361_000_000, max_pixels, .. } if max_pixels == MAX_IMAGE_PIXELS),
        "{err:?}"
    );
    assert_within_budget(growth, "19000x19000 PGM");

    // A complete 22000x22000 PGM (484 MB): too long to read at all.
    let path = dir.path().join("bigger.pgm");
    let head = b"P5\n22000 22000\n255\n";
    sparse_file(&path, head, head.len() as u64 + 22000 * 22000);
    let (result, growth) = peak_growth(|| load_digit_image(&path));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DataError::ImageFileTooLarge { max_bytes, .. } if max_bytes == MAX_IMAGE_FILE_BYTES),
        "{err:?}"
    );
    assert_within_budget(growth, "22000x22000 PGM");
}
