//! Numerically stable row softmax and log-softmax (E2 output layer).
//!
//! Both subtract the row maximum before exponentiating, so the largest
//! exponent is `exp(0) = 1`: no overflow for any finite logits, and the row
//! sum is at least 1, so no division by zero and no `log(0)`.

use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// `p[i, :] = softmax(z[i, :])`, computed as `exp(z - max) / sum exp(z - max)`.
///
/// # Panics
/// If `z` and `p` differ in shape.
#[track_caller]
pub fn softmax_rows(z: ArrayView2<'_, f32>, mut p: ArrayViewMut2<'_, f32>) {
    assert_eq!(z.dim(), p.dim(), "softmax_rows: z and p must have the same shape");
    Zip::from(z.rows()).and(p.rows_mut()).for_each(|z, mut p| {
        let max = z.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0.0f32;
        Zip::from(&mut p).and(&z).for_each(|p, &z| {
            *p = (z - max).exp();
            sum += *p;
        });
        let inv = 1.0 / sum;
        p.mapv_inplace(|x| x * inv);
    });
}

/// `out[i, :] = log_softmax(z[i, :]) = (z - max) - ln(sum exp(z - max))`.
///
/// # Panics
/// If `z` and `out` differ in shape.
#[track_caller]
pub fn log_softmax_rows(z: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    assert_eq!(
        z.dim(),
        out.dim(),
        "log_softmax_rows: z and out must have the same shape"
    );
    for (z, mut out) in z.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let max = z.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let log_sum = z.fold(0.0f32, |s, &x| s + (x - max).exp()).ln();
        Zip::from(&mut out).and(&z).for_each(|o, &z| *o = (z - max) - log_sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, arr2};
    use proptest::prelude::*;

    #[test]
    fn extreme_logits_stay_finite() {
        let z = arr2(&[[1000.0f32, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]]);
        let mut p = Array2::zeros((2, 3));
        softmax_rows(z.view(), p.view_mut());
        assert!(p.iter().all(|x| x.is_finite()));
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
        }
        assert_eq!(p[[0, 0]], 1.0);
        let mut lp = Array2::zeros((2, 3));
        log_softmax_rows(z.view(), lp.view_mut());
        assert!(lp.iter().all(|x| x.is_finite()), "{lp:?}");
        assert_eq!(lp[[0, 2]], -2000.0);
        assert!((lp[[1, 0]] + 3f32.ln()).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn matches_naive_definition(rows in 1usize..5, cols in 1usize..20,
                                    v in prop::collection::vec(-30.0f32..30.0, 100)) {
            let z = Array2::from_shape_fn((rows, cols), |(i, j)| v[(i * cols + j) % v.len()]);
            let mut p = Array2::zeros((rows, cols));
            let mut lp = Array2::zeros((rows, cols));
            softmax_rows(z.view(), p.view_mut());
            log_softmax_rows(z.view(), lp.view_mut());
            for i in 0..rows {
                let denom: f64 = (0..cols).map(|j| (z[[i, j]] as f64).exp()).sum();
                for j in 0..cols {
                    let want = (z[[i, j]] as f64).exp() / denom;
                    prop_assert!((p[[i, j]] as f64 - want).abs() < 1e-5);
                    prop_assert!((lp[[i, j]] as f64 - want.ln()).abs() < 1e-4);
                }
            }
        }
    }
}
