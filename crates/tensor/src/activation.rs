//! ReLU and its derivative (E2 forward, the `1[Z > 0]` factor of BP2).

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// `a <- max(a, 0)` elementwise.
pub fn relu_inplace(mut a: ArrayViewMut2<'_, f32>) {
    a.mapv_inplace(|x| x.max(0.0));
}

/// `delta <- delta * 1[z > 0]`: the ReLU derivative evaluated at the
/// pre-activation `z` of the same layer (never at another layer's).
///
/// # Panics
/// If `delta` and `z` differ in shape.
#[track_caller]
pub fn relu_backward_inplace(delta: ArrayViewMut2<'_, f32>, z: ArrayView2<'_, f32>) {
    assert_eq!(
        delta.dim(),
        z.dim(),
        "relu_backward_inplace: delta and z must have the same shape"
    );
    // A select, not a conditional store: about half the units are off, in
    // no pattern, so a branch here mispredicted often enough to make this
    // the slowest element-wise pass of a step. The same values either way
    // (a NaN `z` keeps `d`).
    Zip::from(delta)
        .and(z)
        .for_each(|d, &z| *d = if z <= 0.0 { 0.0 } else { *d });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, arr2};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn match_naive_loops(rows in 1usize..20, cols in 1usize..40, seed: u64) {
            let mut rng = crate::Rng::seed_from_u64(seed);
            let z = Array2::from_shape_simple_fn((rows, cols), || rng.normal() as f32);
            let d = Array2::from_shape_simple_fn((rows, cols), || rng.normal() as f32);
            let mut a = z.clone();
            relu_inplace(a.view_mut());
            let mut masked = d.clone();
            relu_backward_inplace(masked.view_mut(), z.view());
            for ((&z, &d), (&a, &m)) in z.iter().zip(&d).zip(a.iter().zip(&masked)) {
                prop_assert_eq!(a, if z > 0.0 { z } else { 0.0 });
                prop_assert_eq!(m, if z > 0.0 { d } else { 0.0 });
            }
        }
    }

    #[test]
    fn relu_and_mask() {
        let mut a = arr2(&[[-1.0f32, 0.0, 2.0]]);
        relu_inplace(a.view_mut());
        assert_eq!(a, arr2(&[[0.0, 0.0, 2.0]]));
        let mut d = arr2(&[[5.0f32, 6.0, 7.0]]);
        relu_backward_inplace(d.view_mut(), arr2(&[[-1.0f32, 0.0, 0.5]]).view());
        assert_eq!(d, arr2(&[[0.0, 0.0, 7.0]]));
    }
}
