//! The records a checkpoint holds. These types are the file format: bincode
//! encodes their fields by position, so they never change. A new field or
//! variant means new record types and a new format version, with a
//! conversion from the old one (as `v1.rs` converts format 1 and `v2.rs`
//! format 2). Format 3 added [`BatchNormRecord`] and the checkpoint's
//! `batch_norm` list; every other type here is format 2's, unchanged.

use backprop_tensor::RngState;
use serde::{Deserialize, Serialize};

/// A layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActivationRecord {
    /// `max(0, z)`.
    Relu,
    /// Leaky ReLU with this negative slope.
    LeakyRelu(f32),
    /// `tanh(z)`.
    Tanh,
    /// The logistic function.
    Sigmoid,
    /// GELU, tanh form.
    Gelu,
    /// `z`.
    Identity,
}

/// A weight initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitRecord {
    /// `N(0, 2 / n_in)`.
    HeNormal,
    /// `U(-a, a)`, `a = sqrt(6 / (n_in + n_out))`.
    GlorotUniform,
    /// `N(0, 2 / (n_in + n_out))`.
    GlorotNormal,
}

/// A loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossRecord {
    /// Softmax cross-entropy against class indices.
    CrossEntropy,
    /// Mean squared error against values.
    MeanSquaredError,
}

/// One dense layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// `(n_in, n_out)`.
    pub shape: (u64, u64),
    /// `W`, `n_in * n_out` values, row-major: `weight[i * n_out + j]`
    /// connects input `i` to output `j`.
    pub weight: Vec<f32>,
    /// `b`, `n_out` values.
    pub bias: Vec<f32>,
    /// `f`, applied to `Z`.
    pub activation: ActivationRecord,
}

/// A hidden layer's batch normalisation (format 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNormRecord {
    /// `gamma`, the learned scale, `n_out` values.
    pub gamma: Vec<f32>,
    /// `beta`, the learned shift, `n_out` values.
    pub beta: Vec<f32>,
    /// The running mean of the pre-activations, `n_out` values.
    pub running_mean: Vec<f32>,
    /// The running (unbiased) variance, `n_out` values.
    pub running_var: Vec<f32>,
    /// The weight of each batch's statistics in the running averages.
    pub momentum: f32,
    /// Added to the variance before the square root.
    pub eps: f32,
}

/// An optimiser with its hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerRecord {
    /// Plain SGD.
    Sgd {
        /// L2 penalty.
        weight_decay: f32,
    },
    /// SGD with momentum.
    Momentum {
        /// `mu`.
        momentum: f32,
        /// Nesterov's form.
        nesterov: bool,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// Adam or AdamW.
    Adam {
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Added to the root of the second moment.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// AdamW (decoupled decay).
        decoupled: bool,
    },
}

/// Where a training run stands, and how it trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The hidden layers' activation.
    pub activation: ActivationRecord,
    /// How the weights were drawn.
    pub init: InitRecord,
    /// The optimiser.
    pub optimizer: OptimizerRecord,
    /// The learning rate.
    pub learning_rate: f32,
    /// Planned epochs in all.
    pub epochs: u64,
    /// Examples per mini-batch.
    pub batch_size: u64,
    /// The run's seed.
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimiser steps taken.
    pub step: u64,
    /// The shuffle generator after `epoch` epochs.
    pub shuffle_rng: RngState,
    /// The optimiser's step count (Adam's `t`).
    pub optimizer_step: u64,
    /// The optimiser's state slots: `[slot][tensor][element]`.
    #[serde(deserialize_with = "super::bounded::slots")]
    pub optimizer_slots: Vec<Vec<Vec<f32>>>,
    /// The learning-rate schedule.
    pub schedule: ScheduleRecord,
    /// Steps of linear warmup.
    pub warmup_steps: u64,
    /// Dropout rates as given: none, one for every hidden layer, or one per
    /// hidden layer.
    #[serde(deserialize_with = "super::bounded::layers")]
    pub dropout: Vec<f32>,
    /// The dropout generator after `step` steps.
    pub dropout_rng: RngState,
    /// Label smoothing for cross-entropy.
    pub label_smoothing: f32,
    /// Gradient clipping by global norm.
    pub clip_norm: Option<f32>,
    /// The max-norm constraint.
    pub max_norm: Option<f32>,
    /// Examples of the training set held out for validation (chosen by the
    /// seed), 0 for none.
    pub validation: u64,
    /// Early stopping and where it stands.
    pub early_stopping: Option<EarlyStoppingRecord>,
    /// The data augmentation, as its specification (empty: none).
    pub augment: String,
}

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ScheduleRecord {
    /// The base rate throughout.
    Constant,
    /// Decay by `factor` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: u64,
        /// The factor.
        factor: f32,
    },
    /// Decay by `gamma` per epoch.
    Exponential {
        /// The factor per epoch.
        gamma: f32,
    },
    /// Cosine annealing to `floor` times the base rate.
    Cosine {
        /// The final fraction.
        floor: f32,
    },
    /// Smith's one-cycle policy.
    OneCycle,
}

/// The metric early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorRecord {
    /// Validation loss.
    Loss,
    /// Validation accuracy.
    Accuracy,
}

/// Early stopping's settings and state.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingRecord {
    /// The watched metric.
    pub monitor: MonitorRecord,
    /// Epochs without improvement tolerated.
    pub patience: u64,
    /// The least change that counts.
    pub min_delta: f64,
    /// The best epoch so far (0: none yet).
    pub best_epoch: u64,
    /// Its value, as a quantity to minimise (accuracy negated).
    pub best_value: f64,
    /// Epochs since the best.
    pub waited: u64,
}

/// Metrics on one data split after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy in `[0, 1]`, for classifiers.
    pub accuracy: Option<f64>,
    /// R², for regression.
    pub r2: Option<f64>,
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: u64,
    /// Mean training loss seen during the epoch.
    pub train_loss: f64,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f32,
    /// Seconds spent training (evaluation excluded).
    pub seconds: f64,
    /// On held-out training data, when there is a validation split.
    pub validation: Option<MetricsRecord>,
    /// On the test set, when it was measured.
    pub test: Option<MetricsRecord>,
}

/// A data file and the SHA-256 of its (decompressed) content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFileRecord {
    /// The standard name (`train-images-idx3-ubyte`) or the path given.
    pub name: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

/// What the model was trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataRecord {
    /// Not recorded (a model trained in one's own loop).
    Unknown,
    /// IDX image files.
    Idx {
        /// The four standard files.
        #[serde(deserialize_with = "super::bounded::columns")]
        files: Vec<DataFileRecord>,
    },
    /// A CSV table.
    Csv {
        /// The training file.
        train: DataFileRecord,
        /// The test file, when one was given.
        test: Option<DataFileRecord>,
        /// The target column.
        target: String,
        /// The feature columns, in order.
        #[serde(deserialize_with = "super::bounded::columns")]
        features: Vec<String>,
    },
}

/// `x <- (x - mean) / scale`, per input feature, applied before the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizationRecord {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature scale (standard deviation, 1 where it was 0).
    pub scale: Vec<f32>,
}
