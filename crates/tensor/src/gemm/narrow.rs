//! The kernel for narrow products: few columns of `B` and `C` (an output
//! layer of 10 units: `C (128 x 10) = A (128 x 1024) * W (1024 x 10)`).
//!
//! Tiles along the columns waste most of each register when `C` has ten
//! columns, so this kernel vectorises along the rows instead: a tile is 16
//! rows of `C`, held as one 512-bit register (AVX-512) or two 256-bit ones
//! (AVX2) per column of the tile's `C^T`. Each step `p` loads the tile's
//! `A^T[p, i0..i0 + 16]` and does one fused multiply-add per register and
//! column with `B[p, j]` broadcast. With AVX2 the two registers share each
//! broadcast (one broadcast per FMA ran at half the speed: the broadcasts,
//! not the FMAs, set the pace), so with 16 registers in all the columns go
//! in two passes of at most 6. `A^T` is read where it is when the rows of `A`
//! are its columns (a transposed view, BP4), and is otherwise packed for
//! each chunk of [`KC`] steps into a stack buffer, by in-register transposes
//! of square blocks (element by element for other strides).
//!
//! Same arithmetic as the other dense kernels, to the bit: every element of
//! `C` is summed over `p` in chunks of [`KC`] aligned on multiples of `KC`,
//! each chunk one sequential chain of fused multiply-adds over increasing `p`
//! starting from zero, merged into `C` in increasing order, the first as
//! `alpha * acc` (or `fma(alpha, acc, beta * c)` when `beta != 0`), each
//! later one as `fma(alpha, acc, c)`. The running `C^T` of up to [`GROUP`]
//! tiles stays on the stack between chunks, so a chunk of `B` (10 KiB for
//! ten columns) stays in L1 while the tiles go by.
//!
//! Tiles are independent: each thread takes a contiguous range of them, and
//! which thread computes a tile never changes its bits. Nothing is
//! allocated (the buffers on the stack come to 32 KiB at most).

// The AVX-512 half is compiled only with `has_avx512`, which the build script
// sets for compilers of 1.89 and later, where its intrinsics are stable.
#![cfg_attr(has_avx512, allow(clippy::incompatible_msrv))]

use super::{Isa, Operands};
use crate::ThreadPool;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::arch::x86_64::{
    __m256, __m256i, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
    _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};
use std::mem::MaybeUninit;

/// Depth of a chunk. It defines the arithmetic (where partial sums are merged
/// into `C`), so it must stay equal to the parent module's `KC`.
const KC: usize = super::KC;
/// Most tiles whose running `C^T` is kept on the stack between chunks.
const GROUP: usize = 16;
/// Rows of a tile: `R` registers of `V::LANES` rows, `R * V::LANES == TILE`.
const TILE: usize = 16;
/// Most lanes of any implementation.
const MAX_LANES: usize = 16;

