//! The packed, cache-blocked kernels for wide dense products (the products
//! of a training step of a network with layers of a thousand units): one
//! for AVX-512, one for AVX2 with FMA, sharing the blocking and the task
//! split.
//!
//! Same arithmetic as the register-blocked kernel of the parent module, to the
//! bit: every element of `C` is summed over `p` in chunks of [`KC`] aligned on
//! multiples of `KC`; each chunk is one sequential chain of fused
//! multiply-adds over increasing `p`, starting from zero; the chunks are then
//! merged into `C` in increasing order, the first as `alpha * acc` (or
//! `fma(alpha, acc, beta * c)` when `beta != 0`), each later one as
//! `fma(alpha, acc, c)`. Only the memory traffic differs:
//!
//! - a block of up to `MC` rows of `A` by one `KC` chunk is packed on the
//!   stack, `MR` rows interleaved, so the micro-kernel reads it as one
//!   stream whatever the strides of `A` (a transposed view for BP4);
//! - a panel of `KC x NR` of `B` is packed on the stack, aligned and
//!   zero-padded to `NR` columns (it stays in L1 while every row tile of the
//!   block goes by, instead of rows 4 KiB apart that all fall in the same
//!   cache sets); `B` may have contiguous rows or contiguous columns (BP2's
//!   `W^T`, read in place from the rows of `W`, and with AVX2 transposed in
//!   registers, 8 x 8 at a time). The AVX2 kernel packs a group of four
//!   panels at once, along the rows of `B` (64 contiguous floats per row,
//!   which the hardware prefetches, rather than one cache line per row a
//!   page apart: 77-80 GFLOP/s at 128x1024x1024 on one Zen 3 core before,
//!   82-84 after);
//! - a register tile of `MR x NR`: with AVX-512, `8 x 32`, sixteen 512-bit
//!   accumulators, two loads of `B` and eight broadcasts of `A` per sixteen
//!   FMAs; with AVX2, `6 x 16`, twelve 256-bit accumulators, two loads of `B`
//!   and six broadcasts of `A` per twelve FMAs (the BLIS Haswell/Zen shape;
//!   `4 x 24` measured at half the speed, its accumulators spilled), four
//!   steps per loop iteration.
//!
//! Work is split into tasks of (row block, column group), sized per shape,
//! about one per thread; a task's arithmetic never depends on which
//! thread runs it, so results are bit-identical for any number of threads,
//! and for either kernel. Nothing is allocated: the packing buffers live on
//! the stack (208 KiB).

// The AVX-512 kernel is compiled only with `has_avx512`, which the build
// script sets for compilers of 1.89 and later, where these intrinsics are
// stable; the crate's rust-version (1.88) builds the AVX2 kernel alone.
#![allow(clippy::incompatible_msrv)]

use super::{Isa, Operands};
use crate::ThreadPool;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::arch::x86_64::{
    __m256, _MM_HINT_T0, _mm_prefetch, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_load_ps, _mm256_loadu_ps,
    _mm256_mul_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_store_ps,
    _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};
#[cfg(has_avx512)]
use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_load_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_store_ps,
};
use std::mem::MaybeUninit;

/// Depth of a chunk. It defines the arithmetic (where partial sums are merged
/// into `C`), so it must stay equal to the parent module's `KC`.
const KC: usize = super::KC;
/// Most rows of `A` packed at once by any kernel (the packing buffer holds
/// `MC_MAX x KC` floats, 144 KiB).
const MC_MAX: usize = 144;
/// Most columns of a register tile of any kernel.
const NR_MAX: usize = 32;
/// Most columns of `B` packed at once by any kernel (the panels of `B` hold
/// `KC x PANELS_MAX` floats, 64 KiB).
const PANELS_MAX: usize = 64;

/// The implementation the dispatch uses: the fastest this CPU has, if any.
pub(super) fn best() -> Option<Isa> {
    Isa::available().next()
}

