//! Row broadcasts and reductions: the bias add of E1, its adjoint (BP3's
//! column sum), and the row argmax that turns probabilities into predictions.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};

/// `z[i, :] += b` for every row `i`.
///
/// # Panics
/// If `b.len() != z.ncols()`.
#[track_caller]
pub fn add_row_broadcast(mut z: ArrayViewMut2<'_, f32>, b: ArrayView1<'_, f32>) {
    assert_eq!(
        z.ncols(),
        b.len(),
        "add_row_broadcast: z has {} columns, b has {} entries",
        z.ncols(),
        b.len()
    );
    for mut row in z.rows_mut() {
        row += &b;
    }
}

/// `out[j] <- sum_i a[i, j]`: column sums, accumulated over rows in order.
///
/// # Panics
/// If `out.len() != a.ncols()`.
#[track_caller]
pub fn sum_rows_into(a: ArrayView2<'_, f32>, mut out: ArrayViewMut1<'_, f32>) {
    assert_eq!(
        a.ncols(),
        out.len(),
        "sum_rows_into: a has {} columns, out has {} entries",
        a.ncols(),
        out.len()
    );
    out.fill(0.0);
    for row in a.rows() {
        out += &row;
    }
}

/// `out[i] <- argmax_j a[i, j]`, ties broken towards the lower index. NaN
/// entries never win.
///
/// # Panics
/// If `out.len() != a.nrows()`.
#[track_caller]
pub fn argmax_rows(a: ArrayView2<'_, f32>, out: &mut [usize]) {
    assert_eq!(
        a.nrows(),
        out.len(),
        "argmax_rows: a has {} rows, out has {} entries",
        a.nrows(),
        out.len()
    );
    Zip::from(a.axis_iter(Axis(0)))
        .and(ArrayViewMut1::from(out))
        .for_each(|row, o| {
            let mut best = 0;
            let mut best_value = f32::NEG_INFINITY;
            for (j, &x) in row.iter().enumerate() {
                if x > best_value {
                    best = j;
                    best_value = x;
                }
            }
            *o = best;
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2, arr1, arr2};
    use proptest::prelude::*;

    #[test]
    fn argmax_breaks_ties_low_and_skips_nan() {
        let a = arr2(&[[1.0f32, 3.0, 3.0], [f32::NAN, -1.0, -2.0]]);
        let mut out = [9; 2];
        argmax_rows(a.view(), &mut out);
        assert_eq!(out, [1, 1]);
    }

    proptest! {
        #[test]
        fn argmax_matches_the_first_maximum(rows in 1usize..20, cols in 1usize..30, seed: u64) {
            let mut rng = crate::Rng::seed_from_u64(seed);
            // Few distinct values, so ties happen.
            let a = Array2::from_shape_simple_fn((rows, cols), || rng.below(4) as f32);
            let mut out = vec![usize::MAX; rows];
            argmax_rows(a.view(), &mut out);
            for (i, row) in a.rows().into_iter().enumerate() {
                let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let first = row.iter().position(|&x| x == max).unwrap();
                prop_assert_eq!(out[i], first);
            }
        }

        #[test]
        fn bias_and_column_sum_match_loops(rows in 1usize..30, cols in 1usize..30, seed: u64) {
            let mut rng = crate::Rng::seed_from_u64(seed);
            let a = Array2::from_shape_fn((rows, cols), |_| rng.normal() as f32);
            let b = Array1::from_shape_fn(cols, |_| rng.normal() as f32);
            let mut z = a.clone();
            add_row_broadcast(z.view_mut(), b.view());
            let mut sums = Array1::from_elem(cols, f32::NAN);
            sum_rows_into(a.view(), sums.view_mut());
            for j in 0..cols {
                let mut s = 0.0f32;
                for i in 0..rows {
                    prop_assert_eq!(z[[i, j]], a[[i, j]] + b[j]);
                    s += a[[i, j]];
                }
                prop_assert_eq!(sums[j], s);
            }
            // A transposed view gives the sums of the other axis.
            let mut row_sums = Array1::zeros(rows);
            sum_rows_into(a.t(), row_sums.view_mut());
            for i in 0..rows {
                let want: f32 = (0..cols).map(|j| a[[i, j]]).sum();
                prop_assert!((row_sums[i] - want).abs() < 1e-4);
            }
            let _ = arr1(&[0.0f32]);
        }
    }
}
