//! What on-the-fly augmentation adds to an epoch of `recipes/mnist-best.toml`
//! (784-800-10, Nesterov, batches of 128, `shift=2,rotate=10,scale=0.1,
//! shear=8,elastic=34:4`), measured A/B in one process so that a busy
//! machine slows every variant alike: rounds of one epoch each on the plain
//! images; on augmented images made beside each step by the trainer's idle
//! threads (`Examples::prepare_beside`, what `backprop train` does); made
//! on the trainer's threads before each step (`Examples::prepare` only,
//! what it did before); and made serially on the training thread inside
//! the gather (what it did before that); and, for the floor, on one epoch's augmented
//! images made beforehand (distorted images have more ink, so the sparse
//! first layer has more to do whatever the augmentation costs).
//!
//! Prints each epoch's seconds, then per variant the least and the median,
//! and the augmented variants' cost over the plain one.
//!
//! Run: `cargo run --release -p backprop-examples --example augment_cost --
//! [DIR] [ROUNDS] [THREADS]` with `DIR` the folder of the MNIST IDX files
//! (default `datasets/mnist`), `ROUNDS` (default 4) and `THREADS` (default
//! 2).

use backprop_data::{Augment, Augmented, Dataset, load_dir};
use backprop_nn::{Examples, OptimizerConfig, TargetShape, TargetsMut, TrainConfig, Trainer};
use backprop_tensor::{SparseRows, ThreadPool};
use ndarray::ArrayViewMut2;
use std::path::PathBuf;

/// An augmented source without `prepare`: every gather distorts its batch
/// on the calling thread.
struct Serial<'a>(&'a Augmented);

impl Examples for Serial<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn n_features(&self) -> usize {
        self.0.n_features()
    }

    fn target_shape(&self) -> TargetShape {
        self.0.target_shape()
    }

    fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        self.0.gather(indices, x, y);
    }

    fn density(&self) -> Option<f32> {
        self.0.density()
    }

    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        self.0.gather_sparse(indices, x, y)
    }

    fn start_epoch(&self, epoch: usize) {
        self.0.start_epoch(epoch);
    }
}

/// An augmented source that makes each batch on the pool's threads just
/// before it is gathered (`Examples::prepare`), not beside the step before.
struct Before<'a>(&'a Augmented);

impl Examples for Before<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn n_features(&self) -> usize {
        self.0.n_features()
    }

    fn target_shape(&self) -> TargetShape {
        self.0.target_shape()
    }

    fn gather(&self, indices: &[u32], x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        self.0.gather(indices, x, y);
    }

    fn density(&self) -> Option<f32> {
        self.0.density()
    }

    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        self.0.gather_sparse(indices, x, y)
    }

    fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
        self.0.gather_sparse_on(indices, x, y, pool)
    }

    fn start_epoch(&self, epoch: usize) {
        self.0.start_epoch(epoch);
    }

    fn prepare(&self, indices: &[u32], pool: &ThreadPool) {
        self.0.prepare(indices, pool);
    }
}

/// Seconds this thread has run on a CPU (Linux; 0 elsewhere): unlike the
/// wall clock, not inflated by other programs on a busy machine.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns * 1e-9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "datasets/mnist".into()));
    let rounds: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let threads: usize = args.next().map_or(Ok(2), |n| n.parse())?;
    let data = load_dir(&dir)?;
    let augment = Augment::parse("shift=2,rotate=10,scale=0.1,shear=8,elastic=34:4")?;
    let augmented = Augmented::new(data.train.clone(), augment, 1)?;
    let serial = Serial(&augmented);
    let (rows, cols) = data.train.image_shape();
    let mut pixels = vec![0; data.train.len() * rows * cols];
    let (start, cpu) = (std::time::Instant::now(), thread_cpu_seconds());
    for (i, image) in pixels.chunks_exact_mut(rows * cols).enumerate() {
        augmented.augmented_image(i, 0, image);
    }
    println!(
        "augmenting the {} images one by one: {:.3} s ({:.3} s on the CPU, {:.2} us an image)",
        data.train.len(),
        start.elapsed().as_secs_f64(),
        thread_cpu_seconds() - cpu,
        (thread_cpu_seconds() - cpu) * 1e6 / data.train.len() as f64
    );
    let made = Dataset::new(pixels, data.train.labels().to_vec(), rows, cols, data.train.n_classes())?;
    println!(
        "ink: {:.3} of the pixels of the plain images, {:.3} of the augmented ones",
        data.train.density(),
        made.density()
    );
    let config = TrainConfig {
        sizes: vec![784, 800, 10],
        optimizer: OptimizerConfig::from_name("nesterov").ok_or("no optimiser named nesterov")?,
        learning_rate: 0.05,
        batch_size: 128,
        epochs: 4 * rounds + 1,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len())?;
    trainer.set_threads(threads);
    trainer.pool().pin_caller();
    trainer.train_epoch(&data.train, |_, _, _| {})?;
    let before = Before(&augmented);
    let variants: [(&str, &dyn Examples); 5] = [
        ("plain", &data.train),
        ("augmented beforehand", &made),
        ("augmented, beside", &augmented),
        ("augmented, on the pool", &before),
        ("augmented, serial", &serial),
    ];
    let mut seconds = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for ((name, source), times) in variants.iter().zip(&mut seconds) {
            let stats = trainer.train_epoch(*source, |_, _, _| {})?;
            println!("round {round}: {name:>22} {:.3} s", stats.seconds);
            times.push(stats.seconds);
        }
    }
    let summary = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        (times[0], times[times.len() / 2])
    };
    let (plain_min, plain_median) = summary(&mut seconds[0]);
    for ((name, _), times) in variants.iter().zip(&mut seconds) {
        let (min, median) = summary(times);
        println!(
            "{name:>22}: least {min:.3} s (+{:.1}%), median {median:.3} s (+{:.1}%), {threads} threads",
            100.0 * (min / plain_min - 1.0),
            100.0 * (median / plain_median - 1.0)
        );
    }
    Ok(())
}
