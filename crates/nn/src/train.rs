//! The training loop: epochs of reshuffled mini-batches, each a forward
//! pass, the loss, a backward pass and an optimiser step.

use crate::regularize::{apply_max_norm, clip_global_norm};
use crate::thread_choice::ThreadChoice;
use crate::{
    Activation, Batcher, Dropout, Examples, Gradients, Init, Loss, Mlp, NnError, Optimizer, OptimizerConfig,
    OptimizerState, Result, SPARSE_INPUT_DENSITY, Schedule, TargetShape, Targets, Workspace,
};
use backprop_tensor::{Rng, ThreadPool};
use std::sync::Arc;
use std::time::Instant;

/// What to train and how: the seed's recipe by default (784-128-10, ReLU,
/// He, cross-entropy, SGD with learning rate 0.5, batch 64, 10 epochs, seed
/// 42).
///
/// This is the live configuration; checkpoints store their own record of
/// it (see the `checkpoint` module), so adding a field here never changes
/// the file format.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Layer sizes, input first: `[784, 128, 10]`.
    pub sizes: Vec<usize>,
    /// The activation of every hidden layer (the output layer's is the
    /// identity).
    pub activation: Activation,
    /// How weights are drawn; `None` picks the activation's default
    /// ([`Activation::default_init`]).
    pub init: Option<Init>,
    /// The loss: cross-entropy against class indices, or MSE against values.
    pub loss: Loss,
    /// The optimiser and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// The step size `eta`.
    pub learning_rate: f32,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Examples per mini-batch; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Seeds the weight initialisation, the per-epoch shuffles and the
    /// dropout masks.
    pub seed: u64,
    /// How the learning rate changes step by step.
    pub schedule: Schedule,
    /// Steps of linear warmup before the schedule.
    pub warmup_steps: u64,
    /// Dropout rate of each hidden layer (empty: none); one rate is used for
    /// every hidden layer.
    pub dropout: Vec<f32>,
    /// Label smoothing for cross-entropy, in `[0, 1)`.
    pub label_smoothing: f32,
    /// Gradient clipping by global norm.
    pub clip_norm: Option<f32>,
    /// A max-norm constraint on every unit's incoming weights.
    pub max_norm: Option<f32>,
    /// Batch normalisation on every hidden layer ([`crate::BatchNorm`], with
    /// PyTorch's momentum 0.1 and eps 1e-5).
    pub batch_norm: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sizes: vec![784, 128, 10],
            activation: Activation::Relu,
            init: None,
            loss: Loss::CrossEntropy,
            optimizer: OptimizerConfig::default(),
            learning_rate: 0.5,
            epochs: 10,
            batch_size: 64,
            seed: 42,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            dropout: Vec::new(),
            label_smoothing: 0.0,
            clip_norm: None,
            max_norm: None,
            batch_norm: false,
        }
    }
}

/// The most parameters a network may have: 2^28 `f32`s (1 GiB). With the
/// two state slots of Adam, a checkpoint then holds 3 GiB of numbers, under
/// the codec's 4 GiB payload limit, so whatever trains can be saved.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The most epochs a run may plan (bounds the history a checkpoint keeps).
pub const MAX_EPOCHS: usize = 1_000_000;

impl TrainConfig {
    /// The initialisation used: [`TrainConfig::init`], or the activation's
    /// default.
    pub fn resolved_init(&self) -> Init {
        self.init.unwrap_or_else(|| self.activation.default_init())
    }

