//! A dense (fully connected) layer: `Z = A_prev W + 1 b^T`, its activation
//! `A = f(Z)`, and its parameter gradients.

use crate::{Activation, Init};
use backprop_tensor::{
    Op, Rng, SparseRows, ThreadPool, add_row_broadcast, gemm_with, sparse_affine_with, sparse_gemm_with, sum_rows_into,
};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

/// Below this fraction of non-zero inputs, products with the network input
/// skip the zeros ([`backprop_tensor::sparse_gemm`]); at or above it, they use dense GEMM.
/// MNIST batches have a density of about 0.19, Fashion-MNIST about 0.5.
pub const SPARSE_INPUT_DENSITY: f32 = 0.35;

/// A layer's input `A(l-1)`: a dense view, or the network input stored
/// compressed because it is mostly zeros.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// `(B, n_in)`, any layout.
    Dense(ArrayView2<'a, f32>),
    /// `(B, n_in)`, compressed.
    Sparse(&'a SparseRows),
}

impl Input<'_> {
    /// The batch size `B`.
    pub fn rows(&self) -> usize {
        match self {
            Input::Dense(a) => a.nrows(),
            Input::Sparse(a) => a.dim().0,
        }
    }

    /// The width `n_in`.
    pub fn cols(&self) -> usize {
        match self {
            Input::Dense(a) => a.ncols(),
            Input::Sparse(a) => a.dim().1,
        }
    }
}

/// Weights `W: (n_in, n_out)`, bias `b: (n_out)` and the activation `f`.
///
/// ```
/// use backprop_nn::{Activation, Dense, Init};
/// use backprop_tensor::Rng;
/// let layer = Dense::with(784, 128, Activation::Relu, Init::HeNormal, &mut Rng::seed_from_u64(0));
/// assert_eq!((layer.n_in(), layer.n_out()), (784, 128));
/// assert_eq!(layer.w.dim(), (784, 128)); // y = x W + b: no transpose on the forward pass
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// `W(l)`, shape `(n_in, n_out)`.
    pub w: Array2<f32>,
    /// `b(l)`, shape `(n_out)`.
    pub b: Array1<f32>,
    /// `f`, applied to `Z(l)`.
    pub activation: Activation,
}

impl Dense {
    /// A ReLU layer with He-normal weights and zero biases.
    pub fn new(n_in: usize, n_out: usize, rng: &mut Rng) -> Self {
        Self::with(n_in, n_out, Activation::Relu, Init::HeNormal, rng)
    }

    /// A layer with weights drawn by `init` and zero biases.
    pub fn with(n_in: usize, n_out: usize, activation: Activation, init: Init, rng: &mut Rng) -> Self {
        let mut layer = Self {
            w: init.weights(n_in, n_out, rng),
            b: Array1::zeros(n_out),
            activation,
        };
        layer.align();
        layer
    }

    /// Moves `W` to a cache-line-aligned, standard-layout copy of itself
    /// (the same values, bit for bit) unless it already is one: its rows
    /// then straddle no more cache lines than they fill, which the products
    /// reading them row by row feel (7% of a seed-recipe epoch on one
    /// thread). Every constructor of this crate calls it.
    pub(crate) fn align(&mut self) {
        if !self.w.is_standard_layout() || !(self.w.as_ptr() as usize).is_multiple_of(backprop_tensor::CACHE_LINE) {
            self.w = backprop_tensor::aligned_copy(self.w.view());
        }
    }

    /// Input width `n_in`.
    pub fn n_in(&self) -> usize {
        self.w.nrows()
    }

    /// Output width `n_out`.
    pub fn n_out(&self) -> usize {
        self.w.ncols()
    }

    /// E1, `Z = A_prev W + 1 b^T`, then E2: when `a` is given, `A = f(Z)` is
    /// written there in the same pass over `Z`.
    ///
    /// # Shapes
    /// `a_prev: (B, n_in)`, `z` and `a: (B, n_out)`.
    pub fn forward(
        &self,
        pool: &ThreadPool,
        a_prev: Input<'_>,
        mut z: ArrayViewMut2<'_, f32>,
        a: Option<ArrayViewMut2<'_, f32>>,
    ) {
        let a_prev = match a_prev {
            Input::Dense(a_prev) => a_prev,
            // The bias and the activation are applied by the product's
            // tasks, row by row as they finish (the same bits).
            Input::Sparse(x) if self.activation == Activation::Relu => {
                return sparse_affine_with(pool, x, self.w.view(), self.b.view(), &mut z, a, |z| z.max(0.0));
            }
            Input::Sparse(x) => {
                let f = self.activation;
                return sparse_affine_with(pool, x, self.w.view(), self.b.view(), &mut z, a, |z| f.apply(z));
            }
        };
        gemm_with(pool, 1.0, a_prev, self.w.view(), 0.0, &mut z);
        match a {
            None => add_row_broadcast(z, self.b.view()),
            // ReLU gets a loop of its own, so the hot path has no branch on
            // the activation per element.
            Some(a) if self.activation == Activation::Relu => self.bias_and(z, a, |z| z.max(0.0)),
            Some(a) => {
                let f = self.activation;
                self.bias_and(z, a, |z| f.apply(z));
            }
        }
    }