#[cfg(test)]
thread_local! {
    /// Calls of [`gemm`] on this thread, for the tests of the dispatch.
    pub(super) static CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `C <- alpha * A * B + beta * C` for `B` and `C` with contiguous rows, with
/// the implementation `isa`, on the threads of `pool` when given.
///
/// # Safety
/// The CPU must have `isa` ([`Isa::available`]); the caller has checked that
/// the shapes chain (`a: (m, k)`, `b: (k, n)`, `c: (m, n)`, none empty), that
/// the rows of `c` are contiguous (column stride 1, or one column), and that
/// the rows or the columns of `b` are.
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
    // SAFETY: the CPU has `isa` and `o` describes live views (the caller's
    // guarantees).
    unsafe {
        match isa {
            #[cfg(has_avx512)]
            Isa::Avx512 => split::<Avx512>(pool, &o, block_avx512),
            Isa::Avx2 => split::<Avx2>(pool, &o, block_avx2),
        }
    }
}

/// A register tile and how to fill it: the part of the kernel that differs
/// between instruction sets. The functions must be called only on a CPU that
/// has the implementation's features.
trait Kernel {
    /// Rows of a register tile.
    const MR: usize;
    /// Columns of a register tile (at most [`NR_MAX`]).
    const NR: usize;
    /// Most rows of `A` packed at once: a multiple of `MR`, at most
    /// [`MC_MAX`].
    const MC: usize;
    /// Panels of `B` packed at once (`GROUP * NR` at most [`PANELS_MAX`]).
    const GROUP: usize;

    /// Packs `B[p0..p0 + depth, j0..j0 + width]` (`width <= GROUP * NR`)
    /// into `width.div_ceil(NR)` panels, panel `g` at `g * depth * NR`, row
    /// `p` of it at `p * NR`, each zero-padded to `NR` columns.
    ///
    /// # Safety
    /// The CPU has the features; the rows and columns are within `o`'s B,
    /// whose rows or columns are contiguous; `panels` is 64-byte aligned and
    /// writable for `GROUP * depth * NR` floats.
    unsafe fn pack_b(o: &Operands, rows: (usize, usize), cols: (usize, usize), panels: *mut f32);

    /// One `MR x NR` tile: sums over `depth` steps of the packed operands in
    /// registers, then merges them into `C` (`height x width` of it).
    ///
    /// # Safety
    /// The CPU has the features; `a` readable for `depth * MR` floats, `b`
    /// 64-byte aligned and readable for `depth * NR`; `c` writable for
    /// `height` rows of `width` floats, `ldc` apart (and readable unless
    /// `first && beta == 0`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        depth: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: isize,
        shape: (usize, usize),
        first: bool,
        alpha: f32,
        beta: f32,
    );
}

/// A block of `C`: rows `i_lo..i_hi` by columns `j_lo..j_hi`.
type Block = unsafe fn(&Operands, (usize, usize), (usize, usize));

/// Splits `C` into tasks of (row block, column group) for `K` and runs them
/// with `block` (the blocking of `K`, compiled with its features).
///
/// # Safety
/// The CPU has `K`'s features; `o` describes live views whose shapes chain
/// and are not empty, with contiguous rows of C, and contiguous rows or
/// columns of B.
unsafe fn split<K: Kernel>(pool: Option<&ThreadPool>, o: &Operands, block: Block) {
    let (m, n) = (o.m, o.n);
    let (m_tiles, n_panels) = (m.div_ceil(K::MR), n.div_ceil(K::NR));
    // One task per thread: measured (AVX-512) on 2 threads at the wide
    // network's shapes, 195-205 GFLOP/s, against 160-195 with two tasks per
    // thread and 155-175 with four. Columns first (each column group packs
    // its panels of B once per row block), then rows, never more than MC rows
    // in a block.
    let target = pool.map_or(1, |p| p.active_threads());
    let col_groups = n_panels.min(target);
    let row_blocks = m_tiles
        .div_ceil(K::MC / K::MR)
        .max(target.div_ceil(col_groups))
        .min(m_tiles);
    let n_tasks = col_groups * row_blocks;
    let task = |t: usize| {
        let (rb, cg) = (t / col_groups, t % col_groups);
        let rows = (
            m_tiles * rb / row_blocks * K::MR,
            (m_tiles * (rb + 1) / row_blocks * K::MR).min(m),
        );
        let cols = (
            n_panels * cg / col_groups * K::NR,
            (n_panels * (cg + 1) / col_groups * K::NR).min(n),
        );
        // SAFETY: the CPU has K's features and `o` describes live views (the
        // caller's guarantees); tasks cover disjoint blocks of C, each of at
        // most MC rows.
        unsafe { block(o, rows, cols) };
    };
    match pool {
        Some(pool) if n_tasks > 1 => pool.run(n_tasks, &task),
        _ => (0..n_tasks).for_each(task),
    }
}

