//! Owned arrays whose first element starts a cache line.
//!
//! The heap gives `f32` buffers 16-byte alignment, and large ones (a
//! 784x128 weight matrix) start 16 bytes into a cache line. Every row of
//! such a matrix then straddles one more line than it fills, and half of its
//! 32-byte loads split across two. The kernels' results do not depend on
//! where an array starts; their speed does.

use ndarray::{Array, Array1, ArrayView, Dimension, IntoDimension, s};

/// Bytes in a cache line: the alignment of arrays made here.
pub const CACHE_LINE: usize = 64;

/// An array of zeros of this shape, standard layout, whose first element is
/// [`CACHE_LINE`]-aligned.
///
/// It is an ordinary owned [`Array`] over a buffer up to one line longer
/// than its elements; a clone of it is not guaranteed to be aligned (use
/// [`aligned_copy`]).
///
/// ```
/// let a = backprop_tensor::aligned_zeros((784, 128));
/// assert_eq!(a.as_ptr() as usize % backprop_tensor::CACHE_LINE, 0);
/// assert!(a.is_standard_layout() && a.iter().all(|&v| v == 0.0));
/// ```
pub fn aligned_zeros<Sh: IntoDimension>(shape: Sh) -> Array<f32, Sh::Dim> {
    const SLACK: usize = CACHE_LINE / size_of::<f32>() - 1;
    let dim = shape.into_dimension();
    let len = dim.size();
    let store = Array1::<f32>::zeros(len + SLACK);
    // An f32 buffer is at least 4-byte aligned, so the line starts within
    // SLACK elements.
    let skip = store.as_ptr().align_offset(CACHE_LINE).min(SLACK);
    store
        .slice_move(s![skip..skip + len])
        .into_shape_with_order(dim)
        .expect("a contiguous slice of len elements")
}

/// A [`CACHE_LINE`]-aligned, standard-layout copy of `a`: the same values,
/// bit for bit.
pub fn aligned_copy<D: Dimension>(a: ArrayView<'_, f32, D>) -> Array<f32, D> {
    let mut out = aligned_zeros(a.dim());
    out.assign(&a);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn every_shape_starts_a_line_and_copies_every_bit() {
        for dim in [(0, 0), (1, 1), (3, 5), (784, 128), (128, 10), (1024, 1024)] {
            let a = aligned_zeros(dim);
            assert_eq!(a.dim(), dim);
            assert!(a.is_standard_layout());
            if !a.is_empty() {
                assert_eq!(a.as_ptr() as usize % CACHE_LINE, 0, "{dim:?}");
            }
            let values = Array2::from_shape_fn(dim, |(i, j)| {
                f32::from_bits((i * 7919 + j * 104_729) as u32 ^ 0x3f80_0000)
            });
            let copy = aligned_copy(values.t().t());
            if !copy.is_empty() {
                assert_eq!(copy.as_ptr() as usize % CACHE_LINE, 0, "{dim:?}");
            }
            assert!(copy.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        for len in [0, 1, 17, 100_352] {
            let v = aligned_zeros(len);
            assert_eq!(v.len(), len);
            if len > 0 {
                assert_eq!(v.as_ptr() as usize % CACHE_LINE, 0, "{len}");
            }
        }
    }

    /// A transposed view comes back in standard layout, each value in its
    /// place.
    #[test]
    fn copies_of_strided_views_are_standard() {
        let a = Array2::from_shape_fn((5, 3), |(i, j)| (10 * i + j) as f32);
        let t = aligned_copy(a.t());
        assert!(t.is_standard_layout());
        assert_eq!(t, a.t());
    }
}
