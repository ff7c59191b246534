//! How well a model does on a source of examples: accuracy and mean
//! cross-entropy for classifiers, MSE and R² for regression.

use crate::train::check_fits;
use crate::{Examples, Input, Loss, Mlp, Result, SPARSE_INPUT_DENSITY, TargetShape, Targets, TargetsMut, Workspace};
use backprop_tensor::{SparseRows, ThreadPool, argmax_rows};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Rows whose metrics are summed together (the loss is a sum of chunk
/// means, so this fixes its rounding).
const CHUNK: usize = 256;

/// Rows gathered and sent forward at once: few enough that the compressed
/// rows, the activations and the first layer's weights stay in a core's L2.
const PIECE: usize = 64;

/// How well a model does on a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Examples evaluated.
    pub n: usize,
    /// Mean loss: cross-entropy for classes, MSE for values.
    pub loss: f64,
    /// The task's own measures.
    pub metrics: Metrics,
}

/// The measures of one kind of task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metrics {
    /// A classifier's.
    Classification {
        /// Examples whose most probable class is the label.
        correct: usize,
        /// `correct / n`, in `[0, 1]`.
        accuracy: f64,
    },
    /// A regression's.
    Regression {
        /// Mean squared error over every output value.
        mse: f64,
        /// The coefficient of determination, `1 - SS_res / SS_tot`, per
        /// output and averaged (scikit-learn's `r2_score`); for a constant
        /// target, 1 when predicted exactly and 0 otherwise.
        r2: f64,
    },
}

impl Evaluation {
    /// The accuracy, for a classifier.
    pub fn accuracy(&self) -> Option<f64> {
        match self.metrics {
            Metrics::Classification { accuracy, .. } => Some(accuracy),
            Metrics::Regression { .. } => None,
        }
    }

    /// The number of correct predictions, for a classifier.
    pub fn correct(&self) -> Option<usize> {
        match self.metrics {
            Metrics::Classification { correct, .. } => Some(correct),
            Metrics::Regression { .. } => None,
        }
    }

    /// R², for a regression.
    pub fn r2(&self) -> Option<f64> {
        match self.metrics {
            Metrics::Classification { .. } => None,
            Metrics::Regression { r2, .. } => Some(r2),
        }
    }
}

/// Evaluates `model` on every example of `data`, in order; the loss follows
/// the targets (cross-entropy for classes, MSE for values).
///
/// # Errors
/// When the data does not fit the network.
pub fn evaluate(model: &Mlp, data: &dyn Examples) -> Result<Evaluation> {
    evaluate_with(model, data, |_, _, _| {})
}

/// [`evaluate`], also handing each chunk's outputs `(rows, n_outputs)`,
/// targets and first row index to `on_chunk`, so callers can build confusion
/// matrices or rank errors without a second pass.
///
/// # Errors
/// When the data does not fit the network.
pub fn evaluate_with(
    model: &Mlp,
    data: &dyn Examples,
    on_chunk: impl FnMut(usize, ArrayView2<'_, f32>, Targets<'_>),
) -> Result<Evaluation> {
    evaluate_in(&Arc::new(ThreadPool::new(1)), model, data, on_chunk)
}

