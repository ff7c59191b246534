//! Criterion bench of one full training step of the seed recipe (784-128-10,
//! batch 64): gather (and compress) a batch, forward, loss, backward, and an
//! optimiser step, SGD or Adam; and SGD with dropout 0.5 on the hidden layer
//! (its masks drawn every step). Then a whole step of a wide network,
//! 784-1024-1024-10 at batch 128: SGD, and Adam with dropout 0.5; and a
//! step of `recipes/mnist-best.toml`'s network and optimiser (784-800-10 at
//! batch 128, Nesterov momentum with weight decay).
//!
//! Last, evaluating the seed network on a test set's worth (10,000) of
//! images, as the trainer does after every epoch.
//!
//! `cargo bench -p backprop-nn --bench step` (a filter after `--`, such as
//! `784-1024` or `evaluate`, runs a part).

use backprop_nn::{
    Batcher, Dropout, Examples, Gradients, Loss, Mlp, Optimizer, OptimizerConfig, TargetShape, TargetsMut, Workspace,
    evaluate_in,
};
use backprop_tensor::{Rng, SparseRows, ThreadPool};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::ArrayViewMut2;
use std::sync::Arc;

/// MNIST-sized images as bytes, about one pixel in five non-zero, scaled to
/// `[0, 1]` when gathered (what `backprop_data::Dataset` does, without
/// depending on it).
struct Images {
    pixels: Vec<u8>,
    labels: Vec<usize>,
}

impl Examples for Images {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn n_features(&self) -> usize {
        784
    }
    fn target_shape(&self) -> TargetShape {
        TargetShape::Classes(10)
    }
    fn gather(&self, indices: &[u32], mut x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        let TargetsMut::Classes(y) = y else { unreachable!() };
        for ((mut row, &i), y) in x.rows_mut().into_iter().zip(indices).zip(y) {
            let image = &self.pixels[i as usize * 784..(i as usize + 1) * 784];
            row.iter_mut()
                .zip(image)
                .for_each(|(x, &p)| *x = f32::from(p) * (1.0 / 255.0));
            *y = self.labels[i as usize];
        }
    }
    fn density(&self) -> Option<f32> {
        Some(0.2)
    }
    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        let TargetsMut::Classes(y) = y else { return false };
        for (y, &i) in y.iter_mut().zip(indices) {
            *y = self.labels[i as usize];
        }
        let rows = indices
            .iter()
            .map(|&i| &self.pixels[i as usize * 784..(i as usize + 1) * 784]);
        x.fill_u8(rows, 784, 1.0 / 255.0);
        true
    }
}

fn dataset() -> Images {
    images(4096)
}

/// `n` images of the kind [`dataset`] makes.
fn images(n: usize) -> Images {
    let mut rng = Rng::seed_from_u64(1);
    let pixels = (0..n * 784)
        .map(|_| if rng.below(5) == 0 { rng.below(256) as u8 } else { 0 })
        .collect();
    let labels = (0..n).map(|_| rng.below(10) as usize).collect();
    Images { pixels, labels }
}

/// One configuration of a bench: the network, its batch, the optimiser,
/// the dropout rate of every hidden layer (0 = off), and the input's form.
struct Setup<'a> {
    sizes: &'a [usize],
    batch: usize,
    name: &'a str,
    optimizer: OptimizerConfig,
    rate: f32,
    sparse: bool,
}

/// Benches whole training steps of `setup` on the threads of `pool`.
fn bench_steps(c: &mut Criterion, data: &Images, pool: &Arc<ThreadPool>, setup: &Setup<'_>) {
    let Setup {
        sizes,
        batch,
        name,
        optimizer,
        rate,
        sparse,
    } = *setup;
    let mut model = Mlp::new(sizes, &mut Rng::seed_from_u64(2)).expect("valid sizes");
    let mut ws = Workspace::with_pool(sizes, batch, Arc::clone(pool));
    let mut grads = Gradients::new(&model);
    let mut opt: Box<dyn Optimizer> = optimizer.build(&model, 0.01).expect("valid optimiser");
    let mut batcher = Batcher::new(data.len(), 784, TargetShape::Classes(10), batch, Rng::seed_from_u64(3));
    batcher.start_epoch();
    let mut dropout = Dropout::new(vec![rate; sizes.len() - 2], Rng::seed_from_u64(4));
    let n_batches = data.len() / batch;
    let mut i = 0;
    let input = if sparse { "sparse" } else { "dense" };
    let shape = sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("-");
    let t = pool.n_threads();
    c.bench_function(
        &format!("training step {shape}, batch {batch}, {input} input, {name}, {t} threads"),
        |bench| {
            bench.iter(|| {
                let (x, y) = batcher.batch(data, i % n_batches, sparse);
                if rate > 0.0 {
                    dropout.draw(&mut ws, y.len());
                }
                model.loss_backward(x, Loss::CrossEntropy, y, &mut ws, &mut grads);
                opt.step(ws.pool(), &mut model, &grads);
                i += 1;
            })
        },
    );
}

