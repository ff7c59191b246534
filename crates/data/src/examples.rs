//! The data sets of this crate as training sources for `backprop-nn`:
//! [`Dataset`] implements [`Examples`] (pixels scaled on the fly, compressed
//! gathers for mostly-zero images), a [`CsvTable`] becomes a [`Features`]
//! table, and [`hash_dir`] records the files a run trained on.

use crate::{CsvTable, CsvTarget, DataError, Dataset, FILES, Result, candidates, content_sha256, find_file};
use backprop_nn::checkpoint::record::DataFileRecord;
use backprop_nn::{Examples, Features, TargetShape, TargetsMut};
use backprop_tensor::{SparseRows, ThreadPool};
use ndarray::{Array2, ArrayViewMut2};
use std::path::Path;

impl Examples for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn n_features(&self) -> usize {
        Dataset::n_features(self)
    }

    fn target_shape(&self) -> TargetShape {
        TargetShape::Classes(self.n_classes())
    }

    fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        match y {
            TargetsMut::Classes(y) => self.gather_into(indices, x, y),
            TargetsMut::Values(_) => panic!("Dataset::gather: IDX data has class labels, not values"),
        }
    }

    fn density(&self) -> Option<f32> {
        Some(Dataset::density(self))
    }

    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        match y {
            TargetsMut::Classes(y) => {
                self.gather_sparse_into(indices, x, y);
                true
            }
            TargetsMut::Values(_) => false,
        }
    }

    fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
        match y {
            TargetsMut::Classes(y) => {
                self.gather_sparse_into_with(indices, x, y, Some(pool));
                true
            }
            TargetsMut::Values(_) => false,
        }
    }

    fn prefetch(&self, indices: &[u32]) {
        Dataset::prefetch(self, indices);
    }

    fn prepare_beside(&self, next: &[u32], pool: &ThreadPool, step: &mut dyn FnMut()) {
        Dataset::prepare_beside(self, next, pool, step);
    }
}

impl CsvTable {
    /// The table as a [`Features`] source: class labels for a classes
    /// target, a column of values for a values target.
    ///
    /// # Errors
    /// [`DataError::Table`] when the table cannot form a dataset (a values
    /// target with a non-finite value is refused when read, so this does not
    /// happen for tables from [`crate::read_csv`]).
    pub fn to_features(&self) -> Result<Features> {
        let x = Array2::from_shape_vec((self.n_rows(), self.n_features()), self.features.clone())
            .map_err(|e| self.table_error(e.to_string()))?;
        match &self.target {
            CsvTarget::Classes { labels, names } => {
                Features::classification(x, labels.iter().map(|&l| l as usize).collect(), names.len().max(2))
            }
            CsvTarget::Values(values) => {
                let y = Array2::from_shape_vec((values.len(), 1), values.clone())
                    .map_err(|e| self.table_error(e.to_string()))?;
                Features::regression(x, y)
            }
        }
        .map_err(|e| self.table_error(e.to_string()))
    }

    fn table_error(&self, reason: String) -> DataError {
        DataError::Table {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The four standard files of the data directory `dir` ([`FILES`]), each
/// found by [`find_file`] and hashed, as a checkpoint records them (about
/// 0.1 s for MNIST's 55 MB of decompressed content).
///
/// # Errors
/// A missing file, or one that cannot be read.
pub fn hash_dir(dir: &Path) -> Result<Vec<DataFileRecord>> {
    FILES
        .iter()
        .map(|&name| {
            let path = find_file(dir, name).ok_or_else(|| DataError::MissingFile {
                dir: dir.to_path_buf(),
                name: name.to_owned(),
                tried: candidates(dir, name),
            })?;
            Ok(DataFileRecord {
                name: name.to_owned(),
                sha256: content_sha256(&path)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_gathers_hold_the_same_values_as_dense_ones() {
        let pixels: Vec<u8> = (0..50 * 12)
            .map(|i| if i % 3 == 0 { (i % 251) as u8 } else { 0 })
            .collect();
        let labels: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
        let data = Dataset::new(pixels, labels, 3, 4, 10).unwrap();
        let indices = [7u32, 3, 49, 0];
        let mut x = Array2::zeros((4, 12));
        let (mut y, mut sparse_y) = ([0usize; 4], [0usize; 4]);
        Examples::gather(&data, &indices, x.view_mut(), TargetsMut::Classes(&mut y));
        let mut sparse = SparseRows::with_capacity(4, 12);
        assert!(data.gather_sparse(&indices, &mut sparse, TargetsMut::Classes(&mut sparse_y)));
        assert_eq!(y, sparse_y);
        let mut dense = Array2::<f32>::zeros((4, 12));
        backprop_tensor::sparse_gemm(
            1.0,
            &sparse,
            backprop_tensor::Op::Plain,
            Array2::eye(12).view(),
            0.0,
            &mut dense.view_mut(),
        );
        assert_eq!(x, dense);
        assert!((Examples::density(&data).unwrap() - 1.0 / 3.0).abs() < 0.02);
    }
}
