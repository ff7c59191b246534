//! The number of threads does not change the result: one, two and three
//! threads train bit-identical weights.

use backprop_nn::{Activation, Examples, Features, Loss, Mlp, OptimizerConfig, Targets, TrainConfig, Trainer};
use backprop_tests::{Synthetic, weight_bytes};
use ndarray::Array2;

fn train(sizes: Vec<usize>, side: usize, ink: f64, threads: usize) -> Vec<u8> {
    train_with(sizes, side, ink, threads, OptimizerConfig::default())
}

fn train_with(sizes: Vec<usize>, side: usize, ink: f64, threads: usize, optimizer: OptimizerConfig) -> Vec<u8> {
    let (_dir, data, config) = setup(sizes, side, ink, optimizer);
    run(config, &data.train, threads)
}

/// 500 synthetic images of `side x side` pixels with about `ink` of them
/// lit, in a directory that lives as long as the first value, and two
/// epochs of training on them in batches of 50.
fn setup(
    sizes: Vec<usize>,
    side: usize,
    ink: f64,
    optimizer: OptimizerConfig,
) -> (tempfile::TempDir, backprop_data::TrainTest, TrainConfig) {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        side,
        ink,
        n_train: 500,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes,
        epochs: 2,
        batch_size: 50,
        learning_rate: 0.01,
        seed: 9,
        optimizer,
        ..TrainConfig::default()
    };
    (dir, data, config)
}

fn run(config: TrainConfig, data: &dyn Examples, threads: usize) -> Vec<u8> {
    let mut trainer = Trainer::new(config, data.len()).unwrap();
    trainer.set_threads(threads);
    while !trainer.is_done() {
        trainer.train_epoch(data, |_, _, _| {}).unwrap();
    }
    weight_bytes(trainer.model())
}

/// Every optimiser, on both paths: 1, 2 and 3 threads give the same bits.
#[test]
fn every_optimizer_gives_the_same_weights_on_any_thread_count() {
    for name in ["momentum", "nesterov", "adam", "adamw"] {
        let optimizer = OptimizerConfig::from_name(name).unwrap();
        for (sizes, side, ink) in [(vec![256, 64, 10], 16, 0.25), (vec![36, 40, 20, 10], 6, 1.0)] {
            let one = train_with(sizes.clone(), side, ink, 1, optimizer);
            for threads in [2, 3] {
                assert!(
                    one == train_with(sizes.clone(), side, ink, threads, optimizer),
                    "{name}, {sizes:?}, {threads} threads"
                );
            }
        }
    }
}

/// Regression with every activation, MSE and AdamW: thread count changes
/// nothing.
#[test]
fn regression_with_every_activation_does_not_depend_on_threads() {
    let x = Array2::from_shape_fn((300, 24), |(i, j)| ((i * 24 + j) as f32 * 0.11).cos());
    let y = Array2::from_shape_fn((300, 3), |(i, j)| x[[i, j]] - 0.5 * x[[i, j + 5]]);
    let data = Features::regression(x, y).unwrap();
    for activation in Activation::ALL {
        let config = TrainConfig {
            sizes: vec![24, 40, 20, 3],
            activation,
            loss: Loss::MeanSquaredError,
            optimizer: OptimizerConfig::ADAMW,
            learning_rate: 0.01,
            batch_size: 50,
            epochs: 2,
            ..TrainConfig::default()
        };
        let one = run(config.clone(), &data, 1);
        assert!(one == run(config.clone(), &data, 2), "{activation}");
        assert!(one == run(config, &data, 3), "{activation}");
    }
}

/// Augmented training data (`backprop_data::Augmented`, the digits
/// preset): every example's distortion is seeded by the seed, the epoch and
/// the index alone, so 1, 2 and 3 threads train the same bits over two
/// epochs, on the sparse and on the dense path; and the augmentation does
/// change what is learnt.
/// A source that makes each batch just before its gather
/// (`Examples::prepare`, the gather itself) and nothing beside the step
/// before (`Examples::prepare_beside` left to its default).
struct NotBeside<'a>(&'a dyn backprop_nn::Examples);