/// [`evaluate_with`] on the threads of `pool`. The result is the same bits
/// for any number of threads.
///
/// # Errors
/// When the data does not fit the network or is empty;
/// [`crate::NnError::NonFiniteOutput`] when the model's outputs overflow.
pub fn evaluate_in(
    pool: &Arc<ThreadPool>,
    model: &Mlp,
    data: &dyn Examples,
    mut on_chunk: impl FnMut(usize, ArrayView2<'_, f32>, Targets<'_>),
) -> Result<Evaluation> {
    let sizes = model.sizes();
    if data.is_empty() || u32::try_from(data.len()).is_err() {
        return Err(crate::NnError::InvalidData {
            reason: match data.len() {
                0 => "there are no examples to evaluate".into(),
                n => format!("{n} examples; at most {} can be evaluated at once", u32::MAX),
            },
        });
    }
    let target = data.target_shape();
    let expected = match target {
        TargetShape::Classes(_) => TargetShape::Classes(model.n_outputs()),
        TargetShape::Values(_) => TargetShape::Values(model.n_outputs()),
    };
    check_fits(&sizes, expected, data)?;
    let n = data.len();
    let chunk = CHUNK.min(n.max(1));
    let n_chunks = n.div_ceil(chunk);
    let piece = PIECE.min(n.max(1));
    let n_pieces = n.div_ceil(piece);
    let sparse = data.density().is_some_and(|d| d < SPARSE_INPUT_DENSITY);

    if sparse && pool.active_threads() > 1 {
        // One row gathered on the pool first: a source that compresses its
        // examples at its first compressed gather (a `Dataset`) then does
        // it on every thread, not inside the first piece while the other
        // threads wait. Once they are compressed this copies one row.
        let mut row = SparseRows::rows_only(1, model.n_inputs());
        let mut class = [0usize];
        let width = match target {
            TargetShape::Values(k) => k,
            TargetShape::Classes(_) => 0,
        };
        let mut value = Array2::<f32>::zeros((1, width));
        let y = match target {
            TargetShape::Classes(_) => TargetsMut::Classes(&mut class),
            TargetShape::Values(_) => TargetsMut::Values(value.view_mut()),
        };
        data.gather_sparse_on(&[0], &mut row, y, pool);
    }

    // The forward passes: pieces claimed by the threads as they free up, each
    // thread with buffers of its own. A row's outputs are the same bits
    // whichever thread computes them, in whichever piece.
    let mut outputs = Array2::<f32>::zeros((n, model.n_outputs()));
    let (mut classes, mut values) = match target {
        TargetShape::Classes(_) => (vec![0usize; n], Array2::zeros((0, 0))),
        TargetShape::Values(k) => (Vec::new(), Array2::<f32>::zeros((n, k))),
    };
    {
        let targets: Vec<TargetsMut<'_>> = match target {
            TargetShape::Classes(_) => classes.chunks_mut(piece).map(TargetsMut::Classes).collect(),
            TargetShape::Values(_) => values
                .axis_chunks_iter_mut(Axis(0), piece)
                .map(TargetsMut::Values)
                .collect(),
        };
        let slots: Vec<Mutex<(ArrayViewMut2<'_, f32>, TargetsMut<'_>)>> = outputs
            .axis_chunks_iter_mut(Axis(0), piece)
            .zip(targets)
            .map(Mutex::new)
            .collect();
        let next = AtomicUsize::new(0);
        let n_tasks = pool.active_threads().min(n_pieces).max(1);
        let task = |_: usize| {
            let mut ws = Workspace::new(&sizes, piece);
            let mut x = Array2::zeros((if sparse { 0 } else { piece }, model.n_inputs()));
            // Evaluation only goes forward: the CSR is all it needs.
            let mut x_sparse = SparseRows::rows_only(if sparse { piece } else { 0 }, model.n_inputs());
            let mut indices = Vec::with_capacity(piece);
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= n_pieces {
                    break;
                }
                let mut slot = slots[c].lock().unwrap_or_else(|e| e.into_inner());
                let (out, y) = &mut *slot;
                let rows = out.nrows();
                indices.clear();
                indices.extend((c * piece..c * piece + rows).map(|i| i as u32));
                let input = if sparse && data.gather_sparse(&indices, &mut x_sparse, y.reborrow()) {
                    Input::Sparse(&x_sparse)
                } else {
                    if x.nrows() < rows {
                        x = Array2::zeros((piece, model.n_inputs()));
                    }
                    data.gather(&indices, x.slice_mut(s![..rows, ..]), y.reborrow());
                    Input::Dense(x.slice(s![..rows, ..]))
                };
                out.assign(&model.forward_input(input, &mut ws));
            }
        };
        pool.run(n_tasks, &task);
    }

    if let Some(i) = outputs.iter().position(|v| !v.is_finite()) {
        return Err(crate::NnError::NonFiniteOutput {
            example: i / model.n_outputs(),
        });
    }

    // The metrics, chunk by chunk in order, so they do not depend on threads.
    let mut delta = Array2::zeros((chunk, model.n_outputs()));
    let mut predictions = vec![0usize; chunk];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for c in 0..n_chunks {
        let range = c * chunk..((c + 1) * chunk).min(n);
        let rows = range.len();
        let z = outputs.slice(s![range.clone(), ..]);
        let y = match target {
            TargetShape::Classes(_) => Targets::Classes(&classes[range]),
            TargetShape::Values(_) => Targets::Values(values.slice(s![range, ..])),
        };
        let loss = if let Targets::Classes(labels) = y {
            argmax_rows(z, &mut predictions[..rows]);
            correct += predictions[..rows].iter().zip(labels).filter(|(p, y)| p == y).count();
            Loss::CrossEntropy
        } else {
            Loss::MeanSquaredError
        };
        loss_sum += f64::from(loss.forward_backward(z, y, delta.slice_mut(s![..rows, ..]))) * rows as f64;
        on_chunk(c * chunk, z, y);
    }
    let denom = n.max(1) as f64;
    let loss = loss_sum / denom;
    let metrics = match target {
        TargetShape::Classes(_) => Metrics::Classification {
            correct,
            accuracy: correct as f64 / denom,
        },
        TargetShape::Values(_) => Metrics::Regression {
            mse: loss,
            r2: r2_score(outputs.view(), values.view()),
        },
    };
    Ok(Evaluation { n, loss, metrics })
}

