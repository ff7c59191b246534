//! The packed, cache-blocked AVX-512 kernel for wide dense products (the
//! products of a training step of a network with layers of a thousand units).
//!
//! Same arithmetic as the register-blocked kernel of the parent module, to the
//! bit: every element of `C` is summed over `p` in chunks of [`KC`] aligned on
//! multiples of `KC`; each chunk is one sequential chain of fused
//! multiply-adds over increasing `p`, starting from zero; the chunks are then
//! merged into `C` in increasing order, the first as `alpha * acc` (or
//! `fma(alpha, acc, beta * c)` when `beta != 0`), each later one as
//! `fma(alpha, acc, c)`. Only the memory traffic differs:
//!
//! - a block of up to [`MC`] rows of `A` by one `KC` chunk is packed on the
//!   stack, [`MR`] rows interleaved, so the micro-kernel reads it as one
//!   stream whatever the strides of `A` (a transposed view for BP4);
//! - a panel of `KC x NR` of `B` is packed on the stack, 64-byte aligned and
//!   zero-padded to [`NR`] columns (32 KiB: it stays in L1 while every row
//!   tile of the block goes by, instead of rows 4 KiB apart that all fall in
//!   the same cache sets);
//! - an `MR x NR = 8 x 32` register tile: sixteen 512-bit accumulators, two
//!   loads of `B` and eight broadcasts of `A` per sixteen FMAs.
//!
//! Work is split into tasks of (row block, column group), sized per shape,
//! about one per thread; a task's arithmetic never depends on which
//! thread runs it, so results are bit-identical for any number of threads.
//! Nothing is allocated: the packing buffers live on the stack (160 KiB).

// The module is compiled only with `has_avx512`, which the build script sets
// for compilers of 1.89 and later, where these intrinsics are stable; the
// crate's rust-version (1.85) builds without it.
#![allow(clippy::incompatible_msrv)]

use super::Operands;
use crate::ThreadPool;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_load_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_store_ps,
};
use std::mem::MaybeUninit;

/// Rows of a register tile.
const MR: usize = 8;
/// Columns of a register tile: two 512-bit registers.
const NR: usize = 32;
/// Depth of a chunk. It defines the arithmetic (where partial sums are merged
/// into `C`), so it must stay equal to the parent module's `KC`.
const KC: usize = super::KC;
/// Most rows of `A` packed at once (128 KiB).
const MC: usize = 128;

/// Whether this CPU can run the kernel.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `C <- alpha * A * B + beta * C` for `B` and `C` with contiguous rows, on
/// the threads of `pool` when given.
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]); the caller has checked that the
/// shapes chain (`a: (m, k)`, `b: (k, n)`, `c: (m, n)`, none empty), that the
/// rows of `c` are contiguous (column stride 1, or one column), and that the
/// rows or the columns of `b` are.
pub(super) unsafe fn gemm(
    pool: Option<&ThreadPool>,
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let o = Operands::new(alpha, a, b, beta, c);
    let (m, n) = (o.m, o.n);
    let (m_tiles, n_panels) = (m.div_ceil(MR), n.div_ceil(NR));
    // One task per thread: measured on 2 threads at the wide network's
    // shapes, 195-205 GFLOP/s, against 160-195 with two tasks per thread and
    // 155-175 with four. Columns first (each column group packs its panels of
    // B once per row block), then rows, never more than MC rows in a block.
    let target = pool.map_or(1, |p| p.active_threads());
    let col_groups = n_panels.min(target);
    let row_blocks = m_tiles.div_ceil(MC / MR).max(target.div_ceil(col_groups)).min(m_tiles);
    let n_tasks = col_groups * row_blocks;
    let task = |t: usize| {
        let (rb, cg) = (t / col_groups, t % col_groups);
        let rows = (
            m_tiles * rb / row_blocks * MR,
            (m_tiles * (rb + 1) / row_blocks * MR).min(m),
        );
        let cols = (
            n_panels * cg / col_groups * NR,
            (n_panels * (cg + 1) / col_groups * NR).min(n),
        );
        // SAFETY: the CPU has AVX-512F and `o` describes live views (the
        // caller's guarantees); tasks cover disjoint blocks of C, each of at
        // most MC rows.
        unsafe { block(&o, rows, cols) };
    };
    match pool {
        Some(pool) if n_tasks > 1 => pool.run(n_tasks, &task),
        _ => (0..n_tasks).for_each(task),
    }
}

