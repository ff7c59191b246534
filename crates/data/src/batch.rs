//! [`Batcher`]: seeded shuffling into reusable mini-batch buffers.

use std::ops::Range;

use backprop_tensor::{Rng, RngState, SparseRows};
use ndarray::{Array2, ArrayView2, s};

use crate::dataset::Dataset;

/// Cuts a dataset into shuffled mini-batches, epoch after epoch, without
/// allocating after construction.
///
/// Each [`Batcher::start_epoch`] resets the order to `0..n` and shuffles it
/// with the batcher's [`Rng`], so the order of an epoch depends only on the
/// rng state at its start: saving [`Batcher::rng_state`] between epochs and
/// restoring it with [`Batcher::set_rng_state`] reproduces the next epoch
/// exactly. Before the first `start_epoch` the order is `0..n` unshuffled.
#[derive(Clone, Debug)]
pub struct Batcher {
    order: Vec<u32>,
    rng: Rng,
    batch_size: usize,
    x: Array2<f32>,
    sparse: SparseRows,
    y: Vec<usize>,
}

impl Batcher {
    /// A batcher over `n_examples` examples of `n_features` pixels in batches
    /// of `batch_size` (the last batch of an epoch may be smaller), shuffled
    /// by `rng`. The buffers hold `min(batch_size, n_examples)` rows.
    ///
    /// # Panics
    /// If `batch_size` is zero or `n_examples` exceeds `u32::MAX`.
    #[track_caller]
    pub fn new(n_examples: usize, n_features: usize, batch_size: usize, rng: Rng) -> Self {
        assert!(batch_size > 0, "Batcher::new: batch_size must be positive");
        let n =
            u32::try_from(n_examples).unwrap_or_else(|_| panic!("Batcher::new: {n_examples} examples exceed u32::MAX"));
        let rows = batch_size.min(n_examples);
        Self {
            order: (0..n).collect(),
            rng,
            batch_size,
            x: Array2::zeros((rows, n_features)),
            sparse: SparseRows::with_capacity(rows, n_features),
            y: vec![0; rows],
        }
    }

    /// Resets the order to `0..n` and shuffles it, drawing from the rng.
    pub fn start_epoch(&mut self) {
        self.order.iter_mut().zip(0..).for_each(|(slot, i)| *slot = i);
        self.rng.shuffle(&mut self.order);
    }

    /// The number of batches per epoch, the final partial one included.
    pub fn n_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// The requested batch size (every batch but possibly the last has it).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of examples per epoch.
    pub fn n_examples(&self) -> usize {
        self.order.len()
    }

    /// The current order: epoch position to example index.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// The example indices of batch `i` of the current order.
    ///
    /// # Panics
    /// If `i >= self.n_batches()`.
    #[track_caller]
    pub fn batch_indices(&self, i: usize) -> &[u32] {
        &self.order[self.batch_range(i)]
    }

    /// The positions in the order of batch `i`.
    #[track_caller]
    fn batch_range(&self, i: usize) -> Range<usize> {
        assert!(
            i < self.n_batches(),
            "Batcher: batch {i} out of range, an epoch has {} batches",
            self.n_batches()
        );
        let start = i * self.batch_size;
        start..(start + self.batch_size).min(self.order.len())
    }

    /// Gathers batch `i` of the current order from `data` into the buffers
    /// (see [`Dataset::gather_into`]) and returns the inputs, one example per
    /// row, and their labels. A final partial batch is a view of the first
    /// rows of the buffer.
    ///
    /// # Panics
    /// If `i >= self.n_batches()`, or if `data` does not have the number of
    /// examples and features this batcher was built for.
    #[track_caller]
    pub fn batch(&mut self, data: &Dataset, i: usize) -> (ArrayView2<'_, f32>, &[usize]) {
        self.check(data);
        let range = self.batch_range(i);
        let m = range.len();
        data.gather_into(&self.order[range], self.x.slice_mut(s![..m, ..]), &mut self.y[..m]);
        self.prefetch_next(data, i);
        (self.x.slice(s![..m, ..]), &self.y[..m])
    }