/// The packed panels of `B` (a group of them), aligned for whole-register
/// loads.
#[repr(align(64))]
struct PanelB([MaybeUninit<f32>; KC * PANELS_MAX]);

/// [`block`] for AVX-512.
///
/// # Safety
/// As [`block`], on a CPU with AVX-512F.
#[cfg(has_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(o: &Operands, rows: (usize, usize), cols: (usize, usize)) {
    // SAFETY: the caller's guarantees.
    unsafe { block::<Avx512>(o, rows, cols) }
}

/// [`block`] for AVX2 and FMA.
///
/// # Safety
/// As [`block`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(o: &Operands, rows: (usize, usize), cols: (usize, usize)) {
    // SAFETY: the caller's guarantees.
    unsafe { block::<Avx2>(o, rows, cols) }
}

/// Rows `i_lo..i_hi` by columns `j_lo..j_hi` of `C`, with `K`'s tiles.
/// Inlined into a function compiled with `K`'s features.
///
/// # Safety
/// The CPU has `K`'s features; `o` describes live views; `i_hi - i_lo <=
/// K::MC`; the block is in bounds and no other thread touches it meanwhile.
#[inline(always)]
unsafe fn block<K: Kernel>(o: &Operands, (i_lo, i_hi): (usize, usize), (j_lo, j_hi): (usize, usize)) {
    const {
        assert!(
            K::MC % K::MR == 0 && K::MC <= MC_MAX && K::MR <= 8 && K::NR <= NR_MAX && K::GROUP * K::NR <= PANELS_MAX
        )
    };
    let mut a_pack = [const { MaybeUninit::<f32>::uninit() }; MC_MAX * KC];
    let mut b_pack = PanelB([const { MaybeUninit::uninit() }; KC * PANELS_MAX]);
    let a_pack = a_pack.as_mut_ptr().cast::<f32>();
    let b_pack = b_pack.0.as_mut_ptr().cast::<f32>();
    let (mr, nr) = (K::MR, K::NR);
    let tiles = (i_hi - i_lo).div_ceil(mr);
    for p0 in (0..o.k).step_by(KC) {
        let depth = KC.min(o.k - p0);
        // Pack A[i_lo..i_hi, p0..p0 + depth]: tile t, step p, row r at
        // (t * depth + p) * MR + r; rows past i_hi are zeros (their sums are
        // computed and dropped).
        for t in 0..tiles {
            let i0 = i_lo + t * mr;
            // SAFETY: the tile's `depth * MR` floats are within MC_MAX * KC
            // since (t + 1) * MR <= MC and depth <= KC.
            let dst = unsafe { a_pack.add(t * depth * mr) };
            if i0 + mr <= i_hi {
                // A whole tile, without a test per element.
                // SAFETY: rows i0..i0 + MR are below i_hi <= m, and column p0
                // is below k.
                let rows: [*const f32; 8] = std::array::from_fn(|r| unsafe {
                    o.a.offset((i0 + r.min(mr - 1)) as isize * o.rsa + p0 as isize * o.csa)
                });
                for p in 0..depth {
                    for (r, row) in rows.iter().enumerate().take(mr) {
                        // SAFETY: p0 + p < k; the write is within the tile.
                        unsafe { dst.add(p * mr + r).write(*row.offset(p as isize * o.csa)) };
                    }
                }
                continue;
            }
            for p in 0..depth {
                for r in 0..mr {
                    let i = i0 + r;
                    // SAFETY: i < m and p0 + p < k when read; the write is
                    // within the tile.
                    unsafe {
                        let v = if i < i_hi {
                            *o.a.offset(i as isize * o.rsa + (p0 + p) as isize * o.csa)
                        } else {
                            0.0
                        };
                        dst.add(p * mr + r).write(v);
                    }
                }
            }
        }
        for jg in (j_lo..j_hi).step_by(K::GROUP * nr) {
            let group_width = (K::GROUP * nr).min(j_hi - jg);
            // SAFETY: rows p0..p0 + depth and columns jg..jg + group_width
            // are in B; the panels hold KC * PANELS_MAX floats and are
            // 64-byte aligned.
            unsafe { K::pack_b(o, (p0, depth), (jg, group_width), b_pack) };
            for (g, j0) in (jg..jg + group_width).step_by(nr).enumerate() {
                let width = nr.min(jg + group_width - j0);
                // SAFETY: panel g of the group, packed above.
                let panel = unsafe { b_pack.add(g * depth * nr) };
                for t in 0..tiles {
                    let i0 = i_lo + t * mr;
                    // SAFETY: the packed tile and panel were written above for
                    // `depth` steps; C[i0.., j0..] is in this task's block, of
                    // `height x width` elements within bounds.
                    unsafe {
                        K::tile(
                            depth,
                            a_pack.add(t * depth * mr),
                            panel,
                            o.c.0.offset(i0 as isize * o.ldc + j0 as isize),
                            o.ldc,
                            (mr.min(i_hi - i0), width),
                            p0 == 0,
                            o.alpha,
                            o.beta,
                        )
                    };
                }
            }
        }
    }
    debug_assert!(i_hi <= o.m && j_hi <= o.n && i_hi - i_lo <= K::MC);
}