/// R² per output column, averaged.
fn r2_score(predicted: ArrayView2<'_, f32>, target: ArrayView2<'_, f32>) -> f64 {
    let n = target.nrows();
    if n == 0 || target.ncols() == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for (p, t) in predicted.columns().into_iter().zip(target.columns()) {
        let mean = t.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let ss_tot: f64 = t.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        let ss_res: f64 = p
            .iter()
            .zip(&t)
            .map(|(&p, &t)| (f64::from(p) - f64::from(t)).powi(2))
            .sum();
        // scikit-learn's convention for a constant target: 1 when predicted
        // exactly, 0 otherwise.
        total += match (ss_tot > 0.0, ss_res > 0.0) {
            (true, _) => 1.0 - ss_res / ss_tot,
            (false, false) => 1.0,
            (false, true) => 0.0,
        };
    }
    total / target.ncols() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Features;
    use backprop_tensor::Rng;

    /// [`Features`] that also hand out compressed batches, so evaluation
    /// takes its sparse path (rows only, in pieces) on the same values; it
    /// notes the thread count of each pool it is handed a gather on.
    struct Compressible(Features, Mutex<Vec<usize>>);

    impl Examples for Compressible {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn n_features(&self) -> usize {
            self.0.n_features()
        }
        fn target_shape(&self) -> TargetShape {
            self.0.target_shape()
        }
        fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
            self.0.gather(indices, x, y);
        }
        fn density(&self) -> Option<f32> {
            Some(0.1)
        }
        fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
            assert!(!x.has_columns(), "evaluation asks for rows only");
            let mut dense = Array2::zeros((indices.len(), self.n_features()));
            self.0.gather(indices, dense.view_mut(), y);
            x.fill(dense.view());
            true
        }
        fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
            self.1.lock().unwrap().push(pool.n_threads());
            self.gather_sparse(indices, x, y)
        }
    }

    /// 300 examples (pieces of 64 and chunks of 256, the last of each
    /// partial), three quarters of the inputs zero.
    fn data() -> Features {
        let mut rng = Rng::seed_from_u64(7);
        let x = Array2::from_shape_simple_fn((300, 40), || match rng.below(4) {
            0 => rng.normal() as f32,
            _ => 0.0,
        });
        let labels = (0..300).map(|_| rng.below(5) as usize).collect();
        Features::classification(x, labels, 5).unwrap()
    }

    #[test]
    fn the_sparse_path_gives_the_dense_paths_bits_on_any_threads() {
        let model = Mlp::new(&[40, 16, 5], &mut Rng::seed_from_u64(8)).unwrap();
        let dense = data();
        let sparse = Compressible(data(), Mutex::default());
        let run = |threads: usize, data: &dyn Examples| {
            let mut logits = Vec::new();
            let eval = evaluate_in(&Arc::new(ThreadPool::new(threads)), &model, data, |first, z, _| {
                logits.push((first, z.iter().map(|v| v.to_bits()).collect::<Vec<_>>()));
            })
            .unwrap();
            (eval, logits)
        };
        let want = run(1, &dense);
        assert_eq!(want.0.n, 300);
        assert_eq!(want.1.iter().map(|(first, _)| *first).collect::<Vec<_>>(), [0, 256]);
        for threads in [1, 2, 3] {
            assert!(run(threads, &sparse) == want, "sparse, {threads} threads");
            assert!(run(threads, &dense) == want, "dense, {threads} threads");
        }
    }

    #[test]
    fn on_several_threads_one_row_is_gathered_on_the_pool_before_the_pieces() {
        let model = Mlp::new(&[40, 16, 5], &mut Rng::seed_from_u64(8)).unwrap();
        for (threads, want) in [(1, vec![]), (2, vec![2]), (3, vec![3])] {
            let sparse = Compressible(data(), Mutex::default());
            evaluate_in(&Arc::new(ThreadPool::new(threads)), &model, &sparse, |_, _, _| {}).unwrap();
            assert_eq!(*sparse.1.lock().unwrap(), want, "{threads} threads");
        }
    }
}
