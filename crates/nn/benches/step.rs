//! Criterion bench of one full training step of the seed recipe (784-128-10,
//! batch 64): gather (and compress) a batch, forward, loss, backward, and an
//! optimiser step, SGD or Adam; and SGD with dropout 0.5 on the hidden layer
//! (its masks drawn every step).
//!
//! `cargo bench -p backprop-nn`

use backprop_nn::{
    Batcher, Dropout, Examples, Gradients, Loss, Mlp, Optimizer, OptimizerConfig, TargetShape, TargetsMut, Workspace,
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
    let mut rng = Rng::seed_from_u64(1);
    let n = 4096;
    let pixels = (0..n * 784)
        .map(|_| if rng.below(5) == 0 { rng.below(256) as u8 } else { 0 })
        .collect();
    let labels = (0..n).map(|_| rng.below(10) as usize).collect();
    Images { pixels, labels }
}

fn step(c: &mut Criterion) {
    let data = dataset();
    let sizes = [784, 128, 10];
    for threads in [1, 0] {
        let pool = Arc::new(ThreadPool::new(threads));
        // As the CLI does: keep this thread off the workers' cores.
        pool.pin_caller();
        let t = pool.n_threads();
        for (name, optimizer, rate) in [
            ("SGD", OptimizerConfig::default(), 0.0),
            ("Adam", OptimizerConfig::ADAM, 0.0),
            ("SGD + dropout 0.5", OptimizerConfig::default(), 0.5),
        ] {
            for sparse in [true, false] {
                let mut model = Mlp::new(&sizes, &mut Rng::seed_from_u64(2)).expect("valid sizes");
                let mut ws = Workspace::with_pool(&sizes, 64, Arc::clone(&pool));
                let mut grads = Gradients::new(&model);
                let mut opt: Box<dyn Optimizer> = optimizer.build(&model, 0.01).expect("valid optimiser");
                let mut batcher = Batcher::new(data.len(), 784, TargetShape::Classes(10), 64, Rng::seed_from_u64(3));
                batcher.start_epoch();
                let mut dropout = Dropout::new(vec![rate], Rng::seed_from_u64(4));
                let mut i = 0;
                let input = if sparse { "sparse" } else { "dense" };
                c.bench_function(
                    &format!("training step 784-128-10, batch 64, {input} input, {name}, {t} threads"),
                    |bench| {
                        bench.iter(|| {
                            let (x, y) = batcher.batch(&data, i % 64, sparse);
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
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = step
}
criterion_main!(benches);