/// The AVX-512 kernel: `8 x 32` tiles.
#[cfg(has_avx512)]
struct Avx512;

#[cfg(has_avx512)]
impl Kernel for Avx512 {
    const MR: usize = 8;
    const NR: usize = 32;
    /// 128 KiB of `A`.
    const MC: usize = 128;
    const GROUP: usize = 1;

    #[inline(always)]
    unsafe fn pack_b(o: &Operands, rows: (usize, usize), cols: (usize, usize), panel: *mut f32) {
        // SAFETY: the caller's guarantees.
        unsafe { pack_b_avx512(o, rows, cols, panel) }
    }

    #[inline(always)]
    unsafe fn tile(
        depth: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: isize,
        shape: (usize, usize),
        first: bool,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: the caller's guarantees.
        unsafe { tile_avx512(depth, a, b, c, ldc, shape, first, alpha, beta) }
    }
}

/// [`Kernel::pack_b`] for [`Avx512`].
///
/// # Safety
/// As [`Kernel::pack_b`], on a CPU with AVX-512F.
#[cfg(has_avx512)]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pack_b_avx512(o: &Operands, (p0, depth): (usize, usize), (j0, width): (usize, usize), panel: *mut f32) {
    const NR: usize = Avx512::NR;
    if o.csb == 1 {
        // Contiguous rows: each row of the panel is two masked loads (lanes
        // past `width` read nothing and come back zero) and two aligned
        // stores.
        let low = |lanes: usize| ((1u32 << lanes) - 1) as __mmask16;
        let (mask_lo, mask_hi) = (low(width.min(16)), low(width.saturating_sub(16)));
        for p in 0..depth {
            // SAFETY: masked lanes are neither read nor faulted on; the rest
            // are B's elements (the caller's guarantee); the stores fall in
            // the panel at multiples of 64 bytes.
            unsafe {
                let src = o.b.offset((p0 + p) as isize * o.ldb + j0 as isize);
                let dst = panel.add(p * NR);
                _mm512_store_ps(dst, _mm512_maskz_loadu_ps(mask_lo, src));
                _mm512_store_ps(dst.add(16), _mm512_maskz_loadu_ps(mask_hi, src.add(16)));
            }
        }
    } else {
        // SAFETY: the caller's guarantees.
        unsafe { pack_b_columns(o, (p0, depth), (j0, width), panel, NR) };
    }
}