#[cfg(test)]
thread_local! {
    /// Calls of [`gemm`] on this thread, for the tests of the dispatch.
    pub(super) static CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Isa {
    /// Most columns of `C` it takes: AVX2 has 16 registers in all.
    pub(super) fn max_cols(self) -> usize {
        match self {
            #[cfg(has_avx512)]
            Isa::Avx512 => 16,
            Isa::Avx2 => 12,
        }
    }
}

/// The implementation the dispatch sends a product of `m` rows and `n`
/// columns to, if any: the fastest one the CPU has, when `C` has at least a
/// tile's rows and at most the columns it takes.
pub(super) fn takes(m: usize, n: usize) -> Option<Isa> {
    Isa::available().next().filter(|isa| m >= TILE && n <= isa.max_cols())
}

/// `C <- alpha * A * B + beta * C` for `B` and `C` with contiguous rows, with
/// the implementation `isa`, on the threads of `pool` when given.
///
/// # Safety
/// The CPU must have `isa` ([`Isa::available`]); the caller has checked that
/// the shapes chain (`a: (m, k)`, `b: (k, n)`, `c: (m, n)`, none empty, `n <=
/// isa.max_cols()`) and that the rows of `b` and `c` are contiguous (column
/// stride 1, or one column).
pub(super) unsafe fn gemm(
    isa: Isa,
    pool: Option<&ThreadPool>,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    #[cfg(test)]
    CALLS.with(|calls| calls.set(calls.get() + 1));
    let o = Operands::new(alpha, a, b, beta, c);
    assert!((1..=isa.max_cols()).contains(&o.n) && o.m > 0 && o.k > 0);
    let kernel = match isa {
        #[cfg(has_avx512)]
        Isa::Avx512 => avx512::KERNELS[o.n - 1],
        Isa::Avx2 => AVX2_KERNELS[o.n - 1],
    };
    let tiles = o.m.div_ceil(TILE);
    let n_tasks = pool.map_or(1, |p| p.active_threads()).min(tiles);
    let task = |t: usize| {
        // SAFETY: the CPU has `isa` and `o` describes live views with `n`
        // columns (the caller's guarantees); tasks take disjoint ranges of
        // tiles, so disjoint rows of C.
        unsafe { kernel(&o, tiles * t / n_tasks, tiles * (t + 1) / n_tasks) };
    };
    match pool {
        Some(pool) if n_tasks > 1 => pool.run(n_tasks, &task),
        _ => task(0),
    }
}

/// Tiles `t_lo..t_hi` of `C` (its rows `16 t_lo..min(16 t_hi, m)`).
type Kernel = unsafe fn(&Operands, usize, usize);

/// The AVX2 kernels, `AVX2_KERNELS[n - 1]` for `n` columns: a tile of 16 rows
/// is two registers, which share each broadcast of `B`; AVX2 has 16
/// registers, so the columns go in two passes of at most 6.
const AVX2_KERNELS: [Kernel; 12] = [
    tiles_avx2::<1, 0>,
    tiles_avx2::<2, 0>,
    tiles_avx2::<3, 0>,
    tiles_avx2::<4, 0>,
    tiles_avx2::<5, 0>,
    tiles_avx2::<6, 0>,
    tiles_avx2::<4, 3>,
    tiles_avx2::<4, 4>,
    tiles_avx2::<5, 4>,
    tiles_avx2::<5, 5>,
    tiles_avx2::<6, 5>,
    tiles_avx2::<6, 6>,
];

/// [`tiles`] with AVX2 and FMA: two registers of rows, `C1 + C2` columns in
/// passes of `C1` and `C2`.
///
/// # Safety
/// As [`tiles`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2<const C1: usize, const C2: usize>(o: &Operands, t_lo: usize, t_hi: usize) {
    // SAFETY: the caller's guarantees.
    unsafe { tiles::<Avx2, 2, C1, C2>(o, t_lo, t_hi) }
}

/// A register of `LANES` floats, and the few operations the kernel needs.
/// Every method must be inlined into a function compiled with the
/// implementation's target features, and called only on a CPU that has them.
trait Vector: Copy {
    /// Floats in a register: rows of a tile.
    const LANES: usize;
    /// Which lanes a masked load reads (in `pack_rows`).
    type Mask: Copy;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// `x` in every lane.
    unsafe fn splat(x: f32) -> Self;
    /// The mask of the first `lanes` lanes, `1 <= lanes <= LANES`.
    unsafe fn first(lanes: usize) -> Self::Mask;
    /// `LANES` floats from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a * b`.
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// Stores the `LANES` floats at `p`.
    unsafe fn store(self, p: *mut f32);
    /// Packs `A^T` for `depth <= KC` steps from `rows[r]` (16 rows of `A`,
    /// contiguous for `depth` elements): step `p`, row `r` at `packed[p * 16 +
    /// r]`.
    unsafe fn pack_rows(rows: &[*const f32; TILE], depth: usize, packed: *mut f32);
}

/// A 256-bit register.
#[derive(Clone, Copy)]
struct Avx2(__m256);

