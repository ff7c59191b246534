//! What to fetch and from where: [`DatasetSpec`] (file names, expected
//! hashes, system directories, public mirrors), the specs of MNIST and
//! Fashion-MNIST, and [`Source`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::mnist::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};

/// The environment variable naming a source to try first, as `--from` does:
/// a local directory or an `http(s)://` base URL.
pub const MIRROR_ENV: &str = "BACKPROP_DATA_MIRROR";

/// One file of a data set: its standard base name (without `.gz`) and the
/// SHA-256 of its decompressed content, as [`content_sha256`](crate::content_sha256)
/// computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpec<'a> {
    /// The standard base name, such as `train-images-idx3-ubyte`.
    pub base: &'a str,
    /// 64 lowercase hex digits.
    pub sha256: &'a str,
}

/// A data set to fetch: its files with their expected hashes, and the
/// sources that hold it besides the one the user names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetSpec<'a> {
    /// Short name for messages and the destination folder, such as `mnist`.
    pub name: &'a str,
    /// The files, in the order they are fetched.
    pub files: &'a [FileSpec<'a>],
    /// Local directories where a system package may have installed the data.
    pub system_dirs: &'a [&'a str],
    /// Base URLs of public mirrors, tried in order, each holding
    /// `<base>.gz` for every file.
    pub mirrors: &'a [&'a str],
}

/// MNIST (LeCun, Cortes and Burges).
pub const MNIST: DatasetSpec<'static> = DatasetSpec {
    name: "mnist",
    files: &[
        FileSpec {
            base: TRAIN_IMAGES,
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        FileSpec {
            base: TRAIN_LABELS,
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        FileSpec {
            base: TEST_IMAGES,
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        FileSpec {
            base: TEST_LABELS,
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
    system_dirs: &[],
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
};

/// Fashion-MNIST (Zalando Research), which Debian's `dataset-fashion-mnist`
/// package installs under `/usr/share/datasets/fashion-mnist/`.
pub const FASHION_MNIST: DatasetSpec<'static> = DatasetSpec {
    name: "fashion-mnist",
    files: &[
        FileSpec {
            base: TRAIN_IMAGES,
            sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        },
        FileSpec {
            base: TRAIN_LABELS,
            sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        FileSpec {
            base: TEST_IMAGES,
            sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        },
        FileSpec {
            base: TEST_LABELS,
            sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ],
    system_dirs: &["/usr/share/datasets/fashion-mnist/"],
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
};

/// The data sets this crate knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownDataset {
    /// [`MNIST`].
    Mnist,
    /// [`FASHION_MNIST`].
    FashionMnist,
}

impl KnownDataset {
    /// Every known data set.
    pub const ALL: [KnownDataset; 2] = [KnownDataset::Mnist, KnownDataset::FashionMnist];

    /// Its spec.
    pub fn spec(self) -> DatasetSpec<'static> {
        match self {
            KnownDataset::Mnist => MNIST,
            KnownDataset::FashionMnist => FASHION_MNIST,
        }
    }

    /// Its short name, also its folder under `datasets/`: `mnist` or
    /// `fashion-mnist`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Its class names in label order ([`MNIST_CLASS_NAMES`](crate::MNIST_CLASS_NAMES)
    /// or [`FASHION_MNIST_CLASS_NAMES`](crate::FASHION_MNIST_CLASS_NAMES)).
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            KnownDataset::Mnist => &crate::MNIST_CLASS_NAMES,
            KnownDataset::FashionMnist => &crate::FASHION_MNIST_CLASS_NAMES,
        }
    }

    /// The known data set whose test images and test labels have these
    /// decompressed SHA-256s (as [`content_sha256`](crate::content_sha256)
    /// and [`hash_dir`](crate::hash_dir) give them, lowercase hex), if any.
    pub fn from_test_hashes(images_sha256: &str, labels_sha256: &str) -> Option<KnownDataset> {
        KnownDataset::ALL.into_iter().find(|d| {
            let hash = |base: &str| d.spec().files.iter().find(|f| f.base == base).map(|f| f.sha256);
            hash(TEST_IMAGES) == Some(images_sha256) && hash(TEST_LABELS) == Some(labels_sha256)
        })
    }
}

impl fmt::Display for KnownDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KnownDataset {
    type Err = String;

    /// Parses `mnist` or `fashion-mnist`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KnownDataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown data set `{s}`, expected `mnist` or `fashion-mnist`"))
    }
}