/// [`Kernel::tile`] for [`Avx512`].
///
/// # Safety
/// As [`Kernel::tile`], on a CPU with AVX-512F.
#[cfg(has_avx512)]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx512(
    depth: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: isize,
    (height, width): (usize, usize),
    first: bool,
    alpha: f32,
    beta: f32,
) {
    const MR: usize = Avx512::MR;
    const NR: usize = Avx512::NR;
    let mut lo: [__m512; MR] = [_mm512_setzero_ps(); MR];
    let mut hi: [__m512; MR] = [_mm512_setzero_ps(); MR];
    for p in 0..depth {
        // SAFETY: p < depth, within the packed tile and panel; the panel is
        // aligned and NR = 32 floats is two whole registers.
        unsafe {
            let b = b.add(p * NR);
            let (b_lo, b_hi) = (_mm512_load_ps(b), _mm512_load_ps(b.add(16)));
            let a = a.add(p * MR);
            for r in 0..MR {
                let a_rp = _mm512_set1_ps(*a.add(r));
                lo[r] = _mm512_fmadd_ps(a_rp, b_lo, lo[r]);
                hi[r] = _mm512_fmadd_ps(a_rp, b_hi, hi[r]);
            }
        }
    }
    let mask = |w: usize| -> __mmask16 { if w >= 16 { 0xffff } else { ((1u32 << w) - 1) as u16 } };
    let (mask_lo, mask_hi) = (mask(width), mask(width.saturating_sub(16)));
    let alpha = _mm512_set1_ps(alpha);
    let beta_v = _mm512_set1_ps(beta);
    for r in 0..height {
        for (half, acc, mask) in [(0, lo[r], mask_lo), (16, hi[r], mask_hi)] {
            if mask == 0 {
                continue;
            }
            // SAFETY: row r < height, and the mask covers only columns below
            // `width` (masked-off lanes are neither read nor written, and
            // raise no fault).
            unsafe {
                let c = c.offset(r as isize * ldc).add(half);
                let new = if !first {
                    _mm512_fmadd_ps(alpha, acc, _mm512_maskz_loadu_ps(mask, c))
                } else if beta == 0.0 {
                    _mm512_mul_ps(alpha, acc)
                } else {
                    _mm512_fmadd_ps(alpha, acc, _mm512_mul_ps(beta_v, _mm512_maskz_loadu_ps(mask, c)))
                };
                _mm512_mask_storeu_ps(c, mask, new);
            }
        }
    }
}

/// The AVX2 kernel: `6 x 16` tiles, with FMA.
type Avx2 = Avx2Tiles<6, 2>;

/// AVX2 tiles of `MR` rows by `NV` registers (`NR = 8 NV` columns, at most
/// 8 x 32; `MR x NV + NV + 1` must fit in the 16 registers).
struct Avx2Tiles<const MR: usize, const NV: usize>;

impl<const MR: usize, const NV: usize> Kernel for Avx2Tiles<MR, NV> {
    const MR: usize = MR;
    const NR: usize = 8 * NV;
    /// 144 KiB of `A` for 6-row tiles: a batch of 128 rows (22 tiles) is
    /// one block, so a column group packs each panel of `B` once.
    const MC: usize = MC_MAX / MR * MR;
    /// Four panels, 64 KiB: runs of 64 contiguous floats from each row of
    /// `B`.
    const GROUP: usize = PANELS_MAX / (8 * NV);

    #[inline(always)]
    unsafe fn pack_b(o: &Operands, rows: (usize, usize), cols: (usize, usize), panel: *mut f32) {
        // SAFETY: the caller's guarantees.
        unsafe { pack_b_avx2::<NV>(o, rows, cols, panel) }
    }

    #[inline(always)]
    unsafe fn tile(
        depth: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: isize,
        shape: (usize, usize),
        first: bool,
        alpha: f32,
        beta: f32,
    ) {
        // A last tile of few rows (2 of 128 with 6-row tiles) computes only
        // the rows it has: with 8 or fewer accumulators, about 2/3 of a
        // whole tile's time instead of all of it.
        // SAFETY: the caller's guarantees.
        unsafe {
            match shape.0 {
                h if h <= 2 && MR > 2 => tile_avx2::<MR, 2, NV>(depth, a, b, c, ldc, shape, first, alpha, beta),
                h if h <= 4 && MR > 4 => tile_avx2::<MR, 4, NV>(depth, a, b, c, ldc, shape, first, alpha, beta),
                _ => tile_avx2::<MR, MR, NV>(depth, a, b, c, ldc, shape, first, alpha, beta),
            }
        }
    }
}