    /// What the targets must be: classes for cross-entropy, values for MSE,
    /// as many as the output layer is wide.
    pub fn target_shape(&self) -> TargetShape {
        let n = self.sizes.last().copied().unwrap_or(0);
        if self.loss.is_classification() {
            TargetShape::Classes(n)
        } else {
            TargetShape::Values(n)
        }
    }

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
        // Batch normalisation adds gamma, beta and two running averages per
        // hidden unit, counted here so that a checkpoint still fits.
        let per_unit = if self.batch_norm { 5 } else { 1 };
        let last = self.sizes.len() - 2;
        let n_parameters = self.sizes.windows(2).enumerate().try_fold(0usize, |total, (l, p)| {
            let unit = if l < last { per_unit } else { 1 };
            p[0].checked_mul(p[1])?
                .checked_add(p[1].checked_mul(unit)?)?
                .checked_add(total)
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
        if self.epochs > MAX_EPOCHS {
            return bad("epochs", format!("must be at most {MAX_EPOCHS}, got {}", self.epochs));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning rate",
                format!("must be a positive number, got {}", self.learning_rate),
            );
        }
        if let Activation::LeakyRelu { slope } = self.activation
            && !slope.is_finite()
        {
            return bad("activation", format!("leaky-relu slope must be finite, got {slope}"));
        }
        if self.loss.is_classification() && self.sizes[self.sizes.len() - 1] < 2 {
            return bad("layer sizes", "a classifier needs at least 2 outputs".into());
        }
        let n_hidden = self.sizes.len() - 2;
        if self.batch_norm && n_hidden == 0 {
            return bad(
                "batch norm",
                "normalises hidden layers, and this network has none".into(),
            );
        }
        if !(self.dropout.is_empty() || self.dropout.len() == 1 || self.dropout.len() == n_hidden) {
            return bad(
                "dropout",
                format!(
                    "{} rates for {n_hidden} hidden layers; give one, or one per hidden layer",
                    self.dropout.len()
                ),
            );
        }
        if let Some(p) = self.dropout.iter().find(|p| !(0.0..1.0).contains(*p)) {
            return bad("dropout", format!("rates must be in [0, 1), got {p}"));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) || (self.label_smoothing > 0.0 && !self.loss.is_classification())
        {
            return bad(
                "label smoothing",
                format!(
                    "must be in [0, 1), and only for cross-entropy; got {}",
                    self.label_smoothing
                ),
            );
        }
        for (field, value) in [("clip norm", self.clip_norm), ("max norm", self.max_norm)] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return bad(field, format!("must be a positive number, got {v}"));
            }
        }
        self.schedule.validate()?;
        self.optimizer.validate()
    }

    /// The dropout rate of each hidden layer: `dropout` with one rate
    /// repeated for every layer, or zeros.
    pub fn dropout_rates(&self) -> Vec<f32> {
        let n_hidden = self.sizes.len().saturating_sub(2);
        match self.dropout.as_slice() {
            [] => vec![0.0; n_hidden],
            [p] => vec![*p; n_hidden],
            rates => rates.to_vec(),
        }
    }

    /// Checks that the network fits the data: inputs and targets agree.
    ///
    /// # Errors
    /// [`NnError::DataMismatch`].
    pub fn check_data(&self, data: &dyn Examples) -> Result<()> {
        check_fits(&self.sizes, self.target_shape(), data)
    }
}

/// Checks that a network with `sizes` and targets `target` takes `data`.
pub(crate) fn check_fits(sizes: &[usize], target: TargetShape, data: &dyn Examples) -> Result<()> {
    if sizes[0] != data.n_features() {
        return Err(NnError::DataMismatch {
            what: "input features",
            expected: sizes[0],
            found: data.n_features(),
        });
    }
    match (target, data.target_shape()) {
        (TargetShape::Classes(a), TargetShape::Classes(b)) if a != b => Err(NnError::DataMismatch {
            what: "classes",
            expected: a,
            found: b,
        }),
        (TargetShape::Values(a), TargetShape::Values(b)) if a != b => Err(NnError::DataMismatch {
            what: "target values",
            expected: a,
            found: b,
        }),
        (TargetShape::Classes(_), TargetShape::Values(_)) => Err(NnError::InvalidConfig {
            field: "loss",
            reason: "cross-entropy needs class labels, but the data has value targets (use mse)".into(),
        }),
        (TargetShape::Values(_), TargetShape::Classes(_)) => Err(NnError::InvalidConfig {
            field: "loss",
            reason: "mse needs value targets, but the data has class labels (use cross-entropy)".into(),
        }),
        _ => Ok(()),
    }
}

/// What one epoch of training measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// The epoch just finished, counted from 1.
    pub epoch: usize,
    /// Mean loss over the epoch's training examples, as seen during the
    /// epoch (each batch before its update).
    pub train_loss: f64,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f32,
    /// Wall-clock seconds spent training (evaluation excluded).
    pub seconds: f64,
}

