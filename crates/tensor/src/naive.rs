//! Reference implementations by plain loops, in f64, and random matrices,
//! for the tests.

use ndarray::{Array2, ArrayView2};

/// `alpha * A * B + beta * C0` by the definition.
pub(crate) fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c0: &Array2<f32>,
) -> Array2<f32> {
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| {
        let mut s = 0.0f64;
        for p in 0..k {
            s += a[[i, p]] as f64 * b[[p, j]] as f64;
        }
        let prev = if beta == 0.0 {
            0.0
        } else {
            beta as f64 * c0[[i, j]] as f64
        };
        (alpha as f64 * s + prev) as f32
    })
}

/// A random `(rows, cols)` matrix: each entry is a standard normal with
/// probability `density`, else exactly zero.
pub(crate) fn matrix(rows: usize, cols: usize, seed: u64, density: f64) -> Array2<f32> {
    let mut rng = crate::Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| {
        if rng.uniform_f64() < density {
            rng.normal() as f32
        } else {
            0.0
        }
    })
}
