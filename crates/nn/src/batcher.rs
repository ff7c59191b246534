//! [`Batcher`]: seeded shuffling of any [`Examples`] source into reusable
//! mini-batch buffers.

use crate::{Examples, Input, TargetShape, Targets, TargetsMut};
use backprop_tensor::{Rng, RngState, SparseRows, ThreadPool};
use ndarray::{Array2, s};
use std::ops::Range;

/// Cuts a source into shuffled mini-batches, epoch after epoch, without
/// allocating after construction.
///
/// Each [`Batcher::start_epoch`] resets the order to `0..n` and shuffles it
/// with the batcher's [`Rng`] (Fisher–Yates), so an epoch's order depends
/// only on the generator's state at its start: saving
/// [`Batcher::rng_state`] between epochs and building a batcher from it
/// reproduces the next epoch exactly. Before the first `start_epoch` the
/// order is `0..n` unshuffled.
#[derive(Clone, Debug)]
pub struct Batcher {
    order: Vec<u32>,
    rng: Rng,
    batch_size: usize,
    n_features: usize,
    target: TargetShape,
    x: Array2<f32>,
    sparse: SparseRows,
    classes: Vec<usize>,
    values: Array2<f32>,
}

impl Batcher {
    /// A batcher over `n_examples` examples of `n_features` inputs and
    /// `target`-shaped targets, in batches of `batch_size` (the last batch of
    /// an epoch may be smaller), shuffled by `rng`. The buffers hold
    /// `min(batch_size, n_examples)` rows.
    ///
    /// # Panics
    /// If `batch_size` is zero or `n_examples` exceeds `u32::MAX`.
    #[track_caller]
    pub fn new(n_examples: usize, n_features: usize, target: TargetShape, batch_size: usize, rng: Rng) -> Self {
        assert!(batch_size > 0, "Batcher::new: batch_size must be positive");
        let n =
            u32::try_from(n_examples).unwrap_or_else(|_| panic!("Batcher::new: {n_examples} examples exceed u32::MAX"));
        let rows = batch_size.min(n_examples);
        let (classes, values) = match target {
            TargetShape::Classes(_) => (vec![0; rows], Array2::zeros((0, 0))),
            TargetShape::Values(k) => (Vec::new(), Array2::zeros((rows, k))),
        };
        Self {
            order: (0..n).collect(),
            rng,
            batch_size,
            n_features,
            target,
            x: Array2::zeros((rows, n_features)),
            sparse: SparseRows::with_capacity(rows, n_features),
            classes,
            values,
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
    /// and returns the inputs (compressed when `sparse` and the source can)
    /// and the targets; then hints the source to prefetch batch `i + 1`.
    ///
    /// # Panics
    /// If `i >= self.n_batches()`, or if `data` does not have the examples,
    /// features and targets this batcher was built for.
    #[track_caller]
    pub fn batch<'a>(&'a mut self, data: &dyn Examples, i: usize, sparse: bool) -> (Input<'a>, Targets<'a>) {
        self.batch_in(data, i, sparse, None)
    }

    /// Like [`Batcher::batch`], first letting the source make the batch's
    /// examples with `pool`'s threads ([`Examples::prepare`]). The batch is
    /// the same bits whatever the number of threads.
    ///
    /// # Panics
    /// As [`Batcher::batch`].
    #[track_caller]
    pub fn batch_on<'a>(
        &'a mut self,
        data: &dyn Examples,
        i: usize,
        sparse: bool,
        pool: &ThreadPool,
    ) -> (Input<'a>, Targets<'a>) {
        self.batch_in(data, i, sparse, Some(pool))
    }

    #[track_caller]
    fn batch_in<'a>(
        &'a mut self,
        data: &dyn Examples,
        i: usize,
        sparse: bool,
        pool: Option<&ThreadPool>,
    ) -> (Input<'a>, Targets<'a>) {
        assert!(
            data.len() == self.order.len()
                && data.n_features() == self.n_features
                && data.target_shape() == self.target,
            "Batcher: built for {} examples of {} features ({:?}), given {} of {} ({:?})",
            self.order.len(),
            self.n_features,
            self.target,
            data.len(),
            data.n_features(),
            data.target_shape()
        );
        let range = self.batch_range(i);
        let m = range.len();
        let indices = &self.order[range];
        if let Some(pool) = pool {
            data.prepare(indices, pool);
        }
        let compressed = sparse && {
            let y = targets_mut(self.target, &mut self.classes, &mut self.values, m);
            match pool {
                Some(pool) => data.gather_sparse_on(indices, &mut self.sparse, y, pool),
                None => data.gather_sparse(indices, &mut self.sparse, y),
            }
        };
        if !compressed {
            data.gather(
                indices,
                self.x.slice_mut(s![..m, ..]),
                targets_mut(self.target, &mut self.classes, &mut self.values, m),
            );
        }
        if i + 1 < self.n_batches() {
            data.prefetch(&self.order[self.batch_range(i + 1)]);
        }
        let x = if compressed {
            Input::Sparse(&self.sparse)
        } else {
            Input::Dense(self.x.slice(s![..m, ..]))
        };
        let y = match self.target {
            TargetShape::Classes(_) => Targets::Classes(&self.classes[..m]),
            TargetShape::Values(_) => Targets::Values(self.values.slice(s![..m, ..])),
        };
        (x, y)
    }

    /// The rng state: a batcher built from it reproduces the next epoch.
    pub fn rng_state(&self) -> RngState {
        self.rng.state()
    }
}

