//! Runnable examples of `backprop-nn`; this library is empty and exists only
//! because Cargo needs a target to hang the examples on.
//!
//! Run one with `cargo run --release -p backprop-examples --example NAME`:
//!
//! - `blobs_adam`: three Gaussian blobs in 2-D, learned with Adam; the model
//!   is saved, loaded back and checked.
//! - `regression_mse`: `y = sin(x0) + 0.5 x1` fitted with tanh layers and MSE.
//! - `mnist_seed`: the seed recipe on MNIST (`[DIR] [EPOCHS]`, default
//!   `datasets/mnist`, 10 epochs).
//! - `optim_trace`: writes the optimiser trace that
//!   `xtask/scripts/optim_reference.py` replays in NumPy (`[OUT.json]`).
