//! Dense matrix products into caller-owned buffers:
//! `C <- alpha * A * B + beta * C`.
//!
//! `A` and `B` are any 2-D views, so `op(A) = A^T` is just `a.t()`: a stride
//! view, never a copy. When the rows of `B` and `C` are contiguous (every
//! product of a training step, given a transposed copy of the weights for
//! BP2: [`gemm_transposed_b_with`]), a register-blocked kernel computes `C`
//! in tiles of 4 rows by 16 columns, with no heap allocation and optionally
//! on several threads; wide products go to a packed kernel where the CPU has
//! AVX-512, or AVX2 with FMA (which also takes `B` with contiguous columns, so
//! BP2 needs no copy there); narrow ones (at least 16 rows and at most 12 columns with
//! AVX2, 16 with AVX-512: an output layer) to a kernel that vectorises along
//! the rows of `C` instead of its columns; other layouts, and products far
//! larger than a training step's, go to `matrixmultiply`. Products with a mostly-zero left operand
//! are in [`crate::sparse_gemm`].

use crate::ThreadPool;
use crate::pool::SharedMut;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Dense GEMM on the calling thread: `C <- alpha * A * B + beta * C`.
///
/// With `beta == 0` the old contents of `C` are never read, so `C` may hold
/// garbage (even NaN) on entry.
///
/// # Shapes
/// `a: (m, k)`, `b: (k, n)`, `c: (m, n)`; any strides, including transposed
/// ones.
///
/// ```
/// use backprop_tensor::gemm;
/// use ndarray::{Array2, array};
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[5.0f32, 6.0], [7.0, 8.0]];
/// let mut c = Array2::zeros((2, 2));
/// gemm(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
/// assert_eq!(c, array![[19.0, 22.0], [43.0, 50.0]]);
/// // A transposed operand is a stride view, not a copy: C <- A^T B.
/// gemm(1.0, a.t(), b.view(), 0.0, &mut c.view_mut());
/// assert_eq!(c, array![[26.0, 30.0], [38.0, 44.0]]);
/// ```
///
/// # Panics
/// If the shapes do not chain, with all three shapes in the message.
#[track_caller]
pub fn gemm(alpha: f32, a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, beta: f32, c: &mut ArrayViewMut2<'_, f32>) {
    gemm_impl(None, alpha, a, b, beta, c);
}

/// [`gemm`] with rows of `C` shared out between the threads of `pool`. The
/// result is bit-identical to [`gemm`]'s whatever the number of threads.
///
/// # Panics
/// As [`gemm`].
#[track_caller]
pub fn gemm_with(
    pool: &ThreadPool,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    gemm_impl(Some(pool), alpha, a, b, beta, c);
}

/// `C <- alpha * A * B^T + beta * C` on the threads of `pool`, with `B` as
/// stored (`b: (n, k)`, rows contiguous): BP2's `delta W^T`. Products the
/// packed kernel takes read `B` where it is; smaller ones first copy `B^T`
/// into `scratch` (`(k, n)`) for the register-blocked kernel, which wants
/// contiguous rows. Either way the result is bit-identical to
/// `gemm_with(pool, alpha, a, b.t(), beta, c)`, and nothing is allocated.
///
/// # Panics
/// If the shapes do not chain, or `scratch` is not `(k, n)`.
#[track_caller]
pub fn gemm_transposed_b_with(
    pool: &ThreadPool,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    scratch: &mut ArrayViewMut2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let bt = b.t();
    assert_eq!(
        scratch.dim(),
        bt.dim(),
        "gemm_transposed_b_with: scratch is {:?}, B^T is {:?}",
        scratch.dim(),
        bt.dim()
    );
    #[cfg(target_arch = "x86_64")]
    if packs(a.nrows(), a.ncols(), bt.ncols()).is_some() && (c.ncols() == 1 || c.strides()[1] == 1) {
        gemm_impl(Some(pool), alpha, a, bt, beta, c);
        return;
    }
    scratch.assign(&bt);
    gemm_impl(Some(pool), alpha, a, scratch.view(), beta, c);
}

/// The implementation of the packed kernel that a product of `m x k x n`
/// goes to, if any (given rows of `C`, and rows or columns of `B`, that are
/// contiguous).
#[cfg(target_arch = "x86_64")]
fn packs(m: usize, k: usize, n: usize) -> Option<Isa> {
    packed::best().filter(|_| m * n * k >= PACKED_MIN && n >= PACKED_MIN_COLS)
}

