//! Products with a mostly-zero left operand, stored compressed.
//!
//! An MNIST batch is about four fifths exact zeros, and two of a training
//! step's products have the batch `X` on the left: the forward `Z = X W` and
//! the weight gradient `dW = X^T delta` (BP4 for the first layer).
//! [`SparseRows`] stores `X` once per batch in both compressed-row (CSR) and
//! compressed-column (CSC) form, and [`sparse_gemm`] multiplies either `X` or
//! `X^T` by a dense matrix doing work only for the non-zeros.
//!
//! Each output element is accumulated in registers over the non-zeros of its
//! row of `op(X)` in increasing index order, then written once, so the result
//! is independent of how rows of the output are split between threads.

use crate::ThreadPool;
use crate::pool::SharedMut;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// A compressed copy of a dense `(rows, cols)` matrix, in row-major (CSR) and
/// column-major (CSC) order, in buffers reused from batch to batch.
#[derive(Clone, Debug, Default)]
pub struct SparseRows {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// CSR: the non-zeros of row `i` are `row_idx/row_val[row_ptr[i]..row_ptr[i + 1]]`.
    pub(crate) row_ptr: Vec<usize>,
    pub(crate) row_idx: Vec<u32>,
    pub(crate) row_val: Vec<f32>,
    /// CSC: the non-zeros of column `j` are `col_idx/col_val[col_ptr[j]..col_ptr[j + 1]]`.
    pub(crate) col_ptr: Vec<usize>,
    pub(crate) col_idx: Vec<u32>,
    pub(crate) col_val: Vec<f32>,
    /// Number of non-zeros; the buffers are longer, sized for the largest
    /// matrix seen, so compression can write without checking.
    pub(crate) nnz: usize,
    /// Scratch: in the threaded fill ([`SparseRows::fill_u8_with`]), where
    /// each (column stripe, row) piece of the CSR starts, stripe-major; in
    /// the serial sort by column, where each row's entries of the current
    /// stripe of columns start.
    pub(crate) piece_start: Vec<usize>,
    /// Scratch of the threaded fill: each stripe's first CSC entry.
    pub(crate) col_start: Vec<usize>,
    /// Built by [`SparseRows::rows_only`]: fills skip the CSC, and products
    /// with `X^T` are refused.
    pub(crate) rows_only: bool,
}

/// Which operand [`sparse_gemm`] multiplies: the stored matrix or its transpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `X` itself, `(rows, cols)`.
    Plain,
    /// `X^T`, `(cols, rows)`.
    Transposed,
}

impl SparseRows {
    /// An empty `(0, cols)` matrix with buffers for up to `max_rows` rows of
    /// `cols` columns: no later fill within that size allocates (but for
    /// [`SparseRows::fill`] of a view whose rows are not contiguous, which
    /// copies each row).
    pub fn with_capacity(max_rows: usize, cols: usize) -> Self {
        let max_nnz = max_rows * cols;
        Self {
            rows: 0,
            cols,
            row_ptr: {
                let mut ptr = Vec::with_capacity(max_rows + 1);
                ptr.push(0);
                ptr
            },
            row_idx: vec![0; max_nnz],
            row_val: vec![0.0; max_nnz],
            col_ptr: vec![0; cols + 1],
            col_idx: vec![0; max_nnz],
            col_val: vec![0.0; max_nnz],
            nnz: 0,
            piece_start: Vec::new(),
            col_start: Vec::new(),
            rows_only: false,
        }
    }

    /// Like [`SparseRows::with_capacity`], but keeping only the CSR: fills
    /// skip the sort by column, which is half the cost of compressing, and
    /// the buffers take half the memory. For inputs that only go forward
    /// (evaluation, prediction): products with `X` work as usual, products
    /// with `X^T` panic.
    pub fn rows_only(max_rows: usize, cols: usize) -> Self {
        let max_nnz = max_rows * cols;
        let mut x = Self::with_capacity(0, cols);
        x.row_idx = vec![0; max_nnz];
        x.row_val = vec![0.0; max_nnz];
        x.rows_only = true;
        x
    }

    /// Whether fills also build the CSC, so that products with `X^T` work:
    /// false for a matrix made by [`SparseRows::rows_only`].
    pub fn has_columns(&self) -> bool {
        !self.rows_only
    }

    /// Replaces the contents with the non-zeros of `a`, growing the buffers
    /// only if `a` is larger than any matrix before.
    pub fn fill(&mut self, a: ArrayView2<'_, f32>) {
        let (rows, cols) = a.dim();
        self.start(rows, cols);
        let mut nnz = 0;
        for row in a.rows() {
            match row.as_slice() {
                Some(row) => nnz = compress_row(row, 1.0, &mut self.row_idx, &mut self.row_val, nnz),
                None => nnz = compress_row(&row.to_vec(), 1.0, &mut self.row_idx, &mut self.row_val, nnz),
            }
            self.row_ptr.push(nnz);
        }
        self.finish(nnz);
    }

