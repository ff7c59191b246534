//! What `--data` names: a directory of IDX files, or a CSV table (with its
//! test set, class names and standardisation).

use anyhow::{Context, Result, bail};
use backprop_data::{CsvOptions, CsvTable, CsvTarget, KnownDataset, TargetKind, TrainTest};
use backprop_nn::checkpoint::record::{DataFileRecord, DataRecord, NormalizationRecord};
use backprop_nn::{Examples, Features};
use backprop_tensor::Rng;
use std::path::Path;

/// Loaded training and test data.
pub(crate) enum Data {
    /// IDX images.
    Idx(Box<TrainTest>),
    /// A CSV table, split or with its own test file.
    Csv(Box<CsvData>),
}

/// A CSV table ready for training.
pub(crate) struct CsvData {
    pub(crate) train: Features,
    pub(crate) test: Features,
    /// Class names in index order (empty for a values target).
    pub(crate) classes: Vec<String>,
    pub(crate) normalization: Option<NormalizationRecord>,
    pub(crate) record: DataRecord,
}

/// What to do about standardising CSV features.
pub(crate) enum Standardize {
    /// Leave them as they are.
    No,
    /// Fit means and scales on the training rows and apply them.
    Fit,
    /// Apply stored means and scales (a resumed run).
    Use(NormalizationRecord),
}

/// Whether `path` names a CSV file (rather than a directory of IDX files).
pub(crate) fn is_csv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Offset of the hold-out shuffle from the run's seed.
const HOLDOUT_STREAM: u64 = 0x484f_4c44_4f55_5421;

impl Data {
    pub(crate) fn train(&self) -> &dyn Examples {
        match self {
            Data::Idx(d) => &d.train,
            Data::Csv(d) => &d.train,
        }
    }

    pub(crate) fn test(&self) -> &dyn Examples {
        match self {
            Data::Idx(d) => &d.test,
            Data::Csv(d) => &d.test,
        }
    }

    /// Loads `--data` (and `--test`): `classes` says whether the target is
    /// class labels (cross-entropy) or values (MSE).
    pub(crate) fn load(
        data: &Path,
        target: Option<&str>,
        test: Option<&Path>,
        classes: bool,
        standardize: Standardize,
        seed: u64,
    ) -> Result<Data> {
        if !is_csv(data) {
            if target.is_some() || test.is_some() || matches!(standardize, Standardize::Fit) {
                bail!(
                    "--target, --test and --standardize are for CSV data; {} is not a .csv file",
                    data.display()
                );
            }
            return Ok(Data::Idx(Box::new(crate::datasets::load_idx(data)?)));
        }
        let Some(target) = target else {
            bail!(
                "{} is a CSV file: give --target COLUMN, the column to predict",
                data.display()
            );
        };
        let kind = if classes {
            TargetKind::Classes
        } else {
            TargetKind::Values
        };
        let table = backprop_data::read_csv(data, &CsvOptions::new(target, kind))?;
        let (train_table, test_table) = match test {
            Some(path) => {
                let test_table = backprop_data::read_csv(path, &table.eval_options())?;
                (table, Some(test_table))
            }
            None => (table, None),
        };
        let all = train_table.to_features()?;
        let (mut train, mut test_features) = match &test_table {
            Some(t) => (all, t.to_features()?),
            None => {
                holdout(&all, seed).with_context(|| format!("cannot hold out a test set from {}", data.display()))?
            }
        };
        let normalization = match standardize {
            Standardize::No => None,
            Standardize::Fit => {
                let (mean, scale) = train.column_stats();
                Some(NormalizationRecord { mean, scale })
            }
            Standardize::Use(n) => Some(n),
        };
        if let Some(n) = &normalization {
            if n.mean.len() != train.n_features() {
                bail!(
                    "{} has {} feature columns, the stored standardisation {}",
                    data.display(),
                    train.n_features(),
                    n.mean.len()
                );
            }
            train.standardize(&n.mean, &n.scale);
            test_features.standardize(&n.mean, &n.scale);
        }
        let classes = match &train_table.target {
            CsvTarget::Classes { names, .. } => names.clone(),
            CsvTarget::Values(_) => Vec::new(),
        };
        let record = DataRecord::Csv {
            train: file_record(data)?,
            test: test.map(file_record).transpose()?,
            target: train_table.target_column.clone(),
            features: train_table.feature_columns.clone(),
        };
        Ok(Data::Csv(Box::new(CsvData {
            train,
            test: test_features,
            classes,
            normalization,
            record,
        })))
    }

