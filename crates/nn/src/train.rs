//! The training loop: epochs of reshuffled mini-batches, each a forward pass,
//! a backward pass and an SGD step.

use crate::{Gradients, Input, Mlp, NnError, Result, SPARSE_INPUT_DENSITY, Sgd, Workspace};
use backprop_data::{Batcher, Dataset};
use backprop_tensor::{Rng, ThreadPool};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// What to train and how: the seed's recipe by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Layer sizes, input first: `[784, 128, 10]`.
    pub sizes: Vec<usize>,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Examples per mini-batch; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// SGD step size `eta`.
    pub learning_rate: f32,
    /// Seeds the weight initialisation and the per-epoch shuffles.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sizes: vec![784, 128, 10],
            epochs: 10,
            batch_size: 64,
            learning_rate: 0.5,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Checks every field's range.
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(NnError::InvalidConfig { field, reason });
        if self.sizes.len() < 2 || self.sizes.contains(&0) {
            return bad(
                "layer sizes",
                format!("need at least two sizes, all positive; got {:?}", self.sizes),
            );
        }
        let n_parameters = self.sizes.windows(2).try_fold(0usize, |total, p| {
            p[0].checked_mul(p[1])?.checked_add(p[1])?.checked_add(total)
        });
        if n_parameters.is_none_or(|n| n > MAX_PARAMETERS) {
            return bad(
                "layer sizes",
                format!(
                    "{:?} make more than {MAX_PARAMETERS} parameters (1 GiB of weights)",
                    self.sizes
                ),
            );
        }
        if self.batch_size == 0 {
            return bad("batch size", "must be at least 1, got 0".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning rate",
                format!("must be a positive number, got {}", self.learning_rate),
            );
        }
        Ok(())
    }

    /// Checks that the network fits the data: inputs and classes agree.
    ///
    /// # Errors
    /// [`NnError::DataMismatch`].
    pub fn check_data(&self, data: &Dataset) -> Result<()> {
        check_fits(&self.sizes, data)
    }
}

/// Checks that a network with `sizes` takes `data`'s inputs and classes.
pub(crate) fn check_fits(sizes: &[usize], data: &Dataset) -> Result<()> {
    let (inputs, classes) = (sizes[0], sizes[sizes.len() - 1]);
    if inputs != data.n_features() {
        return Err(NnError::DataMismatch {
            what: "input features",
            expected: inputs,
            found: data.n_features(),
        });
    }
    if classes != data.n_classes() {
        return Err(NnError::DataMismatch {
            what: "classes",
            expected: classes,
            found: data.n_classes(),
        });
    }
    Ok(())
}

/// The most parameters a network may have: 2^28 `f32`s, 1 GiB, the most a
/// checkpoint's payload may hold.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// What one epoch of training measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch just finished, counted from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training examples, as seen during
    /// the epoch (each batch before its update).
    pub train_loss: f64,
    /// Wall-clock seconds spent training (evaluation excluded).
    pub seconds: f64,
}

/// A training run in progress: the model and everything needed to continue.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    model: Mlp,
    optimizer: Sgd,
    batcher: Batcher,
    workspace: Workspace,
    grads: Gradients,
    epoch: usize,
    step: u64,
    /// Whether training batches are compressed (mostly-zero inputs), decided
    /// once from the data's density.
    sparse_input: Option<bool>,
}

/// Offset between the initialisation seed and the shuffle seed, so the two
/// streams never overlap.
const SHUFFLE_STREAM: u64 = 0x5348_5546_464c_4521;