/// A place that may hold the files of a data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local directory holding the files under either spelling, gzipped
    /// or raw (see [`candidates`](crate::candidates)).
    Dir(PathBuf),
    /// The base URL of a mirror holding `<base>.gz` for every file.
    Url(String),
}

impl Source {
    /// A [`Source::Url`] when `s` starts with `http://` or `https://`
    /// (in any case), otherwise a [`Source::Dir`]; a relative directory is
    /// taken as it is, so relative to the current directory.
    pub fn parse(s: &str) -> Source {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Source::Url(s.to_owned())
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }

    /// The URL of the file with standard name `base` under this mirror.
    pub(crate) fn file_url(base_url: &str, base: &str) -> String {
        format!("{}/{base}.gz", base_url.trim_end_matches('/'))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dir(dir) => write!(f, "{}", dir.display()),
            Source::Url(url) => f.write_str(url),
        }
    }
}

impl DatasetSpec<'_> {
    /// The sources to try, in order: `first` (from `--from` or
    /// [`MIRROR_ENV`]) when given, then the system directories, then the
    /// public mirrors.
    pub fn sources(&self, first: Option<Source>) -> Vec<Source> {
        first
            .into_iter()
            .chain(self.system_dirs.iter().map(|d| Source::Dir(PathBuf::from(d))))
            .chain(self.mirrors.iter().map(|u| Source::Url((*u).to_owned())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_come_in_order_user_system_mirrors() {
        let sources = FASHION_MNIST.sources(Some(Source::parse("../copy")));
        assert_eq!(
            sources,
            [
                Source::Dir("../copy".into()),
                Source::Dir("/usr/share/datasets/fashion-mnist/".into()),
                Source::Url("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/".into()),
            ]
        );
        assert_eq!(MNIST.sources(None).len(), 2);
    }

    #[test]
    fn parse_tells_urls_from_directories() {
        assert_eq!(Source::parse("HTTPS://x/y"), Source::Url("HTTPS://x/y".into()));
        assert_eq!(Source::parse("http://x"), Source::Url("http://x".into()));
        assert_eq!(Source::parse("http"), Source::Dir("http".into()));
        assert_eq!(Source::parse("./http://x"), Source::Dir("./http://x".into()));
        assert_eq!(Source::file_url("http://h/m/", "a"), "http://h/m/a.gz");
        assert_eq!(Source::file_url("http://h/m", "a"), "http://h/m/a.gz");
    }

    #[test]
    fn known_datasets_parse_and_have_well_formed_hashes() {
        for d in KnownDataset::ALL {
            assert_eq!(d.name().parse::<KnownDataset>(), Ok(d));
            let spec = d.spec();
            assert_eq!(
                spec.files.iter().map(|f| f.base).collect::<Vec<_>>(),
                crate::FILES,
                "{d}"
            );
            for f in spec.files {
                assert!(f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        assert!("emnist".parse::<KnownDataset>().unwrap_err().contains("emnist"));
    }

    #[test]
    fn test_hashes_identify_a_known_dataset() {
        for d in KnownDataset::ALL {
            let spec = d.spec();
            assert_eq!(
                KnownDataset::from_test_hashes(spec.files[2].sha256, spec.files[3].sha256),
                Some(d)
            );
            assert_eq!(d.class_names().len(), 10);
        }
        let (m, f) = (MNIST.files, FASHION_MNIST.files);
        assert_eq!(KnownDataset::from_test_hashes(m[2].sha256, f[3].sha256), None);
        assert_eq!(KnownDataset::from_test_hashes(m[0].sha256, m[1].sha256), None);
        assert_eq!(KnownDataset::FashionMnist.class_names()[9], "Ankle boot");
    }
}
