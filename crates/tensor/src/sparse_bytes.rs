//! Byte rows compressed once: [`SparseBytes`], and batches filled from them
//! ([`SparseRows::fill_from`]).
//!
//! Filling a [`SparseRows`] from dense `u8` rows scans every pixel of every
//! row of every batch, though a data set's images never change. Compressing
//! each image once, to its non-zeros' columns (`u16`) and values (`u8`),
//! leaves a batch only a copy of its rows' non-zeros into the CSR and a sort
//! of them by column into the CSC: less than half the time of a fill from
//! the pixels (`cargo bench -p backprop-tensor --bench kernels -- fill`). The
//! stored entries are exactly those [`SparseRows::fill_u8`] makes from the
//! same rows, so the products that follow give the same bits.

use crate::pool::SharedMut;
use crate::sparse::{RUN, SparseRows};
use crate::{ThreadPool, prefetch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Parts per thread that [`SparseBytes::new_with`] cuts the rows into, so
/// that threads even out by claiming the next part as they free up.
const PARTS_PER_THREAD: usize = 4;

/// `task(0..n)`: on `pool` when there is one, else in turn.
fn run(pool: Option<&ThreadPool>, n: usize, task: &(dyn Fn(usize) + Sync)) {
    match pool {
        Some(pool) if n > 1 => pool.run(n, task),
        _ => (0..n).for_each(task),
    }
}

/// Rows of `u8` values, each kept as its non-zeros in increasing column
/// order: a read-only store to fill batches from ([`SparseRows::fill_from`]).
/// At most [`SparseBytes::MAX_COLS`] columns; three bytes per non-zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseBytes {
    cols: usize,
    /// Row `i`'s non-zeros are `idx/val[ptr[i]..ptr[i + 1]]`.
    ptr: Vec<usize>,
    idx: Vec<u16>,
    val: Vec<u8>,
}

impl SparseBytes {
    /// The most columns a store can have: every column index fits a `u16`.
    pub const MAX_COLS: usize = 1 << 16;

    /// Compresses `data`, rows of `cols` values one after another.
    ///
    /// # Panics
    /// If `cols` is 0 or exceeds [`SparseBytes::MAX_COLS`], or `data` does
    /// not hold whole rows.
    #[track_caller]
    pub fn new(data: &[u8], cols: usize) -> Self {
        Self::new_impl(None, data, cols)
    }

    /// [`SparseBytes::new`], with the rows shared out between `pool`'s
    /// threads: the same store whatever the number of threads.
    ///
    /// # Panics
    /// As [`SparseBytes::new`].
    #[track_caller]
    pub fn new_with(pool: &ThreadPool, data: &[u8], cols: usize) -> Self {
        Self::new_impl(Some(pool), data, cols)
    }