    /// Gathers batch `i` like [`Batcher::batch`], but compressed: only the
    /// non-zero pixels (see [`Dataset::gather_sparse_into`]).
    ///
    /// # Panics
    /// As [`Batcher::batch`].
    #[track_caller]
    pub fn batch_sparse(&mut self, data: &Dataset, i: usize) -> (&SparseRows, &[usize]) {
        self.check(data);
        let range = self.batch_range(i);
        let m = range.len();
        data.gather_sparse_into(&self.order[range], &mut self.sparse, &mut self.y[..m]);
        self.prefetch_next(data, i);
        (&self.sparse, &self.y[..m])
    }

    /// Panics unless `data` has the examples and features this batcher was
    /// built for.
    #[track_caller]
    fn check(&self, data: &Dataset) {
        assert!(
            data.len() == self.order.len() && data.n_features() == self.x.ncols(),
            "Batcher: built for {} examples of {} features, given a dataset of {} examples of {} features",
            self.order.len(),
            self.x.ncols(),
            data.len(),
            data.n_features()
        );
    }

    /// Starts loading batch `i + 1`'s images into the caches while batch `i`
    /// is being trained on (images are scattered over the whole dataset, so
    /// without this each gather waits on memory image by image).
    fn prefetch_next(&self, data: &Dataset, i: usize) {
        if i + 1 < self.n_batches() {
            data.prefetch(&self.order[self.batch_range(i + 1)]);
        }
    }

    /// The rng state: restoring it with [`Batcher::set_rng_state`] before a
    /// [`Batcher::start_epoch`] reproduces that epoch's order.
    pub fn rng_state(&self) -> RngState {
        self.rng.state()
    }

    /// Continues from a state saved by [`Batcher::rng_state`]. The current
    /// order is unchanged until the next [`Batcher::start_epoch`].
    pub fn set_rng_state(&mut self, state: RngState) {
        self.rng = Rng::from_state(state);
    }
}

#[cfg(test)]
mod tests {
    use backprop_tensor::Rng;
    use proptest::prelude::*;

    use super::*;

