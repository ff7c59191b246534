//! [`Dataset`]: labelled images stored compactly as bytes, gathered into
//! `f32` batches on demand.

use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, OnceLock, PoisonError};

use backprop_tensor::{SparseBytes, SparseRows, ThreadPool};
use ndarray::ArrayViewMut2;

use crate::error::{DataError, Result};

/// The `f32` value in `[0, 1]` that a pixel byte becomes in a batch:
/// `pixel as f32 * (1.0 / 255.0)`, so 0 maps to 0.0 and 255 to exactly 1.0.
#[inline]
pub fn pixel_to_f32(pixel: u8) -> f32 {
    f32::from(pixel) * (1.0 / 255.0)
}

/// Labelled images of a fixed size, one byte per pixel and per label.
///
/// Pixels are kept as `u8` (one quarter of the `f32` size) and converted to
/// `[0, 1]` floats only when a batch is gathered by [`Dataset::gather_into`].
/// Every label is below [`Dataset::n_classes`], and there are at most
/// `u32::MAX` examples, so a `u32` can index any of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    n_classes: usize,
    /// Number of non-zero pixels, counted once.
    nonzero: usize,
    /// The images compressed to their non-zeros, made by the first
    /// compressed gather.
    compressed: NonZeros,
    /// The next compressed batch, made beside the step before it.
    ahead: Ahead,
}

/// A compressed batch made ahead ([`Dataset::prepare_beside`]) for the
/// gather that asks for its indices. A cache: a clone starts without one,
/// and it takes no part in comparisons.
#[derive(Default)]
struct Ahead(Mutex<Option<Box<Batch>>>);

/// A batch made ahead: the examples `indices`, compressed in `x`.
struct Batch {
    indices: Vec<u32>,
    x: SparseRows,
    ready: bool,
}

impl Clone for Ahead {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Ahead {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Ahead {}

/// A cache of the pixels in compressed form: it is derived from them, so it
/// compares equal whenever they do, made or not. (Boxed: a data set stays
/// small to move.)
#[derive(Clone, Default)]
struct NonZeros(OnceLock<Box<SparseBytes>>);

impl PartialEq for NonZeros {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NonZeros {}

impl Dataset {
    /// Labelled images from `labels.len()` images of `rows x cols` pixels,
    /// stored image after image (each row-major) in `pixels`.
    ///
    /// # Errors
    /// [`DataError::InvalidShape`] if `rows` or `cols` is zero, `n_classes`
    /// is outside `1..=256`, or there are more than `u32::MAX` examples;
    /// [`DataError::PixelCountMismatch`] if `pixels.len()` is not
    /// `labels.len() * rows * cols`; [`DataError::InvalidLabel`] if a label is
    /// not below `n_classes`.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize, n_classes: usize) -> Result<Self> {
        let n = labels.len();
        if rows == 0 || cols == 0 || !(1..=256).contains(&n_classes) || u32::try_from(n).is_err() {
            return Err(DataError::InvalidShape {
                n_examples: n,
                rows,
                cols,
                n_classes,
            });
        }
        let expected = rows.checked_mul(cols).and_then(|f| f.checked_mul(n));
        if expected != Some(pixels.len()) {
            return Err(DataError::PixelCountMismatch {
                n_pixels: pixels.len(),
                n_labels: n,
                rows,
                cols,
            });
        }
        if let Some((index, label)) = first_label_out_of_range(&labels, n_classes) {
            return Err(DataError::InvalidLabel {
                index,
                label,
                n_classes,
            });
        }
        Ok(Self {
            nonzero: count_nonzero(&pixels),
            compressed: NonZeros::default(),
            ahead: Ahead::default(),
            pixels,
            labels,
            rows,
            cols,
            n_classes,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image, `rows * cols`: the width of a gathered batch.
    pub fn n_features(&self) -> usize {
        self.rows * self.cols
    }

    /// `(rows, cols)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The number of classes; every label is below it.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// One label per example.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, image after image, each row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The `n_features()` pixels of example `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[track_caller]
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(i < self.len(), "Dataset::image({i}): only {} examples", self.len());
        let f = self.n_features();
        &self.pixels[i * f..(i + 1) * f]
    }

    /// The first `n` examples (all of them if there are fewer), as a new
    /// dataset with the same image shape and classes.
    pub fn subset(&self, n: usize) -> Dataset {
        self.slice(0..n.min(self.len()))
    }

    /// The examples in `range`, as a new dataset with the same image shape
    /// and classes.
    ///
    /// # Panics
    /// If `range` is not within `0..self.len()`.
    #[track_caller]
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "Dataset::slice({range:?}): only {} examples",
            self.len()
        );
        let f = self.n_features();
        let pixels = &self.pixels[range.start * f..range.end * f];
        Dataset {
            nonzero: count_nonzero(pixels),
            compressed: NonZeros::default(),
            ahead: Ahead::default(),
            pixels: pixels.to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
            n_classes: self.n_classes,
        }
    }