impl Vector for Avx2 {
    const LANES: usize = 8;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX (the trait's contract).
        Self(unsafe { _mm256_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX.
        Self(unsafe { _mm256_set1_ps(x) })
    }

    #[inline(always)]
    unsafe fn first(lanes: usize) -> __m256i {
        // SAFETY: AVX2. Lane l is all ones (read) when l < lanes.
        unsafe {
            use std::arch::x86_64::_mm256_cmpgt_epi32;
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(lanes as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX; the caller's pointer.
        Self(unsafe { _mm256_loadu_ps(p) })
    }

    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: FMA.
        Self(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
    }

    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: AVX.
        Self(unsafe { _mm256_mul_ps(a.0, b.0) })
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX; the caller's pointer.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }

    #[inline(always)]
    unsafe fn pack_rows(rows: &[*const f32; TILE], depth: usize, packed: *mut f32) {
        // SAFETY (whole function): AVX2 (the trait's contract); the reads
        // stay within `depth` elements of each row (masked lanes are not
        // read), the writes within KC * 16 floats of `packed` since blocks
        // start at multiples of 8 below depth <= KC, a multiple of 8.
        unsafe {
            // One half of the rows at a time, so that the second block of
            // eight columns finds its rows' cache lines still in L1: rows a
            // multiple of 4 KiB apart all fall in the same cache set, which
            // holds eight lines.
            for (h, q0) in [0, 8]
                .into_iter()
                .flat_map(|h| (0..depth).step_by(8).map(move |q0| (h, q0)))
            {
                let left = depth - q0;
                let r: [__m256; 8] = if left >= 8 {
                    std::array::from_fn(|i| _mm256_loadu_ps(rows[h + i].add(q0)))
                } else {
                    let mask = Self::first(left);
                    std::array::from_fn(|i| _mm256_maskload_ps(rows[h + i].add(q0), mask))
                };
                // Pairs of rows interleaved, then 4 x 4 blocks transposed
                // within 128-bit lanes: u[4g + c] holds, in 128-bit lane l,
                // rows 4g..4g + 4 at column 4l + c.
                let t: [__m256; 8] = std::array::from_fn(|i| {
                    let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                    if i % 2 == 0 {
                        _mm256_unpacklo_ps(x, y)
                    } else {
                        _mm256_unpackhi_ps(x, y)
                    }
                });
                let u: [__m256; 8] = std::array::from_fn(|i| {
                    let g = i / 4 * 4;
                    match i % 4 {
                        0 => _mm256_shuffle_ps::<0x44>(t[g], t[g + 2]),
                        1 => _mm256_shuffle_ps::<0xee>(t[g], t[g + 2]),
                        2 => _mm256_shuffle_ps::<0x44>(t[g + 1], t[g + 3]),
                        _ => _mm256_shuffle_ps::<0xee>(t[g + 1], t[g + 3]),
                    }
                });
                for q in 0..8 {
                    let (x, y) = (u[q % 4], u[4 + q % 4]);
                    let column = if q < 4 {
                        _mm256_permute2f128_ps::<0x20>(x, y)
                    } else {
                        _mm256_permute2f128_ps::<0x31>(x, y)
                    };
                    _mm256_storeu_ps(packed.add((q0 + q) * 16 + h), column);
                }
            }
        }
    }
}

/// The packed chunk of `A^T`, aligned for whole-register loads.
#[repr(align(64))]
struct PackedA([MaybeUninit<f32>; KC * TILE]);

/// Most columns of any implementation.
const MAX_COLS: usize = 16;

/// The running `C^T` of one tile: register `r`, column `j`.
type TileSums<V, const R: usize> = [[V; MAX_COLS]; R];

/// Tiles `t_lo..t_hi` (rows `16 t_lo..min(16 t_hi, m)`) of `C`, which has
/// `C1 + C2` columns, with `R` registers `V` of rows per tile.
///
/// # Safety
/// Inlined into a function compiled with `V`'s target features, on a CPU
/// with them; `R * V::LANES == 16`; `o` describes live views with
/// `o.n == C1 + C2 <= 16` and contiguous rows of B and C;
/// `t_lo <= t_hi <= ceil(m / 16)`; no other thread touches these rows of C
/// meanwhile.
#[inline(always)]
unsafe fn tiles<V: Vector, const R: usize, const C1: usize, const C2: usize>(o: &Operands, t_lo: usize, t_hi: usize) {
    let lanes = V::LANES;
    debug_assert!(R * lanes == TILE && o.n == C1 + C2 && o.n <= MAX_COLS);
    let mut packed = PackedA([const { MaybeUninit::uninit() }; KC * TILE]);
    let packed = packed.0.as_mut_ptr().cast::<f32>();
    // SAFETY (whole function): the target features are there (the caller's
    // guarantee); every index stays within (m, k), (k, n) and (m, n) by the
    // loop bounds, and the caller guarantees the views.
    unsafe {
        let mut ct: [TileSums<V, R>; GROUP] = [[[V::zero(); MAX_COLS]; R]; GROUP];
        let (alpha, beta) = (V::splat(o.alpha), V::splat(o.beta));
        for g0 in (t_lo..t_hi).step_by(GROUP) {
            let g1 = t_hi.min(g0 + GROUP);
            for p0 in (0..o.k).step_by(KC) {
                let depth = KC.min(o.k - p0);
                for t in g0..g1 {
                    let i0 = t * TILE;
                    let height = TILE.min(o.m - i0);
                    // Register r of the tile's A^T at step p: `src + r *
                    // LANES + p * ld`.
                    let (src, ld) = if o.rsa == 1 && height == TILE {
                        // A^T's rows are contiguous: read them where they are.
                        (o.a.offset(i0 as isize + p0 as isize * o.csa), o.csa)
                    } else {
                        pack::<V, R>(o, i0, height, p0, depth, packed);
                        (packed.cast_const(), TILE as isize)
                    };
                    let a = |r: usize, p: usize| V::load(src.offset((r * lanes) as isize + p as isize * ld));
                    let ct = &mut ct[t - g0];
                    let b = o.b.offset(p0 as isize * o.ldb);
                    let acc = chunk::<V, R, C1>(depth, a, b, o.ldb);
                    merge(o, &acc, ct, 0, (i0, height), p0 == 0, (alpha, beta));
                    if C2 > 0 {
                        let acc = chunk::<V, R, C2>(depth, a, b.add(C1), o.ldb);
                        merge(o, &acc, ct, C1, (i0, height), p0 == 0, (alpha, beta));
                    }
                }
            }
            for t in g0..g1 {
                let i0 = t * TILE;
                let height = TILE.min(o.m - i0);
                for (r, ct) in ct[t - g0].iter().enumerate() {
                    for (j, &ct) in ct.iter().enumerate().take(o.n) {
                        let mut new = [0.0f32; MAX_LANES];
                        ct.store(new.as_mut_ptr());
                        for (l, &new) in new.iter().enumerate().take(height.saturating_sub(r * lanes).min(lanes)) {
                            *o.c.0.offset((i0 + r * lanes + l) as isize * o.ldc + j as isize) = new;
                        }
                    }
                }
            }
        }
    }
}

/// Merges the sums of one chunk, columns `j0..j0 + C` of a tile (rows
/// `i0..i0 + height`), into its running `C^T`: the first chunk as
/// `alpha * acc`, or `fma(alpha, acc, beta * c)` when `beta != 0`; the
/// others as `fma(alpha, acc, c)`.
///
/// # Safety
/// As [`tiles`].
#[inline(always)]
unsafe fn merge<V: Vector, const R: usize, const C: usize>(
    o: &Operands,
    acc: &[[V; C]; R],
    ct: &mut TileSums<V, R>,
    j0: usize,
    (i0, height): (usize, usize),
    first: bool,
    (alpha, beta): (V, V),
) {
    let lanes = V::LANES;
    // SAFETY: the caller's guarantees; C is read at rows below i0 + height
    // and columns below j0 + C <= n.
    unsafe {
        for (r, (acc, ct)) in acc.iter().zip(ct.iter_mut()).enumerate() {
            for (j, (&acc, ct)) in acc.iter().zip(&mut ct[j0..j0 + C]).enumerate() {
                *ct = if !first {
                    V::fma(alpha, acc, *ct)
                } else if o.beta == 0.0 {
                    V::mul(alpha, acc)
                } else {
                    let mut old = [0.0f32; MAX_LANES];
                    for (l, old) in old
                        .iter_mut()
                        .enumerate()
                        .take(height.saturating_sub(r * lanes).min(lanes))
                    {
                        *old = *o.c.0.offset((i0 + r * lanes + l) as isize * o.ldc + (j0 + j) as isize);
                    }
                    V::fma(alpha, acc, V::mul(beta, V::load(old.as_ptr())))
                };
            }
        }
    }
}

/// One chunk of `C` columns of one tile: `acc[r][j] = sum over p < depth of
/// a(r, p) * b[p, j]`, each a chain of fused multiply-adds from zero, where
/// `a(r, p)` is register `r` of the tile's `A^T[p0 + p, ..]` and `b` points at
/// `B[p0, j0]`. The `R` registers share each broadcast of `B`.
///
/// # Safety
/// As [`tiles`]; `a(r, p)` must be safe to call for `r < R`, `p < depth`, and
/// `b` readable at `p * ldb + j` for `p < depth`, `j < C`.
#[inline(always)]
unsafe fn chunk<V: Vector, const R: usize, const C: usize>(
    depth: usize,
    a: impl Fn(usize, usize) -> V,
    b: *const f32,
    ldb: isize,
) -> [[V; C]; R] {
    // SAFETY: the caller's guarantees.
    unsafe {
        let mut acc = [[V::zero(); C]; R];
        for p in 0..depth {
            let a: [V; R] = std::array::from_fn(|r| a(r, p));
            let b = b.offset(p as isize * ldb);
            for j in 0..C {
                let b = V::splat(*b.add(j));
                for (acc, &a) in acc.iter_mut().zip(&a) {
                    acc[j] = V::fma(a, b, acc[j]);
                }
            }
        }
        acc
    }
}

/// Packs `A[i0..i0 + height, p0..p0 + depth]` transposed into `packed`: step
/// `p`, row `i0 + r` at `p * 16 + r`. Rows past `height` repeat the last
/// real row (their sums are computed and dropped).
///
/// # Safety
/// As [`tiles`]; the rows and columns are within `o`'s A; `1 <= height <=
/// 16`, `depth <= KC`; `packed` is writable for `KC * 16` floats.
#[inline(always)]
unsafe fn pack<V: Vector, const R: usize>(
    o: &Operands,
    i0: usize,
    height: usize,
    p0: usize,
    depth: usize,
    packed: *mut f32,
) {
    // SAFETY: every row is clamped to the tile's last real row.
    let row = |r: usize| unsafe {
        o.a.offset((i0 + r.min(height - 1)) as isize * o.rsa + p0 as isize * o.csa)
    };
    if o.csa == 1 {
        let rows: [*const f32; TILE] = std::array::from_fn(row);
        // SAFETY: the caller's guarantees; each row is contiguous for depth
        // elements.
        unsafe { V::pack_rows(&rows, depth, packed) };
    } else {
        for r in 0..TILE {
            let src = row(r);
            for p in 0..depth {
                // SAFETY: column p0 + p < k of a row of A; p * 16 + r <
                // KC * 16.
                unsafe { packed.add(p * TILE + r).write(*src.offset(p as isize * o.csa)) };
            }
        }
    }
}

/// The AVX-512 implementation.
#[cfg(has_avx512)]
mod avx512 {
    use super::{KC, Kernel, Operands, TILE, Vector, tiles};
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps,
        _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps, _mm512_unpackhi_ps,
        _mm512_unpacklo_ps,
    };

    /// The AVX-512 kernels, `KERNELS[n - 1]` for `n` columns: a tile of 16
    /// rows is one register, all columns in one pass.
    pub(super) const KERNELS: [Kernel; 16] = [
        tiles_avx512::<1>,
        tiles_avx512::<2>,
        tiles_avx512::<3>,
        tiles_avx512::<4>,
        tiles_avx512::<5>,
        tiles_avx512::<6>,
        tiles_avx512::<7>,
        tiles_avx512::<8>,
        tiles_avx512::<9>,
        tiles_avx512::<10>,
        tiles_avx512::<11>,
        tiles_avx512::<12>,
        tiles_avx512::<13>,
        tiles_avx512::<14>,
        tiles_avx512::<15>,
        tiles_avx512::<16>,
    ];

    /// [`tiles`] with AVX-512F.
    ///
    /// # Safety
    /// As [`tiles`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn tiles_avx512<const N: usize>(o: &Operands, t_lo: usize, t_hi: usize) {
        // SAFETY: the caller's guarantees.
        unsafe { tiles::<Avx512, 1, N, 0>(o, t_lo, t_hi) }
    }

    /// A 512-bit register.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(pub(super) __m512);

    impl Vector for Avx512 {
        const LANES: usize = 16;
        type Mask = __mmask16;

        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX-512F (the trait's contract).
            Self(unsafe { _mm512_setzero_ps() })
        }

        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            // SAFETY: AVX-512F.
            Self(unsafe { _mm512_set1_ps(x) })
        }

        #[inline(always)]
        unsafe fn first(lanes: usize) -> __mmask16 {
            ((1u32 << lanes) - 1) as __mmask16
        }

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX-512F; the caller's pointer.
            Self(unsafe { _mm512_loadu_ps(p) })
        }

        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            // SAFETY: AVX-512F.
            Self(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
        }

        #[inline(always)]
        unsafe fn mul(a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F.
            Self(unsafe { _mm512_mul_ps(a.0, b.0) })
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX-512F; the caller's pointer.
            unsafe { _mm512_storeu_ps(p, self.0) }
        }

        #[inline(always)]
        unsafe fn pack_rows(rows: &[*const f32; TILE], depth: usize, packed: *mut f32) {
            // SAFETY (whole function): AVX-512F (the trait's contract); the
            // reads stay within `depth` elements of each row (masked lanes
            // are not read), the writes within KC * 16 floats of `packed`
            // since blocks start at multiples of 16 below depth <= KC, a
            // multiple of 16.
            unsafe {
                for q0 in (0..depth).step_by(16) {
                    let mask = Self::first((depth - q0).min(16));
                    let rows = std::array::from_fn(|r| _mm512_maskz_loadu_ps(mask, rows[r].add(q0)));
                    for (q, column) in transpose(rows).into_iter().enumerate() {
                        _mm512_storeu_ps(packed.add((q0 + q) * 16), column);
                    }
                }
            }
            debug_assert!(depth <= KC && KC.is_multiple_of(16));
        }
    }