#[track_caller]
fn gemm_impl(
    pool: Option<&ThreadPool>,
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
    let rows_contiguous = |strides: &[isize]| n == 1 || strides[1] == 1;
    // The packed kernel copies B into panels anyway, so it takes B with
    // contiguous columns as well (BP2's `W^T`, a view of `W`).
    #[cfg(target_arch = "x86_64")]
    if rows_contiguous(c.strides())
        && (rows_contiguous(b.strides()) || b.strides()[0] == 1)
        && let Some(isa) = packs(m, k, n)
    {
        // SAFETY: the CPU has `isa`, the shapes chain and are not empty
        // (checked above), the rows of C are contiguous, and so are the
        // rows or the columns of B.
        unsafe { packed::gemm(isa, pool, alpha, a, b, beta, c) };
        return;
    }
    // Products of few columns (an output layer) go to the narrow kernel,
    // which tiles along rows instead of columns.
    #[cfg(target_arch = "x86_64")]
    if rows_contiguous(b.strides())
        && rows_contiguous(c.strides())
        && let Some(isa) = narrow::takes(m, n)
    {
        // SAFETY: the CPU has `isa`, the shapes chain and are not empty
        // (checked above), `n` is at most what `isa` takes, and the rows
        // of B and C are contiguous.
        unsafe { narrow::gemm(isa, pool, alpha, a, b, beta, c) };
        return;
    }
    if rows_contiguous(b.strides()) && rows_contiguous(c.strides()) {
        // The blocked kernel keeps a 16-column strip of B hot but does not
        // tile for the caches beyond that: past about 2^25 multiply-adds,
        // matrixmultiply's packing wins (on a CPU with neither AVX-512 nor
        // AVX2 and FMA, or for fewer than 32 columns: otherwise the packed
        // kernel above takes these). All of them compute the same sums in the
        // same order (see `blocked`).
        if m * n * k < 1 << 25 {
            blocked(pool, alpha, a, b, beta, c);
            return;
        }
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

/// An instruction set the packed and narrow kernels are built for.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX-512F: 512-bit registers.
    #[cfg(has_avx512)]
    Avx512,
    /// AVX2 with FMA: 256-bit registers.
    Avx2,
}

#[cfg(target_arch = "x86_64")]
impl Isa {
    /// The instruction sets this CPU has, the widest first.
    fn available() -> impl Iterator<Item = Isa> {
        let avx2 = crate::sparse::has_avx2_fma().then_some(Isa::Avx2);
        #[cfg(has_avx512)]
        let avx512 = std::arch::is_x86_feature_detected!("avx512f").then_some(Isa::Avx512);
        #[cfg(not(has_avx512))]
        let avx512 = None;
        avx512.into_iter().chain(avx2)
    }
}

/// The packed, cache-blocked AVX-512 and AVX2 kernels, for products of at
/// least [`PACKED_MIN`] multiply-adds.
#[cfg(target_arch = "x86_64")]
mod packed;

/// The AVX-512 and AVX2 kernel for products with few columns, tiled along
/// rows.
#[cfg(target_arch = "x86_64")]
mod narrow;

/// Smallest product, in multiply-adds, for the packed kernel: below it the
/// packing does not pay for itself.
#[cfg(target_arch = "x86_64")]
const PACKED_MIN: usize = 1 << 18;

/// Fewest columns for the packed kernel, whose tiles are 32 (AVX-512) or 16
/// (AVX2) columns wide: narrower products (an output layer of 10 units) waste
/// most of each tile and run faster on the blocked kernel's 16-column tiles
/// or the narrow kernel.
#[cfg(target_arch = "x86_64")]
const PACKED_MIN_COLS: usize = 32;

/// Rows of a register tile.
const MR: usize = 4;
/// Columns of a register tile: two AVX2 registers per row.
const NR: usize = 16;
/// Rows of `B` per pass; a partial-width strip of `KC x NR` is packed on the
/// stack (16 KiB).
const KC: usize = 256;

/// The register-blocked kernel for `B` and `C` with contiguous rows.
///
/// Every element of `C` is a sum over `p` in increasing order, in chunks of
/// [`KC`], each chunk summed in registers and then added to `C`; which thread
/// computes it does not change the arithmetic.
fn blocked(
    pool: Option<&ThreadPool>,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    blocked_on(pool, alpha, a, b, beta, c, blocked_rows);
}

/// [`blocked`] with the row kernel given, so tests can run the portable one
/// on machines that have AVX2.
fn blocked_on(
    pool: Option<&ThreadPool>,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
    rows: unsafe fn(&Operands, usize, usize),
) {
    let m = a.nrows();
    let operands = Operands::new(alpha, a, b, beta, c);
    let n_tasks = pool.map_or(1, |p| 4 * p.active_threads()).min(m.div_ceil(MR));
    let task = |t: usize| {
        // Whole tiles of rows per task, split as evenly as possible.
        let tiles = m.div_ceil(MR);
        let (lo, hi) = (tiles * t / n_tasks * MR, (tiles * (t + 1) / n_tasks * MR).min(m));
        // SAFETY: `operands` describes the live views checked by the caller;
        // tasks write disjoint row ranges of C.
        unsafe { rows(&operands, lo, hi) };
    };
    match pool {
        Some(pool) if n_tasks > 1 => pool.run(n_tasks, &task),
        _ => task(0),
    }
}

/// Raw views of the operands of [`blocked`] and of the packed kernel,
/// shareable between tasks.
struct Operands {
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    ldb: isize,
    /// The column stride of B: 1 except for a B with contiguous columns,
    /// which only the packed kernel takes.
    csb: isize,
    c: SharedMut<f32>,
    ldc: isize,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
}

impl Operands {
    /// `C <- alpha A B + beta C` as raw views (shapes already checked).
    fn new(
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: &mut ArrayViewMut2<'_, f32>,
    ) -> Self {
        let (m, k) = a.dim();
        Self {
            a: a.as_ptr(),
            rsa: a.strides()[0],
            csa: a.strides()[1],
            b: b.as_ptr(),
            ldb: b.strides()[0],
            csb: if b.ncols() == 1 { 1 } else { b.strides()[1] },
            c: SharedMut(c.as_mut_ptr()),
            ldc: c.strides()[0],
            m,
            k,
            n: b.ncols(),
            alpha,
            beta,
        }
    }
}

// SAFETY: `a` and `b` are only read, and tasks write disjoint parts of `c`
// (rows in `blocked`, blocks in the packed kernel).
unsafe impl Sync for Operands {}

/// Rows `lo..hi` of `C`, dispatched to AVX2+FMA when the CPU has it.
///
/// # Safety
/// `o` must describe live, correctly shaped views, `lo <= hi <= o.m`, and no
/// other thread may touch rows `lo..hi` of `C` meanwhile.
unsafe fn blocked_rows(o: &Operands, lo: usize, hi: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::sparse::has_avx2_fma() {
            // SAFETY: the CPU has the features; the rest is the caller's.
            unsafe { blocked_rows_avx2_fma(o, lo, hi) };
            return;
        }
    }
    // SAFETY: the caller's guarantees.
    unsafe { blocked_rows_body(o, lo, hi, tile_portable, |a, b, c| a * b + c) };
}