    /// Replaces the contents with `scale * row` for each byte row, straight
    /// from compact `u8` pixels: the same values as converting each pixel
    /// with `f32::from(p) * scale` into a dense matrix and calling
    /// [`SparseRows::fill`], without the dense matrix.
    ///
    /// # Panics
    /// If a row does not have `cols` entries.
    #[track_caller]
    pub fn fill_u8<'r>(&mut self, rows: impl ExactSizeIterator<Item = &'r [u8]>, cols: usize, scale: f32) {
        self.start(rows.len(), cols);
        let mut nnz = 0;
        for row in rows {
            assert_eq!(
                row.len(),
                cols,
                "SparseRows::fill_u8: a row has {} entries, expected {cols}",
                row.len()
            );
            nnz = compress_row(row, scale, &mut self.row_idx, &mut self.row_val, nnz);
            self.row_ptr.push(nnz);
        }
        self.finish(nnz);
    }

    /// Sizes the buffers for a `(rows, cols)` matrix and empties the CSR.
    ///
    /// Until [`SparseRows::finish`] the matrix reads as `(0, cols)` with
    /// empty columns, so a fill that panics half-way (a row of the wrong
    /// length) leaves nothing that could index outside an operand.
    pub(crate) fn start(&mut self, rows: usize, cols: usize) {
        self.rows = 0;
        self.cols = cols;
        self.nnz = 0;
        self.col_ptr.clear();
        self.col_ptr.resize(cols + 1, 0);
        let len = rows * cols;
        let (col_len, rows_only) = if self.rows_only { (0, true) } else { (len, false) };
        debug_assert!(!rows_only || self.col_idx.is_empty());
        for (buffer, len) in [(&mut self.row_idx, len), (&mut self.col_idx, col_len)] {
            if buffer.len() < len {
                buffer.resize(len, 0);
            }
        }
        for (buffer, len) in [(&mut self.row_val, len), (&mut self.col_val, col_len)] {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        self.row_ptr.clear();
        self.row_ptr.push(0);
    }

    /// Builds the CSC copy from the finished CSR of `nnz` entries (unless
    /// the matrix keeps rows only).
    pub(crate) fn finish(&mut self, nnz: usize) {
        if self.rows_only {
            return self.finish_rows(nnz);
        }
        let (rows, cols) = (self.row_ptr.len() - 1, self.cols);
        self.col_ptr.clear();
        self.col_ptr.resize(cols + 1, 0);
        for &j in &self.row_idx[..nnz] {
            self.col_ptr[j as usize + 1] += 1;
        }
        for j in 0..cols {
            self.col_ptr[j + 1] += self.col_ptr[j];
        }
        // Counting sort of the CSR entries by column: `cursor[j]` is where
        // column j's next entry goes. Rows are visited in order, so rows stay
        // ascending within each column. A row's entries land far apart, one
        // per column, so the columns are taken in stripes whose share of the
        // CSC stays in the first-level cache while it fills; `next[i]` is
        // where row i's entries of the stripe start (they are in column
        // order).
        let stripes = (nnz * STRIPE_ENTRY_BYTES).div_ceil(STRIPE_BYTES).clamp(1, cols.max(1));
        let next = &mut self.piece_start;
        next.clear();
        next.extend_from_slice(&self.row_ptr[..rows]);
        let (row_ptr, row_idx, row_val) = (&self.row_ptr[..=rows], &self.row_idx[..nnz], &self.row_val[..nnz]);
        let (col_idx, col_val) = (&mut self.col_idx[..nnz], &mut self.col_val[..nnz]);
        let cursor = &mut self.col_ptr[..cols];
        for s in 1..=stripes {
            let end_col = (cols * s / stripes) as u32;
            for (i, (next, &end)) in next.iter_mut().zip(&row_ptr[1..]).enumerate() {
                let mut e = *next;
                while e < end && row_idx[e] < end_col {
                    let j = row_idx[e] as usize;
                    let dst = cursor[j];
                    col_idx[dst] = i as u32;
                    col_val[dst] = row_val[e];
                    cursor[j] = dst + 1;
                    e += 1;
                }
                *next = e;
            }
        }
        self.finish_columns(nnz);
    }

    /// Completes a fill of `nnz` entries of a matrix that keeps rows only,
    /// once its CSR is written. Every column pointer stays 0, and
    /// `sparse_gemm` refuses `X^T`.
    pub(crate) fn finish_rows(&mut self, nnz: usize) {
        debug_assert!(self.rows_only, "finish_rows: the matrix keeps columns");
        self.rows = self.row_ptr.len() - 1;
        self.nnz = nnz;
    }

    /// Completes a fill of `nnz` entries whose CSR is written and whose CSC
    /// was sorted with `col_ptr[j]` as column j's cursor: each cursor now
    /// sits at its column's end, the next column's start, so shifting them
    /// up one gives the column pointers. Only then does the matrix read as
    /// its full size.
    pub(crate) fn finish_columns(&mut self, nnz: usize) {
        let cols = self.cols;
        self.col_ptr.copy_within(0..cols, 1);
        self.col_ptr[0] = 0;
        self.rows = self.row_ptr.len() - 1;
        self.nnz = nnz;
    }

    /// Whether `self` and `other` hold the same matrix in the same bytes:
    /// dimensions, pointers, and the stored entries of both orientations
    /// (of the rows alone for matrices that keep no columns).
    #[cfg(test)]
    pub(crate) fn same_bytes(&self, other: &SparseRows) -> bool {
        let n = self.nnz;
        let bits = |v: &[f32]| v[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let columns =
            self.rows_only || (self.col_idx[..n] == other.col_idx[..n] && bits(&self.col_val) == bits(&other.col_val));
        self.dim() == other.dim()
            && n == other.nnz
            && self.rows_only == other.rows_only
            && self.row_ptr == other.row_ptr
            && self.col_ptr == other.col_ptr
            && self.row_idx[..n] == other.row_idx[..n]
            && bits(&self.row_val) == bits(&other.row_val)
            && columns
    }

    /// `(rows, cols)` of the stored matrix.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Fraction of entries that are non-zero, in `[0, 1]` (1 when empty).
    pub fn density(&self) -> f32 {
        let len = self.rows * self.cols;
        if len == 0 { 1.0 } else { self.nnz() as f32 / len as f32 }
    }

    fn view(&self, op: Op) -> Compressed<'_> {
        match op {
            Op::Plain => Compressed {
                ptr: &self.row_ptr,
                idx: &self.row_idx,
                val: &self.row_val,
            },
            Op::Transposed => Compressed {
                ptr: &self.col_ptr,
                idx: &self.col_idx,
                val: &self.col_val,
            },
        }
    }
}

/// An entry type [`SparseRows`] can compress: `f32` activations or `u8`
/// pixels.
trait Entry: Copy {
    /// Whether all 16 entries of `run` are zero, tested at once.
    fn run_is_zero(run: &[Self]) -> bool;
    /// Whether this entry is non-zero.
    fn is_nonzero(self) -> bool;
    /// The value stored for this entry.
    fn value(self, scale: f32) -> f32;
}

impl Entry for f32 {
    #[inline(always)]
    fn run_is_zero(run: &[f32]) -> bool {
        // Any bit other than the sign set means non-zero (-0.0 is zero).
        run.iter().fold(0u32, |any, v| any | (v.to_bits() << 1)) == 0
    }
    #[inline(always)]
    fn is_nonzero(self) -> bool {
        self != 0.0
    }
    #[inline(always)]
    fn value(self, scale: f32) -> f32 {
        self * scale
    }
}

impl Entry for u8 {
    #[inline(always)]
    fn run_is_zero(run: &[u8]) -> bool {
        u128::from_ne_bytes(run.try_into().expect("16 bytes")) == 0
    }
    #[inline(always)]
    fn is_nonzero(self) -> bool {
        self != 0
    }
    #[inline(always)]
    fn value(self, scale: f32) -> f32 {
        f32::from(self) * scale
    }
}

/// Bytes of CSC a stripe of the sort by column fills: well inside a
/// first-level data cache.
const STRIPE_BYTES: usize = 16 << 10;

/// Bytes one CSC entry takes: its row and its value.
const STRIPE_ENTRY_BYTES: usize = std::mem::size_of::<u32>() + std::mem::size_of::<f32>();

/// Pixels per run that compression tests for zeros at once.
pub(crate) const RUN: usize = 16;