    #[track_caller]
    fn new_impl(pool: Option<&ThreadPool>, data: &[u8], cols: usize) -> Self {
        assert!(
            (1..=Self::MAX_COLS).contains(&cols),
            "SparseBytes::new: {cols} columns, expected 1 to {}",
            Self::MAX_COLS
        );
        assert!(
            data.len().is_multiple_of(cols),
            "SparseBytes::new: {} values do not make rows of {cols}",
            data.len()
        );
        let rows = data.len() / cols;
        // Parts of whole rows: each counts its non-zeros, then writes them
        // at its place in the buffers, which the counts give.
        let n_parts = pool
            .map_or(1, |p| PARTS_PER_THREAD * p.active_threads())
            .clamp(1, rows.max(1));
        let part_rows = |p: usize| rows * p / n_parts..rows * (p + 1) / n_parts;
        let part_data = |p: usize| &data[part_rows(p).start * cols..part_rows(p).end * cols];
        let counts: Vec<AtomicUsize> = (0..n_parts).map(|_| AtomicUsize::new(0)).collect();
        let count = |p: usize| {
            let n = part_data(p)
                .chunks(4096)
                .map(|c| c.iter().filter(|&&v| v != 0).count())
                .sum();
            counts[p].store(n, Ordering::Relaxed);
        };
        run(pool, n_parts, &count);
        let nnz = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let (mut idx, mut val, mut ptr) = (vec![0u16; nnz], vec![0u8; nnz], vec![0usize; rows + 1]);
        // Each part's slices of the three buffers, behind a lock of its own
        // (never contended: one task per part).
        let mut parts = Vec::with_capacity(n_parts);
        let (mut idx_rest, mut val_rest, mut ptr_rest) = (&mut idx[..], &mut val[..], &mut ptr[1..]);
        let mut first = 0;
        for (p, c) in counts.iter().enumerate() {
            let (n, r) = (c.load(Ordering::Relaxed), part_rows(p).len());
            let (i, rest) = std::mem::take(&mut idx_rest).split_at_mut(n);
            idx_rest = rest;
            let (v, rest) = std::mem::take(&mut val_rest).split_at_mut(n);
            val_rest = rest;
            let (e, rest) = std::mem::take(&mut ptr_rest).split_at_mut(r);
            ptr_rest = rest;
            parts.push(Mutex::new((first, i, v, e)));
            first += n;
        }
        let fill = |p: usize| {
            let mut part = parts[p].lock().unwrap_or_else(PoisonError::into_inner);
            let (first, idx, val, ends) = &mut *part;
            let mut n = 0;
            for (row, end) in part_data(p).chunks_exact(cols).zip(ends.iter_mut()) {
                for (r, values) in row.chunks(RUN).enumerate() {
                    if values.len() == RUN && u128::from_ne_bytes(values.try_into().expect("16 bytes")) == 0 {
                        continue;
                    }
                    // One bit per non-zero value, then one step per set bit.
                    let mut nonzero = values.iter().rev().fold(0u32, |bits, &v| bits << 1 | u32::from(v != 0));
                    while nonzero != 0 {
                        let k = nonzero.trailing_zeros() as usize;
                        idx[n] = (r * RUN + k) as u16;
                        val[n] = values[k];
                        n += 1;
                        nonzero &= nonzero - 1;
                    }
                }
                *end = *first + n;
            }
        };
        run(pool, n_parts, &fill);
        drop(parts);
        Self { cols, ptr, idx, val }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.ptr.len() - 1
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The number of non-zeros in all rows.
    pub fn nnz(&self) -> usize {
        self.idx.len()
    }

    /// Row `i`'s non-zeros: their columns, increasing, and their values.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[track_caller]
    pub fn row(&self, i: usize) -> (&[u16], &[u8]) {
        let entries = self.ptr[i]..self.ptr[i + 1];
        (&self.idx[entries.clone()], &self.val[entries])
    }

    /// Asks the CPU to load rows `rows` into its caches ([`prefetch`]), for
    /// a fill from them soon after; rows outside the store are skipped. A
    /// hint only: it changes no result.
    pub fn prefetch_rows(&self, rows: &[u32]) {
        for &r in rows {
            if (r as usize) < self.len() {
                let (idx, val) = self.row(r as usize);
                prefetch(idx);
                prefetch(val);
            }
        }
    }
}

impl SparseRows {
    /// Replaces the contents with rows `rows` of `src`, each value `v`
    /// stored as `f32::from(v) * scale`: the same bytes as
    /// [`SparseRows::fill_u8`] of those rows in dense form, without reading
    /// their zeros. Allocates nothing once the buffers have grown to the
    /// largest batch seen.
    ///
    /// # Panics
    /// If an entry of `rows` is not below `src.len()`.
    #[track_caller]
    pub fn fill_from(&mut self, src: &SparseBytes, rows: &[u32], scale: f32) {
        self.fill_from_impl(None, src, rows, scale);
    }

    /// [`SparseRows::fill_from`], with the rows copied into the CSR by
    /// `pool`'s threads (the sort by column that follows stays on the
    /// calling thread): the same bytes whatever the number of threads.
    ///
    /// # Panics
    /// As [`SparseRows::fill_from`].
    #[track_caller]
    pub fn fill_from_with(&mut self, pool: &ThreadPool, src: &SparseBytes, rows: &[u32], scale: f32) {
        self.fill_from_impl(Some(pool), src, rows, scale);
    }