    /// The transpose of a 16 x 16 block held as 16 rows: `out[q]` lane `r` is
    /// `r[r]` lane `q`.
    #[inline(always)]
    pub(super) unsafe fn transpose(r: [__m512; 16]) -> [__m512; 16] {
        // SAFETY: AVX-512F (the caller's guarantee).
        unsafe {
            // Pairs of rows interleaved, then 4 x 4 blocks transposed within
            // 128-bit lanes: u[4g + c] holds, in 128-bit lane l, rows 4g..4g +
            // 4 at column 4l + c. Then the 128-bit lanes, in two steps.
            let t: [__m512; 16] = std::array::from_fn(|i| {
                let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm512_unpacklo_ps(x, y)
                } else {
                    _mm512_unpackhi_ps(x, y)
                }
            });
            let u: [__m512; 16] = std::array::from_fn(|i| {
                let g = i / 4 * 4;
                match i % 4 {
                    0 => _mm512_shuffle_ps::<0x44>(t[g], t[g + 2]),
                    1 => _mm512_shuffle_ps::<0xee>(t[g], t[g + 2]),
                    2 => _mm512_shuffle_ps::<0x44>(t[g + 1], t[g + 3]),
                    _ => _mm512_shuffle_ps::<0xee>(t[g + 1], t[g + 3]),
                }
            });
            let v: [__m512; 16] = std::array::from_fn(|i| {
                let (h, c) = (i / 8 * 8, i % 4);
                if i % 8 < 4 {
                    _mm512_shuffle_f32x4::<0x88>(u[h + c], u[h + 4 + c])
                } else {
                    _mm512_shuffle_f32x4::<0xdd>(u[h + c], u[h + 4 + c])
                }
            });
            std::array::from_fn(|i| {
                let c = i % 8;
                if i < 8 {
                    _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c])
                } else {
                    _mm512_shuffle_f32x4::<0xdd>(v[c], v[8 + c])
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pack_rows` of each implementation transposes, for depths that are
    /// and are not multiples of its blocks.
    #[test]
    fn pack_rows_transposes() {
        let a: Vec<f32> = (0..16 * 40).map(|x| x as f32).collect();
        let rows: [*const f32; TILE] = std::array::from_fn(|r| a[r * 40..].as_ptr());
        for isa in Isa::available() {
            for depth in [1, 7, 8, 16, 17, 40] {
                let mut packed = vec![f32::NAN; KC * TILE];
                // SAFETY: the CPU has `isa`; each row has 40 >= depth floats;
                // `packed` holds KC * 16 floats.
                unsafe {
                    match isa {
                        #[cfg(has_avx512)]
                        Isa::Avx512 => avx512_pack_rows(&rows, depth, packed.as_mut_ptr()),
                        Isa::Avx2 => avx2_pack_rows(&rows, depth, packed.as_mut_ptr()),
                    }
                }
                for p in 0..depth {
                    for r in 0..16 {
                        assert_eq!(packed[p * 16 + r], a[r * 40 + p], "{isa:?} depth {depth} p {p} r {r}");
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_pack_rows(rows: &[*const f32; TILE], depth: usize, packed: *mut f32) {
        // SAFETY: the caller's guarantees.
        unsafe { Avx2::pack_rows(rows, depth, packed) }
    }

    #[cfg(has_avx512)]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_pack_rows(rows: &[*const f32; TILE], depth: usize, packed: *mut f32) {
        // SAFETY: the caller's guarantees.
        unsafe { avx512::Avx512::pack_rows(rows, depth, packed) }
    }
}
