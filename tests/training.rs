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
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    let before = evaluate(trainer.model(), &data.test).unwrap();
    let mut losses = Vec::new();
    while !trainer.is_done() {
        losses.push(trainer.train_epoch(&data.train, |_, _| {}).unwrap().train_loss);
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
    assert!(after.accuracy > 0.95, "test accuracy {}", after.accuracy);
    assert_eq!(after.n, 200);
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
    let err = trainer.train_epoch(&data.train, |_, _| {}).unwrap_err();
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