/// Appends the non-zeros of `row`, times `scale`, at `idx/val[nnz..]` and
/// returns the new count. Runs of 16 zeros (image borders) are skipped with
/// one test; inside other runs every entry is written and the count advances
/// only past non-zeros, so the next entry overwrites a zero: no unpredictable
/// branches.
#[inline]
fn compress_row<T: Entry>(row: &[T], scale: f32, idx: &mut [u32], val: &mut [f32], nnz: usize) -> usize {
    let end = nnz + row.len();
    let (idx, val) = (&mut idx[nnz..end], &mut val[nnz..end]);
    let mut n = 0;
    let mut push_run = |start: usize, run: &[T]| {
        for (k, &v) in run.iter().enumerate() {
            idx[n] = (start + k) as u32;
            val[n] = v.value(scale);
            n += usize::from(v.is_nonzero());
        }
    };
    let runs = row.chunks_exact(RUN);
    let tail = runs.remainder();
    for (r, run) in runs.enumerate() {
        if !T::run_is_zero(run) {
            push_run(r * RUN, run);
        }
    }
    push_run(row.len() - tail.len(), tail);
    nnz + n
}

/// One compressed orientation: row `i` of `op(X)` is `idx/val[ptr[i]..ptr[i+1]]`.
#[derive(Clone, Copy)]
struct Compressed<'a> {
    ptr: &'a [usize],
    idx: &'a [u32],
    val: &'a [f32],
}

impl<'a> Compressed<'a> {
    /// The indices and values of the entries `range`.
    fn entries(&self, range: std::ops::Range<usize>) -> (&'a [u32], &'a [f32]) {
        (&self.idx[range.clone()], &self.val[range])
    }

    /// The indices and values of row `i`'s entries.
    fn row(&self, i: usize) -> (&'a [u32], &'a [f32]) {
        self.entries(self.ptr[i]..self.ptr[i + 1])
    }
}

/// `C <- alpha * op(X) * B + beta * C` for a compressed `X`, on the calling
/// thread.
///
/// With `beta == 0`, `C` is overwritten without being read. A `B` of 256
/// columns or more and at most 256 rows (`delta` of a wide first layer), or
/// with `beta == 0` and `op` plain, one larger than 512 KB (`W` of a wide
/// first layer), is first copied tile by tile into a buffer of the calling
/// thread, kept for its next products (so it allocates only when a larger
/// such `B` comes); the larger one is then read in blocks of its rows.
///
/// # Shapes
/// `op(X): (m, k)`, `b: (k, n)`, `c: (m, n)`; rows of `b` and `c` must be
/// contiguous.
///
/// # Panics
/// If the shapes do not chain or rows of `b` or `c` are not contiguous.
#[track_caller]
pub fn sparse_gemm(
    alpha: f32,
    x: &SparseRows,
    op: Op,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    sparse_gemm_impl(None, alpha, x, op, b, beta, c, |_, _, _| {});
}

/// [`sparse_gemm`] with rows of `C` shared out between the threads of
/// `pool`; bit-identical to [`sparse_gemm`] whatever the number of threads.
///
/// # Panics
/// As [`sparse_gemm`].
#[track_caller]
pub fn sparse_gemm_with(
    pool: &ThreadPool,
    alpha: f32,
    x: &SparseRows,
    op: Op,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    sparse_gemm_impl(Some(pool), alpha, x, op, b, beta, c, |_, _, _| {});
}

/// A layer's forward product for a compressed input, with its element-wise
/// work done where each row of `Z` is made: `Z = X W + 1 b^T`, then, when
/// `a` is given, `A = f(Z)`. Each row gets the same operations in the same
/// order as [`sparse_gemm_with`] followed by [`crate::add_row_broadcast`]
/// (and `a = f(z)`), so the same bits; but the bias and the activation are
/// applied by the pool's threads, to rows still in their caches, instead of
/// in a pass of their own on the calling thread.
///
/// # Shapes
/// `x: (m, k)`, `w: (k, n)`, `bias: (n)`, `z` and `a: (m, n)`; rows of `w`,
/// `z` and `a` must be contiguous.
///
/// # Panics
/// If the shapes do not chain or rows are not contiguous.
#[track_caller]
pub fn sparse_affine_with(
    pool: &ThreadPool,
    x: &SparseRows,
    w: ArrayView2<'_, f32>,
    bias: ArrayView1<'_, f32>,
    z: &mut ArrayViewMut2<'_, f32>,
    mut a: Option<ArrayViewMut2<'_, f32>>,
    f: impl Fn(f32) -> f32 + Sync,
) {
    let (m, n) = z.dim();
    assert!(
        bias.len() == n && a.as_ref().is_none_or(|a| a.dim() == (m, n)),
        "sparse_affine_with: bias of {} and A {:?} do not fit Z {:?}",
        bias.len(),
        a.as_ref().map(|a| a.dim()),
        (m, n)
    );
    assert!(
        n <= 1 || m == 0 || a.as_ref().is_none_or(|a| a.strides()[1] == 1),
        "sparse_affine_with: rows of A must be contiguous"
    );
    let bias = bias.as_standard_layout();
    let bias = bias.as_slice().expect("standard layout");
    let a_rows = a.as_mut().map(|a| (SharedMut(a.as_mut_ptr()), a.strides()[0]));
    sparse_gemm_impl(Some(pool), 1.0, x, Op::Plain, w, 0.0, z, |i, j0, z_part| match a_rows {
        None => z_part.iter_mut().zip(&bias[j0..]).for_each(|(z, &b)| *z += b),
        Some((a_ptr, lda)) => {
            // SAFETY: row i < m of A holds n contiguous elements (checked
            // above), of which this part's lie within j0..n; A is borrowed
            // mutably for the whole call, and each part is finished by one
            // task only.
            let a_part =
                unsafe { std::slice::from_raw_parts_mut(a_ptr.get().offset(i as isize * lda).add(j0), z_part.len()) };
            for ((z, a), &b) in z_part.iter_mut().zip(a_part).zip(&bias[j0..]) {
                *z += b;
                *a = f(*z);
            }
        }
    });
}