/// The seed network, 784-128-10 at batch 64.
fn step(c: &mut Criterion) {
    let data = dataset();
    for threads in [1, 0] {
        let pool = Arc::new(ThreadPool::new(threads));
        // As the CLI does: keep this thread off the workers' cores.
        pool.pin_caller();
        for (name, optimizer, rate) in [
            ("SGD", OptimizerConfig::default(), 0.0),
            ("Adam", OptimizerConfig::ADAM, 0.0),
            ("SGD + dropout 0.5", OptimizerConfig::default(), 0.5),
        ] {
            for sparse in [true, false] {
                let setup = Setup {
                    sizes: &[784, 128, 10],
                    batch: 64,
                    name,
                    optimizer,
                    rate,
                    sparse,
                };
                bench_steps(c, &data, &pool, &setup);
            }
        }
    }
}

/// A wide network, 784-1024-1024-10 at batch 128 (sparse input, as MNIST
/// trains): plain SGD, and Adam with dropout 0.5 on both hidden layers,
/// where the optimiser and the masks weigh most.
fn wide_step(c: &mut Criterion) {
    let data = dataset();
    // Two threads named, not `0`: the pools above pinned this thread to one
    // core, so "every core" would now read as one.
    for threads in [1, 2] {
        let pool = Arc::new(ThreadPool::new(threads));
        pool.pin_caller();
        for (name, optimizer, rate) in [
            ("SGD", OptimizerConfig::default(), 0.0),
            ("Adam + dropout 0.5", OptimizerConfig::ADAM, 0.5),
        ] {
            let setup = Setup {
                sizes: &[784, 1024, 1024, 10],
                batch: 128,
                name,
                optimizer,
                rate,
                sparse: true,
            };
            bench_steps(c, &data, &pool, &setup);
        }
    }
}

/// The network and optimiser of `recipes/mnist-best.toml`: 784-800-10 at
/// batch 128, Nesterov momentum 0.9 with weight decay 1e-4 (its images
/// here undistorted: the step alone).
fn recipe_step(c: &mut Criterion) {
    let data = dataset();
    for threads in [1, 2] {
        let pool = Arc::new(ThreadPool::new(threads));
        pool.pin_caller();
        let nesterov = OptimizerConfig::Momentum {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
        };
        let setup = Setup {
            sizes: &[784, 800, 10],
            batch: 128,
            name: "Nesterov",
            optimizer: nesterov,
            rate: 0.0,
            sparse: true,
        };
        bench_steps(c, &data, &pool, &setup);
    }
}

/// The seed network (784-128-10, as initialised) evaluated on 10,000
/// images: compressing them, the forward passes, the loss and accuracy.
fn evaluation(c: &mut Criterion) {
    let data = images(10_000);
    let model = Mlp::new(&[784, 128, 10], &mut Rng::seed_from_u64(2)).expect("valid sizes");
    for threads in [1, 2] {
        let pool = Arc::new(ThreadPool::new(threads));
        pool.pin_caller();
        c.bench_function(
            &format!("evaluate 784-128-10 on 10000 images, {threads} threads"),
            |bench| bench.iter(|| evaluate_in(&pool, &model, &data, |_, _, _| {}).expect("evaluates")),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = step
}
criterion_group! {
    name = wide;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = wide_step, recipe_step
}
criterion_group! {
    name = eval;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = evaluation
}
criterion_main!(benches, wide, eval);