    /// `n` 1x3 images whose pixels encode their index; label `i % 10`.
    fn indexed(n: usize) -> Dataset {
        let pixels = (0..n).flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 255]).collect();
        Dataset::new(pixels, (0..n).map(|i| (i % 10) as u8).collect(), 1, 3, 10).unwrap()
    }

    fn epoch_order(batcher: &mut Batcher) -> Vec<u32> {
        batcher.start_epoch();
        batcher.order().to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_example_appears_once_per_epoch(n in 0usize..300, batch_size in 1usize..70, seed in any::<u64>()) {
            let data = indexed(n);
            let mut batcher = Batcher::new(n, 3, batch_size, Rng::seed_from_u64(seed));
            prop_assert_eq!(batcher.n_batches(), n.div_ceil(batch_size));
            for _epoch in 0..2 {
                batcher.start_epoch();
                let mut seen = vec![0u32; n];
                for b in 0..batcher.n_batches() {
                    let (x, y) = batcher.batch(&data, b);
                    let expected_rows = batch_size.min(n - b * batch_size);
                    prop_assert_eq!(x.dim(), (expected_rows, 3));
                    prop_assert_eq!(y.len(), expected_rows);
                    for (row, &label) in x.rows().into_iter().zip(y) {
                        let i = (row[0] * 255.0).round() as usize + 256 * (row[1] * 255.0).round() as usize;
                        prop_assert_eq!(label, i % 10);
                        seen[i] += 1;
                    }
                }
                prop_assert!(seen.iter().all(|&c| c == 1), "counts {:?}", seen);
            }
        }
    }

    #[test]
    fn same_seed_same_orders_and_epochs_differ() {
        let mut a = Batcher::new(100, 3, 7, Rng::seed_from_u64(5));
        let mut b = Batcher::new(100, 3, 7, Rng::seed_from_u64(5));
        let mut c = Batcher::new(100, 3, 7, Rng::seed_from_u64(6));
        assert_eq!(
            a.order(),
            (0..100).collect::<Vec<u32>>(),
            "unshuffled before the first epoch"
        );
        let (a1, a2) = (epoch_order(&mut a), epoch_order(&mut a));
        assert_eq!((&a1, &a2), (&epoch_order(&mut b), &epoch_order(&mut b)));
        assert_ne!(a1, a2);
        assert_ne!(a1, epoch_order(&mut c));
        assert_ne!(a1, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn restoring_the_rng_state_reproduces_the_next_epoch() {
        let mut a = Batcher::new(50, 3, 8, Rng::seed_from_u64(9));
        epoch_order(&mut a);
        let saved = a.rng_state();
        let next = epoch_order(&mut a);
        let after = epoch_order(&mut a);

        // A fresh batcher (as after a restart) resumes from the state alone,
        // whatever order it held before.
        let mut resumed = Batcher::new(50, 3, 8, Rng::seed_from_u64(1234));
        epoch_order(&mut resumed);
        resumed.set_rng_state(saved);
        assert_eq!(epoch_order(&mut resumed), next);
        assert_eq!(epoch_order(&mut resumed), after);
        // So does one built from the state directly.
        let mut built = Batcher::new(50, 3, 8, Rng::from_state(saved));
        assert_eq!(epoch_order(&mut built), next);
    }

    #[test]
    fn batches_follow_the_order_and_scale_pixels() {
        let pixels: Vec<u8> = (0..5 * 4).map(|p| (p * 13) as u8).collect();
        let data = Dataset::new(pixels, vec![4, 3, 2, 1, 0], 2, 2, 5).unwrap();
        let mut batcher = Batcher::new(5, 4, 2, Rng::seed_from_u64(3));
        batcher.start_epoch();
        let order = batcher.order().to_vec();
        assert_eq!(batcher.n_batches(), 3);
        for b in 0..3 {
            let indices = batcher.batch_indices(b).to_vec();
            assert_eq!(indices, order[b * 2..(b * 2 + 2).min(5)]);
            let (x, y) = batcher.batch(&data, b);
            for (r, &i) in indices.iter().enumerate() {
                let i = i as usize;
                assert_eq!(y[r], usize::from(data.labels()[i]));
                for (c, &p) in data.image(i).iter().enumerate() {
                    assert!((x[[r, c]] - f32::from(p) / 255.0).abs() < 1e-7, "row {r} col {c}");
                }
            }
        }
        assert_eq!(batcher.batch(&data, 2).0.nrows(), 1);
    }

    #[test]
    fn batch_larger_than_the_data_is_one_partial_batch() {
        let data = indexed(3);
        let mut batcher = Batcher::new(3, 3, 1000, Rng::seed_from_u64(0));
        batcher.start_epoch();
        assert_eq!(
            (batcher.n_batches(), batcher.batch_size(), batcher.n_examples()),
            (1, 1000, 3)
        );
        assert_eq!(batcher.batch(&data, 0).0.dim(), (3, 3));
    }

    #[test]
    #[should_panic(expected = "batch 3 out of range")]
    fn batch_index_past_the_epoch_panics() {
        let data = indexed(5);
        Batcher::new(5, 3, 2, Rng::seed_from_u64(0)).batch(&data, 3);
    }

    #[test]
    #[should_panic(expected = "given a dataset of 4 examples")]
    fn wrong_dataset_panics() {
        Batcher::new(5, 3, 2, Rng::seed_from_u64(0)).batch(&indexed(4), 0);
    }

    #[test]
    #[should_panic(expected = "batch_size must be positive")]
    fn zero_batch_size_panics() {
        Batcher::new(5, 3, 0, Rng::seed_from_u64(0));
    }

    #[test]
    fn sparse_batches_hold_the_same_values_as_dense_ones() {
        let pixels: Vec<u8> = (0..50 * 12)
            .map(|i| if i % 3 == 0 { (i % 251) as u8 } else { 0 })
            .collect();
        let labels: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
        let data = Dataset::new(pixels, labels, 3, 4, 10).unwrap();
        let mut batcher = Batcher::new(50, 12, 16, Rng::seed_from_u64(4));
        batcher.start_epoch();
        for i in 0..batcher.n_batches() {
            let (x, y) = batcher.batch(&data, i);
            let (x, y) = (x.to_owned(), y.to_vec());
            let (sparse, sparse_y) = batcher.batch_sparse(&data, i);
            assert_eq!(y, sparse_y);
            let mut dense = ndarray::Array2::<f32>::zeros(x.dim());
            backprop_tensor::sparse_gemm(
                1.0,
                sparse,
                backprop_tensor::Op::Plain,
                ndarray::Array2::eye(12).view(),
                0.0,
                &mut dense.view_mut(),
            );
            assert_eq!(x, dense);
        }
        assert!((data.density() - 1.0 / 3.0).abs() < 0.02, "{}", data.density());
    }
}
