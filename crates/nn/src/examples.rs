//! Where training and evaluation get their examples: the [`Examples`]
//! trait, and what a batch's targets look like.
//!
//! Anything that can copy a chosen set of its rows into a dense `f32`
//! buffer can be trained on: an in-memory table ([`crate::Features`]), the
//! IDX images of `backprop-data` (stored as bytes, scaled on the fly), or a
//! user's own store. Sources whose inputs are mostly zeros may also gather
//! straight into a compressed batch, so the first layer skips the zeros.

use backprop_tensor::{SparseRows, ThreadPool};
use ndarray::{ArrayView2, ArrayViewMut2};

/// What a source's targets are: class indices, or vectors of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetShape {
    /// One class index per example, below the number given.
    Classes(usize),
    /// One vector of this many `f32` values per example (regression).
    Values(usize),
}

impl TargetShape {
    /// The width of the network's output: the number of classes or values.
    pub fn n_outputs(self) -> usize {
        match self {
            TargetShape::Classes(n) | TargetShape::Values(n) => n,
        }
    }
}

/// A batch's targets, read by a loss.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class indices, one per row.
    Classes(&'a [usize]),
    /// Values, `(B, n_outputs)`.
    Values(ArrayView2<'a, f32>),
}

impl Targets<'_> {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(y) => y.len(),
            Targets::Values(y) => y.nrows(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch's targets, written by [`Examples::gather`].
#[derive(Debug)]
pub enum TargetsMut<'a> {
    /// Class indices, one per row.
    Classes(&'a mut [usize]),
    /// Values, `(B, n_outputs)`.
    Values(ArrayViewMut2<'a, f32>),
}

impl TargetsMut<'_> {
    /// The same buffer, borrowed for a shorter time.
    pub fn reborrow(&mut self) -> TargetsMut<'_> {
        match self {
            TargetsMut::Classes(y) => TargetsMut::Classes(y),
            TargetsMut::Values(y) => TargetsMut::Values(y.view_mut()),
        }
    }
}

/// A source of training or evaluation examples.
///
/// Implementations must be deterministic: gathering the same indices gives
/// the same bits, so that training is reproducible.
pub trait Examples: Sync {
    /// The number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The width of one example's input.
    fn n_features(&self) -> usize;

    /// What the targets are.
    fn target_shape(&self) -> TargetShape;

    /// Copies the examples `indices` into row `r` of `x` (for `indices[r]`)
    /// and their targets into `y`, allocating nothing. `x` is
    /// `(indices.len(), n_features)`; `y` matches [`Examples::target_shape`]
    /// with `indices.len()` rows.
    fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>);

    /// The fraction of input values that are non-zero, when the source can
    /// gather compressed batches ([`Examples::gather_sparse`]); `None` (the
    /// default) when it cannot. Training compresses batches when this is
    /// below [`crate::SPARSE_INPUT_DENSITY`].
    fn density(&self) -> Option<f32> {
        None
    }

    /// Like [`Examples::gather`], into a compressed batch, with exactly the
    /// values `gather` would give. Called only when [`Examples::density`]
    /// returns `Some`; the default does nothing and returns `false`, and the
    /// caller then falls back to [`Examples::gather`].
    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        let _ = (indices, x, y);
        false
    }

    /// [`Examples::gather_sparse`], free to compress with `pool`'s threads
    /// (the trainer's, idle while the batch is made): the same bits
    /// whatever the number of threads. The default compresses on the
    /// calling thread.
    fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
        let _ = pool;
        self.gather_sparse(indices, x, y)
    }

    /// Called by the trainer before it gathers the batches of epoch `epoch`
    /// (counted from 0, so a resumed run passes the epoch it resumes at):
    /// sources whose examples change from epoch to epoch, such as random
    /// augmentation, draw from it. The default does nothing.
    fn start_epoch(&self, epoch: usize) {
        let _ = epoch;
    }

    /// A hint that `indices` will be gathered next (while the current batch
    /// trains), for sources that can load them into caches early.
    fn prefetch(&self, indices: &[u32]) {
        let _ = indices;
    }

    /// Called by the trainer just before it gathers `indices`, with its
    /// threads: a source whose examples cost time to make (random
    /// augmentation) may make them all now, split across `pool`, for the
    /// gather that follows to copy. What the gather gives must not depend on
    /// whether this ran, nor on the number of threads. The default does
    /// nothing.
    fn prepare(&self, indices: &[u32], pool: &ThreadPool) {
        let _ = (indices, pool);
    }

    /// Called by the trainer around the work of a step (`step`), with the
    /// indices `next` of the batch it gathers after it: a source whose
    /// examples cost time to make may make them meanwhile on `pool`'s idle
    /// threads ([`ThreadPool::run_beside`]), so that the next
    /// [`Examples::prepare`] finds them made. It must call `step` exactly
    /// once, and what gathers give must not depend on whether it made
    /// anything, nor on the threads. The default just calls `step`.
    fn prepare_beside(&self, next: &[u32], pool: &ThreadPool, step: &mut dyn FnMut()) {
        let _ = (next, pool);
        step();
    }
}
