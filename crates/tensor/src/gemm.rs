//! Matrix products into caller-owned buffers: `C <- alpha * A * B + beta * C`.
//!
//! `A` and `B` are any 2-D views, so `op(A) = A^T` is just `a.t()`: a stride
//! view, never a copy. [`gemm`] hands the strides to `matrixmultiply`, which
//! packs the operands into cache-sized panels itself. [`gemm_sparse_lhs`] is
//! the same product for a left operand that is mostly zeros (an MNIST batch is
//! about four fifths zeros), and does work only for the non-zero entries.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

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

/// GEMM for a mostly-zero left operand: `C <- alpha * A * B + beta * C`,
/// skipping every zero entry of `A`.
///
/// Each element of `C` is accumulated over `p = 0..k` in increasing order,
/// whichever layout `A` has, so the result does not depend on whether `A` is
/// given as a row-major matrix or as the transpose of one. It equals [`gemm`]
/// up to float rounding. Use it when [`row_density`] of `A` is low (below
/// about 0.5); on dense inputs [`gemm`] is faster.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `c: (m, n)`; rows of `b` and `c` must be
/// contiguous (standard layout rows), `a` may have any strides.
///
/// # Panics
/// If the shapes do not chain, or rows of `b` or `c` are not contiguous.
#[track_caller]
pub fn gemm_sparse_lhs(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm_sparse_lhs: shapes do not chain: A {:?} * B {:?} -> C {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    assert!(
        n <= 1 || (b.strides()[1] == 1 && c.strides()[1] == 1),
        "gemm_sparse_lhs: rows of B and C must be contiguous"
    );
    scale(beta, c);
    // Walk A in its memory order; both orders add into each C[i, :] over
    // p = 0..k in increasing p.
    let a_is_column_major = a.strides()[0].unsigned_abs() < a.strides()[1].unsigned_abs();
    if a_is_column_major {
        for (p, a_col) in a.axis_iter(Axis(1)).enumerate() {
            let b_row = row(&b, p);
            for (i, &a_ip) in a_col.iter().enumerate() {
                if a_ip != 0.0 {
                    axpy(alpha * a_ip, b_row, row_mut(c, i));
                }
            }
        }
    } else {
        for (i, a_row) in a.axis_iter(Axis(0)).enumerate() {
            let c_row = row_mut(c, i);
            for (p, &a_ip) in a_row.iter().enumerate() {
                if a_ip != 0.0 {
                    axpy(alpha * a_ip, row(&b, p), c_row);
                }
            }
        }
    }
}

/// The fraction of entries of `a` that are not zero, in `[0, 1]` (1 when `a`
/// is empty, so empty inputs take the dense path).
pub fn row_density(a: ArrayView2<'_, f32>) -> f32 {
    if a.is_empty() {
        return 1.0;
    }
    let nonzero = a.iter().filter(|&&x| x != 0.0).count();
    nonzero as f32 / a.len() as f32
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

fn row<'a>(b: &'a ArrayView2<'_, f32>, p: usize) -> &'a [f32] {
    let n = b.ncols();
    if n == 0 {
        return &[];
    }
    // SAFETY: row p exists (p < k was checked by the caller's loop bounds)
    // and its n elements are contiguous (checked by the caller's assert).
    unsafe { std::slice::from_raw_parts(b.as_ptr().offset(p as isize * b.strides()[0]), n) }
}

fn row_mut<'a>(c: &'a mut ArrayViewMut2<'_, f32>, i: usize) -> &'a mut [f32] {
    let n = c.ncols();
    if n == 0 {
        return &mut [];
    }
    let offset = i as isize * c.strides()[0];
    // SAFETY: as for `row`; the mutable borrow of `c` makes the slice unique.
    unsafe { std::slice::from_raw_parts_mut(c.as_mut_ptr().offset(offset), n) }
}

/// `y <- y + s * x` over contiguous slices, vectorised for AVX2+FMA when the
/// CPU has it (checked once, at run time).
#[inline]
fn axpy(s: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { axpy_avx2_fma(s, x, y) };
            return;
        }
    }
    axpy_portable(s, x, y);
}

#[inline(always)]
fn axpy_portable(s: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = s.mul_add(x, *y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2_fma(s: f32, x: &[f32], y: &mut [f32]) {
    axpy_portable(s, x, y);
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

        #[test]
        fn sparse_matches_naive(m in 1usize..40, k in 1usize..40, n in 1usize..40,
                                ta: bool, density in 0.0f64..1.0, seed: u64) {
            let a = if ta { matrix(k, m, seed, density) } else { matrix(m, k, seed, density) };
            let av = if ta { a.t() } else { a.view() };
            let b = matrix(k, n, seed ^ 1, 1.0);
            let c0 = matrix(m, n, seed ^ 2, 1.0);
            let mut c = c0.clone();
            gemm_sparse_lhs(-1.5, av, b.view(), 0.5, &mut c.view_mut());
            close(&c, &naive::gemm(-1.5, av, b.view(), 0.5, &c0), k);
        }
    }

    #[test]
    fn sparse_is_layout_independent_bit_for_bit() {
        let a = matrix(33, 17, 7, 0.3);
        let a_t_owned = a.t().as_standard_layout().to_owned();
        let b = matrix(17, 9, 8, 1.0);
        let mut c1 = Array2::zeros((33, 9));
        let mut c2 = Array2::zeros((33, 9));
        gemm_sparse_lhs(1.0, a.view(), b.view(), 0.0, &mut c1.view_mut());
        gemm_sparse_lhs(1.0, a_t_owned.t(), b.view(), 0.0, &mut c2.view_mut());
        assert_eq!(c1, c2);
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let a = matrix(3, 4, 1, 1.0);
        let b = matrix(4, 5, 2, 1.0);
        let mut c = Array2::from_elem((3, 5), f32::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
        assert!(c.iter().all(|x| x.is_finite()));
        let mut c = Array2::from_elem((3, 5), f32::NAN);
        gemm_sparse_lhs(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
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

    #[test]
    fn density_counts_nonzeros() {
        let a = ndarray::arr2(&[[0.0f32, 1.0], [0.0, 2.0]]);
        assert_eq!(row_density(a.view()), 0.5);
    }
}