/// The product, then `epilogue(i, j0, part)` on each finished part of row
/// `i` of `C` (its columns from `j0`), by the task that computed it.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn sparse_gemm_impl(
    pool: Option<&ThreadPool>,
    alpha: f32,
    x: &SparseRows,
    op: Op,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    epilogue: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let (m, k) = match op {
        Op::Plain => x.dim(),
        Op::Transposed => (x.cols, x.rows),
    };
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "sparse_gemm: shapes do not chain: op(X) {:?} * B {:?} -> C {:?}",
        (m, k),
        b.dim(),
        c.dim()
    );
    assert!(
        n <= 1 || ((k == 0 || b.strides()[1] == 1) && (m == 0 || c.strides()[1] == 1)),
        "sparse_gemm: rows of B and C must be contiguous"
    );
    assert!(
        op == Op::Plain || !x.rows_only,
        "sparse_gemm: X^T of a matrix made by SparseRows::rows_only, which keeps no columns"
    );
    if m == 0 || n == 0 {
        return;
    }
    let a = x.view(op);
    let ldb = b.strides()[0];
    let ldc = c.strides()[0];
    let b_ptr = SharedMut(b.as_ptr().cast_mut());
    let c_ptr = SharedMut(c.as_mut_ptr());
    let n_tasks = pool.map_or(1, |p| 4 * p.active_threads()).min(m);
    // Each non-zero reads its row of B. Row by row, a task streams all of
    // B past for each row of C, from L3 once B outgrows L2 (`W1` of a
    // 784x1024 layer is 3.2 MB); a block of TILE columns at a time, over
    // all the task's rows, it streams a k x TILE slab that stays in L2.
    // Where B fits, whole rows measured faster (one call per row matters
    // for the short rows of X^T, a pixel's few non-zeros in a batch).
    // Either order gives every element the same sum.
    let blocks_outside = k * n * size_of::<f32>() > BLOCKS_OUTSIDE_BYTES;
    // Row by row, a product whose B outgrows L2 reads each row's tiles of
    // B from all over B. Instead, B is copied tile by tile (below) and read
    // in blocks of K_BLOCK rows of a tile (112 KB, contiguous), each block
    // over all of a task's rows before the next, every accumulator resumed
    // from C where the block before left it: the same operations in the
    // same order (a float stored and loaded again is the same float), so
    // the same bits. Only where C holds nothing to keep.
    let k_blocked = op == Op::Plain && beta == 0.0 && k > K_BLOCK && k * n * size_of::<f32>() > K_BLOCKS_FROM_BYTES;
    PACKED.with(|buffer| {
        // A slab of a wide B, its rows 1 KB or more apart, falls on a few
        // cache sets and keeps evicting itself; copied tile by tile into a
        // contiguous buffer (the same values), each slab of a short B stays
        // in L1, each block of a tall one in L2. (The buffer is this
        // thread's; were it in use, B is read in place, row by row.)
        let mut buffer = buffer.try_borrow_mut().ok();
        let packed = match buffer.as_deref_mut() {
            Some(buffer) if (n >= PACK_MIN_COLUMNS && k <= PACK_MAX_ROWS) || k_blocked => Some(pack(pool, b, buffer)),
            _ => None,
        };
        let slab = |j0: usize, width: usize| match &packed {
            Some(packed) => (SharedMut(packed.get().wrapping_add(j0 * k)), width as isize),
            None => (SharedMut(b_ptr.get().wrapping_add(j0)), ldb),
        };
        let task = |t: usize| {
            // Balance by non-zeros, not rows: task t takes the rows whose
            // entries start in its share of `0..nnz`.
            let nnz = a.ptr[m];
            let first = |t: usize| a.ptr[..m].partition_point(|&e| e < nnz * t / n_tasks);
            let rows = if t + 1 == n_tasks {
                first(t)..m
            } else {
                first(t)..first(t + 1)
            };
            if let (true, Some(packed)) = (k_blocked, &packed) {
                let slab_ptr = SharedMut(packed.get());
                // SAFETY: as for the loops below, with B's packed copy.
                if unsafe { k_blocks(rows.clone(), a, alpha, slab_ptr, (k, n), (c_ptr, ldc), &epilogue) } {
                    return;
                }
            }
            if blocks_outside || packed.is_some() {
                for j0 in (0..n).step_by(TILE) {
                    let width = TILE.min(n - j0);
                    let (slab_ptr, stride) = slab(j0, width);
                    for i in rows.clone() {
                        let (idx, val) = a.row(i);
                        // SAFETY: row i < m of C holds n contiguous elements
                        // (checked above), of which j0..j0 + width lie
                        // inside; every index in `a.idx` is < k, and row p
                        // < k of the slab holds `width` contiguous elements
                        // (columns j0.. of B's row p, or their packed copy);
                        // and tasks own disjoint rows of C.
                        unsafe {
                            let c_part =
                                std::slice::from_raw_parts_mut(c_ptr.get().offset(i as isize * ldc).add(j0), width);
                            let b_part = |p: u32| {
                                debug_assert!((p as usize) < k, "sparse_gemm: index {p} outside B's {k} rows");
                                std::slice::from_raw_parts(
                                    slab_ptr.get().offset(p as isize * stride).cast_const(),
                                    width,
                                )
                            };
                            row_kernel(alpha, idx, val, b_part, beta, c_part, Pass::Whole);
                            epilogue(i, j0, c_part);
                        }
                    }
                }
                return;
            }
            for i in rows {
                let (idx, val) = a.row(i);
                // SAFETY: row i < m of C holds n contiguous elements (checked
                // above), every index in `a.idx` is < k, a row of B holding n
                // contiguous elements, and tasks own disjoint rows of C.
                unsafe {
                    let c_row = std::slice::from_raw_parts_mut(c_ptr.get().offset(i as isize * ldc), n);
                    let b_row = |p: u32| {
                        debug_assert!((p as usize) < k, "sparse_gemm: index {p} outside B's {k} rows");
                        std::slice::from_raw_parts(b_ptr.get().offset(p as isize * ldb).cast_const(), n)
                    };
                    row_kernel(alpha, idx, val, b_row, beta, c_row, Pass::Whole);
                    epilogue(i, 0, c_row);
                }
            }
        };
        match pool {
            Some(pool) if n_tasks > 1 => pool.run(n_tasks, &task),
            _ => task(0),
        }
    });
}

