//! The nn core of backprop: a multilayer perceptron of ReLU layers trained by
//! backpropagation and mini-batch SGD, with the maths visible line by line.
//!
//! The equations, each implemented once, where its label appears:
//!
//! | label | equation | implemented in |
//! |---|---|---|
//! | E1  | `Z(l) = A(l-1) W(l) + 1 b(l)^T` | [`Dense::forward`] |
//! | E2  | `A(l) = relu(Z(l))`; `P = softmax(Z(L))`, row max subtracted | [`Dense::forward`], [`softmax_cross_entropy`] |
//! | BP1 | `delta(L) = (P - Y) / B`, with `L = -(1/B) sum_i log P[i, y_i]` | [`softmax_cross_entropy`] |
//! | BP2 | `delta(l) = (delta(l+1) W(l+1)^T) * 1[Z(l) > 0]` | [`Mlp::backward`] |
//! | BP3 | `dL/db(l) = sum_i delta(l)[i, :]` | [`Dense::backward`] |
//! | BP4 | `dL/dW(l) = A(l-1)^T delta(l)` | [`Dense::backward`] |
//! | E6  | `theta <- theta - eta dL/dtheta` | [`Sgd::step`] |
//!
//! Shapes are batch-first: `A(l-1)` is `(B, n_in)`, `W(l)` is `(n_in, n_out)`,
//! `Z(l)`, `A(l)` and `delta(l)` are `(B, n_out)`.
//!
//! The main types: [`Mlp`] (the parameters), [`Workspace`] (every buffer a
//! step needs, allocated once), [`Gradients`], [`Sgd`], and [`Trainer`], which
//! runs epochs over a [`backprop_data::Dataset`] and is shared by the CLI, the
//! tests and the xtask. [`evaluate`] measures accuracy and mean loss.
#![deny(missing_docs)]

mod checkpoint;
mod codec;
mod dense;
mod error;
mod evaluate;
mod init;
mod loss;
mod mlp;
mod optim;
mod train;
mod workspace;

pub use checkpoint::{
    Activation, Architecture, CHECKPOINT_FORMAT_VERSION, CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, Checkpoint,
    DatasetFile, EpochRecord, LayerParameters, OptimizerState,
};
pub use dense::{Dense, Input, SPARSE_INPUT_DENSITY};
pub use error::{NnError, Result};
pub use evaluate::{Evaluation, evaluate, evaluate_in, evaluate_with};
pub use init::he_normal;
pub use loss::softmax_cross_entropy;
pub use mlp::{Gradients, Mlp};
pub use optim::Sgd;
pub use train::{EpochStats, MAX_PARAMETERS, TrainConfig, Trainer};
pub use workspace::Workspace;