impl backprop_nn::Examples for NotBeside<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn n_features(&self) -> usize {
        self.0.n_features()
    }
    fn target_shape(&self) -> backprop_nn::TargetShape {
        self.0.target_shape()
    }
    fn gather(&self, indices: &[u32], x: ndarray::ArrayViewMut2<'_, f32>, y: backprop_nn::TargetsMut<'_>) {
        self.0.gather(indices, x, y);
    }
    fn density(&self) -> Option<f32> {
        self.0.density()
    }
    fn gather_sparse(
        &self,
        indices: &[u32],
        x: &mut backprop_tensor::SparseRows,
        y: backprop_nn::TargetsMut<'_>,
    ) -> bool {
        self.0.gather_sparse(indices, x, y)
    }
    fn start_epoch(&self, epoch: usize) {
        self.0.start_epoch(epoch);
    }
    fn prepare(&self, indices: &[u32], pool: &backprop_tensor::ThreadPool) {
        self.0.prepare(indices, pool);
    }
}

#[test]
fn augmented_training_does_not_depend_on_threads() {
    use backprop_data::{Augment, Augmented};
    for (sizes, side, ink) in [(vec![256, 64, 10], 16, 0.25), (vec![36, 40, 20, 10], 6, 1.0)] {
        let dir = tempfile::tempdir().unwrap();
        Synthetic {
            side,
            ink,
            n_train: 500,
            ..Synthetic::default()
        }
        .write_dir(dir.path(), false);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        let config = TrainConfig {
            sizes: sizes.clone(),
            epochs: 2,
            batch_size: 50,
            learning_rate: 0.01,
            seed: 9,
            ..TrainConfig::default()
        };
        let augmented = Augmented::new(data.train.clone(), Augment::digits(), 3).unwrap();
        let one = run(config.clone(), &augmented, 1);
        for threads in [2, 3] {
            let again = Augmented::new(data.train.clone(), Augment::digits(), 3).unwrap();
            assert!(
                one == run(config.clone(), &again, threads),
                "{sizes:?}, {threads} threads"
            );
            // The trainer has the next batch distorted beside each step
            // (`Examples::prepare_beside`); without that, the same bits.
            let before = Augmented::new(data.train.clone(), Augment::digits(), 3).unwrap();
            assert!(
                one == run(config.clone(), &NotBeside(&before), threads),
                "{sizes:?}, {threads} threads, nothing made beside the steps"
            );
        }
        assert!(
            one != run(config, &data.train, 1),
            "{sizes:?}: augmentation changed nothing"
        );
    }
}

#[test]
fn sparse_path_weights_do_not_depend_on_threads() {
    let one = train(vec![256, 64, 10], 16, 0.25, 1);
    assert_eq!(one, train(vec![256, 64, 10], 16, 0.25, 2));
    assert_eq!(one, train(vec![256, 64, 10], 16, 0.25, 3));
}

/// A first layer whose weights outgrow L2 (784x512 floats, 1.6 MB), on
/// sparse images: the forward reads its copy in blocks of rows, each row's
/// sum resumed block after block, the other products take columns in
/// blocks outside their loop over rows, and 1, 2 and 3 threads still give
/// the same bits, with Adam.
#[test]
fn a_first_layer_past_the_cache_does_not_depend_on_threads() {
    let train = |threads| train_with(vec![784, 512, 10], 28, 0.25, threads, OptimizerConfig::ADAM);
    let one = train(1);
    assert!(one == train(2));
    assert!(one == train(3));
}

#[test]
fn sparse_batches_made_beside_the_step_give_the_weights_of_batches_gathered_in_turn() {
    let (_dir, data, config) = setup(vec![256, 64, 10], 16, 0.25, OptimizerConfig::default());
    for threads in [2, 3] {
        // The data set compresses each next batch beside the step
        // (`Dataset::prepare_beside`); the wrapper leaves that out.
        assert!(
            run(config.clone(), &data.train, threads) == run(config.clone(), &NotBeside(&data.train), threads),
            "{threads} threads"
        );
    }
}

#[test]
fn dense_path_weights_do_not_depend_on_threads() {
    // Images with ink everywhere are dense; a batch of 50 rows is split
    // between threads in tiles of 4 rows, and 40 and 20 columns take full
    // and partial 16-column tiles.
    let one = train(vec![36, 40, 20, 10], 6, 1.0, 1);
    assert_eq!(one, train(vec![36, 40, 20, 10], 6, 1.0, 2));
    assert_eq!(one, train(vec![36, 40, 20, 10], 6, 1.0, 3));
}