    /// What a checkpoint records of this data.
    pub(crate) fn record(&self, dir: &Path) -> Result<DataRecord> {
        match self {
            Data::Idx(_) => Ok(DataRecord::Idx {
                files: backprop_data::hash_dir(dir)
                    .with_context(|| format!("cannot hash the data in {}", dir.display()))?,
            }),
            Data::Csv(d) => Ok(d.record.clone()),
        }
    }
}

/// The class names of IDX data recognised as a known data set by its test
/// files' SHA-256 (Fashion-MNIST's garments, MNIST's digits), or `known`
/// when the data was named with `--dataset`; empty otherwise.
pub(crate) fn idx_class_names(record: &DataRecord, known: Option<KnownDataset>) -> Vec<String> {
    let hash = |base: &str| match record {
        DataRecord::Idx { files } => files.iter().find(|f| f.name == base).map(|f| f.sha256.as_str()),
        _ => None,
    };
    let known = known.or_else(|| {
        KnownDataset::from_test_hashes(hash(backprop_data::TEST_IMAGES)?, hash(backprop_data::TEST_LABELS)?)
    });
    known.map_or_else(Vec::new, |d| d.class_names().iter().map(|&n| n.to_owned()).collect())
}

/// The rows of `all` split by a seeded shuffle: 20% (at least one row) for
/// the test set, the rest for training.
fn holdout(all: &Features, seed: u64) -> Result<(Features, Features)> {
    let n = all.len();
    if n < 2 {
        bail!("{n} rows: at least 2 are needed to hold out a test set (or give --test)");
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::seed_from_u64(seed ^ HOLDOUT_STREAM).shuffle(&mut order);
    let n_test = n.div_ceil(5).min(n - 1);
    let (test, train) = order.split_at(n_test);
    Ok((all.select(train), all.select(test)))
}

fn file_record(path: &Path) -> Result<DataFileRecord> {
    Ok(DataFileRecord {
        name: path.display().to_string(),
        sha256: backprop_data::content_sha256(path)?,
    })
}

/// A CSV file read for a model trained on CSV: the checkpoint's target and
/// feature columns, its class names, and its standardisation applied.
pub(crate) fn load_csv_for(checkpoint: &backprop_nn::Checkpoint, path: &Path) -> Result<(CsvTable, Features)> {
    let DataRecord::Csv { target, features, .. } = &checkpoint.data else {
        bail!(
            "the model was not trained on a CSV table, so {} cannot be matched to its inputs",
            path.display()
        );
    };
    let kind = if checkpoint.loss().is_classification() {
        TargetKind::Classes
    } else {
        TargetKind::Values
    };
    let options = CsvOptions {
        target,
        kind,
        class_names: (!checkpoint.classes.is_empty()).then_some(checkpoint.classes.as_slice()),
        feature_columns: Some(features),
    };
    let table = backprop_data::read_csv(path, &options)?;
    let mut data = table.to_features()?;
    if let Some(n) = &checkpoint.normalization {
        data.standardize(&n.mean, &n.scale);
    }
    Ok((table, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_test_hashes_give_class_names() {
        let files = |d: KnownDataset| DataRecord::Idx {
            files: d
                .spec()
                .files
                .iter()
                .map(|f| DataFileRecord {
                    name: f.base.to_owned(),
                    sha256: f.sha256.to_owned(),
                })
                .collect(),
        };
        assert_eq!(
            idx_class_names(&files(KnownDataset::FashionMnist), None)[0],
            "T-shirt/top"
        );
        assert_eq!(idx_class_names(&files(KnownDataset::Mnist), None)[7], "7");
        assert!(idx_class_names(&DataRecord::Unknown, None).is_empty());
        assert_eq!(
            idx_class_names(&DataRecord::Unknown, Some(KnownDataset::FashionMnist))[1],
            "Trouser"
        );
    }
}