/// The first `m` rows of the target buffer of the right kind.
fn targets_mut<'b>(
    target: TargetShape,
    classes: &'b mut [usize],
    values: &'b mut Array2<f32>,
    m: usize,
) -> TargetsMut<'b> {
    match target {
        TargetShape::Classes(_) => TargetsMut::Classes(&mut classes[..m]),
        TargetShape::Values(_) => TargetsMut::Values(values.slice_mut(s![..m, ..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Features;
    use backprop_tensor::Rng;
    use proptest::prelude::*;

    /// `n` examples whose single input is their index; label `i % 10`.
    fn indexed(n: usize) -> Features {
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f32);
        Features::classification(x, (0..n).map(|i| i % 10).collect(), 10).unwrap()
    }

    fn epoch_order(batcher: &mut Batcher) -> Vec<u32> {
        batcher.start_epoch();
        batcher.order().to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_example_appears_once_per_epoch(n in 0usize..300, batch_size in 1usize..70, seed in any::<u64>()) {
            let data = indexed(n);
            let mut batcher = Batcher::new(n, 1, TargetShape::Classes(10), batch_size, Rng::seed_from_u64(seed));
            prop_assert_eq!(batcher.n_batches(), n.div_ceil(batch_size));
            for _epoch in 0..2 {
                batcher.start_epoch();
                let mut seen = vec![0u32; n];
                for b in 0..batcher.n_batches() {
                    let (x, y) = batcher.batch(&data, b, false);
                    let (Input::Dense(x), Targets::Classes(y)) = (x, y) else { panic!("dense classes") };
                    prop_assert_eq!(x.nrows(), batch_size.min(n - b * batch_size));
                    for (row, &label) in x.rows().into_iter().zip(y) {
                        let i = row[0] as usize;
                        prop_assert_eq!(label, i % 10);
                        seen[i] += 1;
                    }
                }
                prop_assert!(seen.iter().all(|&c| c == 1), "counts {:?}", seen);
            }
        }
    }

    #[test]
    fn same_seed_same_orders_and_restoring_the_state_reproduces_the_next_epoch() {
        let new = |rng| Batcher::new(100, 1, TargetShape::Classes(10), 7, rng);
        let (mut a, mut b, mut c) = (
            new(Rng::seed_from_u64(5)),
            new(Rng::seed_from_u64(5)),
            new(Rng::seed_from_u64(6)),
        );
        assert_eq!(
            a.order(),
            (0..100).collect::<Vec<u32>>(),
            "unshuffled before the first epoch"
        );
        let (a1, a2) = (epoch_order(&mut a), epoch_order(&mut a));
        assert_eq!((&a1, &a2), (&epoch_order(&mut b), &epoch_order(&mut b)));
        assert_ne!(a1, a2);
        assert_ne!(a1, epoch_order(&mut c));
        let saved = a.rng_state();
        let next = epoch_order(&mut a);
        assert_eq!(epoch_order(&mut new(Rng::from_state(saved))), next);
    }

    #[test]
    fn value_targets_and_sources_without_compression() {
        let x = Array2::from_shape_fn((5, 2), |(i, j)| (i * 2 + j) as f32);
        let y = Array2::from_shape_fn((5, 1), |(i, _)| i as f32 * 10.0);
        let data = Features::regression(x, y).unwrap();
        let mut batcher = Batcher::new(5, 2, TargetShape::Values(1), 2, Rng::seed_from_u64(3));
        batcher.start_epoch();
        let indices = batcher.batch_indices(2).to_vec();
        // Asked for a compressed batch, a source that cannot gives a dense one.
        let (x, y) = batcher.batch(&data, 2, true);
        let (Input::Dense(x), Targets::Values(y)) = (x, y) else {
            panic!("dense values")
        };
        assert_eq!(x.nrows(), 1);
        assert_eq!(x[[0, 0]], indices[0] as f32 * 2.0);
        assert_eq!(y[[0, 0]], indices[0] as f32 * 10.0);
    }
}