    #[track_caller]
    fn fill_from_impl(&mut self, pool: Option<&ThreadPool>, src: &SparseBytes, rows: &[u32], scale: f32) {
        let (n_rows, cols) = (rows.len(), src.cols);
        self.start(n_rows, cols);
        // Row pointers first: they place every task's writes, and checking
        // each row here keeps the tasks free of panics.
        let mut nnz = 0;
        for &r in rows {
            assert!(
                (r as usize) < src.len(),
                "SparseRows::fill_from: row {r} of a store of {} rows",
                src.len()
            );
            nnz += src.ptr[r as usize + 1] - src.ptr[r as usize];
            self.row_ptr.push(nnz);
        }
        let row_ptr = &self.row_ptr;
        let (row_idx, row_val) = (
            SharedMut(self.row_idx.as_mut_ptr()),
            SharedMut(self.row_val.as_mut_ptr()),
        );
        let n_tasks = pool.map_or(1, |p| p.active_threads()).min(n_rows).max(1);
        let task = |t: usize| {
            for i in n_rows * t / n_tasks..n_rows * (t + 1) / n_tasks {
                let (idx, val) = src.row(rows[i] as usize);
                let start = row_ptr[i];
                // SAFETY: entries row_ptr[i]..row_ptr[i + 1] (`idx.len()` of
                // them, at most `nnz <= n_rows * cols`, within the buffers
                // `start` sized) are row i's alone, and each row is one
                // task's.
                let (dst_idx, dst_val) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(row_idx.get().add(start), idx.len()),
                        std::slice::from_raw_parts_mut(row_val.get().add(start), val.len()),
                    )
                };
                dst_idx.iter_mut().zip(idx).for_each(|(d, &j)| *d = u32::from(j));
                dst_val
                    .iter_mut()
                    .zip(val)
                    .for_each(|(d, &v)| *d = f32::from(v) * scale);
            }
        };
        run(pool, n_tasks, &task);
        self.finish(nnz);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripes::tests::bytes;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_fill_from_the_store_has_the_bytes_of_a_fill_from_dense_rows(
            n in 1usize..40, cols in 1usize..90, picks in prop::collection::vec(any::<u32>(), 0..50),
            density in 0u64..=100, seed: u64, threads in 1usize..4, rows_only: bool,
        ) {
            let dense = bytes(n, cols, density, seed);
            let store = SparseBytes::new(&dense, cols);
            let rows: Vec<u32> = picks.iter().map(|p| p % n as u32).collect();
            let make = |max: usize| if rows_only { SparseRows::rows_only(max, cols) } else { SparseRows::with_capacity(max, cols) };
            let mut expected = make(rows.len());
            expected.fill_u8(rows.iter().map(|&r| &dense[r as usize * cols..(r as usize + 1) * cols]), cols, 1.0 / 255.0);
            // A reused matrix, once larger, must forget what it held.
            let mut got = make(60);
            let full = vec![9u8; 60 * cols];
            got.fill_u8(full.chunks_exact(cols), cols, 1.0 / 255.0);
            got.fill_from(&store, &rows, 1.0 / 255.0);
            prop_assert!(got.same_bytes(&expected));
            let pool = ThreadPool::new(threads);
            let mut threaded = make(rows.len());
            threaded.fill_from_with(&pool, &store, &rows, 1.0 / 255.0);
            prop_assert!(threaded.same_bytes(&expected));
        }
    }

    proptest! {
        #[test]
        fn a_store_made_on_threads_is_the_store_made_in_turn(
            rows in 0usize..60, cols in 1usize..70, density in 0u64..=100, seed: u64, threads in 1usize..4,
        ) {
            let data = bytes(rows, cols, density, seed);
            let serial = SparseBytes::new(&data, cols);
            prop_assert_eq!(serial.len(), rows);
            prop_assert_eq!(serial.nnz(), data.iter().filter(|&&v| v != 0).count());
            prop_assert_eq!(SparseBytes::new_with(&ThreadPool::new(threads), &data, cols), serial);
        }
    }

    #[test]
    fn a_store_keeps_each_rows_non_zeros_in_column_order() {
        let store = SparseBytes::new(&[0, 7, 0, 9, 0, 0, 0, 0, 1, 0, 0, 255], 4);
        assert_eq!((store.len(), store.cols(), store.nnz()), (3, 4, 4));
        assert_eq!(store.row(0), (&[1u16, 3][..], &[7u8, 9][..]));
        assert_eq!(store.row(1), (&[][..], &[][..]));
        assert_eq!(store.row(2), (&[0u16, 3][..], &[1u8, 255][..]));
    }

    #[test]
    #[should_panic(expected = "row 3 of a store of 3 rows")]
    fn a_row_outside_the_store_is_refused() {
        let store = SparseBytes::new(&[1, 0, 0, 2, 3, 3], 2);
        SparseRows::with_capacity(2, 2).fill_from(&store, &[0, 3], 1.0);
    }

    #[test]
    #[should_panic(expected = "0 columns, expected 1 to 65536")]
    fn rows_of_no_columns_are_refused() {
        let _ = SparseBytes::new(&[], 0);
    }

    #[test]
    #[should_panic(expected = "65537 columns, expected 1 to 65536")]
    fn more_columns_than_a_u16_indexes_are_refused() {
        let _ = SparseBytes::new(&vec![0; 65_537], 65_537);
    }

    #[test]
    fn the_widest_rows_keep_their_last_column() {
        let mut data = vec![0u8; SparseBytes::MAX_COLS];
        data[SparseBytes::MAX_COLS - 1] = 7;
        let store = SparseBytes::new(&data, SparseBytes::MAX_COLS);
        assert_eq!(store.row(0), (&[u16::MAX][..], &[7u8][..]));
    }

    #[test]
    #[should_panic(expected = "5 values do not make rows of 2")]
    fn values_that_do_not_make_whole_rows_are_refused() {
        let _ = SparseBytes::new(&[1, 0, 0, 2, 0], 2);
    }

    #[test]
    fn rows_wider_than_a_run_and_long_runs_of_zeros_keep_every_non_zero() {
        // 40 columns: two whole runs of 16 and a tail of 8; zeros in runs.
        let mut data = vec![0u8; 3 * 40];
        for (i, j, v) in [(0, 0, 1), (0, 15, 2), (0, 39, 3), (1, 16, 4), (2, 33, 5), (2, 34, 6)] {
            data[i * 40 + j] = v;
        }
        let store = SparseBytes::new(&data, 40);
        assert_eq!(store.row(0), (&[0u16, 15, 39][..], &[1u8, 2, 3][..]));
        assert_eq!(store.row(1), (&[16u16][..], &[4u8][..]));
        assert_eq!(store.row(2), (&[33u16, 34][..], &[5u8, 6][..]));
    }
}