    /// Copies the examples named by `indices` into a batch: row `r` of `x`
    /// becomes image `indices[r]` with each pixel converted by
    /// [`pixel_to_f32`], and `y[r]` its label. Allocates nothing.
    ///
    /// # Panics
    /// If `x` is not `(indices.len(), self.n_features())`, if `y.len()` is not
    /// `indices.len()` (the message gives the shapes), or if an index is not
    /// below `self.len()`.
    #[track_caller]
    pub fn gather_into(&self, indices: &[u32], mut x: ArrayViewMut2<'_, f32>, y: &mut [usize]) {
        let f = self.n_features();
        assert!(
            x.dim() == (indices.len(), f) && y.len() == indices.len(),
            "Dataset::gather_into: {} indices of {f} features need x of shape ({}, {f}) and y of length {}, \
             got x of shape {:?} and y of length {}",
            indices.len(),
            indices.len(),
            indices.len(),
            x.dim(),
            y.len()
        );
        for ((mut row, &index), label) in x.rows_mut().into_iter().zip(indices).zip(y.iter_mut()) {
            let i = index as usize;
            assert!(
                i < self.len(),
                "Dataset::gather_into: index {i} out of range for {} examples",
                self.len()
            );
            let src = &self.pixels[i * f..(i + 1) * f];
            match row.as_slice_mut() {
                Some(dst) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = pixel_to_f32(s)),
                None => row.iter_mut().zip(src).for_each(|(d, &s)| *d = pixel_to_f32(s)),
            }
            *label = usize::from(self.labels[i]);
        }
    }

    /// Like [`Dataset::gather_into`], but into a compressed [`SparseRows`]:
    /// only the non-zero pixels are converted and stored, with exactly the
    /// values `gather_into` would give them. The first call compresses every
    /// image once (three bytes per non-zero pixel, kept with the data set),
    /// so that batches copy their images' non-zeros instead of scanning
    /// their pixels.
    ///
    /// # Panics
    /// If `y.len() != indices.len()` or an index is out of range.
    #[track_caller]
    pub fn gather_sparse_into(&self, indices: &[u32], x: &mut SparseRows, y: &mut [usize]) {
        self.gather_sparse_into_with(indices, x, y, None);
    }

    /// [`Dataset::gather_sparse_into`], compressing on `pool`'s threads
    /// when given ([`SparseRows::fill_u8_with`]): the same bits either way.
    ///
    /// # Panics
    /// As [`Dataset::gather_sparse_into`].
    #[track_caller]
    pub fn gather_sparse_into_with(
        &self,
        indices: &[u32],
        x: &mut SparseRows,
        y: &mut [usize],
        pool: Option<&ThreadPool>,
    ) {
        assert_eq!(
            y.len(),
            indices.len(),
            "Dataset::gather_sparse_into: {} indices but {} labels",
            indices.len(),
            y.len()
        );
        let f = self.n_features();
        for (label, &index) in y.iter_mut().zip(indices) {
            let i = index as usize;
            assert!(
                i < self.len(),
                "Dataset::gather_sparse_into: index {i} out of range for {} examples",
                self.len()
            );
            *label = usize::from(self.labels[i]);
        }
        if f <= SparseBytes::MAX_COLS {
            if self.take_ahead(indices, x) {
                return;
            }
            let store = self.compressed.0.get_or_init(|| {
                Box::new(match pool {
                    Some(pool) => SparseBytes::new_with(pool, &self.pixels, f),
                    None => SparseBytes::new(&self.pixels, f),
                })
            });
            return match pool {
                Some(pool) => x.fill_from_with(pool, store, indices, 1.0 / 255.0),
                None => x.fill_from(store, indices, 1.0 / 255.0),
            };
        }
        let image = |i: u32| &self.pixels[i as usize * f..(i as usize + 1) * f];
        match pool {
            Some(pool) => x.fill_u8_with(pool, indices.len(), f, 1.0 / 255.0, |r| image(indices[r])),
            None => x.fill_u8(indices.iter().map(|&i| image(i)), f, 1.0 / 255.0),
        }
    }

