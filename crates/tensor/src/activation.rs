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
pub fn relu_backward_inplace(mut delta: ArrayViewMut2<'_, f32>, z: ArrayView2<'_, f32>) {
    assert_eq!(
        delta.dim(),
        z.dim(),
        "relu_backward_inplace: delta and z must have the same shape"
    );
    // A select rather than a branch: the signs of Z are as good as random,
    // so a branch mispredicts on every other element, and the select
    // vectorises. (`z <= 0.0`, not `!(z > 0.0)`: a NaN keeps its delta.)
    let mask = |d: &mut f32, &z: &f32| *d = if z <= 0.0 { 0.0 } else { *d };
    if let (Some(d), Some(zs)) = (delta.as_slice_mut(), z.as_slice()) {
        // Both in standard order: element i of one is element i of the other.
        d.iter_mut().zip(zs).for_each(|(d, z)| mask(d, z));
    } else {
        Zip::from(delta).and(z).for_each(mask);
    }
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
        // -0 is not positive; a NaN pre-activation keeps its delta (as the
        // branch this select replaced did); any layout gives the same.
        let z = arr2(&[[f32::NAN, -0.0], [3.0, -2.0]]);
        let mut d = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
        let mut dt = d.t().to_owned();
        relu_backward_inplace(d.view_mut(), z.view());
        assert_eq!(d, arr2(&[[1.0, 0.0], [3.0, 0.0]]));
        relu_backward_inplace(dt.view_mut().reversed_axes(), z.view());
        assert_eq!(dt.t(), d);
    }
}
