//! Classification of in-memory data with Adam, end to end in under 30 lines:
//! three Gaussian blobs in 2-D (drawn with `backprop_tensor::Rng`), a 2-16-3
//! network trained with Adam, its test accuracy, and a save/load round trip.
//!
//! Trains 10 epochs of batches of 64 (the defaults) at learning rate 0.05.
//! Asserts that the test accuracy is above 0.9, so running this in CI
//! catches regressions; saves the model with `Mlp::save` to the system temp
//! directory, loads it back with `Mlp::load` and asserts that it predicts
//! exactly the same probabilities; then prints one line, e.g.
//! `test accuracy 0.9767; saved, loaded back: same predictions` (about 0.97:
//! the blobs overlap a little).
//!
//! Run: `cargo run --release -p backprop-examples --example blobs_adam`

use backprop_nn::{Features, Loss, Mlp, OptimizerConfig, TrainConfig, Trainer, evaluate, ndarray::Array2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = backprop_tensor::Rng::seed_from_u64(7);
    // `n` points, class i % 3, around the corners of a triangle, spread 0.8.
    let mut blobs = |n: usize| {
        let centres = [[0.0, 2.0], [-1.7, -1.0], [1.7, -1.0]];
        let x = Array2::from_shape_fn((n, 2), |(i, j)| (centres[i % 3][j] + 0.8 * rng.normal()) as f32);
        Features::classification(x, (0..n).map(|i| i % 3).collect(), 3)
    };
    let (train, test) = (blobs(600)?, blobs(300)?);
    let config = TrainConfig {
        sizes: vec![2, 16, 3],
        optimizer: OptimizerConfig::ADAM,
        learning_rate: 0.05,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, 600)?;
    while !trainer.is_done() {
        trainer.train_epoch(&train, |_, _, _| {})?;
    }
    let accuracy = evaluate(trainer.model(), &test)?.accuracy().unwrap_or(0.0);
    assert!(accuracy > 0.9, "test accuracy {accuracy} should be above 0.9");
    // Save, load back, and check that the predictions are the same bits.
    let path = std::env::temp_dir().join(format!("backprop-blobs-{}.ckpt", std::process::id()));
    trainer.model().save(&path, Loss::CrossEntropy)?;
    let loaded = Mlp::load(&path)?;
    assert_eq!(loaded.predict_proba(test.x()), trainer.model().predict_proba(test.x()));
    std::fs::remove_file(&path)?;
    println!("test accuracy {accuracy:.4}; saved, loaded back: same predictions");
    Ok(())
}
