//! Compressing a `u8` batch on a pool's threads: [`SparseRows::fill_u8_with`].
//!
//! The serial fill ([`SparseRows::fill_u8`]) appends each row's non-zeros to
//! the CSR and then sorts them by column into the CSC, so every entry's place
//! depends on all the entries before it. Here the columns are cut into
//! stripes, whole 16-pixel runs wide, and each task owns one stripe:
//!
//! 1. count: each task counts its stripe's non-zeros in every row, and in
//!    every one of its columns;
//! 2. on the caller, prefix sums turn the counts into where each (stripe,
//!    row) piece of the CSR starts, and where each column of the CSC starts;
//! 3. fill: each task compresses its stripe of every row into its pieces of
//!    the CSR, in row order, and sorts those entries into its columns of the
//!    CSC, which are contiguous.
//!
//! A row's entries are still in column order, a column's still in row order,
//! so the buffers hold exactly the bytes of the serial fill, whatever the
//! number of threads; no task writes where another does, and nothing is
//! allocated once the scratch has grown to the largest batch and stripe
//! count seen.

use crate::ThreadPool;
use crate::pool::SharedMut;
use crate::sparse::{RUN, SparseRows};

/// Stripes per thread: the middle of an image holds most of the ink, so the
/// stripes there take longer, and the pool's threads even out by claiming
/// the next stripe as they free up.
const STRIPES_PER_THREAD: usize = 4;

impl SparseRows {
    /// [`SparseRows::fill_u8`] for the `rows` rows `row(0)..row(rows - 1)`,
    /// compressed by column stripes on the threads of `pool`: the same bytes
    /// in every buffer, whatever the number of threads. Allocates nothing
    /// once the buffers have grown to the largest batch seen.
    ///
    /// # Panics
    /// If a row does not have `cols` entries.
    #[track_caller]
    pub fn fill_u8_with<'r>(
        &mut self,
        pool: &ThreadPool,
        rows: usize,
        cols: usize,
        scale: f32,
        row: impl Fn(usize) -> &'r [u8] + Sync,
    ) {
        if pool.active_threads() == 1 || self.rows_only {
            // One thread gains nothing from stripes, and their count pass
            // costs more than the serial fill's sort by column; a matrix of
            // rows only has no sort by column to share out.
            return self.fill_u8((0..rows).map(row), cols, scale);
        }
        self.start(rows, cols);
        for i in 0..rows {
            let len = row(i).len();
            assert_eq!(
                len, cols,
                "SparseRows::fill_u8: a row has {len} entries, expected {cols}"
            );
        }
        let runs = cols.div_ceil(RUN);
        let n_stripes = (STRIPES_PER_THREAD * pool.active_threads()).min(runs).max(1);
        // Stripe s covers columns edges[s]..edges[s + 1], whole runs of 16.
        let edge = |s: usize| (runs * s / n_stripes * RUN).min(cols);
        let pieces = n_stripes * rows;
        if self.piece_start.len() < pieces {
            self.piece_start.resize(pieces, 0);
        }
        self.col_start.clear();
        self.col_start.resize(n_stripes + 1, 0);

        // 1. Count. `piece_start[s * rows + i]` gets the non-zeros of row i
        // in stripe s, `col_ptr[j + 1]` those of column j.
        let counts = SharedMut(self.piece_start.as_mut_ptr());
        let col_counts = SharedMut(self.col_ptr.as_mut_ptr());
        pool.run(n_stripes, &|s| {
            let (c0, c1) = (edge(s), edge(s + 1));
            // SAFETY: stripe s alone writes pieces s * rows.. of the counts
            // and entries c0 + 1..=c1 of `col_ptr`, both within their buffers
            // (sized by `start` and above) and borrowed mutably by `self`.
            let (counts, col_counts) = unsafe {
                (
                    std::slice::from_raw_parts_mut(counts.get().add(s * rows), rows),
                    std::slice::from_raw_parts_mut(col_counts.get().add(c0 + 1), c1 - c0),
                )
            };
            for (i, count) in counts.iter_mut().enumerate() {
                *count = count_stripe(&row(i)[c0..c1], col_counts);
            }
        });

        // 2. Prefix sums: CSR pieces in row-major (row, then stripe) order,
        // CSC columns in order; `col_start` keeps each stripe's first CSC
        // entry, since the fill moves the column cursors.
        let mut nnz = 0;
        for i in 0..rows {
            for s in 0..n_stripes {
                let count = std::mem::replace(&mut self.piece_start[s * rows + i], nnz);
                nnz += count;
            }
            self.row_ptr.push(nnz);
        }
        for j in 0..cols {
            self.col_ptr[j + 1] += self.col_ptr[j];
        }
        for s in 0..=n_stripes {
            self.col_start[s] = self.col_ptr[edge(s)];
        }

        // 3. Fill, with `col_ptr[j]` as column j's cursor.
        let (row_idx, row_val) = (
            SharedMut(self.row_idx.as_mut_ptr()),
            SharedMut(self.row_val.as_mut_ptr()),
        );
        let (col_idx, col_val) = (
            SharedMut(self.col_idx.as_mut_ptr()),
            SharedMut(self.col_val.as_mut_ptr()),
        );
        let cursors = SharedMut(self.col_ptr.as_mut_ptr());
        let (piece_start, row_ptr, col_start) = (&self.piece_start, &self.row_ptr, &self.col_start);
        pool.run(n_stripes, &|s| {
            let (c0, c1) = (edge(s), edge(s + 1));
            let (first, end) = (col_start[s], col_start[s + 1]);
            // SAFETY: stripe s alone owns the cursors of its columns c0..c1,
            // and the CSC entries of those columns, first..end (contiguous,
            // columns being in order); `end <= nnz`, within the buffers.
            let (cursors, col_idx, col_val) = unsafe {
                (
                    std::slice::from_raw_parts_mut(cursors.get().add(c0), c1 - c0),
                    std::slice::from_raw_parts_mut(col_idx.get().add(first), end - first),
                    std::slice::from_raw_parts_mut(col_val.get().add(first), end - first),
                )
            };
            for i in 0..rows {
                let start = piece_start[s * rows + i];
                let stop = if s + 1 < n_stripes {
                    piece_start[(s + 1) * rows + i]
                } else {
                    row_ptr[i + 1]
                };
                // SAFETY: the piece start..stop of row i in stripe s is this
                // task's alone (the prefix sums above), and `stop <= nnz`.
                let (idx, val) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(row_idx.get().add(start), stop - start),
                        std::slice::from_raw_parts_mut(row_val.get().add(start), stop - start),
                    )
                };
                compress_exact(&row(i)[c0..c1], c0, scale, idx, val);
                for (&j, &v) in idx.iter().zip(val.iter()) {
                    let cursor = &mut cursors[j as usize - c0];
                    col_idx[*cursor - first] = i as u32;
                    col_val[*cursor - first] = v;
                    *cursor += 1;
                }
            }
        });
        self.finish_columns(nnz);
    }
}