impl Trainer {
    /// A fresh run: He-initialised weights from `config.seed`, ready for
    /// `n_train` training examples.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn new(config: TrainConfig, n_train: usize) -> Result<Self> {
        config.validate()?;
        let model = Mlp::new(&config.sizes, &mut Rng::seed_from_u64(config.seed))?;
        let shuffle_rng = Rng::seed_from_u64(config.seed ^ SHUFFLE_STREAM);
        Self::resume(config, model, shuffle_rng, 0, 0, n_train)
    }

    /// Continues a run from its parts: the model, the shuffle generator as it
    /// was after `epoch` epochs, and the number of steps taken.
    ///
    /// # Errors
    /// An invalid `config`, or a model whose sizes differ from it.
    pub fn resume(
        config: TrainConfig,
        model: Mlp,
        shuffle_rng: Rng,
        epoch: usize,
        step: u64,
        n_train: usize,
    ) -> Result<Self> {
        config.validate()?;
        if model.sizes() != config.sizes {
            return Err(NnError::InvalidConfig {
                field: "layer sizes",
                reason: format!(
                    "the model has {:?} but the configuration says {:?}",
                    model.sizes(),
                    config.sizes
                ),
            });
        }
        let max_batch = config.batch_size.min(n_train.max(1));
        let batcher = Batcher::new(n_train, config.sizes[0], max_batch, shuffle_rng);
        Ok(Self {
            optimizer: Sgd::new(config.learning_rate),
            workspace: Workspace::new(&config.sizes, max_batch),
            grads: Gradients::new(&model),
            batcher,
            model,
            config,
            epoch,
            step,
            sparse_input: None,
        })
    }

    /// Trains one epoch on `data`: a fresh shuffle, then every mini-batch in
    /// order, the final partial one included. `on_batch(done, total)` is
    /// called after each batch (for progress bars).
    ///
    /// # Errors
    /// [`NnError::DataMismatch`] when the data does not fit the network, or
    /// has another number of examples than the trainer was built for.
    pub fn train_epoch(&mut self, data: &Dataset, mut on_batch: impl FnMut(usize, usize)) -> Result<EpochStats> {
        self.config.check_data(data)?;
        if data.len() != self.batcher.n_examples() {
            return Err(NnError::DataMismatch {
                what: "training examples",
                expected: self.batcher.n_examples(),
                found: data.len(),
            });
        }
        let start = Instant::now();
        self.batcher.start_epoch();
        let n_batches = self.batcher.n_batches();
        let mut loss_sum = 0.0f64;
        let sparse = *self
            .sparse_input
            .get_or_insert_with(|| data.density() < SPARSE_INPUT_DENSITY);
        for i in 0..n_batches {
            let (x, labels) = if sparse {
                let (x, labels) = self.batcher.batch_sparse(data, i);
                (Input::Sparse(x), labels)
            } else {
                let (x, labels) = self.batcher.batch(data, i);
                (Input::Dense(x), labels)
            };
            let loss = self
                .model
                .backward_input(x, labels, &mut self.workspace, &mut self.grads);
            loss_sum += f64::from(loss) * labels.len() as f64;
            self.optimizer
                .step_in(self.workspace.pool(), &mut self.model, &self.grads);
            self.step += 1;
            on_batch(i + 1, n_batches);
        }
        self.epoch += 1;
        Ok(EpochStats {
            epoch: self.epoch,
            train_loss: loss_sum / data.len().max(1) as f64,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Computes with `threads` threads from now on (`0`: one per CPU). The
    /// weights do not depend on it: every product splits its work by output
    /// and sums in a fixed order.
    pub fn set_threads(&mut self, threads: usize) {
        let pool = Arc::new(ThreadPool::new(threads));
        self.workspace = Workspace::with_pool(&self.config.sizes, self.workspace.max_batch(), pool);
    }

    /// The threads training computes with, to share with evaluation.
    pub fn pool(&self) -> &Arc<ThreadPool> {
        self.workspace.pool()
    }

    /// The configuration of this run.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Extends (or shortens) the planned number of epochs.
    pub fn set_epochs(&mut self, epochs: usize) {
        self.config.epochs = epochs;
    }

    /// The model as trained so far.
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// SGD steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The shuffle generator's state: with the model, the epoch and the step
    /// it is all [`Trainer::resume`] needs.
    pub fn shuffle_rng(&self) -> Rng {
        Rng::from_state(self.batcher.rng_state())
    }

    /// `true` once `config.epochs` epochs are done.
    pub fn is_done(&self) -> bool {
        self.epoch >= self.config.epochs
    }
}
