//! Reproducibility: the same seed gives bit-identical weights.

use backprop_nn::{TrainConfig, Trainer};
use backprop_tests::{Synthetic, weight_bytes};

fn train(seed: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    Synthetic::default().write_dir(dir.path(), true);
    let data = backprop_data::load_dir(dir.path()).unwrap();
    let config = TrainConfig {
        sizes: vec![64, 16, 10],
        epochs: 3,
        batch_size: 32,
        learning_rate: 0.1,
        seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, data.train.len()).unwrap();
    while !trainer.is_done() {
        trainer.train_epoch(&data.train, |_, _, _| {}).unwrap();
    }
    weight_bytes(trainer.model())
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    assert_eq!(train(7), train(7));
}

#[test]
fn different_seeds_give_different_weights() {
    assert_ne!(train(7), train(8));
}