/// Rows `lo..hi` with the portable tile, whatever the CPU.
///
/// # Safety
/// As [`blocked_rows`].
#[cfg(test)]
unsafe fn blocked_rows_portable(o: &Operands, lo: usize, hi: usize) {
    // SAFETY: the caller's guarantees.
    unsafe { blocked_rows_body(o, lo, hi, tile_portable, |a, b, c| a * b + c) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_rows_avx2_fma(o: &Operands, lo: usize, hi: usize) {
    // SAFETY: the caller's guarantees; the tile kernel reads `depth` rows of
    // NR floats from `b` (or the packed strip) and MR rows of `a`.
    unsafe { blocked_rows_body(o, lo, hi, tile_avx2_fma, f32::mul_add) };
}

/// The operands of one `MR x NR` tile: `A` rows `i0..i0 + MR` from column
/// `p0` (`a[r]` points at `A[i0 + r, p0]`, `csa` steps along a row) and `B`
/// rows from `p0` (`b` points at `B[p0, j0]`, `ldb` steps between rows), over
/// `depth` values of `p`.
struct Tile {
    a: [*const f32; MR],
    csa: isize,
    b: *const f32,
    ldb: isize,
    depth: usize,
}

/// `acc = sum_p a[r, p] * b[p, :]` for one tile, in eight AVX2 registers.
///
/// # Safety
/// The pointers of `t` must be readable at every offset the loops use: `A`
/// at `a[r] + p * csa` and `B` at `b + p * ldb + 0..NR` for `p < depth`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2_fma(t: &Tile, acc: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let mut lo: [__m256; MR] = [_mm256_setzero_ps(); MR];
    let mut hi: [__m256; MR] = [_mm256_setzero_ps(); MR];
    // Each pointer is computed from `p`, not stepped on after a read: a
    // stepped pointer would end one stride past the last row it read, which
    // may be outside the allocation, and forming it is undefined behaviour.
    for p in 0..t.depth {
        let p = p as isize;
        // SAFETY: the caller guarantees these reads, at these offsets for
        // `p < depth`.
        unsafe {
            let b = t.b.offset(p * t.ldb);
            let (b_lo, b_hi) = (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8)));
            for r in 0..MR {
                let a_rp = _mm256_set1_ps(*t.a[r].offset(p * t.csa));
                lo[r] = _mm256_fmadd_ps(a_rp, b_lo, lo[r]);
                hi[r] = _mm256_fmadd_ps(a_rp, b_hi, hi[r]);
            }
        }
    }
    for r in 0..MR {
        // SAFETY: each row of `acc` holds NR = 16 floats.
        unsafe {
            _mm256_storeu_ps(acc[r].as_mut_ptr(), lo[r]);
            _mm256_storeu_ps(acc[r].as_mut_ptr().add(8), hi[r]);
        }
    }
}

