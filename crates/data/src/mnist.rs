//! Loading an MNIST-style directory of four IDX files into a [`TrainTest`]
//! pair of validated datasets (MNIST, Fashion-MNIST and their kin).

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, first_label_out_of_range};
use crate::error::{DataError, Result};
use crate::idx::{IdxImages, read_images, read_labels};

/// The standard base name of the training images.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// The standard base name of the training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// The standard base name of the test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// The standard base name of the test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// The four standard base names: train images, train labels, test images,
/// test labels.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// The number of classes of MNIST and Fashion-MNIST.
pub const MNIST_CLASSES: usize = 10;

/// MNIST's class names, in label order: the digits `0` to `9`.
pub const MNIST_CLASS_NAMES: [&str; MNIST_CLASSES] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's class names, in label order, as Zalando Research
/// publishes them.
pub const FASHION_MNIST_CLASS_NAMES: [&str; MNIST_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A training set and a test set with the same image shape and classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainTest {
    /// The training examples.
    pub train: Dataset,
    /// The held-out test examples.
    pub test: Dataset,
}

/// Every path under which the file with standard name `base` is accepted in
/// `dir`, in the order they are tried: the standard name, then the spelling
/// with a dot before `idx` (`train-images.idx3-ubyte`), each raw before
/// gzipped (`.gz`).
pub fn candidates(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut names = vec![base.to_owned()];
    if let Some(at) = base.rfind("-idx") {
        names.push(format!("{}.{}", &base[..at], &base[at + 1..]));
    }
    names
        .iter()
        .flat_map(|name| [dir.join(name), dir.join(format!("{name}.gz"))])
        .collect()
}

/// The first of [`candidates`]`(dir, base)` that is an existing file.
pub fn find_file(dir: &Path, base: &str) -> Option<PathBuf> {
    candidates(dir, base).into_iter().find(|path| path.is_file())
}

/// Loads the four standard files of `dir` (see [`FILES`] and [`candidates`])
/// with [`MNIST_CLASSES`] classes.
///
/// # Errors
/// As for [`load_dir_with_classes`].
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    load_dir_with_classes(dir, MNIST_CLASSES)
}

/// Loads the four standard files of `dir` (see [`FILES`] and [`candidates`]),
/// each raw or gzipped, and checks that they form one data set.
///
/// # Errors
/// [`DataError::MissingDirectory`] or [`DataError::NotADirectory`] if `dir`
/// is not a directory; [`DataError::MissingFile`] if a file is absent under
/// every spelling; any error of [`read_images`] and [`read_labels`];
/// [`DataError::CountMismatch`] if a split has different numbers of images
/// and labels; [`DataError::ShapeMismatch`] if train and test images differ
/// in size; [`DataError::LabelOutOfRange`] if a label is not below
/// `n_classes`; [`DataError::InvalidShape`] if `n_classes` is outside
/// `1..=256`.
pub fn load_dir_with_classes(dir: &Path, n_classes: usize) -> Result<TrainTest> {
    if !dir.is_dir() {
        let path = dir.to_path_buf();
        return Err(if dir.exists() {
            DataError::NotADirectory { path }
        } else {
            DataError::MissingDirectory { path }
        });
    }
    let [train_images, train_labels, test_images, test_labels] = FILES.map(|base| {
        find_file(dir, base).ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            name: base.to_owned(),
            tried: candidates(dir, base),
        })
    });
    let (train_images, train_labels) = (train_images?, train_labels?);
    let (test_images, test_labels) = (test_images?, test_labels?);

    // Decompressing the training images dominates; do it beside the rest.
    let (train, test) = std::thread::scope(|scope| {
        let train = scope.spawn(|| load_split(&train_images, &train_labels, n_classes));
        let test = load_split(&test_images, &test_labels, n_classes);
        (
            train.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            test,
        )
    });
    let ((train, train_shape), (test, test_shape)) = (train?, test?);
    if train_shape != test_shape {
        return Err(DataError::ShapeMismatch {
            train_path: train_images,
            test_path: test_images,
            train_shape,
            test_shape,
        });
    }
    Ok(TrainTest { train, test })
}

/// One split: its dataset and image shape `(rows, cols)`.
fn load_split(images_path: &Path, labels_path: &Path, n_classes: usize) -> Result<(Dataset, (usize, usize))> {
    let IdxImages {
        count,
        rows,
        cols,
        pixels,
    } = read_images(images_path)?;
    let labels = read_labels(labels_path)?.labels;
    if count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: count,
            labels: labels.len(),
        });
    }
    // An invalid `n_classes` is left to `Dataset::new` to report.
    if (1..=256).contains(&n_classes)
        && let Some((index, label)) = first_label_out_of_range(&labels, n_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            label,
            n_classes,
        });
    }
    Ok((Dataset::new(pixels, labels, rows, cols, n_classes)?, (rows, cols)))
}

#[cfg(test)]
mod tests {
    use crate::idx::{Encoding, write_images, write_labels};