/// Rows `rows` of `C = alpha X B` (see `sparse_gemm_impl`) in blocks
/// of [`K_BLOCK`] rows of `B`, read from its copy made by [`pack`] at
/// `packed`: for each block, each tile, each row, the row's entries in the
/// block, its accumulators resumed from `C` after the first block and
/// scaled and finished (`epilogue`) after the last. Returns `false`, having
/// done nothing, when this thread's cursors are in use.
///
/// # Safety
/// `packed` holds `B` (`k x n`) as [`pack`] copies it; `c` points to `C`
/// (`m x n`, rows `ldc` apart, each row's `n` elements contiguous); every
/// index of `a` is below `k`; and no other thread reads or writes rows
/// `rows` of `C` during the call.
unsafe fn k_blocks(
    rows: std::ops::Range<usize>,
    a: Compressed<'_>,
    alpha: f32,
    packed: SharedMut<f32>,
    (k, n): (usize, usize),
    (c, ldc): (SharedMut<f32>, isize),
    epilogue: &impl Fn(usize, usize, &mut [f32]),
) -> bool {
    CURSORS.with(|cursors| {
        let Ok(mut cursors) = cursors.try_borrow_mut() else {
            return false;
        };
        // Room for every row of C, not just this task's: tasks balanced by
        // non-zeros take more rows in one batch than in another, and a
        // step must not allocate once the first has run.
        let (len, m) = (rows.len(), a.ptr.len() - 1);
        if cursors.len() < 2 * m {
            cursors.resize(2 * m, 0);
        }
        // Row rows.start + r has its entries in the block at starts[r]..ends[r].
        let (starts, ends) = cursors[..2 * len].split_at_mut(len);
        starts.copy_from_slice(&a.ptr[rows.clone()]);
        for k0 in (0..k).step_by(K_BLOCK) {
            let k1 = (k0 + K_BLOCK).min(k);
            let pass = Pass::of(k0 == 0, k1 == k);
            for ((end, &start), i) in ends.iter_mut().zip(&*starts).zip(rows.clone()) {
                *end = start + a.idx[start..a.ptr[i + 1]].partition_point(|&p| (p as usize) < k1);
            }
            for j0 in (0..n).step_by(TILE) {
                let width = TILE.min(n - j0);
                let slab = packed.get().wrapping_add(j0 * k);
                let b_part = |p: u32| {
                    debug_assert!((p as usize) < k, "sparse_gemm: index {p} outside B's {k} rows");
                    // SAFETY: the tile from column j0 of the packed copy
                    // holds k rows of `width` contiguous elements (`pack`),
                    // and p < k.
                    unsafe { std::slice::from_raw_parts(slab.add(p as usize * width).cast_const(), width) }
                };
                for ((&start, &end), i) in starts.iter().zip(&*ends).zip(rows.clone()) {
                    if start == end && pass == Pass::Middle {
                        continue;
                    }
                    // SAFETY: row i of C holds n contiguous elements, of
                    // which j0..j0 + width lie inside; this call alone has
                    // row i (the caller's promise).
                    let c_part =
                        unsafe { std::slice::from_raw_parts_mut(c.get().offset(i as isize * ldc).add(j0), width) };
                    let (idx, val) = a.entries(start..end);
                    row_kernel(alpha, idx, val, b_part, 0.0, c_part, pass);
                    if pass.finishes() {
                        epilogue(i, j0, c_part);
                    }
                }
            }
            starts.copy_from_slice(ends);
        }
        true
    })
}

/// From this many columns of `B` (rows 1 KB apart or more), and ...
const PACK_MIN_COLUMNS: usize = 4 * TILE;

/// ... up to this many rows (a slab of 64 KB), [`sparse_gemm`] copies `B`
/// into [`PACKED`] tile by tile first.
const PACK_MAX_ROWS: usize = 256;

/// Rows of `B` per block of a k-blocked product (see `sparse_gemm_impl`):
/// 448 rows of a [`TILE`] are 112 KB, a quarter of a 512 KB L2 cache, and
/// 784 pixels make two blocks. (Measured on Zen 3 at 192 to 1024 columns:
/// blocks of 28, 56 and 112 KB all beat whole tiles, 112 KB about best.)
const K_BLOCK: usize = 448;

/// From this size of `B` (larger than most current cores' L2), a product
/// of `X` by `B` runs k-blocked. (`W1` of the seed's 784x128 layer, 401 KB,
/// gains little, and would be copied for every batch.)
const K_BLOCKS_FROM_BYTES: usize = 512 << 10;

/// Which part of a row's sum a call of [`row_kernel`] makes: the sum starts
/// from 0 (`First`, `Whole`) or from what `C` holds (`Middle`, `Last`), and
/// ends scaled and written out (`Whole`, `Last`) or is left in `C` as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Whole,
    First,
    Middle,
    Last,
}

impl Pass {
    fn of(first: bool, last: bool) -> Self {
        match (first, last) {
            (true, true) => Pass::Whole,
            (true, false) => Pass::First,
            (false, false) => Pass::Middle,
            (false, true) => Pass::Last,
        }
    }

    fn resumes(self) -> bool {
        matches!(self, Pass::Middle | Pass::Last)
    }

    fn finishes(self) -> bool {
        matches!(self, Pass::Whole | Pass::Last)
    }
}

thread_local! {
    /// Each row's first and last entry in the current block of a k-blocked
    /// product, for the rows of the task this thread runs; grown to twice
    /// the most rows a product has had, then reused.
    static CURSORS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };

    /// `B` copied tile by tile for the products that read it so (see
    /// [`pack`]); grown to the largest such `B` a thread has multiplied
    /// by, then reused.
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies `b` into `buffer` (growing it if needed), tile after tile of
/// [`TILE`] columns, each tile's rows contiguous and `width` long: the tile
/// from column `j0` starts at element `j0 * k` of the returned pointer,
/// which starts a cache line. Tiles are copied by the pool's threads.
fn pack(pool: Option<&ThreadPool>, b: ArrayView2<'_, f32>, buffer: &mut Vec<f32>) -> SharedMut<f32> {
    let (k, n) = b.dim();
    const SLACK: usize = crate::CACHE_LINE / size_of::<f32>();
    if buffer.len() < k * n + SLACK {
        buffer.resize(k * n + SLACK, 0.0);
    }
    let skip = buffer.as_ptr().align_offset(crate::CACHE_LINE).min(SLACK);
    let dst = SharedMut(buffer[skip..].as_mut_ptr());
    // Rows of B as raw slices: an ndarray slice per row and tile cost more
    // than the copy itself (a call with its bounds checks each).
    assert!(n <= 1 || b.strides()[1] == 1, "pack: rows of B must be contiguous");
    let (src, ldb) = (SharedMut(b.as_ptr().cast_mut()), b.strides()[0]);
    let tile = |t: usize| {
        let j0 = t * TILE;
        let width = TILE.min(n - j0);
        for p in 0..k {
            // SAFETY: tile t's rows fill elements j0 * k..(j0 + width) * k
            // of the k * n after `dst`, disjoint from every other tile's;
            // row p < k of B holds n contiguous elements (asserted above),
            // of which j0..j0 + width lie inside.
            let (row, from) = unsafe {
                (
                    std::slice::from_raw_parts_mut(dst.get().add(j0 * k + p * width), width),
                    std::slice::from_raw_parts(src.get().offset(p as isize * ldb).add(j0).cast_const(), width),
                )
            };
            row.copy_from_slice(from);
        }
    };
    match pool {
        Some(pool) => pool.run(n.div_ceil(TILE), &tile),
        None => (0..n.div_ceil(TILE)).for_each(tile),
    }
    dst
}

