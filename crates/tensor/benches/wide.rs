//! Criterion benches of the products of the wide network 784-1024-1024-10
//! at batch 128, on one thread and on all CPUs: the dense ones, and the
//! first layer's on sparse input.

use backprop_tensor::{Op, Rng, SparseRows, ThreadPool, aligned_copy, gemm_with, sparse_gemm_with};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

fn dense(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.normal() as f32)
}

/// The dense products of a training step of the wide network 784-1024-1024-10
/// at batch 128 (forward, BP2 with a transposed copy of the weights, BP4 with
/// a stride view of the activations), on one thread and on all CPUs;
/// throughput in FLOP/s (two per multiply-add).
///
/// `cargo bench -p backprop-tensor --bench wide`
///
/// A bench target of its own: `kernels` pins the main thread to one CPU
/// (`pin_caller`), after which `ThreadPool::new(0)` would see one CPU.
fn wide(c: &mut Criterion) {
    let mut rng = Rng::seed_from_u64(1);
    let batch = 128;
    let mut group = c.benchmark_group("wide");
    for threads in [1, 0] {
        let pool = ThreadPool::new(threads);
        pool.pin_caller();
        let t = pool.n_threads();
        // (name, m, k, n, transposed A)
        let shapes = [
            ("forward 128x784x1024", batch, 784, 1024, false),
            ("forward/BP2 128x1024x1024", batch, 1024, 1024, false),
            ("forward 128x1024x10", batch, 1024, 10, false),
            ("BP2 128x10x1024", batch, 10, 1024, false),
            ("BP4 1024x128x1024 (A^T view)", 1024, batch, 1024, true),
            ("BP4 784x128x1024 (A^T view)", 784, batch, 1024, true),
            ("BP4 1024x128x10 (A^T view)", 1024, batch, 10, true),
        ];
        for (name, m, k, n, transposed) in shapes {
            let a = if transposed {
                dense(k, m, &mut rng)
            } else {
                dense(m, k, &mut rng)
            };
            let av = if transposed { a.t() } else { a.view() };
            let b = dense(k, n, &mut rng);
            let mut out = Array2::zeros((m, n));
            group.throughput(criterion::Throughput::Elements(2 * (m * n * k) as u64));
            group.bench_function(format!("{name}, {t} threads"), |bench| {
                bench.iter(|| gemm_with(&pool, 1.0, av, b.view(), 0.0, &mut out.view_mut()))
            });
        }
        // The first layer's products on MNIST-like input (one pixel in five
        // lit), which skip the zeros: X W1 copies W1 into tiles and reads
        // them in blocks of rows, X^T delta1 copies delta1 into tiles first.
        let pixels: Vec<f32> = (0..batch * 784)
            .map(|_| {
                if rng.below(5) == 0 {
                    rng.below(256) as f32 / 255.0
                } else {
                    0.0
                }
            })
            .collect();
        let x = Array2::from_shape_vec((batch, 784), pixels).expect("batch x 784 pixels");
        let mut sparse = SparseRows::with_capacity(batch, 784);
        sparse.fill(x.view());
        let w1 = aligned_copy(dense(784, 1024, &mut rng).view());
        let delta1 = aligned_copy(dense(batch, 1024, &mut rng).view());
        let mut z1 = aligned_copy(Array2::zeros((batch, 1024)).view());
        let mut dw1 = aligned_copy(Array2::zeros((784, 1024)).view());
        let flops = 2 * (sparse.nnz() * 1024) as u64;
        group.throughput(criterion::Throughput::Elements(flops));
        group.bench_function(format!("sparse X*W1 128x784x1024, {t} threads"), |bench| {
            bench.iter(|| sparse_gemm_with(&pool, 1.0, &sparse, Op::Plain, w1.view(), 0.0, &mut z1.view_mut()))
        });
        group.bench_function(format!("sparse X^T*delta1 784x128x1024, {t} threads"), |bench| {
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
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = wide
}
criterion_main!(benches);