/// Where a run stands, for [`Trainer::resume`]: everything besides the
/// configuration and the model that makes a resumed run bit-identical.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// The shuffle generator as it is after `epoch` epochs.
    pub shuffle_rng: Rng,
    /// The optimiser's state after `step` steps.
    pub optimizer: OptimizerState,
    /// The dropout generator after `step` steps.
    pub dropout_rng: Rng,
}

/// A training run in progress: the model and everything needed to continue.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    model: Mlp,
    optimizer: Box<dyn Optimizer>,
    batcher: Batcher,
    workspace: Workspace,
    grads: Gradients,
    epoch: usize,
    step: u64,
    /// Whether training batches are compressed (mostly-zero inputs), decided
    /// once from the data's density.
    sparse_input: Option<bool>,
    /// Whether steps run on the pool's threads or its caller alone, chosen
    /// by timing both (results are the same either way).
    thread_choice: ThreadChoice,
    dropout: Dropout,
    /// Whether any hidden layer drops units.
    dropping: bool,
    /// Scratch for the max-norm constraint: one value per unit.
    norms: Vec<f64>,
    /// The indices of the batch after the current one.
    next: Vec<u32>,
}

/// Offset between the initialisation seed and the shuffle seed, so the two
/// streams never overlap.
const SHUFFLE_STREAM: u64 = 0x5348_5546_464c_4521;

/// Offset of the dropout masks' seed.
pub(crate) const DROPOUT_STREAM: u64 = 0x4452_4f50_4f55_5421;

