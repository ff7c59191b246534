//! A subset of a source's examples, for a validation split held out of the
//! training set.

use crate::{Examples, TargetShape, TargetsMut};
use backprop_tensor::{Rng, SparseRows, ThreadPool};
use ndarray::ArrayViewMut2;
use std::sync::Mutex;

/// The examples `indices` of `base`, in that order.
#[derive(Debug)]
pub struct Subset<'a, E: Examples + ?Sized> {
    base: &'a E,
    indices: Vec<u32>,
    /// Reused to map a batch's positions to the base's indices.
    mapped: Mutex<Vec<u32>>,
}

impl<'a, E: Examples + ?Sized> Subset<'a, E> {
    /// The examples `indices` of `base`.
    ///
    /// # Panics
    /// If an index is not below `base.len()`.
    pub fn new(base: &'a E, indices: Vec<u32>) -> Self {
        assert!(
            indices.iter().all(|&i| (i as usize) < base.len()),
            "Subset: index out of range"
        );
        Self {
            base,
            indices,
            mapped: Mutex::new(Vec::new()),
        }
    }

    /// The base's indices of the subset's examples.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    fn with_mapped<R>(&self, indices: &[u32], f: impl FnOnce(&[u32]) -> R) -> R {
        let mut mapped = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        mapped.clear();
        mapped.extend(indices.iter().map(|&i| self.indices[i as usize]));
        f(&mapped)
    }
}

/// Splits `0..n` into a training part and `n_validation` held-out
/// examples, chosen by a Fisher–Yates shuffle seeded by `seed`; both parts
/// are returned in increasing order.
pub fn split_validation(n: usize, n_validation: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::seed_from_u64(seed ^ 0x5641_4c49_4441_5445).shuffle(&mut order);
    let (validation, train) = order.split_at(n_validation.min(n));
    let (mut train, mut validation) = (train.to_vec(), validation.to_vec());
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

impl<E: Examples + ?Sized> Examples for Subset<'_, E> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn n_features(&self) -> usize {
        self.base.n_features()
    }

    fn target_shape(&self) -> TargetShape {
        self.base.target_shape()
    }

    fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        self.with_mapped(indices, |m| self.base.gather(m, x, y));
    }

    fn density(&self) -> Option<f32> {
        self.base.density()
    }

    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        self.with_mapped(indices, |m| self.base.gather_sparse(m, x, y))
    }

    fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
        self.with_mapped(indices, |m| self.base.gather_sparse_on(m, x, y, pool))
    }

    fn start_epoch(&self, epoch: usize) {
        self.base.start_epoch(epoch);
    }

    fn prefetch(&self, indices: &[u32]) {
        self.with_mapped(indices, |m| self.base.prefetch(m));
    }

    fn prepare(&self, indices: &[u32], pool: &ThreadPool) {
        self.with_mapped(indices, |m| self.base.prepare(m, pool));
    }

    fn prepare_beside(&self, next: &[u32], pool: &ThreadPool, step: &mut dyn FnMut()) {
        // The mapped indices stay locked while the step runs: it gathers
        // nothing from this subset meanwhile.
        self.with_mapped(next, |m| self.base.prepare_beside(m, pool, step));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Features;
    use ndarray::Array2;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (train, val) = split_validation(100, 20, 7);
        assert_eq!((train.len(), val.len()), (80, 20));
        let mut all: Vec<u32> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<u32>>());
        assert_eq!(split_validation(100, 20, 7), (train.clone(), val.clone()));
        assert_ne!(split_validation(100, 20, 8).1, val);
    }

    #[test]
    fn a_subset_gathers_the_base_rows() {
        let x = Array2::from_shape_fn((10, 1), |(i, _)| i as f32);
        let base = Features::classification(x, (0..10).map(|i| i % 2).collect(), 2).unwrap();
        let subset = Subset::new(&base, vec![7, 2, 9]);
        let mut out = Array2::zeros((2, 1));
        let mut y = [0usize; 2];
        subset.gather(&[2, 0], out.view_mut(), TargetsMut::Classes(&mut y));
        assert_eq!(out.column(0).to_vec(), vec![9.0, 7.0]);
        assert_eq!(y, [1, 1]);
        assert_eq!(subset.len(), 3);
    }
}