/// The packed panel of `B`, aligned for whole-register loads.
#[repr(align(64))]
struct PanelB([MaybeUninit<f32>; KC * NR]);

/// Rows `i_lo..i_hi` by columns `j_lo..j_hi` of `C`.
///
/// # Safety
/// AVX-512F; `o` describes live views; `i_hi - i_lo <= MC`; the block is in
/// bounds and no other thread touches it meanwhile.
#[target_feature(enable = "avx512f")]
unsafe fn block(o: &Operands, (i_lo, i_hi): (usize, usize), (j_lo, j_hi): (usize, usize)) {
    let mut a_pack = [const { MaybeUninit::<f32>::uninit() }; MC * KC];
    let mut b_pack = PanelB([const { MaybeUninit::uninit() }; KC * NR]);
    let a_pack = a_pack.as_mut_ptr().cast::<f32>();
    let b_pack = b_pack.0.as_mut_ptr().cast::<f32>();
    let tiles = (i_hi - i_lo).div_ceil(MR);
    for p0 in (0..o.k).step_by(KC) {
        let depth = KC.min(o.k - p0);
        // Pack A[i_lo..i_hi, p0..p0 + depth]: tile t, step p, row r at
        // (t * depth + p) * MR + r; rows past i_hi are zeros (their sums are
        // computed and dropped).
        for t in 0..tiles {
            for p in 0..depth {
                for r in 0..MR {
                    let i = i_lo + t * MR + r;
                    // SAFETY: i < m and p0 + p < k when read; the write is
                    // within MC * KC since t * MR + r < MC and p < KC.
                    unsafe {
                        let v = if i < i_hi {
                            *o.a.offset(i as isize * o.rsa + (p0 + p) as isize * o.csa)
                        } else {
                            0.0
                        };
                        a_pack.add((t * depth + p) * MR + r).write(v);
                    }
                }
            }
        }
        for j0 in (j_lo..j_hi).step_by(NR) {
            let width = NR.min(j_hi - j0);
            // SAFETY: rows p0..p0 + depth and columns j0..j0 + width are in
            // B; the panel holds KC * NR floats and is 64-byte aligned.
            unsafe { pack_b(o, (p0, depth), (j0, width), b_pack) };
            for t in 0..tiles {
                let i0 = i_lo + t * MR;
                // SAFETY: the packed tile and panel were written above for
                // `depth` steps; C[i0.., j0..] is in this task's block, of
                // `height x width` elements within bounds.
                unsafe {
                    tile(
                        depth,
                        a_pack.add(t * depth * MR),
                        b_pack,
                        o.c.0.offset(i0 as isize * o.ldc + j0 as isize),
                        o.ldc,
                        (MR.min(i_hi - i0), width),
                        p0 == 0,
                        o.alpha,
                        o.beta,
                    )
                };
            }
        }
    }
    debug_assert!(i_hi <= o.m && j_hi <= o.n && i_hi - i_lo <= MC);
}

/// Packs `B[p0..p0 + depth, j0..j0 + width]` into `panel`, row `p` at
/// `p * NR`, zero-padded to [`NR`] columns.
///
/// # Safety
/// AVX-512F; the rows and columns are within `o`'s B, whose rows or columns
/// are contiguous; `panel` is 64-byte aligned and writable for `depth * NR`
/// floats.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pack_b(o: &Operands, (p0, depth): (usize, usize), (j0, width): (usize, usize), panel: *mut f32) {
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
        // Contiguous columns (B = W^T, a view of W): each column of B is a
        // row of W, read in order and written down a column of the panel.
        for j in 0..NR {
            for p in 0..depth {
                // SAFETY: as above; column j0 + j is read only when j <
                // width.
                unsafe {
                    let v = if j < width {
                        *o.b.offset((p0 + p) as isize * o.ldb + (j0 + j) as isize * o.csb)
                    } else {
                        0.0
                    };
                    panel.add(p * NR + j).write(v);
                }
            }
        }
    }
}

/// One `MR x NR` tile: sums over `depth` steps of the packed operands in
/// registers, then merges them into `C` (`height x width` of it).
///
/// # Safety
/// AVX-512F; `a` readable for `depth * MR` floats, `b` 64-byte aligned and
/// readable for `depth * NR`; `c` writable for `height` rows of `width`
/// floats, `ldc` apart (and readable unless `first && beta == 0`).
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
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
