//! Criterion bench of one full training step of the seed recipe (784-128-10,
//! batch 64): gather and compress a batch, forward, loss, backward, SGD.
//!
//! `cargo bench -p backprop-nn`

use backprop_data::{Batcher, Dataset};
use backprop_nn::{Gradients, Input, Mlp, Sgd, Workspace};
use backprop_tensor::{Rng, ThreadPool};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

/// 4096 MNIST-sized images, about one pixel in five non-zero.
fn dataset() -> Dataset {
    let mut rng = Rng::seed_from_u64(1);
    let n = 4096;
    let pixels = (0..n * 784)
        .map(|_| if rng.below(5) == 0 { rng.below(256) as u8 } else { 0 })
        .collect();
    let labels = (0..n).map(|_| rng.below(10) as u8).collect();
    Dataset::new(pixels, labels, 28, 28, 10).expect("a valid synthetic dataset")
}

fn step(c: &mut Criterion) {
    let data = dataset();
    let sizes = [784, 128, 10];
    for threads in [1, 0] {
        let pool = Arc::new(ThreadPool::new(threads));
        // As the CLI does: keep this thread off the workers' cores.
        pool.pin_caller();
        let t = pool.n_threads();
        let mut model = Mlp::new(&sizes, &mut Rng::seed_from_u64(2)).expect("valid sizes");
        let mut ws = Workspace::with_pool(&sizes, 64, pool);
        let mut grads = Gradients::new(&model);
        let sgd = Sgd::new(0.01);
        let mut batcher = Batcher::new(data.len(), 784, 64, Rng::seed_from_u64(3));
        batcher.start_epoch();
        let mut i = 0;
        c.bench_function(
            &format!("training step 784-128-10, batch 64, sparse input, {t} threads"),
            |bench| {
                bench.iter(|| {
                    let (x, labels) = batcher.batch_sparse(&data, i % 64);
                    model.backward_input(Input::Sparse(x), labels, &mut ws, &mut grads);
                    sgd.step_in(ws.pool(), &mut model, &grads);
                    i += 1;
                })
            },
        );
        c.bench_function(
            &format!("training step 784-128-10, batch 64, dense input, {t} threads"),
            |bench| {
                bench.iter(|| {
                    let (x, labels) = batcher.batch(&data, i % 64);
                    model.backward_input(Input::Dense(x), labels, &mut ws, &mut grads);
                    sgd.step_in(ws.pool(), &mut model, &grads);
                    i += 1;
                })
            },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = step
}
criterion_main!(benches);