#[test]
fn evaluation_does_not_depend_on_threads() {
    use backprop_nn::evaluate_in;
    use backprop_tensor::{Rng, ThreadPool};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    // 1000 test images: several evaluation chunks, the last one partial.
    Synthetic {
        side: 16,
        n_test: 1000,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let model = Mlp::new(&[256, 32, 10], &mut Rng::seed_from_u64(4)).unwrap();
    let run = |threads: usize, test: &backprop_data::Dataset| {
        let mut seen = Vec::new();
        let eval = evaluate_in(
            &Arc::new(ThreadPool::new(threads)),
            &model,
            test,
            |first, logits, targets| {
                let Targets::Classes(labels) = targets else {
                    panic!("classes")
                };
                seen.push((
                    first,
                    logits.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    labels.to_vec(),
                ));
            },
        )
        .unwrap();
        (eval, seen)
    };
    let (one, one_chunks) = run(1, &data.test);
    assert_eq!(one.n, 1000);
    assert_eq!(one_chunks.iter().map(|c| c.2.len()).sum::<usize>(), 1000);
    for threads in [2, 3] {
        // The test set compressed by the first evaluation on 1 thread, and
        // a fresh copy that the pool compresses first.
        let fresh = backprop_data::load_dir(dir.path()).unwrap().test;
        for (what, test) in [("reused", &data.test), ("fresh", &fresh)] {
            let (many, many_chunks) = run(threads, test);
            assert_eq!(one, many, "{threads} threads, {what}");
            assert!(one_chunks == many_chunks, "{threads} threads, {what}: chunks differ");
        }
    }
}

/// Dropout, a schedule, label smoothing, clipping and max-norm together:
/// 1, 2 and 3 threads give the same bits.
#[test]
fn the_toolkit_does_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        side: 16,
        n_train: 500,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes: vec![256, 64, 32, 10],
        epochs: 2,
        batch_size: 50,
        learning_rate: 0.01,
        optimizer: OptimizerConfig::ADAMW,
        dropout: vec![0.5],
        schedule: backprop_nn::Schedule::OneCycle,
        label_smoothing: 0.1,
        clip_norm: Some(0.5),
        max_norm: Some(2.0),
        ..TrainConfig::default()
    };
    let one = run(config.clone(), &data.train, 1);
    assert!(one == run(config.clone(), &data.train, 2));
    assert!(one == run(config, &data.train, 3));
}

/// Batch normalisation with dropout, a one-cycle schedule and augmented
/// images, all at once: 1, 2 and 3 threads give the same bits (running
/// averages included), on the sparse and on the dense path.
#[test]
fn batch_norm_with_the_toolkit_and_augmentation_does_not_depend_on_threads() {
    use backprop_data::{Augment, Augmented};
    for (side, ink) in [(16, 0.25), (8, 1.0)] {
        let dir = tempfile::tempdir().unwrap();
        Synthetic {
            side,
            ink,
            n_train: 400,
            ..Synthetic::default()
        }
        .write_dir(dir.path(), false);
        let data = backprop_data::load_dir(dir.path()).unwrap();
        let augmented = Augmented::new(data.train, Augment::digits(), 3).unwrap();
        let config = TrainConfig {
            sizes: vec![side * side, 48, 24, 10],
            epochs: 2,
            batch_size: 50,
            learning_rate: 0.01,
            optimizer: OptimizerConfig::ADAMW,
            dropout: vec![0.3],
            schedule: backprop_nn::Schedule::OneCycle,
            batch_norm: true,
            ..TrainConfig::default()
        };
        let one = run(config.clone(), &augmented, 1);
        assert!(one == run(config.clone(), &augmented, 2), "{side}x{side}");
        assert!(one == run(config.clone(), &augmented, 3), "{side}x{side}");
        // Batch normalisation changes the dense layers' weights (which
        // come first in the bytes), so the test is not vacuous.
        let plain = run(
            TrainConfig {
                batch_norm: false,
                ..config
            },
            &augmented,
            1,
        );
        assert!(one[..plain.len()] != plain[..], "{side}x{side}");
    }
}

/// A network wide enough for the packed AVX-512 kernel (every product of
/// 2^18 multiply-adds and more), with Adam, dropout and batch
/// normalisation, on dense images: 1, 2 and 3 threads give the same bits.
#[test]
fn a_wide_network_with_adam_dropout_and_batch_norm_does_not_depend_on_threads() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        side: 16,
        ink: 1.0,
        n_train: 300,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes: vec![256, 512, 512, 10],
        epochs: 1,
        batch_size: 64,
        learning_rate: 0.001,
        optimizer: OptimizerConfig::ADAM,
        dropout: vec![0.3],
        batch_norm: true,
        ..TrainConfig::default()
    };
    let one = run(config.clone(), &data.train, 1);
    assert!(one == run(config.clone(), &data.train, 2));
    assert!(one == run(config, &data.train, 3));
}