/// The portable tile: the same sums as [`tile_avx2_fma`], without FMA.
///
/// # Safety
/// As [`tile_avx2_fma`].
unsafe fn tile_portable(t: &Tile, acc: &mut [[f32; NR]; MR]) {
    *acc = [[0.0; NR]; MR];
    for p in 0..t.depth {
        // SAFETY: the caller guarantees these reads.
        let b: &[f32; NR] = unsafe { &*(t.b.offset(p as isize * t.ldb) as *const [f32; NR]) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let a_rp = unsafe { *t.a[r].offset(p as isize * t.csa) };
            for (acc, &b) in acc.iter_mut().zip(b) {
                *acc += a_rp * b;
            }
        }
    }
}

type TileKernel = unsafe fn(&Tile, &mut [[f32; NR]; MR]);

#[inline(always)]
unsafe fn blocked_rows_body(
    o: &Operands,
    lo: usize,
    hi: usize,
    tile: TileKernel,
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    let mut strip = [[0.0f32; NR]; KC];
    for j0 in (0..o.n).step_by(NR) {
        let width = NR.min(o.n - j0);
        for p0 in (0..o.k).step_by(KC) {
            let depth = KC.min(o.k - p0);
            // SAFETY (whole block): indices stay within (m, k), (k, n) and
            // (m, n) by the loop bounds; the caller guarantees the views.
            let b_start = unsafe { o.b.offset(p0 as isize * o.ldb + j0 as isize) };
            let (b, ldb) = if width == NR {
                (b_start, o.ldb)
            } else {
                for (p, row) in strip[..depth].iter_mut().enumerate() {
                    let src = unsafe { std::slice::from_raw_parts(b_start.offset(p as isize * o.ldb), width) };
                    row[..width].copy_from_slice(src);
                    row[width..].fill(0.0);
                }
                (strip.as_ptr().cast::<f32>(), NR as isize)
            };
            for i0 in (lo..hi).step_by(MR) {
                let height = MR.min(hi - i0);
                // Rows past the edge repeat the last real row; their sums
                // are computed and dropped.
                let a = std::array::from_fn(|r| unsafe {
                    o.a.offset((i0 + r.min(height - 1)) as isize * o.rsa + p0 as isize * o.csa)
                });
                let mut acc = [[0.0f32; NR]; MR];
                unsafe {
                    tile(
                        &Tile {
                            a,
                            csa: o.csa,
                            b,
                            ldb,
                            depth,
                        },
                        &mut acc,
                    )
                };
                for (r, acc) in acc.iter().enumerate().take(height) {
                    let c = unsafe {
                        std::slice::from_raw_parts_mut(o.c.0.offset((i0 + r) as isize * o.ldc + j0 as isize), width)
                    };
                    for (c, &acc) in c.iter_mut().zip(acc) {
                        *c = if p0 > 0 {
                            madd(o.alpha, acc, *c)
                        } else if o.beta == 0.0 {
                            o.alpha * acc
                        } else {
                            madd(o.alpha, acc, o.beta * *c)
                        };
                    }
                }
            }
        }
    }
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

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive::{self, matrix};
    use ndarray::Array2;
    use proptest::prelude::*;

    fn close(a: &Array2<f32>, b: &Array2<f32>, k: usize) {
        let tol = 1e-5 * (k as f32 + 1.0);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    proptest! {
        #[test]
        fn dense_matches_naive(m in 1usize..40, k in 1usize..300, n in 1usize..40,
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

    }

    proptest! {
        #[test]
        fn threads_give_bit_identical_results(m in 1usize..70, k in 1usize..300, n in 1usize..40, ta: bool, seed: u64) {
            let a = if ta { matrix(k, m, seed, 1.0) } else { matrix(m, k, seed, 1.0) };
            let av = if ta { a.t() } else { a.view() };
            let b = matrix(k, n, seed ^ 1, 1.0);
            let mut serial = Array2::zeros((m, n));
            gemm(1.0, av, b.view(), 0.0, &mut serial.view_mut());
            for threads in [2, 3] {
                let mut parallel = Array2::from_elem((m, n), f32::NAN);
                gemm_with(&ThreadPool::new(threads), 1.0, av, b.view(), 0.0, &mut parallel.view_mut());
                prop_assert_eq!(&serial, &parallel);
            }
        }
    }

    #[test]
    fn portable_kernel_matches_naive() {
        for (m, k, n) in [(1, 1, 1), (5, 300, 17), (64, 128, 10), (9, 20, 33)] {
            let a = matrix(k, m, 3, 1.0);
            let b = matrix(k, n, 4, 1.0);
            let c0 = matrix(m, n, 5, 1.0);
            let mut c = c0.clone();
            blocked_on(
                None,
                0.5,
                a.t(),
                b.view(),
                -1.0,
                &mut c.view_mut(),
                blocked_rows_portable,
            );
            close(&c, &naive::gemm(0.5, a.t(), b.view(), -1.0, &c0), k);
        }
    }

    /// The arithmetic every kernel reproduces to the bit: per element of C,
    /// chunks of KC steps aligned on multiples of KC, each one sequential
    /// chain of fused multiply-adds over increasing p from zero, merged into
    /// C in order (the first with beta, the later ones with fma(alpha, acc, c)).
    fn sequential_fma(
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c0: &Array2<f32>,
    ) -> Array2<f32> {
        let (m, k) = a.dim();
        let mut c = c0.clone();
        for i in 0..m {
            for j in 0..b.ncols() {
                for p0 in (0..k).step_by(KC) {
                    let mut acc = 0.0f32;
                    for p in p0..(p0 + KC).min(k) {
                        acc = a[[i, p]].mul_add(b[[p, j]], acc);
                    }
                    c[[i, j]] = if p0 > 0 {
                        alpha.mul_add(acc, c[[i, j]])
                    } else if beta == 0.0 {
                        alpha * acc
                    } else {
                        alpha.mul_add(acc, beta * c[[i, j]])
                    };
                }
            }
        }
        c
    }

    fn assert_bits(got: ndarray::ArrayView2<'_, f32>, want: &Array2<f32>, what: &str) {
        for ((ij, x), y) in got.indexed_iter().zip(want) {
            assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {ij:?}: {x} vs {y}");
        }
    }

    /// Every dense kernel (the dispatch, the AVX2 blocked kernel, each packed
    /// kernel the CPU has, on 1 to 3 threads) gives the sequential-FMA sums
    /// bit for bit, on shapes that are not multiples of any tile (rows that
    /// are not multiples of 6 or 8, columns not multiples of 16 or 32),
    /// depths within one chunk and across several, more rows than one packed
    /// block, B as stored and as a `W^T` view (read in place), A as stored
    /// and as a transposed view, alpha and beta variants, and C a view into a
    /// wider matrix; with beta == 0, C's NaN garbage does not leak into the
    /// result, and the columns either side of C are never touched.
    #[test]
    fn kernels_match_the_sequential_fma_reference_bit_for_bit() {
        if !crate::sparse::has_avx2_fma() {
            return;
        }
        let pools = [ThreadPool::new(2), ThreadPool::new(3)];
        let shapes = [
            (1, 1, 1),
            (7, 300, 33),
            (9, 257, 47),
            (13, 513, 70),
            (130, 600, 97),
            (129, 256, 1),
            (3, 1000, 300),
            (200, 100, 150),
            (17, 40, 1025),
            (300, 520, 131),
            (128, 256, 64),
        ];
        #[cfg(target_arch = "x86_64")]
        let mut packed_checked = 0;
        for (m, k, n) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                for (alpha, beta) in [(0.7f32, 0.0f32), (1.0, 0.0), (0.7, 1.0), (-1.3, -0.5)] {
                    let seed = (m * 31 + k * 7 + n) as u64;
                    let a = if ta {
                        matrix(k, m, seed, 1.0)
                    } else {
                        matrix(m, k, seed, 1.0)
                    };
                    let av = if ta { a.t() } else { a.view() };
                    // B with contiguous columns (BP2's W^T) only through the
                    // paths that take it: the packed kernel, and
                    // `gemm_transposed_b_with` (packed, or a copy for the
                    // blocked kernel). `gemm` sends the smaller of these
                    // products to matrixmultiply, whose sums may round
                    // differently there; training never does.
                    let b_stored = if tb {
                        matrix(n, k, seed ^ 1, 1.0)
                    } else {
                        matrix(k, n, seed ^ 1, 1.0)
                    };
                    let b = if tb { b_stored.t() } else { b_stored.view() };
                    let c0 = matrix(m, n, seed ^ 2, 1.0);
                    let want = sequential_fma(alpha, av, b, beta, &c0);
                    let what = format!("m {m} k {k} n {n} ta {ta} tb {tb} alpha {alpha} beta {beta}");
                    // C as columns 3..3 + n of a wider matrix of NaN, given
                    // its old contents only when they are read (beta != 0).
                    let mut wide = Array2::from_elem((m, n + 5), f32::NAN);
                    let mut run = |f: &dyn Fn(&mut ArrayViewMut2<'_, f32>), kernel: &str| {
                        wide.fill(f32::NAN);
                        let mut c = wide.slice_mut(ndarray::s![.., 3..3 + n]);
                        if beta != 0.0 {
                            c.assign(&c0);
                        }
                        f(&mut c);
                        assert_bits(c.view(), &want, &format!("{kernel}, {what}"));
                        assert!(
                            wide.column(2).iter().chain(wide.column(n + 3)).all(|x| x.is_nan()),
                            "{kernel}, {what}: wrote outside C"
                        );
                    };
                    if !tb {
                        run(&|c| gemm(alpha, av, b, beta, c), "gemm");
                    }
                    for pool in &pools {
                        if tb {
                            let scratch = std::cell::RefCell::new(Array2::from_elem((k, n), f32::NAN));
                            run(
                                &|c| {
                                    let mut scratch = scratch.borrow_mut();
                                    gemm_transposed_b_with(
                                        pool,
                                        alpha,
                                        av,
                                        b_stored.view(),
                                        &mut scratch.view_mut(),
                                        beta,
                                        c,
                                    )
                                },
                                "gemm_transposed_b_with",
                            );
                        } else {
                            run(&|c| gemm_with(pool, alpha, av, b, beta, c), "gemm_with");
                            run(
                                &|c| blocked_on(Some(pool), alpha, av, b, beta, c, blocked_rows),
                                "blocked",
                            );
                        }
                    }
                    #[cfg(target_arch = "x86_64")]
                    for isa in Isa::available() {
                        for pool in [None, Some(&pools[0]), Some(&pools[1])] {
                            // SAFETY: the CPU has `isa`; the shapes chain, the
                            // rows of C are contiguous and so are the rows or
                            // the columns of B.
                            run(
                                &|c| unsafe { packed::gemm(isa, pool, alpha, av, b, beta, c) },
                                &format!("packed {isa:?}, {} threads", pool.map_or(1, |p| p.n_threads())),
                            );
                            packed_checked += 1;
                        }
                    }
                    #[cfg(target_arch = "x86_64")]
                    if !tb {
                        for isa in Isa::available().filter(|isa| n <= isa.max_cols()) {
                            for pool in [None, Some(&pools[0]), Some(&pools[1])] {
                                // SAFETY: the CPU has `isa`; the shapes chain,
                                // n is at most what it takes, and the rows of
                                // B and C are contiguous.
                                run(
                                    &|c| unsafe { narrow::gemm(isa, pool, alpha, av, b, beta, c) },
                                    &format!("narrow {isa:?}, {} threads", pool.map_or(1, |p| p.n_threads())),
                                );
                            }
                        }
                    }
                }
            }
        }
        // AVX2 and FMA are there (checked above): the AVX2 packed kernel at
        // least ran.
        #[cfg(target_arch = "x86_64")]
        assert!(packed_checked > 0);
    }

    /// The wide network's products (forward, BP2 with `B = W^T` read in
    /// place, BP4 with `A^T`) go to the packed kernel where the CPU has one,
    /// on 1 and 2 threads, and give its bits; BP2 then leaves the scratch
    /// untouched (no copy of `W^T`). Products too small or too narrow for it
    /// go elsewhere.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn wide_products_are_dispatched_to_the_packed_kernel() {
        let Some(isa) = packed::best() else {
            assert!(!crate::sparse::has_avx2_fma());
            return;
        };
        let calls = || packed::CALLS.with(|calls| calls.get());
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads);
            // (m, k, n, A transposed, B transposed): forward, BP4, BP2.
            for (m, k, n, ta, tb) in [
                (128, 1024, 1024, false, false),
                (128, 784, 1024, false, false),
                (1024, 128, 1024, true, false),
                (128, 1024, 784, false, true),
            ] {
                let a = if ta { matrix(k, m, 3, 1.0) } else { matrix(m, k, 3, 1.0) };
                let av = if ta { a.t() } else { a.view() };
                let b_stored = if tb { matrix(n, k, 4, 1.0) } else { matrix(k, n, 4, 1.0) };
                let b = if tb { b_stored.t() } else { b_stored.view() };
                let mut want = Array2::from_elem((m, n), f32::NAN);
                // SAFETY: the CPU has `isa`; the shapes chain, the rows of C
                // are contiguous and so are the rows or the columns of B.
                unsafe { packed::gemm(isa, None, 1.0, av, b, 0.0, &mut want.view_mut()) };
                let before = calls();
                let mut got = Array2::from_elem((m, n), f32::NAN);
                if tb {
                    let mut scratch = Array2::from_elem((k, n), f32::NAN);
                    gemm_transposed_b_with(
                        &pool,
                        1.0,
                        av,
                        b_stored.view(),
                        &mut scratch.view_mut(),
                        0.0,
                        &mut got.view_mut(),
                    );
                    assert!(scratch.iter().all(|x| x.is_nan()), "{m}x{k}x{n}: W^T was copied");
                } else {
                    gemm_with(&pool, 1.0, av, b, 0.0, &mut got.view_mut());
                }
                assert_eq!(calls(), before + 1, "{m}x{k}x{n} went elsewhere");
                assert_bits(got.view(), &want, &format!("{m}x{k}x{n}, {threads} threads"));
            }
            for (m, k, n) in [(128, 64, 16), (16, 64, 64), (128, 1024, 10)] {
                let a = matrix(m, k, 5, 1.0);
                let b = matrix(k, n, 6, 1.0);
                let mut c = Array2::zeros((m, n));
                let before = calls();
                gemm_with(&pool, 1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
                assert_eq!(calls(), before, "{m}x{k}x{n} went to the packed kernel");
            }
        }
    }

    /// The narrow kernel (each implementation the CPU has, on 1 to 3
    /// threads) gives the sequential-FMA sums bit for bit for every number of
    /// columns it takes, rows that are and are not multiples of its 16-row
    /// tiles, depths within one chunk and across several, A as stored, as a
    /// transposed view (read in place) and with strides on both axes, alpha
    /// and beta variants, and C a view into a wider matrix; with beta == 0,
    /// C's NaN garbage does not leak into the result.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn narrow_kernel_matches_the_sequential_fma_reference_bit_for_bit() {
        let pools = [ThreadPool::new(2), ThreadPool::new(3)];
        let mut checked = 0;
        for isa in Isa::available() {
            for m in [1, 15, 16, 17, 64, 128, 130] {
                for n in 1..=isa.max_cols() {
                    for k in [1, 9, 300, 520] {
                        // Three layouts of A: as stored (packed by
                        // transposes), a transposed view (contiguous columns,
                        // read in place) and every other row and column of a
                        // larger matrix (packed element by element).
                        let seed = (m * 1000 + n * 31 + k) as u64;
                        let stored = matrix(m, k, seed, 1.0);
                        let stored_t = matrix(k, m, seed ^ 3, 1.0);
                        let strided = matrix(2 * m, 2 * k, seed ^ 4, 1.0);
                        let layouts = [
                            ("A", stored.view()),
                            ("A^T view", stored_t.t()),
                            ("strided A", strided.slice(ndarray::s![..;2, ..;2])),
                        ];
                        let b = matrix(k, n, seed ^ 1, 1.0);
                        let c0 = matrix(m, n, seed ^ 2, 1.0);
                        for (layout, a) in layouts {
                            for (alpha, beta) in [(0.7f32, 0.0f32), (1.0, 1.0), (-1.3, -0.5)] {
                                let want = sequential_fma(alpha, a, b.view(), beta, &c0);
                                let pool = [None, Some(&pools[0]), Some(&pools[1])][(m + n + k) % 3];
                                let mut wide = Array2::from_elem((m, n + 5), f32::NAN);
                                let mut c = wide.slice_mut(ndarray::s![.., 2..2 + n]);
                                if beta != 0.0 {
                                    c.assign(&c0);
                                }
                                // SAFETY: the CPU has `isa`; the shapes
                                // chain, n is at most what it takes, and the
                                // rows of B and C are contiguous.
                                unsafe { narrow::gemm(isa, pool, alpha, a, b.view(), beta, &mut c) };
                                assert_bits(
                                    c.view(),
                                    &want,
                                    &format!(
                                        "narrow {isa:?}, m {m} k {k} n {n}, {layout}, alpha {alpha} beta {beta}, {} threads",
                                        pool.map_or(1, |p| p.n_threads())
                                    ),
                                );
                                // The columns either side of C are untouched.
                                assert!(wide.column(1).iter().chain(wide.column(n + 2)).all(|x| x.is_nan()));
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        if crate::sparse::has_avx2_fma() {
            assert!(checked > 0);
        }
    }

    /// The output layer's forward product of the wide network (128 x 1024
    /// times 1024 x 10), and the seed network's (64 x 128 times 128 x 10, and
    /// BP4's A^T view), go to the narrow kernel and give its bits; a product
    /// of too few rows or too many columns does not.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn narrow_products_are_dispatched_to_the_narrow_kernel() {
        let Some(isa) = narrow::takes(128, 10) else {
            // No AVX2 (nor AVX-512): the blocked kernel takes everything.
            assert!(!crate::sparse::has_avx2_fma());
            return;
        };
        let calls = || narrow::CALLS.with(|calls| calls.get());
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads);
            for (m, k, n, ta) in [(128, 1024, 10, false), (64, 128, 10, false), (128, 64, 10, true)] {
                let stored = if ta { matrix(k, m, 7, 1.0) } else { matrix(m, k, 7, 1.0) };
                let a = if ta { stored.t() } else { stored.view() };
                let b = matrix(k, n, 8, 1.0);
                let before = calls();
                let mut got = Array2::from_elem((m, n), f32::NAN);
                gemm_with(&pool, 1.0, a, b.view(), 0.0, &mut got.view_mut());
                assert_eq!(calls(), before + 1, "{m}x{k}x{n} went elsewhere");
                let mut want = Array2::from_elem((m, n), f32::NAN);
                // SAFETY: the CPU has `isa`; the shapes chain, n is at most
                // what it takes, and the rows of B and C are contiguous.
                unsafe { narrow::gemm(isa, None, 1.0, a, b.view(), 0.0, &mut want.view_mut()) };
                assert_bits(got.view(), &want, &format!("{m}x{k}x{n}"));
                assert_bits(
                    got.view(),
                    &sequential_fma(1.0, a, b.view(), 0.0, &want),
                    &format!("{m}x{k}x{n}"),
                );
            }
            for (m, n) in [(15, 10), (128, isa.max_cols() + 1)] {
                let a = matrix(m, 64, 9, 1.0);
                let b = matrix(64, n, 10, 1.0);
                let mut c = Array2::zeros((m, n));
                let before = calls();
                gemm_with(&pool, 1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
                assert_eq!(calls(), before, "{m}x64x{n} went to the narrow kernel");
            }
        }
    }

    /// The training products of a wide network (784-1024-1024-10, batch 128)
    /// give the same bits as matrixmultiply, which computed them before the
    /// packed kernel (its FMA kernels sum in chunks of 256 too): training
    /// results do not change.
    #[test]
    fn wide_training_products_match_matrixmultiply_bit_for_bit() {
        if !crate::sparse::has_avx2_fma() {
            return;
        }
        let pool = ThreadPool::new(2);
        // (m, k, n, A transposed, B transposed): forward, BP4, BP2.
        for (m, k, n, ta, tb) in [
            (128, 784, 1024, false, false),
            (128, 1024, 1024, false, false),
            (1024, 128, 1024, true, false),
            (128, 1024, 10, false, false),
            (128, 1024, 1024, false, true),
            (128, 1024, 784, false, true),
        ] {
            let a = if ta { matrix(k, m, 1, 1.0) } else { matrix(m, k, 1, 1.0) };
            let av = if ta { a.t() } else { a.view() };
            let b_stored = if tb { matrix(n, k, 2, 1.0) } else { matrix(k, n, 2, 1.0) };
            let b = if tb { b_stored.t() } else { b_stored.view() };
            let mut want = Array2::zeros((m, n));
            let [rsa, csa] = strides(av.strides());
            let [rsb, csb] = strides(b.strides());
            // SAFETY: live views of shapes (m, k), (k, n) and (m, n).
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    av.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    want.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
            let mut got = Array2::from_elem((m, n), f32::NAN);
            gemm_with(&pool, 1.0, av, b, 0.0, &mut got.view_mut());
            assert_bits(got.view(), &want, &format!("{m}x{k}x{n}"));
            if tb {
                let mut got = Array2::from_elem((m, n), f32::NAN);
                let mut scratch = Array2::zeros((k, n));
                gemm_transposed_b_with(
                    &pool,
                    1.0,
                    av,
                    b_stored.view(),
                    &mut scratch.view_mut(),
                    0.0,
                    &mut got.view_mut(),
                );
                assert_bits(got.view(), &want, &format!("{m}x{k}x{n}, B^T in place"));
            }
        }
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let a = matrix(3, 4, 1, 1.0);
        let b = matrix(4, 5, 2, 1.0);
        let mut c = Array2::from_elem((3, 5), f32::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
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

    /// A scratch of the wrong shape is refused, naming both shapes, for a
    /// product small enough to need it and for one the packed kernel takes
    /// without it alike.
    #[test]
    fn a_wrong_scratch_for_b_transposed_panics_with_both_shapes() {
        let pool = ThreadPool::new(1);
        for (m, k, n) in [(2, 3, 4), (128, 64, 512)] {
            let a = Array2::<f32>::zeros((m, k));
            let b = Array2::<f32>::zeros((n, k));
            let mut c = Array2::<f32>::zeros((m, n));
            let mut scratch = Array2::<f32>::zeros((n, k));
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                gemm_transposed_b_with(
                    &pool,
                    1.0,
                    a.view(),
                    b.view(),
                    &mut scratch.view_mut(),
                    0.0,
                    &mut c.view_mut(),
                );
            }))
            .expect_err("a (n, k) scratch for a (k, n) B^T");
            let message = err.downcast_ref::<String>().expect("a formatted message");
            assert!(
                message.contains(&format!("scratch is ({n}, {k}), B^T is ({k}, {n})")),
                "{message}"
            );
        }
    }
}