    /// Runs `step` while one of `pool`'s threads, when idle, compresses the
    /// examples `next` (the batch after it) into a buffer of the data set's,
    /// which the compressed gather of exactly those indices then takes in
    /// place of its own (the buffers are swapped, not copied). The gather
    /// gives the same bytes either way. Does nothing ahead with one thread,
    /// no `next`, or before a compressed gather has made the compressed
    /// images (a run that gathers dense batches wants none).
    pub fn prepare_beside(&self, next: &[u32], pool: &ThreadPool, step: &mut dyn FnMut()) {
        let Some(store) = self.compressed.0.get() else {
            return step();
        };
        if next.is_empty() || pool.active_threads() == 1 || next.iter().any(|&i| i as usize >= self.len()) {
            return step();
        }
        let make = |_: usize| {
            let mut ahead = self.ahead.0.lock().unwrap_or_else(PoisonError::into_inner);
            let batch = ahead.get_or_insert_with(|| {
                Box::new(Batch {
                    indices: Vec::with_capacity(next.len()),
                    x: SparseRows::with_capacity(next.len(), store.cols()),
                    ready: false,
                })
            });
            batch.ready = false;
            batch.indices.clear();
            batch.indices.extend_from_slice(next);
            batch.x.fill_from(store, next, 1.0 / 255.0);
            batch.ready = true;
        };
        pool.run_beside(1, &make, step);
    }

    /// Moves the batch made ahead into `x` (its buffer going back to the
    /// data set) when it holds the examples `indices` in the form `x` keeps;
    /// whether it did.
    fn take_ahead(&self, indices: &[u32], x: &mut SparseRows) -> bool {
        let Ok(mut ahead) = self.ahead.0.try_lock() else {
            return false;
        };
        match ahead.as_mut() {
            Some(batch) if batch.ready && batch.indices == indices && batch.x.has_columns() == x.has_columns() => {
                std::mem::swap(&mut batch.x, x);
                batch.ready = false;
                true
            }
            _ => false,
        }
    }

    /// Asks the CPU to start loading the images named by `indices` into its
    /// caches, so a later gather finds them there instead of waiting on
    /// memory for each one: their non-zeros once the images are compressed
    /// ([`Dataset::gather_sparse_into`]), else their pixels. A hint only: it
    /// changes no result.
    pub fn prefetch(&self, indices: &[u32]) {
        if let Some(store) = self.compressed.0.get() {
            return store.prefetch_rows(indices);
        }
        let f = self.n_features();
        for &i in indices {
            let start = i as usize * f;
            if let Some(image) = self.pixels.get(start..start + f) {
                backprop_tensor::prefetch(image);
            }
        }
    }

    /// The fraction of pixels that are not zero, in `[0, 1]` (1 when there
    /// are none): about 0.19 for MNIST and 0.5 for Fashion-MNIST. Decides
    /// whether the sparse input path pays.
    pub fn density(&self) -> f32 {
        if self.pixels.is_empty() {
            return 1.0;
        }
        // Counted once, when the set was made: evaluation asks every epoch.
        (self.nonzero as f64 / self.pixels.len() as f64) as f32
    }
}

fn count_nonzero(pixels: &[u8]) -> usize {
    pixels.chunks(4096).map(|c| c.iter().filter(|&&p| p != 0).count()).sum()
}

impl fmt::Debug for Dataset {
    /// The shape only: the pixels would flood the output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("n_classes", &self.n_classes)
            .finish_non_exhaustive()
    }
}

