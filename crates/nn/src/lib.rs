//! The nn core of backprop: multilayer perceptrons trained by
//! backpropagation, with the maths visible line by line.
//!
//! The equations, each implemented once, where its label appears:
//!
//! | label | equation | implemented in |
//! |---|---|---|
//! | E1  | `Z(l) = A(l-1) W(l) + 1 b(l)^T` | [`Dense::forward`] |
//! | E2  | `A(l) = f(Z(l))`; `P = softmax(Z(L))`, row max subtracted | [`Dense::forward`], [`Activation`], [`softmax_cross_entropy`] |
//! | BN  | `Y(l) = gamma (Z(l) - mu) / sqrt(var + eps) + beta` between E1 and E2, and its backward | [`BatchNorm`] |
//! | BP1 | `delta(L) = dL/dA(L)`: `(P - Y) / B` for cross-entropy, `2 (Y - T) / (B K)` for MSE | [`softmax_cross_entropy`], [`mean_squared_error`] |
//! | BP2 | `delta(l) = (delta(l+1) W(l+1)^T) * f'(Z(l))` | [`Mlp::backward_from_delta`] |
//! | BP3 | `dL/db(l) = sum_i delta(l)[i, :]` | [`Dense::backward`] |
//! | BP4 | `dL/dW(l) = A(l-1)^T delta(l)` | [`Dense::backward`] |
//! | E6  | `theta <- theta - eta dL/dtheta`, and its descendants | [`Sgd`], [`Momentum`], [`Adam`] |
//!
//! Shapes are batch-first: `A(l-1)` is `(B, n_in)`, `W(l)` is `(n_in, n_out)`,
//! `Z(l)`, `A(l)` and `delta(l)` are `(B, n_out)`.
//!
//! The main types: [`Mlp`] (the parameters), [`Workspace`] (every buffer a
//! step needs, allocated once), [`Gradients`], the [`Optimizer`]s, and
//! [`Trainer`], which runs epochs over any [`Examples`] source (an in-memory
//! [`Features`] table, or the IDX images of `backprop-data`). [`evaluate`]
//! measures accuracy and loss (or MSE and R²), and [`Checkpoint`] saves a
//! model or a whole run.
//!
//! ```
//! use backprop_nn::{Features, OptimizerConfig, TrainConfig, Trainer, evaluate};
//! use ndarray::Array2;
//! // XOR, learned by a 2-8-2 network with Adam.
//! let x = Array2::from_shape_vec((4, 2), vec![0., 0., 0., 1., 1., 0., 1., 1.]).unwrap();
//! let data = Features::classification(x, vec![0, 1, 1, 0], 2).unwrap();
//! let config = TrainConfig {
//!     sizes: vec![2, 8, 2],
//!     optimizer: OptimizerConfig::ADAM,
//!     learning_rate: 0.05,
//!     batch_size: 4,
//!     epochs: 300,
//!     ..TrainConfig::default()
//! };
//! let mut trainer = Trainer::new(config, 4).unwrap();
//! while !trainer.is_done() {
//!     trainer.train_epoch(&data, |_, _, _| {}).unwrap();
//! }
//! assert_eq!(evaluate(trainer.model(), &data).unwrap().accuracy(), Some(1.0));
//! ```
#![deny(missing_docs)]

mod activation;
mod adam;
pub mod atomic;
mod batch_norm;
mod batcher;
pub mod checkpoint;
mod codec;
mod dense;
mod early_stopping;
mod error;
mod evaluate;
mod examples;
mod features;
mod gradcheck;
mod init;
mod loss;
mod mlp;
mod momentum;
mod optim;
mod regularize;
mod schedule;
mod sgd;
mod subset;
mod thread_choice;
mod train;
mod workspace;

pub use activation::Activation;
pub use adam::Adam;
pub use batch_norm::BatchNorm;
pub use batcher::Batcher;
pub use checkpoint::{CHECKPOINT_FORMAT_VERSION, CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, Checkpoint};
pub use dense::{Dense, Input, SPARSE_INPUT_DENSITY};
pub use early_stopping::{EarlyStopping, Monitor, Verdict};
pub use error::{NnError, Result};
pub use evaluate::{Evaluation, Metrics, evaluate, evaluate_in, evaluate_with};
pub use examples::{Examples, TargetShape, Targets, TargetsMut};
pub use features::Features;
pub use gradcheck::{GradCheck, LayerError, check_gradients, gradcheck};
pub use init::{Init, he_normal};
pub use loss::{Loss, mean_squared_error, smoothed_cross_entropy, softmax_cross_entropy};
pub use mlp::{Gradients, Mlp};
pub use momentum::Momentum;
pub use optim::{Optimizer, OptimizerConfig, OptimizerState};
pub use regularize::{Dropout, apply_max_norm, clip_global_norm};
pub use schedule::Schedule;
pub use sgd::Sgd;
pub use subset::{Subset, split_validation};
pub use train::{EpochStats, MAX_EPOCHS, MAX_PARAMETERS, TrainConfig, TrainState, Trainer};
pub use workspace::Workspace;

/// The array crate the API speaks, re-exported so users need not pin it.
pub use ndarray;