    use super::*;

    /// Writes a consistent little data set: `n_train` and `n_test` images of
    /// `rows x cols`, labels cycling through 0..10.
    fn write_set(dir: &Path, names: [&str; 4], n_train: usize, n_test: usize, encoding: Encoding) {
        let (rows, cols) = (3, 2);
        for (i, n) in [(0, n_train), (2, n_test)] {
            let pixels: Vec<u8> = (0..n * rows * cols).map(|p| (p * 7 + i) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|k| (k % 10) as u8).collect();
            write_images(&dir.join(names[i]), rows, cols, &pixels, encoding).unwrap();
            write_labels(&dir.join(names[i + 1]), &labels, encoding).unwrap();
        }
    }

    fn assert_names(err: &DataError, name: &str) {
        assert!(err.to_string().contains(name), "message does not name {name}: {err}");
    }

    const GZ_NAMES: [&str; 4] = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ];

    #[test]
    fn candidates_cover_both_spellings_with_and_without_gz() {
        let names: Vec<PathBuf> = candidates(Path::new("d"), TRAIN_IMAGES);
        let expected = [
            "train-images-idx3-ubyte",
            "train-images-idx3-ubyte.gz",
            "train-images.idx3-ubyte",
            "train-images.idx3-ubyte.gz",
        ];
        assert_eq!(names, expected.map(|n| Path::new("d").join(n)));
    }

    #[test]
    fn loads_standard_gzipped_names() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 12, 5, Encoding::Gzip);
        let data = load_dir(dir.path()).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (12, 5));
        assert_eq!((data.train.image_shape(), data.train.n_classes()), ((3, 2), 10));
        assert_eq!(data.test.labels(), [0, 1, 2, 3, 4]);
        assert_eq!(data.train.image(1), [42, 49, 56, 63, 70, 77]);
        assert_eq!(data.test.image(0), [2, 9, 16, 23, 30, 37]);
    }

    #[test]
    fn loads_dotted_raw_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "train-images.idx3-ubyte",
            "train-labels.idx1-ubyte",
            "t10k-images.idx3-ubyte",
            "t10k-labels.idx1-ubyte",
        ];
        write_set(dir.path(), names, 4, 3, Encoding::Raw);
        let data = load_dir(dir.path()).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (4, 3));
        assert_eq!(
            find_file(dir.path(), TEST_LABELS),
            Some(dir.path().join("t10k-labels.idx1-ubyte"))
        );
    }

    #[test]
    fn missing_file_names_the_file_and_every_spelling_tried() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 4, 3, Encoding::Gzip);
        std::fs::remove_file(dir.path().join(GZ_NAMES[3])).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        match &err {
            DataError::MissingFile { name, tried, .. } => {
                assert_eq!(name, TEST_LABELS);
                assert_eq!(tried, &candidates(dir.path(), TEST_LABELS));
            }
            other => panic!("expected MissingFile, got {other:?}"),
        }
        assert_names(&err, "t10k-labels-idx1-ubyte");
        assert_names(&err, "t10k-labels.idx1-ubyte.gz");
    }

    #[test]
    fn missing_or_non_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("no-such-dir");
        let err = load_dir(&gone).unwrap_err();
        assert!(matches!(err, DataError::MissingDirectory { .. }), "{err:?}");
        assert_names(&err, "no-such-dir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = load_dir(&file).unwrap_err();
        assert!(matches!(err, DataError::NotADirectory { .. }), "{err:?}");
        assert_names(&err, "a-file");
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 6, 3, Encoding::Gzip);
        write_labels(&dir.path().join(GZ_NAMES[1]), &[0; 5], Encoding::Gzip).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 6,
                    labels: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, GZ_NAMES[0]);
        assert_names(&err, GZ_NAMES[1]);
    }

    #[test]
    fn label_out_of_range_names_the_labels_file() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 4, 3, Encoding::Gzip);
        write_labels(&dir.path().join(GZ_NAMES[3]), &[1, 10, 2], Encoding::Gzip).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    n_classes: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, GZ_NAMES[3]);
        // With more classes the same files are fine.
        assert_eq!(load_dir_with_classes(dir.path(), 11).unwrap().test.n_classes(), 11);
    }

    #[test]
    fn train_and_test_shapes_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 4, 3, Encoding::Gzip);
        write_images(&dir.path().join(GZ_NAMES[2]), 2, 3, &[0; 18], Encoding::Gzip).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShapeMismatch {
                    train_shape: (3, 2),
                    test_shape: (2, 3),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, GZ_NAMES[2]);
    }

    #[test]
    fn a_bad_file_in_the_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), GZ_NAMES, 4, 3, Encoding::Gzip);
        // Labels where the training images belong.
        write_labels(&dir.path().join(GZ_NAMES[0]), &[0; 4], Encoding::Gzip).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
        assert_names(&err, GZ_NAMES[0]);
    }
}