/// [`Kernel::pack_b`] for [`Avx2Tiles`] of `NV` registers: the panels of a
/// group one after the other, each `depth x NR`.
///
/// # Safety
/// As [`Kernel::pack_b`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pack_b_avx2<const NV: usize>(
    o: &Operands,
    (p0, depth): (usize, usize),
    (j0, width): (usize, usize),
    panels: *mut f32,
) {
    let nr = 8 * NV;
    let n_panels = width.div_ceil(nr);
    if o.csb != 1 {
        for g in 0..n_panels {
            // SAFETY: panel g's columns are within the group's, and its
            // `depth * NR` floats within the group's panels, at a multiple of
            // 64 bytes.
            unsafe {
                pack_panel_columns_avx2::<NV>(
                    o,
                    (p0, depth),
                    (j0 + g * nr, nr.min(width - g * nr)),
                    panels.add(g * depth * nr),
                )
            };
        }
        return;
    }
    // Contiguous rows: along each row of B across the whole group (long
    // runs of contiguous reads, which the hardware prefetches, rather than
    // one cache line per row and panel, a page apart).
    for p in 0..depth {
        // SAFETY: row p0 + p is in B.
        let src = unsafe { o.b.offset((p0 + p) as isize * o.ldb + j0 as isize) };
        for g in 0..n_panels {
            let w = nr.min(width - g * nr);
            // SAFETY: panel g, row p of it, within the group's panels.
            let dst = unsafe { panels.add((g * depth + p) * nr) };
            if w == nr {
                for v in 0..NV {
                    // SAFETY: columns g NR + 8 v + 0..8 are below width, in
                    // B; the store falls at a multiple of 32 bytes.
                    unsafe { _mm256_store_ps(dst.add(8 * v), _mm256_loadu_ps(src.add(g * nr + 8 * v))) };
                }
            } else {
                // The last, partial panel: element by element, zero-padded.
                for j in 0..nr {
                    // SAFETY: column g NR + j is read only when j < w.
                    unsafe { dst.add(j).write(if j < w { *src.add(g * nr + j) } else { 0.0 }) };
                }
            }
        }
    }
}

/// Packs one panel of a `B` with contiguous columns (`B = W^T`, a view of
/// `W`) for [`Avx2Tiles`] of `NV` registers.
///
/// # Safety
/// As [`Kernel::pack_b`] for a single panel, on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pack_panel_columns_avx2<const NV: usize>(
    o: &Operands,
    (p0, depth): (usize, usize),
    (j0, width): (usize, usize),
    panel: *mut f32,
) {
    let nr = 8 * NV;
    if o.ldb != 1 || width != nr {
        // SAFETY: the caller's guarantees.
        unsafe { pack_b_columns(o, (p0, depth), (j0, width), panel, nr) };
        return;
    }
    // A whole panel: blocks of 8 columns of B (rows of W) by 8 steps, loaded
    // along the rows of W and transposed in registers.
    let whole = depth / 8 * 8;
    for p in (0..whole).step_by(8) {
        for v in 0..NV {
            // SAFETY: columns j0 + 8 v + 0..8 and rows p0 + p + 0..8 are in B
            // (p + 8 <= depth); the stores fall in the panel, at multiples
            // of 32 bytes.
            unsafe {
                let src = |j: usize| o.b.offset((p0 + p) as isize + (j0 + 8 * v + j) as isize * o.csb);
                let cols = transpose8(std::array::from_fn(|j| _mm256_loadu_ps(src(j))));
                for (q, col) in cols.into_iter().enumerate() {
                    _mm256_store_ps(panel.add((p + q) * nr + 8 * v), col);
                }
            }
        }
    }
    for p in whole..depth {
        for j in 0..nr {
            // SAFETY: as above, element by element.
            unsafe {
                panel
                    .add(p * nr + j)
                    .write(*o.b.offset((p0 + p) as isize + (j0 + j) as isize * o.csb))
            };
        }
    }
}

/// The transpose of the 8 x 8 block whose rows are `rows`: element `j` of
/// register `q` of the result is element `q` of `rows[j]`.
///
/// # Safety
/// The CPU has AVX2 (an `unsafe fn`, as the crate's other `target_feature`
/// functions, for compilers before 1.86).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn transpose8(rows: [__m256; 8]) -> [__m256; 8] {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
    let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xee>(t0, t2));
    let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xee>(t1, t3));
    let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xee>(t4, t6));
    let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xee>(t5, t7));
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// Packs a panel of `nr` columns of a `B` with contiguous columns (`B =
/// W^T`, a view of `W`), element by element: each column of `B` is a row of
/// `W`, read in order and written down a column of the panel.
///
/// # Safety
/// As [`Kernel::pack_b`], for a single panel of `nr` columns.
#[inline(always)]
unsafe fn pack_b_columns(
    o: &Operands,
    (p0, depth): (usize, usize),
    (j0, width): (usize, usize),
    panel: *mut f32,
    nr: usize,
) {
    for j in 0..nr {
        for p in 0..depth {
            // SAFETY: column j0 + j is read only when j < width, at rows
            // within B; the write is within the panel's depth * nr floats.
            unsafe {
                let v = if j < width {
                    *o.b.offset((p0 + p) as isize * o.ldb + (j0 + j) as isize * o.csb)
                } else {
                    0.0
                };
                panel.add(p * nr + j).write(v);
            }
        }
    }
}