/// The non-zeros of `stripe`, also added to `col_counts` (one per entry).
/// Runs of 16 zeros are skipped with one test.
#[inline]
fn count_stripe(stripe: &[u8], col_counts: &mut [usize]) -> usize {
    let mut total = 0;
    for (run, counts) in stripe.chunks(RUN).zip(col_counts.chunks_mut(RUN)) {
        if run.len() == RUN && u128::from_ne_bytes(run.try_into().expect("16 bytes")) == 0 {
            continue;
        }
        for (&p, count) in run.iter().zip(counts) {
            let nonzero = usize::from(p != 0);
            *count += nonzero;
            total += nonzero;
        }
    }
    total
}

/// Writes the non-zeros of `stripe` (whose first column is `c0`), times
/// `scale`, into `idx` and `val`, which hold exactly that many. As in the
/// serial compression every entry of a run is written and the count moves
/// only past non-zeros, but the write is skipped once the piece is full (a
/// branch taken only after its last non-zero): past it lies another task's
/// piece.
#[inline]
fn compress_exact(stripe: &[u8], c0: usize, scale: f32, idx: &mut [u32], val: &mut [f32]) {
    let mut n = 0;
    for (r, run) in stripe.chunks(RUN).enumerate() {
        if run.len() == RUN && u128::from_ne_bytes(run.try_into().expect("16 bytes")) == 0 {
            continue;
        }
        let start = c0 + r * RUN;
        for (k, &p) in run.iter().enumerate() {
            if let (Some(i), Some(v)) = (idx.get_mut(n), val.get_mut(n)) {
                *i = (start + k) as u32;
                *v = f32::from(p) * scale;
            }
            n += usize::from(p != 0);
        }
    }
    debug_assert_eq!(n, idx.len(), "compress_exact: the count pass disagrees");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Rng;
    use proptest::prelude::*;

    /// `rows` rows of `cols` pixels, each non-zero with probability
    /// `density` percent.
    pub(crate) fn bytes(rows: usize, cols: usize, density: u64, seed: u64) -> Vec<u8> {
        let mut rng = Rng::seed_from_u64(seed);
        (0..rows * cols)
            .map(|_| {
                if rng.below(100) < density {
                    rng.below(256) as u8
                } else {
                    0
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn stripes_give_the_bytes_of_the_serial_fill(rows in 0usize..40, cols in 1usize..300,
                                                     density in 0u64..=100, seed: u64) {
            let pixels = bytes(rows, cols, density, seed);
            let scale = 1.0 / 255.0;
            let mut serial = SparseRows::with_capacity(1, 1);
            serial.fill_u8(pixels.chunks(cols), cols, scale);
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                // Refilled over a larger, different batch: no stale entry survives.
                let mut striped = SparseRows::with_capacity(1, 1);
                let other = bytes(rows + 3, cols, 50, seed ^ 1);
                striped.fill_u8_with(&pool, rows + 3, cols, 0.5, |i| &other[i * cols..(i + 1) * cols]);
                striped.fill_u8_with(&pool, rows, cols, scale, |i| &pixels[i * cols..(i + 1) * cols]);
                prop_assert!(striped.same_bytes(&serial), "{} threads", threads);
            }
        }
    }

    #[test]
    fn a_short_row_panics_and_leaves_an_empty_matrix() {
        let mut sparse = SparseRows::with_capacity(2, 3);
        let pool = ThreadPool::new(2);
        let rows: [&[u8]; 2] = [&[1, 2, 3], &[4]];
        let short = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sparse.fill_u8_with(&pool, 2, 3, 1.0, |i| rows[i]);
        }));
        assert!(short.is_err());
        assert_eq!((sparse.dim(), sparse.nnz()), ((0, 3), 0));
    }
}
