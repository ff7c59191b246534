//! The one error type of this crate, [`DataError`], with structured fields.
//!
//! Every variant that concerns a file carries its path, and every variant that
//! rejects a value carries what was expected next to what was found, so that
//! the message alone tells a user which file to fix and how.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::idx::{IMAGES_MAGIC, LABELS_MAGIC};

/// Shorthand for results whose error is a [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

/// Why a data set could not be read, parsed or assembled.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A table that was read but cannot form a dataset.
    #[error("{}: {reason}", path.display())]
    Table {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The file could not be opened or read.
    #[error("{}: cannot read file", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },

    /// The file starts like a gzip stream (bytes `1f 8b`) but does not
    /// decompress: its deflate data is damaged or cut short.
    #[error("{}: corrupt gzip stream", path.display())]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        source: io::Error,
    },

    /// The file holds no bytes at all (after decompression, if gzip).
    #[error("{}: file is empty, expected an IDX header", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// The first four bytes are not the magic number of the expected kind of
    /// IDX file (for instance, a labels file given where images belong).
    #[error(
        "{}: bad magic number {found:#010x} ({}), expected {expected:#010x} ({})",
        path.display(), magic_name(*found), magic_name(*expected)
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number this reader accepts.
        expected: u32,
        /// The magic number the file starts with.
        found: u32,
    },

    /// The header states dimensions that no image file can have: zero rows or
    /// columns, or a total size beyond 64 bits.
    #[error(
        "{}: invalid image dimensions in the IDX header: {count} images of {rows}x{cols} pixels \
         (rows and columns must be positive and the total size must fit in 64 bits)",
        path.display()
    )]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// The number of images the header states.
        count: u32,
        /// The number of rows per image the header states.
        rows: u32,
        /// The number of columns per image the header states.
        cols: u32,
    },

    /// The header declares more payload than
    /// [`MAX_IDX_BYTES`](crate::MAX_IDX_BYTES); nothing past the header is
    /// read.
    #[error(
        "{}: the IDX header declares {declared_bytes} bytes of data, more than the {max_bytes} bytes \
         this reader accepts (MAX_IDX_BYTES)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The payload size the header declares (images times rows times
        /// columns, or the label count).
        declared_bytes: u64,
        /// The most that is accepted, [`MAX_IDX_BYTES`](crate::MAX_IDX_BYTES).
        max_bytes: u64,
    },

    /// The file (after decompression, if gzip) is shorter than its header, or
    /// than the header plus the payload the header states.
    #[error(
        "{}: truncated IDX data: the header calls for {expected_bytes} bytes (header and payload), \
         the file holds only {found_bytes}",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The number of bytes the header (or the header's own size) calls for.
        expected_bytes: u64,
        /// The number of bytes the file actually holds.
        found_bytes: u64,
    },

    /// The file (after decompression, if gzip) continues past the payload its
    /// header states, so the header and the data disagree.
    #[error(
        "{}: unexpected bytes after the IDX data: the header calls for exactly {expected_bytes} bytes, \
         but the file holds more",
        path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The number of bytes the header calls for.
        expected_bytes: u64,
    },

    /// An images file and its labels file disagree on the number of examples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels; the counts must agree",
        images_path.display(), labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// The number of images.
        images: usize,
        /// The number of labels.
        labels: usize,
    },

    /// A label in a labels file is not below the number of classes.
    #[error(
        "{}: label {label} at index {index} is out of range, expected a class below {n_classes}",
        path.display()
    )]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// The position of the first offending label.
        index: usize,
        /// The offending label.
        label: u8,
        /// The number of classes; labels must lie in `0..n_classes`.
        n_classes: usize,
    },

    /// The training and test images have different sizes.
    #[error(
        "{} holds images of {}x{} pixels but {} holds images of {}x{}; train and test must agree",
        train_path.display(), train_shape.0, train_shape.1, test_path.display(), test_shape.0, test_shape.1
    )]
    ShapeMismatch {
        /// The training images file.
        train_path: PathBuf,
        /// The test images file.
        test_path: PathBuf,
        /// `(rows, cols)` of the training images.
        train_shape: (usize, usize),
        /// `(rows, cols)` of the test images.
        test_shape: (usize, usize),
    },

    /// One of the standard data files is not in the data directory under any
    /// accepted spelling.
    #[error(
        "{}: no file {name} in this directory (tried {})",
        dir.display(), display_list(tried)
    )]
    MissingFile {
        /// The data directory.
        dir: PathBuf,
        /// The standard name of the missing file, such as `train-images-idx3-ubyte`.
        name: String,
        /// Every path that was looked for, in order.
        tried: Vec<PathBuf>,
    },

    /// The data directory does not exist.
    #[error("data directory {} does not exist", path.display())]
    MissingDirectory {
        /// The path given as the data directory.
        path: PathBuf,
    },

    /// The path given as the data directory exists but is not a directory.
    #[error("{} is not a directory, expected a directory holding the data files", path.display())]
    NotADirectory {
        /// The path given as the data directory.
        path: PathBuf,
    },

    /// In-memory data handed to [`Dataset::new`](crate::Dataset::new) has an
    /// impossible shape: zero rows or columns, or a class count outside
    /// `1..=256`, or more examples than a `u32` index can name.
    #[error(
        "invalid dataset shape: {n_examples} examples of {rows}x{cols} pixels with {n_classes} classes \
         (rows and columns must be positive, classes between 1 and 256, examples at most 2^32 - 1)"
    )]
    InvalidShape {
        /// The number of examples (labels) given.
        n_examples: usize,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
        /// The number of classes.
        n_classes: usize,
    },

    /// A setting of an [`Augment`](crate::Augment) is outside the range it
    /// may take (or not a finite number).
    #[error("augmentation setting `{key}` is {value}, expected {expected}")]
    AugmentOutOfRange {
        /// The setting, as a spec string names it (`shift`, `rotate`,
        /// `scale`, `shear`, `elastic` alpha or sigma as `elastic.alpha` and
        /// `elastic.sigma`, `thickness`).
        key: &'static str,
        /// The value found.
        value: f32,
        /// The range accepted, in words.
        expected: &'static str,
    },

    /// An augmentation spec string given to
    /// [`Augment::parse`](crate::Augment::parse) cannot be read.
    #[error("augmentation spec `{spec}`: item `{item}`: expected {expected}")]
    AugmentSpec {
        /// The whole spec string.
        spec: String,
        /// The key of the item that failed (the item itself when it names no
        /// known key).
        key: String,
        /// The item that failed, as written.
        item: String,
        /// What was expected, in words.
        expected: String,
    },

    /// In-memory data handed to [`Dataset::new`](crate::Dataset::new) has a
    /// pixel buffer whose length is not `labels * rows * cols`.
    #[error(
        "pixel buffer holds {n_pixels} bytes, expected {n_labels} images of {rows}x{cols} = {} bytes",
        n_labels.saturating_mul(rows.saturating_mul(*cols))
    )]
    PixelCountMismatch {
        /// The length of the pixel buffer.
        n_pixels: usize,
        /// The number of labels, hence of images expected.
        n_labels: usize,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },

    /// In-memory data handed to [`Dataset::new`](crate::Dataset::new) has a
    /// label that is not below the number of classes.
    #[error("label {label} at index {index} is out of range, expected a class below {n_classes}")]
    InvalidLabel {
        /// The position of the first offending label.
        index: usize,
        /// The offending label.
        label: u8,
        /// The number of classes.
        n_classes: usize,
    },

    /// An image handed to [`preprocess_digit`](crate::preprocess_digit) has
    /// no pixels.
    #[error("the image is empty ({width}x{height} pixels), expected a picture of a digit")]
    EmptyImage {
        /// Its width in pixels.
        width: usize,
        /// Its height in pixels.
        height: usize,
    },

    /// The luminance buffer handed to
    /// [`preprocess_digit`](crate::preprocess_digit) does not hold
    /// `width * height` bytes.
    #[error(
        "luminance buffer holds {found} bytes, expected {width}x{height} = {} bytes",
        width.saturating_mul(*height)
    )]
    ImageBufferMismatch {
        /// The stated width.
        width: usize,
        /// The stated height.
        height: usize,
        /// The length of the buffer.
        found: usize,
    },

    /// An image handed to [`preprocess_digit`](crate::preprocess_digit) has
    /// no ink: nothing stands out from the background by at least
    /// [`MIN_INK_CONTRAST`](crate::MIN_INK_CONTRAST) grey levels.
    #[error(
        "no ink found in the {width}x{height} image: nothing stands out from the background by more \
         than {contrast} grey levels, expected at least {min_contrast} (is it blank?)"
    )]
    BlankImage {
        /// Its width in pixels.
        width: usize,
        /// Its height in pixels.
        height: usize,
        /// How far the strongest ink stands out from the background (0-255).
        contrast: u8,
        /// The least contrast that counts as ink.
        min_contrast: u8,
    },

    /// CSV data is larger than [`MAX_CSV_BYTES`](crate::MAX_CSV_BYTES).
    #[error("{}: too large for a CSV table: expected at most {limit} bytes, found {found_bytes}", path.display())]
    CsvTooLarge {
        /// The file.
        path: PathBuf,
        /// The size of the data; for a file that grew while it was read, the
        /// bytes read before stopping (one past the limit).
        found_bytes: u64,
        /// The largest size accepted.
        limit: u64,
    },

    /// A CSV file holds no rows at all, not even a header.
    #[error("{}: the file is empty, expected a header row naming the columns", path.display())]
    CsvEmpty {
        /// The file.
        path: PathBuf,
    },

    /// Every cell of the first row of a CSV file is a number: the file has no
    /// header.
    #[error(
        "{}: line {line}: the first row looks like data (its first cell is `{first_cell}`); \
         a header row naming the columns is required",
        path.display()
    )]
    CsvNoHeader {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the first row.
        line: u64,
        /// The first cell of that row.
        first_cell: String,
    },

    /// A header cell of a CSV file is empty, so its column has no name.
    #[error(
        "{}: line {line}: the header leaves column {position} unnamed, expected a name for every column \
         (an index column written without a name? drop it)",
        path.display()
    )]
    CsvUnnamedColumn {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
        /// The 1-based position of the column in the header.
        position: usize,
    },

    /// Two columns of a CSV file have the same name.
    #[error(
        "{}: line {line}: the header names column `{column}` twice (columns {first} and {second}), \
         expected unique names",
        path.display()
    )]
    CsvDuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
        /// The repeated name.
        column: String,
        /// The 1-based position of its first occurrence.
        first: usize,
        /// The 1-based position of its second occurrence.
        second: usize,
    },

    /// The header of a CSV file has no column of the target's name.
    #[error(
        "{}: line {line}: the header has no column `{target}`, expected the target column among {}",
        path.display(), display_names(available)
    )]
    CsvMissingTarget {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
        /// The name of the target column asked for.
        target: String,
        /// Every column the header names, in order.
        available: Vec<String>,
    },

    /// The header of a CSV file names the target column and nothing else.
    #[error(
        "{}: line {line}: the header names only the target column `{target}`, \
         expected at least one feature column besides it",
        path.display()
    )]
    CsvNoFeatures {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
        /// The name of the target column.
        target: String,
    },

    /// The feature columns of a CSV file (an evaluation file, say) are not
    /// those expected (the training file's).
    #[error(
        "{}: line {line}: the feature columns differ from those expected (same names in the same order): {}",
        path.display(), feature_difference(expected, found)
    )]
    CsvFeatureMismatch {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
        /// The feature columns expected, in order.
        expected: Vec<String>,
        /// The feature columns the header names, in order.
        found: Vec<String>,
    },

    /// A row of a CSV file has more or fewer fields than the header.
    #[error("{}: line {line}: expected {expected} fields (one per header column), found {found}", path.display())]
    CsvRaggedRow {
        /// The file.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// The number of columns of the header.
        expected: usize,
        /// The number of fields of the row.
        found: usize,
    },

    /// A cell of a CSV file is empty (or only blanks).
    #[error("{}: line {line}, column `{column}`: the cell is empty, expected a value", path.display())]
    CsvMissingValue {
        /// The file.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// The name of the column.
        column: String,
    },

    /// A cell of a numeric column of a CSV file is not a finite number.
    #[error("{}: line {line}, column `{column}`: expected a finite number, found `{found}`", path.display())]
    CsvBadNumber {
        /// The file.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// The name of the column.
        column: String,
        /// The cell (its first 40 characters).
        found: String,
    },

    /// A cell of a CSV file that must be text is not valid UTF-8.
    #[error("{}: line {line}, column `{column}`: expected UTF-8 text, found invalid bytes", path.display())]
    CsvInvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// The name of the column (for a header cell: the cell itself, with
        /// the invalid bytes replaced).
        column: String,
    },

    /// A class label of a CSV file is not among the class names fixed at
    /// training.
    #[error(
        "{}: line {line}, column `{column}`: unknown class `{found}`, expected one of the classes \
         fixed at training: {}",
        path.display(), display_names(expected)
    )]
    CsvUnknownClass {
        /// The file.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// The name of the target column.
        column: String,
        /// The label (its first 40 characters).
        found: String,
        /// The class names accepted, in order.
        expected: Vec<String>,
    },

    /// The class target of a CSV training file holds a single class.
    #[error(
        "{}: column `{column}` holds only the class `{class}` ({rows} rows), \
         expected at least two classes: a classifier needs two to tell apart",
        path.display()
    )]
    CsvSingleClass {
        /// The file.
        path: PathBuf,
        /// The name of the target column.
        column: String,
        /// The one class present.
        class: String,
        /// The number of data rows.
        rows: usize,
    },

    /// A CSV file has a header but no data rows.
    #[error("{}: no data rows after the header on line {line}, expected at least one", path.display())]
    CsvNoRows {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the header.
        line: u64,
    },

    /// A CSV file has more data rows than a table can index.
    #[error("{}: line {line}: more than {limit} data rows, the most a table can hold", path.display())]
    CsvTooManyRows {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the first row past the limit.
        line: u64,
        /// The most data rows accepted.
        limit: u64,
    },

    /// An image file handed to [`load_digit_image`](crate::load_digit_image)
    /// is larger than [`MAX_IMAGE_FILE_BYTES`](crate::MAX_IMAGE_FILE_BYTES);
    /// nothing is read from it.
    #[error(
        "{}: the image file holds {bytes} bytes, more than the {max_bytes} accepted \
         (MAX_IMAGE_FILE_BYTES); scale the picture down or convert it to PNG or JPEG",
        path.display()
    )]
    ImageFileTooLarge {
        /// The image file.
        path: PathBuf,
        /// Its length.
        bytes: u64,
        /// The most that is accepted,
        /// [`MAX_IMAGE_FILE_BYTES`](crate::MAX_IMAGE_FILE_BYTES).
        max_bytes: u64,
    },

    /// An image file handed to [`load_digit_image`](crate::load_digit_image)
    /// declares more pixels than
    /// [`MAX_IMAGE_PIXELS`](crate::MAX_IMAGE_PIXELS); it is rejected from its
    /// header, before any pixel is decoded.
    #[error(
        "{}: the image is {width}x{height} = {pixels} pixels, more than the {max_pixels} accepted \
         (MAX_IMAGE_PIXELS); scale the picture down",
        path.display()
    )]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Its width in pixels, as its header states.
        width: u32,
        /// Its height in pixels, as its header states.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The most that is accepted,
        /// [`MAX_IMAGE_PIXELS`](crate::MAX_IMAGE_PIXELS).
        max_pixels: u64,
    },

    /// An image file handed to [`load_digit_image`](crate::load_digit_image)
    /// is not a PNG, JPEG or PNM image, or is damaged.
    #[error("{}: cannot decode the image (expected PNG, JPEG or PGM/PNM)", path.display())]
    ImageDecode {
        /// The image file.
        path: PathBuf,
        /// What the decoder reported.
        source: image::ImageError,
    },

    /// The picture in an image file handed to
    /// [`load_digit_image`](crate::load_digit_image) decodes, but
    /// [`preprocess_digit`](crate::preprocess_digit) finds no digit in it
    /// (the cause: [`DataError::EmptyImage`] or [`DataError::BlankImage`]).
    #[error("{}: cannot find a digit", path.display())]
    NoDigit {
        /// The image file.
        path: PathBuf,
        /// Why [`preprocess_digit`](crate::preprocess_digit) failed.
        source: Box<DataError>,
    },

    /// No source yielded a file of a data set with the expected content
    /// (feature `download`).
    #[cfg(feature = "download")]
    #[error(
        "cannot get {file} of {dataset} into {}: {}\n\
         Pass `--from DIR` with a local copy of the data set's files (gzipped or raw), \
         or set BACKPROP_DATA_MIRROR to such a directory or to a mirror's http(s) URL.",
        dest.display(), display_failures(failures)
    )]
    Download {
        /// The data set, such as `mnist`.
        dataset: String,
        /// The standard base name of the file, such as `train-images-idx3-ubyte`.
        file: String,
        /// The destination directory.
        dest: PathBuf,
        /// Every source tried, in order, with why it failed.
        failures: Vec<crate::download::SourceFailure>,
    },
}

