//! Every buffer a forward and backward pass needs, allocated once.

use backprop_tensor::{SparseRows, ThreadPool};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use std::sync::Arc;

/// Activations, pre-activations and deltas for every layer, sized for the
/// largest batch; a smaller batch uses the first rows of each buffer.
///
/// Forward keeps exactly what backward needs: each layer's pre-activation `Z`
/// (for the activation's derivative) and each layer's output `A` (the input
/// of the next layer's BP4; for the output layer, only when its activation
/// is not the identity).
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(crate) max_batch: usize,
    /// `Z(l)`, `(max_batch, n_out(l))` for every layer.
    pub(crate) z: Vec<Array2<f32>>,
    /// `A(l) = f(Z(l))`, `(max_batch, n_out(l))` for every layer.
    pub(crate) a: Vec<Array2<f32>>,
    /// `delta(l)`, `(max_batch, n_out(l))` for every layer.
    pub(crate) delta: Vec<Array2<f32>>,
    /// The network input, compressed by [`crate::Mlp::forward`] to measure
    /// its density and, when sparse enough to pay, to multiply with.
    pub(crate) input: SparseRows,
    /// `W(l)^T`, `(n_out(l), n_in(l))` for every layer but the first,
    /// refreshed before BP2 so its product has contiguous rows.
    pub(crate) wt: Vec<Array2<f32>>,
    /// Threads for the matrix products.
    pub(crate) pool: Arc<ThreadPool>,
    /// Dropout masks of the hidden layers (`0` or `1 / (1 - p)`), when
    /// dropout is used; allocated by the first [`crate::Dropout::draw`].
    pub(crate) masks: Vec<Option<Array2<f32>>>,
    /// Whether the next forward and backward pass apply `masks`; set by
    /// [`crate::Dropout::draw`], cleared after the backward pass.
    pub(crate) dropout_on: bool,
    /// What each batch normalisation keeps between forward and backward;
    /// allocated by the first forward pass of a network that has them.
    pub(crate) norms: Vec<Option<crate::batch_norm::NormCache>>,
    /// Whether batch normalisation uses the batch's statistics (training)
    /// or the running averages (evaluation, the default).
    pub(crate) training: bool,
}

impl Workspace {
    /// Buffers for a network with these layer sizes and batches of up to
    /// `max_batch` rows, computing on the calling thread only.
    pub fn new(sizes: &[usize], max_batch: usize) -> Self {
        Self::with_pool(sizes, max_batch, Arc::new(ThreadPool::new(1)))
    }

    /// [`Workspace::new`], with matrix products shared between the threads
    /// of `pool`. Results are bit-identical whatever the number of threads.
    pub fn with_pool(sizes: &[usize], max_batch: usize, pool: Arc<ThreadPool>) -> Self {
        let outs = &sizes[1.min(sizes.len())..];
        let buffers = |n: &[usize]| {
            n.iter()
                .map(|&n| backprop_tensor::aligned_zeros((max_batch, n)))
                .collect::<Vec<_>>()
        };
        Self {
            max_batch,
            z: buffers(outs),
            a: buffers(outs),
            delta: buffers(outs),
            input: SparseRows::with_capacity(max_batch, sizes.first().copied().unwrap_or(0)),
            wt: sizes
                .windows(2)
                .skip(1)
                .map(|p| backprop_tensor::aligned_zeros((p[1], p[0])))
                .collect(),
            pool,
            masks: Vec::new(),
            dropout_on: false,
            norms: Vec::new(),
            training: false,
        }
    }

    /// Training mode: batch normalisation normalises with each batch's own
    /// statistics (and [`crate::Mlp::update_batch_norm`] can then move the
    /// running averages). Off by default: evaluation mode, where it uses
    /// the running averages and each row's output depends on that row
    /// alone. Networks without batch normalisation compute the same in both.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Whether this workspace is in training mode ([`Workspace::set_training`]).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Allocates the caches of `norms` that are missing or misshapen
    /// (nothing, after the first pass).
    pub(crate) fn fit_norms(&mut self, norms: &[Option<crate::BatchNorm>]) {
        use crate::batch_norm::NormCache;
        let max_batch = self.max_batch;
        let fits = self.norms.len() == norms.len()
            && self.norms.iter().zip(norms).all(|(c, n)| match (c, n) {
                (None, None) => true,
                (Some(c), Some(n)) => c.fits(max_batch, n.len()),
                _ => false,
            });
        if !fits {
            self.norms = norms
                .iter()
                .map(|n| n.as_ref().map(|n| NormCache::new(max_batch, n.len())))
                .collect();
        }
    }

    /// The threads this workspace computes with.
    pub fn pool(&self) -> &Arc<ThreadPool> {
        &self.pool
    }

    /// The largest batch these buffers hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The output `A(L)` of the last forward pass over `batch` rows: `A(L)`
    /// itself when `written`, else `Z(L)`.
    pub(crate) fn output(&self, written: bool, batch: usize) -> ArrayView2<'_, f32> {
        let last = self.z.len() - 1;
        if written { &self.a[last] } else { &self.z[last] }.slice(s![..batch, ..])
    }

    /// The output of the last forward pass over `batch` rows, and the buffer
    /// for `delta(L) = dL/dA(L)`. `identity_output` says whether the output
    /// layer's activation is the identity (then `A(L) = Z(L)`); users go
    /// through [`crate::Mlp::output_and_delta`], which knows.
    pub(crate) fn output_and_delta(
        &mut self,
        identity_output: bool,
        batch: usize,
    ) -> (ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) {
        let last = self.z.len() - 1;
        let output = if identity_output { &self.z[last] } else { &self.a[last] };
        (
            output.slice(s![..batch, ..]),
            self.delta[last].slice_mut(s![..batch, ..]),
        )
    }

    /// `true` when the buffers fit a network with these layer sizes.
    pub(crate) fn fits(&self, layers: &[crate::Dense]) -> bool {
        self.z.len() == layers.len() && self.z.iter().zip(layers).all(|(z, l)| z.ncols() == l.n_out())
    }
}