    /// `z <- z + b` and `a <- f(z)`, row by row in one pass.
    fn bias_and(&self, mut z: ArrayViewMut2<'_, f32>, mut a: ArrayViewMut2<'_, f32>, f: impl Fn(f32) -> f32) {
        Zip::from(z.rows_mut()).and(a.rows_mut()).for_each(|mut z, mut a| {
            Zip::from(&mut z).and(&mut a).and(&self.b).for_each(|z, a, &b| {
                *z += b;
                *a = f(*z);
            });
        });
    }

    /// BP4 and BP3: `dW = A_prev^T delta` and `db = sum_i delta[i, :]`,
    /// overwriting `dw` and `db` (a chain has no fan-out, so nothing is
    /// accumulated and nothing needs zeroing first).
    ///
    /// # Shapes
    /// `a_prev: (B, n_in)`, `delta: (B, n_out)`, `dw: (n_in, n_out)`, `db: (n_out)`.
    pub fn backward(
        pool: &ThreadPool,
        a_prev: Input<'_>,
        delta: ArrayView2<'_, f32>,
        mut dw: ArrayViewMut2<'_, f32>,
        db: ArrayViewMut1<'_, f32>,
    ) {
        match a_prev {
            Input::Dense(a_prev) => gemm_with(pool, 1.0, a_prev.t(), delta, 0.0, &mut dw),
            Input::Sparse(a_prev) => sparse_gemm_with(pool, 1.0, a_prev, Op::Transposed, delta, 0.0, &mut dw),
        }
        sum_rows_into(delta, db);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    /// A `(rows, cols)` array of distinct values that starts one float past
    /// a cache line: an owned array over a slice of a longer buffer.
    pub(crate) fn misaligned(rows: usize, cols: usize) -> Array2<f32> {
        let mut store = backprop_tensor::aligned_zeros(rows * cols + 1);
        store
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 * 0.25 - 3.0);
        let w = store
            .slice_move(ndarray::s![1..])
            .into_shape_with_order((rows, cols))
            .unwrap();
        assert_ne!(w.as_ptr() as usize % backprop_tensor::CACHE_LINE, 0);
        w
    }

    /// New layers, and those `Mlp::from_layers` takes (from a checkpoint,
    /// say), keep `W` at the start of a cache line, its values unchanged.
    #[test]
    fn weights_start_a_cache_line() {
        let aligned =
            |l: &Dense| (l.w.as_ptr() as usize).is_multiple_of(backprop_tensor::CACHE_LINE) && l.w.is_standard_layout();
        let mut rng = Rng::seed_from_u64(1);
        for (n_in, n_out) in [(784, 128), (128, 10), (3, 5)] {
            assert!(aligned(&Dense::new(n_in, n_out, &mut rng)), "{n_in}x{n_out}");
        }
        let w = misaligned(6, 4);
        // Column-major: the same matrix, not in standard layout.
        let column_major = Array2::from_shape_fn((6, 4).f(), |ij| w[ij]);
        assert!(!column_major.is_standard_layout());
        for w_in in [w.clone(), column_major] {
            let layer = Dense {
                w: w_in,
                b: Array1::zeros(4),
                activation: Activation::Relu,
            };
            let model = crate::Mlp::from_layers(vec![layer, Dense::new(4, 2, &mut rng)]).unwrap();
            assert!(aligned(&model.layers()[0]));
            assert_eq!(model.layers()[0].w, w);
        }
    }

    /// The sparse and dense paths compute the same layer, up to float rounding.
    #[test]
    fn sparse_and_dense_paths_agree() {
        let mut rng = Rng::seed_from_u64(5);
        let layer = Dense {
            w: crate::he_normal(50, 7, &mut rng),
            b: Array1::from_shape_fn(7, |i| i as f32 * 0.1),
            activation: Activation::Relu,
        };
        let x = Array2::from_shape_fn((9, 50), |_| {
            if rng.below(5) == 0 {
                rng.uniform_f64() as f32
            } else {
                0.0
            }
        });
        let delta = Array2::from_shape_fn((9, 7), |_| rng.normal() as f32);
        let mut sparse = SparseRows::with_capacity(9, 50);
        sparse.fill(x.view());
        let pool = ThreadPool::new(1);
        let mut outs = Vec::new();
        for input in [Input::Sparse(&sparse), Input::Dense(x.view())] {
            let mut z = Array2::zeros((9, 7));
            let mut a = Array2::zeros((9, 7));
            layer.forward(&pool, input, z.view_mut(), Some(a.view_mut()));
            let mut dw = Array2::zeros((50, 7));
            let mut db = Array1::zeros(7);
            Dense::backward(&pool, input, delta.view(), dw.view_mut(), db.view_mut());
            outs.push((z, a, dw, db));
        }
        let (s, d) = (&outs[0], &outs[1]);
        for (x, y) in
            s.0.iter()
                .chain(&s.1)
                .chain(&s.2)
                .zip(d.0.iter().chain(&d.1).chain(&d.2))
        {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
        assert_eq!(s.3, d.3);
        assert!(s.1.iter().all(|&v| v >= 0.0));
    }
}