/// Above this size of `B`, [`sparse_gemm`] takes columns in blocks outside
/// its loop over rows (larger than the L2 cache of most current cores).
const BLOCKS_OUTSIDE_BYTES: usize = 1 << 20;

/// Width of the register tile: 64 accumulators, eight AVX2 registers.
const TILE: usize = 64;

/// `c_row <- alpha * sum_e val[e] * B[idx[e], :] + beta * c_row`, dispatched
/// once per row to the widest instruction set this CPU has; with a `pass`
/// other than `Whole`, the part of that sum that `pass` names.
#[inline]
fn row_kernel<'b>(
    alpha: f32,
    idx: &[u32],
    val: &[f32],
    b_row: impl Fn(u32) -> &'b [f32] + Copy,
    beta: f32,
    c_row: &mut [f32],
    pass: Pass,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { row_kernel_avx2_fma(alpha, idx, val, b_row, beta, c_row, pass) };
            return;
        }
    }
    row_kernel_body(alpha, idx, val, b_row, beta, c_row, pass, |a, b, c| a * b + c);
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_kernel_avx2_fma<'b>(
    alpha: f32,
    idx: &[u32],
    val: &[f32],
    b_row: impl Fn(u32) -> &'b [f32] + Copy,
    beta: f32,
    c_row: &mut [f32],
    pass: Pass,
) {
    row_kernel_body(alpha, idx, val, b_row, beta, c_row, pass, f32::mul_add);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_kernel_body<'b>(
    alpha: f32,
    idx: &[u32],
    val: &[f32],
    b_row: impl Fn(u32) -> &'b [f32] + Copy,
    beta: f32,
    c_row: &mut [f32],
    pass: Pass,
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    let n = c_row.len();
    let mut j0 = 0;
    while j0 + TILE <= n {
        tile::<TILE>(alpha, idx, val, b_row, beta, &mut c_row[j0..j0 + TILE], j0, pass, madd);
        j0 += TILE;
    }
    while j0 + 16 <= n {
        tile::<16>(alpha, idx, val, b_row, beta, &mut c_row[j0..j0 + 16], j0, pass, madd);
        j0 += 16;
    }
    while j0 < n {
        tile::<1>(alpha, idx, val, b_row, beta, &mut c_row[j0..j0 + 1], j0, pass, madd);
        j0 += 1;
    }
}