impl Trainer {
    /// A fresh run: weights drawn from `config.seed`, ready for `n_train`
    /// training examples.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn new(config: TrainConfig, n_train: usize) -> Result<Self> {
        config.validate()?;
        let mut init_rng = Rng::seed_from_u64(config.seed);
        let mut model = Mlp::with(&config.sizes, config.activation, config.resolved_init(), &mut init_rng)?;
        if config.batch_norm {
            model.add_batch_norm(crate::BatchNorm::DEFAULT_MOMENTUM, crate::BatchNorm::DEFAULT_EPS);
        }
        let state = TrainState {
            epoch: 0,
            step: 0,
            shuffle_rng: Rng::seed_from_u64(config.seed ^ SHUFFLE_STREAM),
            optimizer: config.optimizer.build(&model, config.learning_rate)?.state(),
            dropout_rng: Rng::seed_from_u64(config.seed ^ DROPOUT_STREAM),
        };
        Self::resume(config, model, state, n_train)
    }

    /// Continues a run from its parts: the model and where the run stood.
    ///
    /// # Errors
    /// An invalid `config`, a model whose sizes or activations differ from
    /// it, or an optimiser state that does not fit.
    pub fn resume(config: TrainConfig, mut model: Mlp, state: TrainState, n_train: usize) -> Result<Self> {
        config.validate()?;
        // A model cloned or changed through `layers_mut` may have lost its
        // alignment.
        model.layers_mut().iter_mut().for_each(crate::Dense::align);
        if n_train == 0 || u32::try_from(n_train).is_err() {
            return Err(NnError::InvalidData {
                reason: match n_train {
                    0 => "there are no training examples".into(),
                    n => format!("{n} training examples; a run takes at most {}", u32::MAX),
                },
            });
        }
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
        let activations = model.activations();
        let (hidden, output) = activations.split_at(activations.len() - 1);
        if output[0] != Activation::Identity {
            return Err(NnError::InvalidConfig {
                field: "activation",
                reason: format!(
                    "the model's output layer uses {}, a trained one the identity",
                    output[0]
                ),
            });
        }
        if hidden.iter().any(|&a| a != config.activation) {
            return Err(NnError::InvalidConfig {
                field: "activation",
                reason: format!(
                    "the model's hidden layers use {hidden:?} but the configuration says {}",
                    config.activation
                ),
            });
        }
        let hidden_norms = &model.norms()[..model.norms().len() - 1];
        if hidden_norms.iter().any(|n| n.is_some() != config.batch_norm) {
            return Err(NnError::InvalidConfig {
                field: "batch norm",
                reason: format!(
                    "the configuration says {}, but the model's hidden layers are {}",
                    if config.batch_norm { "on" } else { "off" },
                    if model.has_batch_norm() {
                        "batch-normalised"
                    } else {
                        "not batch-normalised"
                    }
                ),
            });
        }
        let mut optimizer = config.optimizer.build(&model, config.learning_rate)?;
        optimizer.load_state(state.optimizer)?;
        let max_batch = config.batch_size.min(n_train.max(1));
        let mut workspace = Workspace::new(&config.sizes, max_batch);
        workspace.set_training(true);
        let batcher = Batcher::new(
            n_train,
            config.sizes[0],
            config.target_shape(),
            config.batch_size,
            state.shuffle_rng,
        );
        let rates = config.dropout_rates();
        let widest = config.sizes.iter().copied().max().unwrap_or(0);
        Ok(Self {
            optimizer,
            dropping: rates.iter().any(|&p| p > 0.0),
            dropout: Dropout::new(rates, state.dropout_rng),
            norms: if config.max_norm.is_some() {
                vec![0.0; widest]
            } else {
                Vec::new()
            },
            workspace,
            grads: Gradients::new(&model),
            next: Vec::with_capacity(config.batch_size),
            batcher,
            model,
            config,
            epoch: state.epoch,
            step: state.step,
            sparse_input: None,
            thread_choice: ThreadChoice::new(),
        })
    }

    /// Trains one epoch on `data`: a fresh shuffle, then every mini-batch in
    /// order, the final partial one included. `on_batch(done, total, loss)`
    /// is called after each batch with the batch's mean loss (for progress
    /// bars).
    ///
    /// # Errors
    /// [`NnError::DataMismatch`] when the data does not fit the network, or
    /// has another number of examples than the trainer was built for;
    /// [`NnError::Diverged`] when a batch loss or, at the end of the epoch,
    /// a parameter is not finite (the model is then unusable: a caller that
    /// saves checkpoints keeps the previous one).
    pub fn train_epoch(
        &mut self,
        data: &dyn Examples,
        mut on_batch: impl FnMut(usize, usize, f32),
    ) -> Result<EpochStats> {
        self.config.check_data(data)?;
        if data.len() != self.batcher.n_examples() {
            return Err(NnError::DataMismatch {
                what: "training examples",
                expected: self.batcher.n_examples(),
                found: data.len(),
            });
        }
        let start = Instant::now();
        data.start_epoch(self.epoch);
        self.batcher.start_epoch();
        let n_batches = self.batcher.n_batches();
        let mut loss_sum = 0.0f64;
        let sparse = *self
            .sparse_input
            .get_or_insert_with(|| data.density().is_some_and(|d| d < SPARSE_INPUT_DENSITY));
        let total_steps = (self.config.epochs * n_batches) as u64;
        let mut step_start = Instant::now();
        for i in 0..n_batches {
            self.thread_choice.apply(self.workspace.pool());
            // The next batch's indices, so that the source can make its
            // examples while this step runs (`Examples::prepare_beside`).
            self.next.clear();
            if i + 1 < n_batches {
                self.next.extend_from_slice(self.batcher.batch_indices(i + 1));
            }
            let pool = Arc::clone(self.workspace.pool());
            let (x, targets) = self.batcher.batch_on(data, i, sparse, &pool);
            let c = &self.config;
            let rate = c.schedule.rate(
                c.learning_rate,
                self.step,
                n_batches as u64,
                total_steps,
                c.warmup_steps,
            );
            self.optimizer.set_learning_rate(rate);
            let (model, workspace, grads) = (&mut self.model, &mut self.workspace, &mut self.grads);
            let (optimizer, dropout, norms) = (&mut self.optimizer, &mut self.dropout, &mut self.norms);
            let dropping = self.dropping;
            let (mut loss, mut stepped) = (f32::NAN, false);
            data.prepare_beside(&self.next, &pool, &mut || {
                stepped = true;
                if dropping {
                    dropout.draw(workspace, targets.len());
                }
                loss = match targets {
                    Targets::Classes(labels) if c.label_smoothing > 0.0 => {
                        // A loss the model does not know, through the open path.
                        model.forward_input(x, workspace);
                        let (z, delta) = model.output_and_delta(workspace, labels.len());
                        let loss = crate::smoothed_cross_entropy(z, labels, c.label_smoothing, delta);
                        model.backward_from_delta(x, workspace, grads);
                        loss
                    }
                    _ => model.loss_backward(x, c.loss, targets, workspace, grads),
                };
                if !loss.is_finite() {
                    return;
                }
                if let Some(max) = c.clip_norm {
                    clip_global_norm(grads, max);
                }
                optimizer.step(workspace.pool(), model, grads);
                model.update_batch_norm(workspace);
                if let Some(max) = c.max_norm {
                    apply_max_norm(model, max, norms);
                }
            });
            assert!(stepped, "Examples::prepare_beside returned without running the step");
            if !loss.is_finite() {
                self.workspace.pool().set_alone(false);
                return Err(self.diverged("the batch loss"));
            }
            loss_sum += f64::from(loss) * targets.len() as f64;
            self.step += 1;
            let now = Instant::now();
            self.thread_choice.record((now - step_start).as_secs_f32());
            step_start = now;
            on_batch(i + 1, n_batches, loss);
        }
        // Whatever the steps chose, evaluation and other callers of the pool
        // get its threads.
        self.workspace.pool().set_alone(false);
        // The last update may have overflowed with no loss left to show it.
        let finite = |l: &crate::Dense| l.w.iter().chain(&l.b).all(|v| v.is_finite());
        let norm_finite = |n: &crate::BatchNorm| {
            [&n.gamma, &n.beta, &n.running_mean, &n.running_var]
                .into_iter()
                .flatten()
                .all(|v| v.is_finite())
        };
        if !(self.model.layers().iter().all(finite) && self.model.norms().iter().flatten().all(norm_finite)) {
            return Err(self.diverged("a parameter"));
        }
        self.epoch += 1;
        Ok(EpochStats {
            epoch: self.epoch,
            train_loss: loss_sum / data.len().max(1) as f64,
            learning_rate: self.optimizer.learning_rate(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn diverged(&self, what: &'static str) -> NnError {
        NnError::Diverged {
            epoch: self.epoch + 1,
            step: self.step + 1,
            what,
            learning_rate: self.optimizer.learning_rate(),
        }
    }

    /// Computes with `threads` threads from now on (`0`: one per CPU). The
    /// weights do not depend on it: every product splits its work by output
    /// and sums in a fixed order.
    pub fn set_threads(&mut self, threads: usize) {
        let pool = Arc::new(ThreadPool::new(threads));
        self.thread_choice = ThreadChoice::new();
        self.workspace = Workspace::with_pool(&self.config.sizes, self.workspace.max_batch(), pool);
        self.workspace.set_training(true);
    }

    /// The learning rate the schedule gives the next step.
    pub fn learning_rate(&self) -> f32 {
        let c = &self.config;
        let per_epoch = self.batcher.n_batches() as u64;
        c.schedule.rate(
            c.learning_rate,
            self.step,
            per_epoch,
            c.epochs as u64 * per_epoch,
            c.warmup_steps,
        )
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

    /// The optimiser.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimiser steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Where the run stands: with the configuration and the model, all that
    /// [`Trainer::resume`] needs.
    pub fn state(&self) -> TrainState {
        TrainState {
            epoch: self.epoch,
            step: self.step,
            shuffle_rng: Rng::from_state(self.batcher.rng_state()),
            optimizer: self.optimizer.state(),
            dropout_rng: self.dropout.rng().clone(),
        }
    }

    /// `true` once `config.epochs` epochs are done.
    pub fn is_done(&self) -> bool {
        self.epoch >= self.config.epochs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Features, OptimizerConfig};
    use ndarray::Array2;

    /// A source whose `prepare_beside` forgets to run the step.
    struct Skips(Features);

    impl Examples for Skips {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn n_features(&self) -> usize {
            self.0.n_features()
        }
        fn target_shape(&self) -> crate::TargetShape {
            self.0.target_shape()
        }
        fn gather(&self, indices: &[u32], x: ndarray::ArrayViewMut2<'_, f32>, y: crate::TargetsMut<'_>) {
            self.0.gather(indices, x, y);
        }
        fn prepare_beside(&self, _: &[u32], _: &backprop_tensor::ThreadPool, _: &mut dyn FnMut()) {}
    }

    /// That breaks the contract of `Examples::prepare_beside`, and the
    /// trainer says so rather than report a diverged loss.
    #[test]
    #[should_panic(expected = "Examples::prepare_beside returned without running the step")]
    fn a_source_that_skips_the_step_is_refused() {
        let data = Skips(Features::classification(Array2::ones((8, 3)), vec![0, 1, 0, 1, 0, 1, 0, 1], 2).unwrap());
        let config = TrainConfig {
            sizes: vec![3, 2],
            epochs: 1,
            batch_size: 4,
            ..TrainConfig::default()
        };
        let _ = Trainer::new(config, 8).unwrap().train_epoch(&data, |_, _, _| {});
    }

    /// Whatever the model it resumes, the trainer's weights, gradients,
    /// buffers and optimiser moments each start a cache line.
    #[test]
    fn a_resumed_run_works_in_aligned_buffers() {
        let config = TrainConfig {
            sizes: vec![6, 4, 3],
            optimizer: OptimizerConfig::ADAM,
            ..TrainConfig::default()
        };
        let fresh = Trainer::new(config.clone(), 10).unwrap();
        let mut model = fresh.model().clone();
        model.layers_mut()[0].w = crate::dense::tests::misaligned(6, 4);
        let trainer = Trainer::resume(config, model, fresh.state(), 10).unwrap();
        let starts_line = |p: *const f32| (p as usize).is_multiple_of(backprop_tensor::CACHE_LINE);
        for (layer, dw) in trainer.model().layers().iter().zip(&trainer.grads.dw) {
            assert!(starts_line(layer.w.as_ptr()) && starts_line(dw.as_ptr()));
        }
        assert_eq!(trainer.model().layers()[0].w, crate::dense::tests::misaligned(6, 4));
        let ws = &trainer.workspace;
        assert!(
            ws.z.iter()
                .chain(&ws.a)
                .chain(&ws.delta)
                .all(|b| starts_line(b.as_ptr()))
        );
    }

    /// Switching between the pool's threads and its caller alone on every
    /// step (what the thread choice may do at any step) trains the same
    /// bits as staying on either: with Adam and dropout, on 2 and 3 threads.
    #[test]
    fn switching_threads_on_every_step_changes_no_bit() {
        let mut rng = Rng::seed_from_u64(3);
        let (n, d) = (300, 40);
        // Mostly zeros, like pixels.
        let x = Array2::from_shape_simple_fn((n, d), || if rng.below(4) == 0 { rng.normal() as f32 } else { 0.0 });
        let labels: Vec<usize> = (0..n).map(|i| i % 5).collect();
        let data = Features::classification(x, labels, 5).unwrap();
        let config = TrainConfig {
            sizes: vec![d, 64, 32, 5],
            epochs: 3,
            batch_size: 16,
            learning_rate: 0.01,
            optimizer: OptimizerConfig::ADAM,
            dropout: vec![0.3],
            ..TrainConfig::default()
        };
        let train = |threads: usize, flip: bool| {
            let mut trainer = Trainer::new(config.clone(), n).unwrap();
            trainer.set_threads(threads);
            if flip {
                trainer.thread_choice = ThreadChoice::flipping();
            }
            let pool = Arc::clone(trainer.pool());
            let (mut alone, mut steps) = (0, 0);
            while !trainer.is_done() {
                trainer
                    .train_epoch(&data, |_, _, _| {
                        // `on_batch` runs after the step, in the mode it ran.
                        alone += usize::from(pool.is_alone());
                        steps += 1;
                    })
                    .unwrap();
            }
            assert!(!pool.is_alone(), "evaluation gets the threads back");
            let params: Vec<u32> = trainer
                .model()
                .layers()
                .iter()
                .flat_map(|l| l.w.iter().chain(&l.b))
                .map(|v| v.to_bits())
                .collect();
            (params, alone, steps)
        };
        let (one, _, _) = train(1, false);
        for threads in [2, 3] {
            let (switching, alone, steps) = train(threads, true);
            assert!(
                alone > steps / 3 && alone < 2 * steps / 3,
                "{alone} of {steps} steps alone"
            );
            assert_eq!(switching, one, "{threads} threads, switching");
            assert_eq!(train(threads, false).0, one, "{threads} threads");
        }
    }
}
