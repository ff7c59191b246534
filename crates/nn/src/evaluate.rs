//! Accuracy and mean loss of a model on a dataset.

use crate::{Input, Mlp, Result, SPARSE_INPUT_DENSITY, Workspace, softmax_cross_entropy, train::check_fits};
use backprop_data::Dataset;
use backprop_tensor::{SparseRows, ThreadPool, argmax_rows};
use ndarray::{Array2, s};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Rows evaluated per forward pass.
const CHUNK: usize = 1000;

/// How well a model does on a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction of examples whose most probable class is the label, in `[0, 1]`.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Examples classified correctly.
    pub correct: usize,
    /// Examples evaluated.
    pub n: usize,
}

/// Evaluates `model` on every example of `data`, in order.
///
/// # Errors
/// When the data does not fit the network.
pub fn evaluate(model: &Mlp, data: &Dataset) -> Result<Evaluation> {
    evaluate_with(model, data, |_, _, _| {})
}

/// [`evaluate`], also handing each chunk's logits `(rows, classes)`, labels
/// and first row index to `on_chunk`, so callers can build confusion matrices
/// or rank errors without a second pass.
///
/// # Errors
/// When the data does not fit the network.
pub fn evaluate_with(
    model: &Mlp,
    data: &Dataset,
    on_chunk: impl FnMut(usize, ndarray::ArrayView2<'_, f32>, &[usize]),
) -> Result<Evaluation> {
    evaluate_in(&Arc::new(ThreadPool::new(1)), model, data, on_chunk)
}

/// [`evaluate_with`] on the threads of `pool`.
///
/// # Errors
/// When the data does not fit the network.
pub fn evaluate_in(
    pool: &Arc<ThreadPool>,
    model: &Mlp,
    data: &Dataset,
    mut on_chunk: impl FnMut(usize, ndarray::ArrayView2<'_, f32>, &[usize]),
) -> Result<Evaluation> {
    let sizes = model.sizes();
    check_fits(&sizes, data)?;
    let n = data.len();
    let chunk = CHUNK.min(n.max(1));
    let mut ws = Workspace::with_pool(&sizes, chunk, Arc::clone(pool));
    let sparse = data.density() < SPARSE_INPUT_DENSITY;
    let mut x = Array2::zeros((if sparse { 0 } else { chunk }, model.n_inputs()));
    let mut x_sparse = SparseRows::with_capacity(if sparse { chunk } else { 0 }, model.n_inputs());
    let mut labels = vec![0usize; chunk];
    let mut predictions = vec![0usize; chunk];
    let mut delta = Array2::zeros((chunk, model.n_outputs()));
    let indices: Vec<u32> = (0..n as u32).collect();
    let (mut correct, mut loss_sum) = (0usize, 0.0f64);
    for (c, idx) in indices.chunks(chunk).enumerate() {
        let rows = idx.len();
        let input = if sparse {
            data.gather_sparse_into(idx, &mut x_sparse, &mut labels[..rows]);
            Input::Sparse(&x_sparse)
        } else {
            data.gather_into(idx, x.slice_mut(s![..rows, ..]), &mut labels[..rows]);
            Input::Dense(x.slice(s![..rows, ..]))
        };
        let logits = model.forward_input(input, &mut ws);
        argmax_rows(logits, &mut predictions[..rows]);
        correct += predictions[..rows]
            .iter()
            .zip(&labels[..rows])
            .filter(|(p, y)| p == y)
            .count();
        let loss = softmax_cross_entropy(logits, &labels[..rows], delta.slice_mut(s![..rows, ..]));
        loss_sum += f64::from(loss) * rows as f64;
        on_chunk(c * chunk, logits, &labels[..rows]);
    }
    let denom = n.max(1) as f64;
    Ok(Evaluation {
        accuracy: correct as f64 / denom,
        loss: loss_sum / denom,
        correct,
        n,
    })
}
