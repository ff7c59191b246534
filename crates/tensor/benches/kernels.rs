//! Criterion benches of the kernels at the seed recipe's training shapes
//! (batch 64, 784-128-10), and of the wide network's output layer, on one
//! thread and on all CPUs.
//!
//! `cargo bench -p backprop-tensor`

use backprop_tensor::{
    Op, Rng, SparseBytes, SparseRows, ThreadPool, aligned_copy, aligned_zeros, gemm, gemm_with, softmax_rows,
    sparse_gemm_with,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use std::hint::black_box;

fn dense(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.normal() as f32)
}

/// An MNIST-like batch: about one pixel in five non-zero, in [0, 1].
fn pixels(rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    (0..rows * cols)
        .map(|_| if rng.below(5) == 0 { rng.below(256) as u8 } else { 0 })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let mut rng = Rng::seed_from_u64(0);
    let (b, n_in, h, o) = (64, 784, 128, 10);
    // Where the trainer keeps it: at the start of a cache line.
    let w1 = aligned_copy(dense(n_in, h, &mut rng).view());
    // Where the heap put it before: 16 bytes into a line.
    let mut store = aligned_zeros(n_in * h + 4);
    store
        .slice_mut(ndarray::s![4..])
        .assign(&w1.view().into_shape_with_order(n_in * h).expect("contiguous"));
    let w1_off = store
        .slice_move(ndarray::s![4..])
        .into_shape_with_order((n_in, h))
        .expect("contiguous");
    let a1 = dense(b, h, &mut rng);
    let w2 = dense(h, o, &mut rng);
    let w2t = w2.t().as_standard_layout().into_owned();
    let delta1 = dense(b, h, &mut rng);
    let delta2 = dense(b, o, &mut rng);
    let bytes = pixels(b, n_in, &mut rng);
    let x = Array2::from_shape_fn((b, n_in), |(i, j)| f32::from(bytes[i * n_in + j]) / 255.0);
    let mut sparse = SparseRows::with_capacity(b, n_in);
    sparse.fill(x.view());
    // A training set's worth of compressed images, and a batch of 64 of
    // them drawn at random, as training draws them.
    let images = pixels(60_000, n_in, &mut rng);
    let store = SparseBytes::new(&images, n_in);
    c.bench_function("compress 10000 images once (SparseBytes::new, 10000x784)", |bench| {
        bench.iter(|| SparseBytes::new(&images[..10_000 * n_in], n_in))
    });
    drop(images);
    let batch: Vec<u32> = (0..b).map(|_| rng.below(60_000) as u32).collect();
    let a2 = dense(128, 1024, &mut rng);
    let w3 = dense(1024, o, &mut rng);

    for threads in [1, 0] {
        let pool = ThreadPool::new(threads);
        // As the CLI does: keep this thread off the workers' cores.
        pool.pin_caller();
        let t = pool.n_threads();
        let mut z1 = Array2::zeros((b, h));
        c.bench_function(&format!("dense X*W1 (64x784x128), {t} threads"), |bench| {
            bench.iter(|| gemm_with(&pool, 1.0, x.view(), w1.view(), 0.0, &mut z1.view_mut()))
        });
        c.bench_function(&format!("sparse X*W1 (64x784x128, 20% dense), {t} threads"), |bench| {
            bench.iter(|| sparse_gemm_with(&pool, 1.0, &sparse, Op::Plain, w1.view(), 0.0, &mut z1.view_mut()))
        });
        c.bench_function(
            &format!("sparse X*W1 (64x784x128, 20% dense), W1 16 bytes into a line, {t} threads"),
            |bench| {
                bench.iter(|| sparse_gemm_with(&pool, 1.0, &sparse, Op::Plain, w1_off.view(), 0.0, &mut z1.view_mut()))
            },
        );
        let mut packed = SparseRows::with_capacity(b, n_in);
        c.bench_function(&format!("compress a u8 batch (64x784), {t} threads"), |bench| {
            bench.iter(|| packed.fill_u8_with(&pool, b, n_in, 1.0 / 255.0, |i| &bytes[i * n_in..(i + 1) * n_in]))
        });
        c.bench_function(
            &format!("fill a batch from compressed images (64 of 60000x784), {t} threads"),
            |bench| bench.iter(|| packed.fill_from_with(&pool, &store, &batch, 1.0 / 255.0)),
        );
        let mut dw1 = Array2::zeros((n_in, h));
        c.bench_function(&format!("sparse X^T*delta1 (784x64x128), {t} threads"), |bench| {
            bench.iter(|| {
                sparse_gemm_with(
                    &pool,
                    1.0,
                    &sparse,
                    Op::Transposed,
                    delta1.view(),
                    0.0,
                    &mut dw1.view_mut(),
                )
            })
        });
        let mut z2 = Array2::zeros((b, o));
        c.bench_function(&format!("A1*W2 (64x128x10), {t} threads"), |bench| {
            bench.iter(|| gemm_with(&pool, 1.0, a1.view(), w2.view(), 0.0, &mut z2.view_mut()))
        });
        let mut dw2 = Array2::zeros((h, o));
        c.bench_function(&format!("A1^T*delta2 (128x64x10), {t} threads"), |bench| {
            bench.iter(|| gemm_with(&pool, 1.0, a1.t(), delta2.view(), 0.0, &mut dw2.view_mut()))
        });
        // The wide network's output layer (784-1024-1024-10, batch 128):
        // the narrow kernel's product.
        let mut z3 = Array2::zeros((128, o));
        c.bench_function(&format!("wide output A2*W3 (128x1024x10), {t} threads"), |bench| {
            bench.iter(|| gemm_with(&pool, 1.0, a2.view(), w3.view(), 0.0, &mut z3.view_mut()))
        });
        let mut d1 = Array2::zeros((b, h));
        c.bench_function(&format!("delta2*W2^T (64x10x128), {t} threads"), |bench| {
            bench.iter(|| gemm_with(&pool, 1.0, delta2.view(), w2t.view(), 0.0, &mut d1.view_mut()))
        });
    }
    c.bench_function("compress a u8 batch (64x784)", |bench| {
        bench.iter(|| sparse.fill_u8(bytes.chunks(n_in), n_in, 1.0 / 255.0))
    });
    let mut p = Array2::zeros((b, o));
    c.bench_function("softmax rows (64x10)", |bench| {
        bench.iter(|| softmax_rows(black_box(delta2.view()), p.view_mut()))
    });
    let big_a = dense(1024, 1024, &mut rng);
    let big_b = dense(1024, 1024, &mut rng);
    let mut big_c = Array2::zeros((1024, 1024));
    c.bench_function("gemm 1024^3 (own kernel, 1 thread)", |bench| {
        bench.iter(|| gemm(1.0, big_a.view(), big_b.view(), 0.0, &mut big_c.view_mut()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = kernels
}
criterion_main!(benches);
