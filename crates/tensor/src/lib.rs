//! Dense `f32` kernels for the backprop workspace.
//!
//! Everything here writes into buffers the caller owns, so a training step can
//! run without touching the heap:
//!
//! - [`gemm`]: `C <- alpha * A * B + beta * C`, where `A` and `B` may be
//!   transposed stride views (`x.t()`) at no cost: a packed, cache-blocked
//!   kernel (AVX-512 or AVX2+FMA) for wide products, a kernel tiled along
//!   rows for products of few columns, a register-blocked one for the rest
//!   when `B` and `C` have contiguous rows, `matrixmultiply` otherwise;
//! - [`sparse_gemm`]: the same product for a left operand that is mostly
//!   zeros (MNIST pixels), stored once per batch as [`SparseRows`] (filled
//!   from dense `u8` rows, on the pool's threads by
//!   [`SparseRows::fill_u8_with`], or from a data set's rows compressed
//!   once, [`SparseBytes`], by [`SparseRows::fill_from`]), and
//!   [`sparse_affine_with`], the layer's forward product with its bias and
//!   activation applied as each row finishes;
//! - [`add_row_broadcast`], [`sum_rows_into`]: bias add and its adjoint;
//! - [`relu_inplace`], [`relu_backward_inplace`]: ReLU and its derivative,
//!   evaluated at the pre-activation;
//! - [`softmax_rows`], [`log_softmax_rows`]: numerically stable row softmax;
//! - [`argmax_rows`]: the predicted class of each row;
//! - [`zip_chunks_with`]: element-wise updates (optimisers) over fixed chunks,
//!   and [`chunks_mut_with`], fixed chunks of one buffer, each with its index;
//! - [`wide_lanes`]: an element-wise loop compiled for AVX2 where the CPU
//!   has it, with the plain build's bits;
//! - [`Rng`]: a seeded, portable, version-stable random number generator;
//! - [`aligned_zeros`], [`aligned_copy`]: arrays whose first element starts
//!   a cache line, for the weights and buffers the kernels stream through;
//! - [`prefetch`]: a hint to load memory into the caches before it is read;
//! - [`ThreadPool`]: workers for the `_with` variants of the products, which
//!   split work by output so results do not depend on the number of threads,
//!   and ([`ThreadPool::run_beside`]) side work that idle workers take while
//!   the caller runs something else.
//!
//! Shape mismatches are programming errors: kernels panic with both shapes in
//! the message (each documents this under `# Panics`).
#![deny(missing_docs)]

mod activation;
mod aligned;
mod axpy;
mod elementwise;
mod gemm;
mod lanes;
mod pool;
mod prefetch;
mod reduce;
mod rng;
mod softmax;
mod sparse;
mod sparse_bytes;
mod stripes;

pub use activation::{relu_backward_inplace, relu_inplace};
pub use aligned::{CACHE_LINE, aligned_copy, aligned_zeros};
pub use axpy::axpy_with;
pub use elementwise::{ChunkUpdate, ELEMENTWISE_CHUNK, chunks_mut_with, zip_chunks_with};
pub use gemm::{gemm, gemm_transposed_b_with, gemm_with};
pub use lanes::wide_lanes;
pub use pool::ThreadPool;
pub use prefetch::prefetch;
pub use reduce::{add_row_broadcast, argmax_rows, sum_rows_into};
pub use rng::{Rng, RngState};
pub use softmax::{log_softmax_rows, softmax_rows};
pub use sparse::{Op, SparseRows, sparse_affine_with, sparse_gemm, sparse_gemm_with};
pub use sparse_bytes::SparseBytes;

#[cfg(test)]
mod naive;
