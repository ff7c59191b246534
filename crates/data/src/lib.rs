//! MNIST-style data sets for backprop: validated IDX loading, compact
//! storage, and seeded shuffled mini-batches.
//!
//! - [`load_dir`] finds the four standard files of a directory (either
//!   spelling, raw or gzipped, detected by content) and returns a
//!   [`TrainTest`] pair of [`Dataset`]s after checking that counts, image
//!   shapes and labels agree;
//! - [`read_images`], [`read_labels`] (and [`parse_images`], [`parse_labels`]
//!   for bytes in memory) read single IDX files, and [`write_images`],
//!   [`write_labels`] write them, for tests and tools;
//! - [`Dataset`] keeps pixels and labels as bytes and converts a batch of
//!   rows to `[0, 1]` floats with [`Dataset::gather_into`];
//! - [`Dataset`] is a `backprop_nn::Examples` source, so `backprop_nn`'s
//!   trainer shuffles and batches it (compressed batches for mostly-zero
//!   images, copied from the images compressed once, the next one made by
//!   an idle thread during each step: [`Dataset::prepare_beside`]), and a
//!   CSV table becomes a `backprop_nn::Features` table
//!   ([`CsvTable::to_features`]); [`hash_dir`] records a directory's files
//!   for a checkpoint.
//!
//! - [`Augment`] distorts images at random (shifts, rotations, scaling,
//!   shear, Simard's elastic distortions, stroke thickening and thinning,
//!   mirroring), and [`Augmented`] wraps a [`Dataset`] as a training source
//!   that distorts every example anew each epoch, reproducibly.
//!
//! - [`preprocess_digit`] brings any grayscale picture of a digit into
//!   MNIST's form (28x28, ink bright on black, 20-pixel box, centred by
//!   centre of mass), for predicting on one's own images, and
//!   [`load_digit_image`] does so for a PNG, JPEG or PNM file (and
//!   [`decode_digit_image`] for one's bytes in memory), refusing
//!   files over [`MAX_IMAGE_FILE_BYTES`] and pictures over
//!   [`MAX_IMAGE_PIXELS`] before decoding them.
//! - [`read_csv`] (and [`parse_csv`] for bytes in memory) reads a tabular
//!   data set: numeric feature columns and a target of class labels or
//!   values, checked row by row against the header.
//! - [`content_sha256`] identifies a file by the SHA-256 of its decompressed
//!   content, which stays the same when a mirror recompresses it.
//! - with the `download` feature, `download()` fetches MNIST or
//!   Fashion-MNIST (or any `DatasetSpec`) from the first of several sources
//!   that yields files with the expected hashes.
//!
//! Every failure is a [`DataError`] whose message names the file and says
//! what was expected and what was found. No size declared in a file's header
//! is allocated before it is checked against a limit ([`MAX_IDX_BYTES`],
//! [`MAX_IMAGE_PIXELS`]) and, for IDX files, against what the file can hold.
#![deny(missing_docs)]

mod augment;
mod csv;
mod dataset;
mod digit_image;
#[cfg(feature = "download")]
mod download;
mod error;
mod examples;
mod gzip;
mod hash;
mod idx;
mod mnist;
mod preprocess;

pub use augment::{Augment, Augmented, Elastic, Scratch};
pub use csv::{CsvOptions, CsvTable, CsvTarget, MAX_CSV_BYTES, MAX_CSV_ROWS, TargetKind, parse_csv, read_csv};
pub use dataset::{Dataset, pixel_to_f32};
pub use digit_image::{MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, decode_digit_image, load_digit_image};
#[cfg(feature = "download")]
pub use download::{
    DatasetSpec, Event, FASHION_MNIST, Failure, Fetched, FileSpec, KnownDataset, MIRROR_ENV, MNIST, Options, Source,
    SourceFailure, download,
};
pub use error::{DataError, Result};
pub use examples::hash_dir;
pub use hash::content_sha256;
pub use idx::{
    Encoding, IMAGES_MAGIC, IdxImages, IdxLabels, LABELS_MAGIC, MAX_IDX_BYTES, encode_images, encode_labels,
    parse_images, parse_labels, read_images, read_labels, write_images, write_labels,
};
pub use mnist::{
    FASHION_MNIST_CLASS_NAMES, FILES, MNIST_CLASS_NAMES, MNIST_CLASSES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES,
    TRAIN_LABELS, TrainTest, candidates, find_file, load_dir, load_dir_with_classes,
};
pub use preprocess::{DIGIT_BOX, DIGIT_FRAME, DIGIT_PIXELS, MIN_INK_CONTRAST, Preprocessed, preprocess_digit};