/// The position and value of the first label not below `n_classes`.
pub(crate) fn first_label_out_of_range(labels: &[u8], n_classes: usize) -> Option<(usize, u8)> {
    labels
        .iter()
        .position(|&l| usize::from(l) >= n_classes)
        .map(|i| (i, labels[i]))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, s};

    use super::*;

    #[test]
    fn density_counts_the_non_zero_pixels() {
        // 10 of the 12 pixels are not zero.
        assert_eq!(tiny().density(), 10.0 / 12.0);
        let blank = Dataset::new(vec![0; 8], vec![0, 0], 2, 2, 1).unwrap();
        assert_eq!(blank.density(), 0.0);
    }

    #[test]
    fn compressed_gathers_hold_the_dense_gathers_values_in_both_orientations() {
        use backprop_tensor::{Op, sparse_gemm};
        // 5 images of 5x7 pixels, most of them zero.
        let pixels: Vec<u8> = (0..5 * 35u32)
            .map(|p| if p % 3 == 0 { (p * 7 % 256) as u8 } else { 0 })
            .collect();
        let d = Dataset::new(pixels, vec![0, 1, 2, 3, 4], 5, 7, 5).unwrap();
        let indices = [4, 0, 4, 2];
        let mut dense = Array2::zeros((4, 35));
        let mut labels = [9; 4];
        d.gather_into(&indices, dense.view_mut(), &mut labels);
        let identity = |n: usize| Array2::from_shape_fn((n, n), |(i, j)| if i == j { 1.0f32 } else { 0.0 });
        for threads in [None, Some(1), Some(2)] {
            let pool = threads.map(ThreadPool::new);
            // Before the images are compressed, and after (prefetch then
            // reads the compressed rows).
            for _ in 0..2 {
                d.prefetch(&indices);
                let mut x = SparseRows::with_capacity(4, 35);
                let mut y = [9; 4];
                d.gather_sparse_into_with(&indices, &mut x, &mut y, pool.as_ref());
                assert_eq!(y, labels);
                let mut rows = Array2::from_elem((4, 35), f32::NAN);
                sparse_gemm(1.0, &x, Op::Plain, identity(35).view(), 0.0, &mut rows.view_mut());
                assert_eq!(rows, dense);
                let mut columns = Array2::from_elem((35, 4), f32::NAN);
                sparse_gemm(
                    1.0,
                    &x,
                    Op::Transposed,
                    identity(4).view(),
                    0.0,
                    &mut columns.view_mut(),
                );
                assert_eq!(columns, dense.t());
            }
        }
        // The compressed copy is a cache: a dataset equals its clone either way.
        assert_eq!(d, Dataset::new(d.pixels.clone(), d.labels.clone(), 5, 7, 5).unwrap());
    }

    #[test]
    fn a_batch_made_beside_the_step_is_the_batch_its_gather_would_make() {
        use backprop_tensor::{Op, sparse_gemm};
        let pixels: Vec<u8> = (0..6 * 20u32)
            .map(|p| if p % 4 == 1 { (p * 5 % 256) as u8 } else { 0 })
            .collect();
        let d = Dataset::new(pixels, vec![0, 1, 2, 0, 1, 2], 4, 5, 3).unwrap();
        // Both orientations of a compressed batch, as dense matrices.
        let dense = |x: &SparseRows| {
            let eye = |n: usize| Array2::from_shape_fn((n, n), |(i, j)| f32::from(u8::from(i == j)));
            let (m, k) = x.dim();
            let (mut rows, mut columns) = (Array2::from_elem((m, k), f32::NAN), Array2::from_elem((k, m), f32::NAN));
            sparse_gemm(1.0, x, Op::Plain, eye(k).view(), 0.0, &mut rows.view_mut());
            sparse_gemm(1.0, x, Op::Transposed, eye(m).view(), 0.0, &mut columns.view_mut());
            (rows, columns)
        };
        let fresh = |indices: &[u32]| {
            let mut x = SparseRows::with_capacity(indices.len(), 20);
            d.gather_sparse_into(indices, &mut x, &mut vec![0; indices.len()]);
            dense(&x)
        };
        let pool = ThreadPool::new(2);
        let mut x = SparseRows::with_capacity(3, 20);
        let mut y = [9; 3];
        let mut steps = 0;
        // Before any compressed gather there is nothing to make ahead from.
        d.prepare_beside(&[5, 1, 2], &pool, &mut || steps += 1);
        assert!(d.ahead.0.lock().unwrap().is_none());
        d.gather_sparse_into(&[0, 3, 4], &mut x, &mut y);
        for (next, then) in [([5, 1, 2], [5, 1, 2]), ([2, 2, 0], [2, 0, 2]), ([4, 3, 1], [4, 3, 1])] {
            d.prepare_beside(&next, &pool, &mut || steps += 1);
            assert!(
                d.ahead
                    .0
                    .lock()
                    .unwrap()
                    .as_ref()
                    .is_some_and(|b| b.ready && b.indices == next)
            );
            d.gather_sparse_into(&then, &mut x, &mut y);
            assert_eq!(dense(&x), fresh(&then), "gathering {then:?} after making {next:?}");
            assert_eq!(y.map(|l| l as u8), then.map(|i| d.labels[i as usize]));
            // Taken when it was the batch asked for, else left.
            let left = d.ahead.0.lock().unwrap().as_ref().is_some_and(|b| b.ready);
            assert_eq!(left, next != then);
        }
        // An index outside the data set makes nothing ahead (the gather of
        // it refuses it, naming it); the step still runs.
        let before = d.ahead.0.lock().unwrap().as_ref().map(|b| (b.ready, b.indices.clone()));
        d.prepare_beside(&[1, 6], &pool, &mut || steps += 1);
        let after = d.ahead.0.lock().unwrap().as_ref().map(|b| (b.ready, b.indices.clone()));
        assert_eq!(after, before);
        assert_eq!(steps, 5, "each call runs the step once");
        // A matrix of rows only never takes a batch made with columns.
        d.prepare_beside(&[1, 2, 3], &pool, &mut || {});
        let mut rows_only = SparseRows::rows_only(3, 20);
        d.gather_sparse_into(&[1, 2, 3], &mut rows_only, &mut y);
        assert!(!rows_only.has_columns());
        assert!(d.ahead.0.lock().unwrap().as_ref().is_some_and(|b| b.ready));
        let mut rows = Array2::from_elem((3, 20), f32::NAN);
        let eye = Array2::from_shape_fn((20, 20), |(i, j)| f32::from(u8::from(i == j)));
        sparse_gemm(1.0, &rows_only, Op::Plain, eye.view(), 0.0, &mut rows.view_mut());
        assert_eq!(rows, fresh(&[1, 2, 3]).0);
    }

    /// Three 2x2 images with distinct pixels.
    fn tiny() -> Dataset {
        Dataset::new(
            vec![0, 1, 2, 3, 10, 20, 30, 40, 255, 128, 64, 0],
            vec![2, 0, 1],
            2,
            2,
            3,
        )
        .unwrap()
    }

    #[test]
    fn accessors_describe_the_data() {
        let d = tiny();
        assert_eq!(
            (d.len(), d.is_empty(), d.n_features(), d.image_shape(), d.n_classes()),
            (3, false, 4, (2, 2), 3)
        );
        assert_eq!(d.image(1), [10, 20, 30, 40]);
        assert_eq!(d.labels(), [2, 0, 1]);
        assert_eq!(d.pixels().len(), 12);
        assert_eq!(
            format!("{d:?}"),
            "Dataset { len: 3, rows: 2, cols: 2, n_classes: 3, .. }"
        );
    }

    #[test]
    fn new_rejects_inconsistent_data() {
        let err = Dataset::new(vec![0; 7], vec![0, 1], 2, 2, 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::PixelCountMismatch {
                    n_pixels: 7,
                    n_labels: 2,
                    rows: 2,
                    cols: 2
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("expected 2 images of 2x2 = 8 bytes"), "{err}");
        let err = Dataset::new(vec![0; 8], vec![0, 3], 2, 2, 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::InvalidLabel {
                    index: 1,
                    label: 3,
                    n_classes: 3
                }
            ),
            "{err:?}"
        );
        for (rows, cols, classes) in [(0, 2, 3), (2, 0, 3), (2, 2, 0), (2, 2, 257)] {
            let err = Dataset::new(vec![], vec![], rows, cols, classes).unwrap_err();
            assert!(matches!(err, DataError::InvalidShape { .. }), "{err:?}");
        }
        assert!(Dataset::new(vec![], vec![], 1, 1, 256).unwrap().is_empty());
    }

    #[test]
    fn gather_converts_pixels_and_labels_in_index_order() {
        let d = tiny();
        let mut x = Array2::from_elem((4, 4), f32::NAN);
        let mut y = [99usize; 4];
        d.gather_into(&[2, 0, 2, 1], x.view_mut(), &mut y);
        assert_eq!(y, [1, 2, 1, 0]);
        for (r, i) in [2usize, 0, 2, 1].into_iter().enumerate() {
            for (c, &p) in d.image(i).iter().enumerate() {
                assert!((x[[r, c]] - f32::from(p) / 255.0).abs() < 1e-7, "row {r} col {c}");
            }
        }
        assert_eq!(x[[0, 0]], 1.0);
        assert_eq!(x[[1, 0]], 0.0);
    }

    #[test]
    fn gather_into_a_strided_view() {
        let d = tiny();
        let mut x = Array2::<f32>::zeros((4, 2));
        let mut y = [0usize; 2];
        // The transpose of a (4, 2) array is a (2, 4) view with non-unit row stride.
        d.gather_into(&[1, 2], x.view_mut().reversed_axes(), &mut y);
        assert_eq!(
            x.slice(s![.., 0]).to_vec(),
            d.image(1).iter().map(|&p| pixel_to_f32(p)).collect::<Vec<_>>()
        );
        assert_eq!(
            x.slice(s![.., 1]).to_vec(),
            d.image(2).iter().map(|&p| pixel_to_f32(p)).collect::<Vec<_>>()
        );
        assert_eq!(y, [0, 1]);
    }

    #[test]
    #[should_panic(expected = "got x of shape (2, 3)")]
    fn gather_panics_on_shape_mismatch() {
        let mut x = Array2::<f32>::zeros((2, 3));
        tiny().gather_into(&[0, 1], x.view_mut(), &mut [0; 2]);
    }

    #[test]
    #[should_panic(expected = "index 3 out of range")]
    fn gather_panics_on_bad_index() {
        let mut x = Array2::<f32>::zeros((1, 4));
        tiny().gather_into(&[3], x.view_mut(), &mut [0; 1]);
    }

    #[test]
    #[should_panic(expected = "Dataset::gather_sparse_into: index 3 out of range for 3 examples")]
    fn a_compressed_gather_panics_on_a_bad_index_once_the_images_are_compressed() {
        let d = tiny();
        let mut x = SparseRows::with_capacity(2, 4);
        d.gather_sparse_into(&[0, 2], &mut x, &mut [0; 2]);
        d.gather_sparse_into(&[1, 3], &mut x, &mut [0; 2]);
    }

    #[test]
    fn subset_and_slice_keep_the_leading_examples() {
        let d = tiny();
        let s = d.subset(2);
        assert_eq!(
            (s.len(), s.labels(), s.image(1)),
            (2, &[2u8, 0][..], &[10u8, 20, 30, 40][..])
        );
        assert_eq!(d.subset(100), d);
        let tail = d.slice(1..3);
        assert_eq!(tail.labels(), [0, 1]);
        assert_eq!(tail.image(1), d.image(2));
    }

    #[test]
    fn pixel_scale_ends_at_exactly_one() {
        assert_eq!(pixel_to_f32(0), 0.0);
        assert_eq!(pixel_to_f32(255), 1.0);
        for p in 0..=255u8 {
            assert!((pixel_to_f32(p) - f32::from(p) / 255.0).abs() <= f32::EPSILON);
        }
    }
}