/// What kind of IDX file a magic number announces, for messages.
fn magic_name(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "IDX images",
        LABELS_MAGIC => "IDX labels",
        _ if magic >> 16 == 0 => "another IDX type",
        _ => "not an IDX file",
    }
}

/// One line per source tried, for [`DataError::Download`].
#[cfg(feature = "download")]
fn display_failures(failures: &[crate::download::SourceFailure]) -> String {
    if failures.is_empty() {
        return "there was no source to try.".to_owned();
    }
    let mut text = String::from("every source failed:");
    for (i, failure) in failures.iter().enumerate() {
        text.push_str(&format!("\n  {}. {failure}", i + 1));
    }
    text
}

/// The names of a list of columns or classes, in backquotes, the first 20 of
/// a longer list.
fn display_names(names: &[String]) -> String {
    const SHOWN: usize = 20;
    if names.is_empty() {
        return "(none)".to_owned();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", … and {} more", names.len() - SHOWN));
    }
    text
}

/// Where two lists of feature columns first part, for
/// [`DataError::CsvFeatureMismatch`].
fn feature_difference(expected: &[String], found: &[String]) -> String {
    let detail = match expected.iter().zip(found).position(|(e, f)| e != f) {
        Some(i) => format!("feature column {} is `{}`, expected `{}`", i + 1, found[i], expected[i]),
        None => match (expected.get(found.len()), found.get(expected.len())) {
            (Some(missing), _) => format!("`{missing}` is missing at the end"),
            (_, Some(extra)) => format!("`{extra}` is extra at the end"),
            (None, None) => "the lists agree".to_owned(),
        },
    };
    format!(
        "found {} feature columns, expected {}; {detail}",
        found.len(),
        expected.len()
    )
}