/// One register tile of `W` columns `j0..j0 + W`: accumulate (from 0, or
/// from `c` when `pass` resumes), then write once (scaled when it finishes).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<'b, const W: usize>(
    alpha: f32,
    idx: &[u32],
    val: &[f32],
    b_row: impl Fn(u32) -> &'b [f32],
    beta: f32,
    c: &mut [f32],
    j0: usize,
    pass: Pass,
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    let c: &mut [f32; W] = c.try_into().expect("tile width");
    let mut acc = if pass.resumes() { *c } else { [0.0f32; W] };
    for (&p, &v) in idx.iter().zip(val) {
        let b: &[f32; W] = b_row(p)[j0..j0 + W].try_into().expect("tile width");
        for t in 0..W {
            acc[t] = madd(v, b[t], acc[t]);
        }
    }
    if !pass.finishes() {
        *c = acc;
    } else if beta == 0.0 {
        for t in 0..W {
            c[t] = alpha * acc[t];
        }
    } else {
        for t in 0..W {
            c[t] = madd(beta, c[t], alpha * acc[t]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive::{self, matrix};
    use ndarray::Array2;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_naive_gemm(m in 1usize..30, k in 1usize..40, n in 1usize..150, transposed: bool,
                              density in 0.0f64..1.0, beta in prop::sample::select(vec![0.0f32, 1.0, -0.5]),
                              seed: u64) {
            let x = if transposed { matrix(k, m, seed, density) } else { matrix(m, k, seed, density) };
            let mut sparse = SparseRows::with_capacity(x.nrows(), x.ncols());
            sparse.fill(x.view());
            let x_op = if transposed { x.t() } else { x.view() };
            let b = matrix(k, n, seed ^ 1, 1.0);
            let c0 = matrix(m, n, seed ^ 2, 1.0);
            let mut c = c0.clone();
            let op = if transposed { Op::Transposed } else { Op::Plain };
            sparse_gemm(0.75, &sparse, op, b.view(), beta, &mut c.view_mut());
            let want = naive::gemm(0.75, x_op, b.view(), beta, &c0);
            for (got, want) in c.iter().zip(&want) {
                prop_assert!((got - want).abs() <= 1e-5 * (k as f32 + 1.0) * (1.0 + want.abs()), "{} vs {}", got, want);
            }
            let nnz = x.iter().filter(|&&v| v != 0.0).count();
            prop_assert_eq!(sparse.nnz(), nnz);
            prop_assert!((sparse.density() - nnz as f32 / x.len() as f32).abs() < 1e-6);
        }
    }

    /// Past BLOCKS_OUTSIDE_BYTES of B the loops run column blocks outside
    /// rows: the same bits as the product taken in column slices that each
    /// fit under it (so run whole rows), on 1-3 threads, with the forward's
    /// bias and activation applied per part.
    /// A product k-blocked (B over 512 KB, three blocks of its rows: first,
    /// middle and last) gives the bits of the same product taken in column
    /// slices small enough to run row by row, on 1-3 threads, with alpha
    /// and a ragged last tile; rows empty, or with entries in one block
    /// only, among them.
    #[test]
    fn k_blocks_change_no_bit() {
        let (m, k, n) = (41, 2 * K_BLOCK + 104, 200);
        assert!(k * n * size_of::<f32>() > K_BLOCKS_FROM_BYTES);
        let mut x = matrix(m, k, 11, 0.15);
        let blocks = [0..K_BLOCK, K_BLOCK..2 * K_BLOCK, 2 * K_BLOCK..k];
        x.row_mut(0).fill(0.0);
        for (row, keep) in [(1, 0), (2, 1), (3, 2)] {
            for (b, cols) in blocks.iter().enumerate() {
                if b != keep {
                    x.slice_mut(ndarray::s![row, cols.clone()]).fill(0.0);
                }
            }
        }
        let mut sparse = SparseRows::with_capacity(m, k);
        sparse.fill(x.view());
        let b = matrix(k, n, 12, 1.0);
        let want = in_column_slices(0.75, &sparse, &b, &[0..100, 100..200], K_BLOCKS_FROM_BYTES);
        assert!(want.row(0).iter().all(|&w| w == 0.0) && want.row(3).iter().any(|&w| w != 0.0));
        let mut c = Array2::from_elem((m, n), f32::NAN);
        sparse_gemm(0.75, &sparse, Op::Plain, b.view(), 0.0, &mut c.view_mut());
        assert!(same_bits(&c, &want), "no pool");
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let mut c = Array2::from_elem((m, n), f32::NAN);
            sparse_gemm_with(&pool, 0.75, &sparse, Op::Plain, b.view(), 0.0, &mut c.view_mut());
            assert!(same_bits(&c, &want), "{threads} threads");
        }
    }

    /// `alpha X B` made from slices of B's columns, each under `limit`
    /// bytes (so the product of each takes the loops meant for such a B).
    fn in_column_slices(
        alpha: f32,
        x: &SparseRows,
        b: &Array2<f32>,
        slices: &[std::ops::Range<usize>],
        limit: usize,
    ) -> Array2<f32> {
        let (m, k) = x.dim();
        let mut out = Array2::zeros((m, b.ncols()));
        for cols in slices {
            let b_cols = b.slice(ndarray::s![.., cols.clone()]).to_owned();
            assert!(k * b_cols.ncols() * size_of::<f32>() <= limit);
            let mut part = Array2::zeros((m, cols.len()));
            sparse_gemm(alpha, x, Op::Plain, b_cols.view(), 0.0, &mut part.view_mut());
            out.slice_mut(ndarray::s![.., cols.clone()]).assign(&part);
        }
        out
    }

    fn same_bits(a: &Array2<f32>, b: &Array2<f32>) -> bool {
        a.dim() == b.dim() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    #[test]
    fn column_blocks_outside_change_no_bit() {
        let (m, k, n) = (37, 784, 400);
        assert!(k * n * size_of::<f32>() > BLOCKS_OUTSIDE_BYTES);
        let x = matrix(m, k, 7, 0.2);
        let mut sparse = SparseRows::with_capacity(m, k);
        sparse.fill(x.view());
        let b = matrix(k, n, 8, 1.0);
        let bias = matrix(1, n, 9, 1.0).into_shape_with_order(n).unwrap();
        let want = in_column_slices(1.0, &sparse, &b, &[0..150, 150..280, 280..400], BLOCKS_OUTSIDE_BYTES);
        let want_z = &want + &bias;
        let want_a = want_z.mapv(|z: f32| z.max(0.0));
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let mut c = Array2::from_elem((m, n), f32::NAN);
            sparse_gemm_with(&pool, 1.0, &sparse, Op::Plain, b.view(), 0.0, &mut c.view_mut());
            assert!(same_bits(&c, &want), "{threads} threads");
            let (mut z, mut a) = (Array2::from_elem((m, n), f32::NAN), Array2::from_elem((m, n), f32::NAN));
            sparse_affine_with(
                &pool,
                &sparse,
                b.view(),
                bias.view(),
                &mut z.view_mut(),
                Some(a.view_mut()),
                |z| z.max(0.0),
            );
            assert!(same_bits(&z, &want_z), "{threads} threads: Z");
            assert!(same_bits(&a, &want_a), "{threads} threads: A");
        }
    }

    /// A wide B of few rows is copied into tiles first: the same bits as
    /// the product taken in column slices too narrow for the copy, for
    /// X W and X^T B, on 1-3 threads, twice in a row (the buffer reused).
    #[test]
    fn packed_tiles_change_no_bit() {
        let (rows, cols, n) = (90, 120, 300);
        assert!(n >= PACK_MIN_COLUMNS && rows.max(cols) <= PACK_MAX_ROWS);
        let x = matrix(rows, cols, 11, 0.3);
        let mut sparse = SparseRows::with_capacity(rows, cols);
        sparse.fill(x.view());
        for (op, m, k) in [(Op::Plain, rows, cols), (Op::Transposed, cols, rows)] {
            let b = matrix(k, n, 12, 1.0);
            let mut want = Array2::zeros((m, n));
            for part in [0..100, 100..200, 200..300] {
                assert!(part.len() < PACK_MIN_COLUMNS);
                let mut c = Array2::zeros((m, part.len()));
                let b_part = b.slice(ndarray::s![.., part.clone()]).to_owned();
                sparse_gemm(1.0, &sparse, op, b_part.view(), 0.0, &mut c.view_mut());
                want.slice_mut(ndarray::s![.., part]).assign(&c);
            }
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                for _ in 0..2 {
                    let mut c = Array2::from_elem((m, n), f32::NAN);
                    sparse_gemm_with(&pool, 1.0, &sparse, op, b.view(), 0.0, &mut c.view_mut());
                    assert!(
                        c.iter().zip(&want).all(|(c, w)| c.to_bits() == w.to_bits()),
                        "{op:?}, {threads} threads"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn threads_give_bit_identical_results(m in 1usize..50, k in 1usize..60, n in 1usize..100, seed: u64) {
            let x = matrix(m, k, seed, 0.3);
            let mut sparse = SparseRows::with_capacity(m, k);
            sparse.fill(x.view());
            for (op, rows, inner) in [(Op::Plain, m, k), (Op::Transposed, k, m)] {
                let b = matrix(inner, n, seed ^ 1, 1.0);
                let mut serial = Array2::zeros((rows, n));
                sparse_gemm(1.0, &sparse, op, b.view(), 0.0, &mut serial.view_mut());
                for threads in [2, 3] {
                    let mut parallel = Array2::from_elem((rows, n), f32::NAN);
                    let pool = ThreadPool::new(threads);
                    sparse_gemm_with(&pool, 1.0, &sparse, op, b.view(), 0.0, &mut parallel.view_mut());
                    prop_assert_eq!(&serial, &parallel);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn the_affine_epilogue_gives_the_bits_of_the_separate_passes(m in 1usize..40, k in 1usize..60,
                                                                     n in 1usize..150, seed: u64) {
            let x = matrix(m, k, seed, 0.3);
            let mut sparse = SparseRows::with_capacity(m, k);
            sparse.fill(x.view());
            let w = matrix(k, n, seed ^ 1, 1.0);
            let bias = ndarray::Array1::from_iter(matrix(1, n, seed ^ 2, 1.0));
            let mut z_want = Array2::zeros((m, n));
            sparse_gemm(1.0, &sparse, Op::Plain, w.view(), 0.0, &mut z_want.view_mut());
            crate::add_row_broadcast(z_want.view_mut(), bias.view());
            let a_want = z_want.mapv(|z| z.max(0.0));
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                let mut z = Array2::from_elem((m, n), f32::NAN);
                let mut a = Array2::from_elem((m, n), f32::NAN);
                sparse_affine_with(&pool, &sparse, w.view(), bias.view(), &mut z.view_mut(), Some(a.view_mut()), |z| z.max(0.0));
                prop_assert_eq!(&z, &z_want);
                prop_assert_eq!(&a, &a_want);
                let mut z_only = Array2::from_elem((m, n), f32::NAN);
                sparse_affine_with(&pool, &sparse, w.view(), bias.view(), &mut z_only.view_mut(), None, |_| unreachable!());
                prop_assert_eq!(&z_only, &z_want);
            }
        }
    }

    proptest! {
        #[test]
        fn a_matrix_of_rows_only_keeps_the_csr_bytes_and_the_products_bits(
            rows in 1usize..40, cols in 1usize..70, n in 1usize..140, seed: u64, threads in 1usize..4,
        ) {
            let mut rng = crate::Rng::seed_from_u64(seed);
            let bytes: Vec<u8> = (0..rows * cols).map(|_| if rng.below(3) == 0 { rng.below(256) as u8 } else { 0 }).collect();
            let pool = ThreadPool::new(threads);
            let mut full = SparseRows::with_capacity(rows, cols);
            full.fill_u8_with(&pool, rows, cols, 0.5, |i| &bytes[i * cols..(i + 1) * cols]);
            let mut lean = SparseRows::rows_only(rows, cols);
            prop_assert!(!lean.has_columns() && full.has_columns());
            // Twice, the second time over a taller matrix's leftovers.
            for _ in 0..2 {
                lean.fill_u8_with(&pool, rows, cols, 0.5, |i| &bytes[i * cols..(i + 1) * cols]);
                let n_nz = full.nnz();
                prop_assert_eq!(lean.dim(), full.dim());
                prop_assert_eq!(lean.nnz(), n_nz);
                prop_assert_eq!(&lean.row_ptr, &full.row_ptr);
                prop_assert_eq!(&lean.row_idx[..n_nz], &full.row_idx[..n_nz]);
                let bits = |v: &[f32]| v[..n_nz].iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&lean.row_val), bits(&full.row_val));
                prop_assert!(lean.col_idx.is_empty() && lean.col_val.is_empty(), "no CSC memory");
                let b = matrix(cols, n, seed ^ 1, 1.0);
                let (mut want, mut got) = (Array2::zeros((rows, n)), Array2::from_elem((rows, n), f32::NAN));
                sparse_gemm_with(&pool, 1.0, &full, Op::Plain, b.view(), 0.0, &mut want.view_mut());
                sparse_gemm_with(&pool, 1.0, &lean, Op::Plain, b.view(), 0.0, &mut got.view_mut());
                prop_assert_eq!(got, want);
                lean.fill(Array2::<f32>::ones((rows + 1, cols)).view());
                prop_assert_eq!(lean.nnz(), (rows + 1) * cols);
            }
        }
    }

    #[test]
    #[should_panic(expected = "SparseRows::rows_only, which keeps no columns")]
    fn a_matrix_of_rows_only_refuses_its_transpose() {
        let mut x = SparseRows::rows_only(2, 3);
        x.fill(ndarray::array![[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]].view());
        let b = Array2::ones((2, 4));
        sparse_gemm(
            1.0,
            &x,
            Op::Transposed,
            b.view(),
            0.0,
            &mut Array2::zeros((3, 4)).view_mut(),
        );
    }

    proptest! {
        #[test]
        fn bytes_compress_like_their_dense_floats(rows in 1usize..6, cols in 1usize..70, seed: u64) {
            let mut rng = crate::Rng::seed_from_u64(seed);
            let bytes: Vec<u8> = (0..rows * cols).map(|_| if rng.below(3) == 0 { rng.below(256) as u8 } else { 0 }).collect();
            let scale = 1.0 / 255.0;
            let dense = Array2::from_shape_fn((rows, cols), |(i, j)| f32::from(bytes[i * cols + j]) * scale);
            let mut from_dense = SparseRows::with_capacity(rows, cols);
            from_dense.fill(dense.view());
            let mut from_bytes = SparseRows::with_capacity(1, 1);
            from_bytes.fill_u8(bytes.chunks(cols), cols, scale);
            prop_assert_eq!(from_dense.dim(), from_bytes.dim());
            prop_assert_eq!(from_dense.nnz(), from_bytes.nnz());
            for op in [Op::Plain, Op::Transposed] {
                let (a, b) = (from_dense.view(op), from_bytes.view(op));
                let n = from_dense.nnz();
                prop_assert_eq!(a.ptr, b.ptr);
                prop_assert_eq!(&a.idx[..n], &b.idx[..n]);
                prop_assert_eq!(&a.val[..n], &b.val[..n]);
            }
        }
    }

    #[test]
    fn a_fill_that_panics_leaves_an_empty_matrix() {
        let mut sparse = SparseRows::with_capacity(4, 3);
        assert_eq!(sparse.dim(), (0, 3));
        sparse.fill(matrix(4, 3, 1, 1.0).view());
        let short_row = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rows: [&[u8]; 2] = [&[1, 2, 3], &[4]];
            sparse.fill_u8(rows.into_iter(), 3, 1.0);
        }));
        assert!(short_row.is_err());
        assert_eq!((sparse.dim(), sparse.nnz()), ((0, 3), 0));
        // The transposed product reads no stale column lists.
        let mut c = Array2::from_elem((3, 2), f32::NAN);
        sparse_gemm(
            1.0,
            &sparse,
            Op::Transposed,
            Array2::zeros((0, 2)).view(),
            0.0,
            &mut c.view_mut(),
        );
        assert!(c.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn refill_with_fewer_rows_forgets_the_old_contents() {
        let mut sparse = SparseRows::with_capacity(4, 3);
        sparse.fill(matrix(4, 3, 1, 0.9).view());
        let small = matrix(2, 3, 2, 0.5);
        sparse.fill(small.view());
        let b = Array2::eye(3);
        let mut c = Array2::from_elem((2, 3), f32::NAN);
        sparse_gemm(1.0, &sparse, Op::Plain, b.view(), 0.0, &mut c.view_mut());
        assert_eq!(c, small);
        let mut ct = Array2::from_elem((3, 2), f32::NAN);
        sparse_gemm(
            1.0,
            &sparse,
            Op::Transposed,
            Array2::eye(2).view(),
            0.0,
            &mut ct.view_mut(),
        );
        assert_eq!(ct, small.t());
    }

    #[test]
    fn all_zero_input_gives_zero_output() {
        let mut sparse = SparseRows::with_capacity(3, 5);
        sparse.fill(Array2::zeros((3, 5)).view());
        assert_eq!(sparse.density(), 0.0);
        let mut c = Array2::from_elem((5, 4), f32::NAN);
        sparse_gemm(
            1.0,
            &sparse,
            Op::Transposed,
            matrix(3, 4, 9, 1.0).view(),
            0.0,
            &mut c.view_mut(),
        );
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
