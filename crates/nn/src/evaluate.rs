//! Accuracy and mean loss of a model on a dataset.

use crate::{Input, Mlp, Result, SPARSE_INPUT_DENSITY, Workspace, softmax_cross_entropy, train::check_fits};
use backprop_data::Dataset;
use backprop_tensor::{SparseRows, ThreadPool, argmax_rows};
use ndarray::{Array2, ArrayViewMut2, Axis, s};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Rows evaluated per forward pass.
const CHUNK: usize = 256;

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
    let n_chunks = n.div_ceil(chunk);
    let sparse = data.density() < SPARSE_INPUT_DENSITY;

    // The forward passes: chunks shared out between threads, each thread with
    // buffers of its own. Each chunk's logits are the same bits whichever
    // thread computes them.
    let mut logits = Array2::<f32>::zeros((n, model.n_outputs()));
    let mut labels = vec![0usize; n];
    {
        let slots: Vec<Mutex<(ArrayViewMut2<'_, f32>, &mut [usize])>> = logits
            .axis_chunks_iter_mut(Axis(0), chunk)
            .zip(labels.chunks_mut(chunk))
            .map(Mutex::new)
            .collect();
        let n_tasks = pool.n_threads().min(n_chunks).max(1);
        let task = |t: usize| {
            let mut ws = Workspace::new(&sizes, chunk);
            let mut x = Array2::zeros((if sparse { 0 } else { chunk }, model.n_inputs()));
            let mut x_sparse = SparseRows::with_capacity(if sparse { chunk } else { 0 }, model.n_inputs());
            let mut indices = Vec::with_capacity(chunk);
            for c in (t..n_chunks).step_by(n_tasks) {
                let mut slot = slots[c].lock().unwrap_or_else(|e| e.into_inner());
                let (out, y) = &mut *slot;
                let rows = y.len();
                indices.clear();
                indices.extend((c * chunk..c * chunk + rows).map(|i| i as u32));
                let input = if sparse {
                    data.gather_sparse_into(&indices, &mut x_sparse, y);
                    Input::Sparse(&x_sparse)
                } else {
                    data.gather_into(&indices, x.slice_mut(s![..rows, ..]), y);
                    Input::Dense(x.slice(s![..rows, ..]))
                };
                out.assign(&model.forward_input(input, &mut ws));
            }
        };
        pool.run(n_tasks, &task);
    }

    // The metrics, chunk by chunk in order, so they do not depend on threads.
    let mut predictions = vec![0usize; chunk];
    let mut delta = Array2::zeros((chunk, model.n_outputs()));
    let (mut correct, mut loss_sum) = (0usize, 0.0f64);
    for c in 0..n_chunks {
        let range = c * chunk..((c + 1) * chunk).min(n);
        let rows = range.len();
        let (z, y) = (logits.slice(s![range.clone(), ..]), &labels[range]);
        argmax_rows(z, &mut predictions[..rows]);
        correct += predictions[..rows].iter().zip(y).filter(|(p, y)| p == y).count();
        let loss = softmax_cross_entropy(z, y, delta.slice_mut(s![..rows, ..]));
        loss_sum += f64::from(loss) * rows as f64;
        on_chunk(c * chunk, z, y);
    }
    let denom = n.max(1) as f64;
    Ok(Evaluation {
        accuracy: correct as f64 / denom,
        loss: loss_sum / denom,
        correct,
        n,
    })
}