/// `a, b, c` for a list of paths.
fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_magic_message_names_file_and_both_kinds() {
        let err = DataError::BadMagic {
            path: "train-images-idx3-ubyte.gz".into(),
            expected: IMAGES_MAGIC,
            found: LABELS_MAGIC,
        };
        assert_eq!(
            err.to_string(),
            "train-images-idx3-ubyte.gz: bad magic number 0x00000801 (IDX labels), expected 0x00000803 (IDX images)"
        );
        let err = DataError::BadMagic {
            path: "x".into(),
            expected: LABELS_MAGIC,
            found: 0x1234_5678,
        };
        assert!(err.to_string().contains("0x12345678 (not an IDX file)"), "{err}");
    }

    #[test]
    fn data_error_can_cross_threads_and_be_boxed() {
        // `anyhow` and `load_dir`'s loader thread need both.
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<DataError>();
    }

    #[test]
    fn missing_file_message_lists_every_spelling_tried() {
        let err = DataError::MissingFile {
            dir: "/data".into(),
            name: "t10k-labels-idx1-ubyte".into(),
            tried: vec!["/data/a".into(), "/data/b.gz".into()],
        };
        assert_eq!(
            err.to_string(),
            "/data: no file t10k-labels-idx1-ubyte in this directory (tried /data/a, /data/b.gz)"
        );
    }
}
