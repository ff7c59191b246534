//! End-to-end training on synthetic data.

use backprop_nn::{NnError, TrainConfig, Trainer, evaluate};
use backprop_tests::Synthetic;

#[test]
fn training_learns_a_separable_problem() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        n_train: 1000,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    // 1000 examples with batch 64 end in a partial batch of 40.
    let config = TrainConfig {
        sizes: vec![64, 32, 10],
        epochs: 5,
        batch_size: 64,
        learning_rate: 0.1,
        seed: 3,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    let before = evaluate(trainer.model(), &data.test).unwrap();
    let mut losses = Vec::new();
    while !trainer.is_done() {
        losses.push(trainer.train_epoch(&data.train, |_, _, _| {}).unwrap().train_loss);
    }
    let after = evaluate(trainer.model(), &data.test).unwrap();
    assert_eq!(trainer.step(), 5 * 16, "16 batches per epoch, the last one partial");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "train loss should fall every epoch: {losses:?}"
    );
    assert!(
        after.loss < before.loss / 4.0,
        "test loss {} -> {}",
        before.loss,
        after.loss
    );
    assert!(after.accuracy().unwrap() > 0.95, "test accuracy {:?}", after.accuracy());
    assert_eq!(after.n, 200);
}

/// A batch-normalised network learns the same problem, and evaluation (with
/// the running averages) agrees with it: the test set is scored per row,
/// whatever the chunk it falls in.
#[test]
fn a_batch_normalised_network_learns_and_evaluates_per_row() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic {
        n_train: 1000,
        ..Synthetic::default()
    }
    .write_dir(dir.path(), false);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes: vec![64, 32, 16, 10],
        epochs: 5,
        batch_size: 64,
        learning_rate: 0.1,
        seed: 3,
        batch_norm: true,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    while !trainer.is_done() {
        trainer.train_epoch(&data.train, |_, _, _| {}).unwrap();
    }
    let after = evaluate(trainer.model(), &data.test).unwrap();
    assert!(after.accuracy().unwrap() > 0.95, "test accuracy {:?}", after.accuracy());
    // Evaluation mode: one row alone gives the outputs it gets in a batch.
    let x = ndarray::Array2::from_shape_fn((5, 64), |(i, j)| ((i * 64 + j) as f32 * 0.7).cos().abs());
    let batch = trainer.model().predict_outputs(x.view());
    let alone = trainer.model().predict_outputs(x.slice(ndarray::s![2..3, ..]));
    assert_eq!(batch.row(2), alone.row(0));
}

#[test]
fn data_that_does_not_fit_the_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes: vec![784, 16, 10],
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    let err = trainer.train_epoch(&data.train, |_, _, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::DataMismatch {
                expected: 784,
                found: 64,
                ..
            }
        ),
        "{err}"
    );
    let config = TrainConfig {
        sizes: vec![64, 16, 3],
        ..TrainConfig::default()
    };
    let err = evaluate(
        &backprop_nn::Mlp::new(&config.sizes, &mut backprop_tensor::Rng::seed_from_u64(0)).unwrap(),
        &data.test,
    )
    .unwrap_err();
    assert!(err.to_string().contains("classes"), "{err}");
}

/// A user's own `f32` data, no IDX anywhere: two Gaussian blobs learned by
/// a tanh network with Adam, and a linear target learned with MSE.
#[test]
fn in_memory_features_train_for_classification_and_regression() {
    use backprop_nn::{Activation, Features, Loss, Metrics, OptimizerConfig};
    use backprop_tensor::Rng;
    let mut rng = Rng::seed_from_u64(5);
    let n = 400;
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let x = ndarray::Array2::from_shape_fn((n, 2), |(i, _)| {
        (if labels[i] == 0 { -1.5 } else { 1.5 }) + rng.normal() as f32 * 0.7
    });
    let blobs = Features::classification(x.clone(), labels, 2).unwrap();
    let config = TrainConfig {
        sizes: vec![2, 16, 2],
        activation: Activation::Tanh,
        optimizer: OptimizerConfig::ADAM,
        learning_rate: 0.01,
        batch_size: 32,
        epochs: 20,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, n).unwrap();
    while !trainer.is_done() {
        trainer.train_epoch(&blobs, |_, _, _| {}).unwrap();
    }
    let eval = evaluate(trainer.model(), &blobs).unwrap();
    assert!(eval.accuracy().unwrap() > 0.95, "{eval:?}");

    // y = 2 x0 - x1 + 0.5, learned by a 2-16-1 network with MSE.
    let y = ndarray::Array2::from_shape_fn((n, 1), |(i, _)| 2.0 * x[[i, 0]] - x[[i, 1]] + 0.5);
    let table = Features::regression(x, y).unwrap();
    let config = TrainConfig {
        sizes: vec![2, 16, 1],
        loss: Loss::MeanSquaredError,
        optimizer: OptimizerConfig::ADAM,
        learning_rate: 0.01,
        batch_size: 32,
        epochs: 60,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, n).unwrap();
    while !trainer.is_done() {
        trainer.train_epoch(&table, |_, _, _| {}).unwrap();
    }
    let Metrics::Regression { mse, r2 } = evaluate(trainer.model(), &table).unwrap().metrics else {
        panic!("regression metrics")
    };
    assert!(r2 > 0.98 && mse < 0.2, "mse {mse}, R² {r2}");
}