/// [`Kernel::tile`] for [`Avx2Tiles`], computing the first `ROWS` rows of
/// the tile (`height <= ROWS <= MR`).
///
/// # Safety
/// As [`Kernel::tile`], on a CPU with AVX2 and FMA, and `height <= ROWS`.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const MR: usize, const ROWS: usize, const NV: usize>(
    depth: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: isize,
    (height, width): (usize, usize),
    first: bool,
    alpha: f32,
    beta: f32,
) {
    let nr = 8 * NV;
    // The tile of C is merged after `depth` steps: fetch it meanwhile (its
    // rows are usually out of L1, and a miss at the merge stalls the FMAs).
    for r in 0..height {
        // SAFETY: a prefetch neither faults nor changes memory; the addresses
        // are in row r < height of C, below column width.
        unsafe {
            let row = c.offset(r as isize * ldc);
            _mm_prefetch::<_MM_HINT_T0>(row.cast());
            _mm_prefetch::<_MM_HINT_T0>(row.add(width - 1).cast());
        }
    }
    debug_assert!(height <= ROWS && ROWS <= MR);
    let mut acc: [[__m256; NV]; ROWS] = [[_mm256_setzero_ps(); NV]; ROWS];
    // One step: ROWS x NV FMAs, NV loads of B and ROWS broadcasts of A.
    let step = |p: usize, acc: &mut [[__m256; NV]; ROWS]| {
        // SAFETY: p < depth, within the packed tile and panel; the panel is
        // 32-byte aligned, and so is each of its rows of NR floats.
        unsafe {
            let b = b.add(p * nr);
            let bv: [__m256; NV] = std::array::from_fn(|v| _mm256_load_ps(b.add(8 * v)));
            let a = a.add(p * MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let a_rp = _mm256_broadcast_ss(&*a.add(r));
                for v in 0..NV {
                    acc[v] = _mm256_fmadd_ps(a_rp, bv[v], acc[v]);
                }
            }
        }
    };
    // Four steps per iteration (the same chain of FMAs per accumulator, in
    // the same order).
    let whole = depth / 4 * 4;
    for p in (0..whole).step_by(4) {
        step(p, &mut acc);
        step(p + 1, &mut acc);
        step(p + 2, &mut acc);
        step(p + 3, &mut acc);
    }
    for p in whole..depth {
        step(p, &mut acc);
    }
    if width == nr {
        let alpha = _mm256_set1_ps(alpha);
        let beta_v = _mm256_set1_ps(beta);
        for (r, acc) in acc.iter().enumerate().take(height) {
            for (v, &acc) in acc.iter().enumerate() {
                // SAFETY: row r < height, columns below width = NR.
                unsafe {
                    let c = c.offset(r as isize * ldc).add(8 * v);
                    let new = if !first {
                        _mm256_fmadd_ps(alpha, acc, _mm256_loadu_ps(c))
                    } else if beta == 0.0 {
                        _mm256_mul_ps(alpha, acc)
                    } else {
                        _mm256_fmadd_ps(alpha, acc, _mm256_mul_ps(beta_v, _mm256_loadu_ps(c)))
                    };
                    _mm256_storeu_ps(c, new);
                }
            }
        }
    } else {
        // The last, partial panel: the same merges, element by element.
        for (r, acc) in acc.iter().enumerate().take(height) {
            let mut sums = [0.0f32; NR_MAX];
            for (v, &acc) in acc.iter().enumerate() {
                // SAFETY: NV <= NR_MAX / 8 registers fit in `sums`.
                unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * v), acc) };
            }
            // SAFETY: row r < height, `width` floats of it.
            let c = unsafe { std::slice::from_raw_parts_mut(c.offset(r as isize * ldc), width) };
            for (c, &acc) in c.iter_mut().zip(&sums) {
                *c = if !first {
                    alpha.mul_add(acc, *c)
                } else if beta == 0.0 {
                    alpha * acc
                } else {
                    alpha.mul_add(acc, beta * *c)
                };
            }
        }
    }
}
