//! Matrix products into caller-owned buffers: `C <- alpha * A * B + beta * C`.
//!
//! `A` and `B` are any 2-D views, so `op(A) = A^T` is just `a.t()`: a stride
//! view, never a copy. [`gemm`] hands the strides to `matrixmultiply`, which
//! packs the operands into cache-sized panels itself. Products with a
//! mostly-zero left operand are in [`crate::sparse_gemm`].

use ndarray::{ArrayView2, ArrayViewMut2};

/// Dense GEMM: `C <- alpha * A * B + beta * C`.
///
/// With `beta == 0` the old contents of `C` are never read, so `C` may hold
/// garbage (even NaN) on entry.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `c: (m, n)`; any strides, including negative and
/// transposed ones.
///
/// # Panics
/// If the shapes do not chain, with all three shapes in the message.
#[track_caller]
pub fn gemm(alpha: f32, a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm: shapes do not chain: A {:?} * B {:?} -> C {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale(beta, c);
        return;
    }
    let [rsa, csa] = strides(a.strides());
    let [rsb, csb] = strides(b.strides());
    let [rsc, csc] = strides(c.strides());
    // SAFETY: the pointers come from live views whose shapes were checked
    // above to be (m, k), (k, n) and (m, n); matrixmultiply reads exactly
    // those elements through the given strides, and writes only `c`, which is
    // borrowed mutably and so cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

/// `C <- beta * C`, writing zeros (not `0 * C`) when `beta == 0` so that NaN
/// garbage in `C` does not survive, as BLAS does.
fn scale(beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.mapv_inplace(|x| beta * x);
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive;
    use ndarray::Array2;
    use proptest::prelude::*;

    fn close(a: &Array2<f32>, b: &Array2<f32>, k: usize) {
        let tol = 1e-5 * (k as f32 + 1.0);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    fn matrix(rows: usize, cols: usize, seed: u64, density: f64) -> Array2<f32> {
        let mut rng = crate::Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| {
            if rng.uniform_f64() < density {
                rng.normal() as f32
            } else {
                0.0
            }
        })
    }

    proptest! {
        #[test]
        fn dense_matches_naive(m in 1usize..40, k in 1usize..40, n in 1usize..40,
                               ta: bool, tb: bool, beta in prop::sample::select(vec![0.0f32, 1.0, -0.5]),
                               seed: u64) {
            let a = if ta { matrix(k, m, seed, 1.0) } else { matrix(m, k, seed, 1.0) };
            let b = if tb { matrix(n, k, seed ^ 1, 1.0) } else { matrix(k, n, seed ^ 1, 1.0) };
            let av = if ta { a.t() } else { a.view() };
            let bv = if tb { b.t() } else { b.view() };
            let c0 = matrix(m, n, seed ^ 2, 1.0);
            let mut c = c0.clone();
            gemm(0.7, av, bv, beta, &mut c.view_mut());
            close(&c, &naive::gemm(0.7, av, bv, beta, &c0), k);
        }

    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let a = matrix(3, 4, 1, 1.0);
        let b = matrix(4, 5, 2, 1.0);
        let mut c = Array2::from_elem((3, 5), f32::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
        assert!(c.iter().all(|x| x.is_finite()));
    }

    #[test]
    #[should_panic(expected = "shapes do not chain")]
    fn mismatched_shapes_panic_with_shapes() {
        let a = Array2::<f32>::zeros((2, 3));
        let b = Array2::<f32>::zeros((4, 5));
        let mut c = Array2::<f32>::zeros((2, 5));
        gemm(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
    }
}
