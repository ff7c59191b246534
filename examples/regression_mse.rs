//! Regression with the mean squared error: `y = sin(x0) + 0.5 x1` for inputs
//! drawn uniformly from `[-3, 3]^2`, learned by a 2-32-32-1 network with tanh
//! hidden layers (Glorot-uniform weights, the tanh default) and Adam.
//!
//! Prints the training MSE every 20 epochs, then the test MSE (about 0.001)
//! and R² (about 0.999), and asserts that R² is above 0.9.
//!
//! Run: `cargo run --release -p backprop-examples --example regression_mse`

use backprop_nn::ndarray::Array2;
use backprop_nn::{Activation, Examples, Features, Loss, Metrics, OptimizerConfig, TrainConfig, Trainer, evaluate};
use backprop_tensor::Rng;

/// `n` random inputs and their targets `sin(x0) + 0.5 x1`.
fn dataset(n: usize, rng: &mut Rng) -> Result<Features, backprop_nn::NnError> {
    let x = Array2::from_shape_fn((n, 2), |_| (6.0 * rng.uniform_f64() - 3.0) as f32);
    let y = Array2::from_shape_fn((n, 1), |(i, _)| x[[i, 0]].sin() + 0.5 * x[[i, 1]]);
    Features::regression(x, y)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::seed_from_u64(11);
    let (train, test) = (dataset(2000, &mut rng)?, dataset(500, &mut rng)?);
    let config = TrainConfig {
        sizes: vec![2, 32, 32, 1],
        activation: Activation::Tanh,
        loss: Loss::MeanSquaredError,
        optimizer: OptimizerConfig::ADAM,
        learning_rate: 0.005,
        epochs: 100,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config, train.len())?;
    while !trainer.is_done() {
        let stats = trainer.train_epoch(&train, |_, _, _| {})?;
        if stats.epoch % 20 == 0 {
            println!("epoch {:>3}: train MSE {:.5}", stats.epoch, stats.train_loss);
        }
    }
    let Metrics::Regression { mse, r2 } = evaluate(trainer.model(), &test)?.metrics else {
        unreachable!("value targets are evaluated as a regression");
    };
    println!("test MSE {mse:.5}, R² {r2:.4}");
    assert!(r2 > 0.9, "R² {r2} should be above 0.9");
    Ok(())
}
