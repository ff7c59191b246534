//! Checkpoints: a trained model, and everything a training run needs to be
//! evaluated, exported or continued exactly, in a file that is written
//! atomically, proven readable before it replaces anything, and validated
//! field by field when read.
//!
//! # File layout
//!
//! | bytes | content |
//! |---|---|
//! | 0..8   | the magic tag [`CHECKPOINT_MAGIC`], `BACKPROP` |
//! | 8..12  | the format version, `u32` little-endian ([`CHECKPOINT_FORMAT_VERSION`]) |
//! | 12..20 | the payload length in bytes, `u64` little-endian |
//! | 20..24 | the CRC-32 (IEEE) of the payload, `u32` little-endian |
//! | 24..   | the payload: a [`Checkpoint`] encoded by the codec module (bincode 2) |
//!
//! The payload's types (the [`record`] module) are the format: they are
//! never the live configuration, and they never change; a new field means
//! a new format version. Format 3 added batch normalisation. Format-1
//! files (backprop 0.1.0) and format-2 files still load, converted on read.
//!
//! The modules: `record` (what a file holds), `v1` and `v2` (the older
//! formats' payloads and their conversion), `file` (the header, reading and
//! writing), `check` (validation of every field).

mod bounded;
mod check;
mod file;
pub mod record;
mod v1;
mod v2;

use crate::{
    Activation, Dense, Init, Loss, Mlp, NnError, Optimizer, OptimizerConfig, OptimizerState, Result, TrainConfig,
    TrainState, Trainer,
};
use backprop_tensor::Rng;
use ndarray::{Array1, Array2};
use record::{
    ActivationRecord, BatchNormRecord, DataRecord, EpochRecord, InitRecord, LayerRecord, LossRecord,
    NormalizationRecord, OptimizerRecord, TrainingRecord,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub use file::{CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, MAX_PAYLOAD};

/// The format version this build writes. It reads this one, format 2 and
/// format 1.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 3;

/// A saved model, with its training run when there is one.
///
/// Built from a live [`Trainer`] by [`Checkpoint::from_trainer`] or from a
/// model trained in one's own loop by [`Checkpoint::from_model`], written by
/// [`Checkpoint::save`], read and validated by [`Checkpoint::load`], and
/// turned back into a network ([`Checkpoint::model`]) or a run that
/// continues bit-identically ([`Checkpoint::into_trainer`]).
///
/// ```
/// use backprop_nn::{Checkpoint, Loss, Mlp};
/// use backprop_tensor::Rng;
/// let model = Mlp::new(&[4, 3, 2], &mut Rng::seed_from_u64(0)).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.ckpt");
/// Checkpoint::from_model(&model, Loss::CrossEntropy).save(&path).unwrap();
/// assert_eq!(Checkpoint::load(&path).unwrap().model().unwrap(), model);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT_VERSION`]; repeats the header's.
    pub format_version: u32,
    /// The version of `backprop-nn` that wrote the file.
    pub crate_version: String,
    /// The layers, input first.
    #[serde(deserialize_with = "bounded::layers")]
    pub layers: Vec<LayerRecord>,
    /// The loss the model was trained with.
    pub loss: LossRecord,
    /// Class names, one per output; empty when classes are just numbers.
    #[serde(deserialize_with = "bounded::classes")]
    pub classes: Vec<String>,
    /// The standardisation applied to inputs before the network.
    pub normalization: Option<NormalizationRecord>,
    /// The training run, when the model was trained by a [`Trainer`].
    pub training: Option<TrainingRecord>,
    /// Per-epoch metrics, oldest first.
    #[serde(deserialize_with = "bounded::history")]
    pub history: Vec<EpochRecord>,
    /// What the model was trained on.
    pub data: DataRecord,
    /// Each layer's batch normalisation, input first (`None` for a layer
    /// without); empty when no layer has one.
    #[serde(deserialize_with = "bounded::layers")]
    pub batch_norm: Vec<Option<BatchNormRecord>>,
}

impl Checkpoint {
    /// A checkpoint of a model alone: architecture and weights, no training
    /// state, for a model trained in one's own loop.
    pub fn from_model(model: &Mlp, loss: Loss) -> Self {
        Self {
            format_version: CHECKPOINT_FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            layers: model.layers().iter().map(layer_record).collect(),
            loss: loss_record(loss),
            classes: Vec::new(),
            normalization: None,
            training: None,
            history: Vec::new(),
            data: DataRecord::Unknown,
            batch_norm: if model.has_batch_norm() {
                model
                    .norms()
                    .iter()
                    .map(|n| n.as_ref().map(batch_norm_record))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// A checkpoint of `trainer` as it stands (between epochs), with the
    /// run's metrics so far and a description of its data.
    pub fn from_trainer(trainer: &Trainer, history: Vec<EpochRecord>, data: DataRecord) -> Self {
        let config = trainer.config();
        let state = trainer.state();
        let mut checkpoint = Self::from_model(trainer.model(), config.loss);
        checkpoint.training = Some(TrainingRecord {
            activation: activation_record(config.activation),
            init: init_record(config.resolved_init()),
            optimizer: optimizer_record(trainer.optimizer().config()),
            learning_rate: config.learning_rate,
            epochs: config.epochs as u64,
            batch_size: config.batch_size as u64,
            seed: config.seed,
            epoch: state.epoch as u64,
            step: state.step,
            shuffle_rng: state.shuffle_rng.state(),
            optimizer_step: state.optimizer.step,
            optimizer_slots: state.optimizer.slots,
            schedule: schedule_record(config.schedule),
            warmup_steps: config.warmup_steps,
            dropout: config.dropout.clone(),
            dropout_rng: state.dropout_rng.state(),
            label_smoothing: config.label_smoothing,
            clip_norm: config.clip_norm,
            max_norm: config.max_norm,
            validation: 0,
            early_stopping: None,
            augment: String::new(),
        });
        checkpoint.history = history;
        checkpoint.data = data;
        checkpoint
    }

    /// The network, as an [`Mlp`].
    ///
    /// # Errors
    /// [`NnError::BadParameters`] if the parameters do not form a network
    /// (impossible for a checkpoint returned by [`Checkpoint::load`]).
    pub fn model(&self) -> Result<Mlp> {
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, p)| {
                let shape = (p.shape.0 as usize, p.shape.1 as usize);
                let w = Array2::from_shape_vec(shape, p.weight.clone()).map_err(|e| NnError::BadParameters {
                    layer: l,
                    reason: format!("weight of shape {shape:?} from {} values: {e}", p.weight.len()),
                })?;
                Ok(Dense {
                    w,
                    b: Array1::from_vec(p.bias.clone()),
                    activation: activation(p.activation),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut model = Mlp::from_layers(layers)?;
        if !self.batch_norm.is_empty() {
            model.set_norms(self.batch_norm.iter().map(|n| n.as_ref().map(batch_norm)).collect())?;
        }
        Ok(model)
    }

    /// The model alone, with every batch normalisation folded into the
    /// layer before it ([`Mlp::folded`]): the same function in evaluation
    /// mode, as plain dense layers, for formats that have no batch
    /// normalisation. The training run is dropped (its optimiser state
    /// belongs to the unfolded parameters).
    ///
    /// # Errors
    /// As [`Checkpoint::model`].
    pub fn folded(&self) -> Result<Checkpoint> {
        let model = self.model()?.folded();
        Ok(Checkpoint {
            layers: model.layers().iter().map(layer_record).collect(),
            batch_norm: Vec::new(),
            training: None,
            ..self.clone()
        })
    }

    /// The loss the model was trained with.
    pub fn loss(&self) -> Loss {
        match self.loss {
            LossRecord::CrossEntropy => Loss::CrossEntropy,
            LossRecord::MeanSquaredError => Loss::MeanSquaredError,
        }
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        let first = self.layers.first().map(|l| l.shape.0 as usize);
        first
            .into_iter()
            .chain(self.layers.iter().map(|l| l.shape.1 as usize))
            .collect()
    }

    /// Epochs trained (0 for a model saved without its training run).
    pub fn epoch(&self) -> usize {
        self.training.as_ref().map_or(0, |t| t.epoch as usize)
    }

    /// The training configuration, when there is a training run.
    pub fn train_config(&self) -> Option<TrainConfig> {
        let t = self.training.as_ref()?;
        Some(TrainConfig {
            sizes: self.sizes(),
            activation: activation(t.activation),
            init: Some(init(t.init)),
            loss: self.loss(),
            optimizer: optimizer_config(t.optimizer),
            learning_rate: t.learning_rate,
            epochs: t.epochs as usize,
            batch_size: t.batch_size as usize,
            seed: t.seed,
            schedule: schedule(t.schedule),
            warmup_steps: t.warmup_steps,
            dropout: t.dropout.clone(),
            label_smoothing: t.label_smoothing,
            clip_norm: t.clip_norm,
            max_norm: t.max_norm,
            batch_norm: self.batch_norm.iter().any(Option::is_some),
        })
    }

    /// A [`Trainer`] that continues this run exactly where it stopped: the
    /// same weights, optimiser state, step count and shuffle sequence, so
    /// that training on the same `n_train` examples gives bit-identical
    /// weights to a run that never stopped. Call [`Trainer::set_epochs`] to
    /// extend it.
    ///
    /// # Errors
    /// [`NnError::InvalidConfig`] for a checkpoint without a training run;
    /// an invalid configuration or parameters (impossible for a checkpoint
    /// returned by [`Checkpoint::load`]).
    pub fn into_trainer(self, n_train: usize) -> Result<Trainer> {
        let config = self.train_config().ok_or_else(|| NnError::InvalidConfig {
            field: "checkpoint",
            reason: "holds a model without its training run; it cannot be resumed".into(),
        })?;
        let model = self.model()?;
        let t = self.training.expect("train_config found it");
        let state = TrainState {
            epoch: t.epoch as usize,
            step: t.step,
            shuffle_rng: Rng::from_state(t.shuffle_rng),
            optimizer: OptimizerState {
                step: t.optimizer_step,
                slots: t.optimizer_slots,
            },
            dropout_rng: Rng::from_state(t.dropout_rng),
        };
        Trainer::resume(config, model, state, n_train)
    }

    /// Number of trainable scalars (batch normalisation's `gamma` and
    /// `beta` included).
    pub fn n_parameters(&self) -> usize {
        let norms: usize = self
            .batch_norm
            .iter()
            .flatten()
            .map(|n| n.gamma.len() + n.beta.len())
            .sum();
        norms + self.layers.iter().map(|p| p.weight.len() + p.bias.len()).sum::<usize>()
    }

    /// SHA-256, as 64 lowercase hex digits, of every parameter's
    /// little-endian bytes in order (layer 0's weight row-major, its bias,
    /// layer 1's weight, ..., then each batch normalisation's `gamma`,
    /// `beta`, running mean and running variance): equal hashes mean
    /// bit-identical networks.
    pub fn parameters_sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for p in &self.layers {
            for x in p.weight.iter().chain(&p.bias) {
                hasher.update(x.to_le_bytes());
            }
        }
        for n in self.batch_norm.iter().flatten() {
            for x in n
                .gamma
                .iter()
                .chain(&n.beta)
                .chain(&n.running_mean)
                .chain(&n.running_var)
            {
                hasher.update(x.to_le_bytes());
            }
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The complete file: header and payload.
    ///
    /// # Errors
    /// [`NnError::InvalidCheckpoint`] (with the path `<memory>`) when the
    /// checkpoint does not pass the checks [`Checkpoint::load`] makes, so
    /// that nothing unreadable is ever written.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        file::to_bytes(self)
    }

    /// Reads a checkpoint from its bytes, with every check of
    /// [`Checkpoint::load`]; `path` is only used in error messages.
    ///
    /// # Errors
    /// As [`Checkpoint::load`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        file::from_bytes(bytes, path)
    }

    /// Writes the checkpoint to `path` atomically (see [`crate::atomic`]):
    /// the file written is read back and decoded before it replaces `path`,
    /// so a save can never leave a file that does not load. A symbolic link
    /// is followed; a special or read-only file at `path` is refused.
    ///
    /// # Errors
    /// [`NnError::Io`] naming the file; [`NnError::InvalidCheckpoint`] as for
    /// [`Checkpoint::to_bytes`].
    pub fn save(&self, path: &Path) -> Result<()> {
        file::save(self, path)
    }

    /// Reads and validates the checkpoint at `path`. Never panics, never
    /// blocks on a special file, and never allocates more than a small
    /// multiple of the file's actual size: the checksum is computed while
    /// streaming, before the payload is held in memory.
    ///
    /// # Errors
    /// [`NnError::Io`] if the file cannot be read or is not a regular file;
    /// [`NnError::NotACheckpoint`] if it does not start with the magic tag;
    /// [`NnError::CheckpointVersion`] for an unknown format version;
    /// [`NnError::CorruptCheckpoint`] for a truncated file, a length or
    /// checksum mismatch, or a payload that does not decode;
    /// [`NnError::InvalidCheckpoint`] for contents that do not describe a
    /// valid model or run.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        file::load(path)
    }
}

impl record::MetricsRecord {
    /// The record of an evaluation.
    pub fn of(eval: &crate::Evaluation) -> Self {
        Self {
            loss: eval.loss,
            accuracy: eval.accuracy(),
            r2: eval.r2(),
        }
    }
}

impl EpochRecord {
    /// The record of an epoch from its training statistics and the test
    /// evaluation that followed it (no validation split).
    pub fn from_epoch(stats: &crate::EpochStats, test: &crate::Evaluation) -> Self {
        Self::with(stats, None, Some(test))
    }

    /// The record of an epoch with whichever evaluations followed it.
    pub fn with(
        stats: &crate::EpochStats,
        validation: Option<&crate::Evaluation>,
        test: Option<&crate::Evaluation>,
    ) -> Self {
        Self {
            epoch: stats.epoch as u64,
            train_loss: stats.train_loss,
            learning_rate: stats.learning_rate,
            seconds: stats.seconds,
            validation: validation.map(record::MetricsRecord::of),
            test: test.map(record::MetricsRecord::of),
        }
    }
}

impl Mlp {
    /// Saves the network alone (architecture and weights) to `path`,
    /// atomically, as a checkpoint trained with `loss`.
    ///
    /// # Errors
    /// As [`Checkpoint::save`].
    pub fn save(&self, path: &Path, loss: Loss) -> Result<()> {
        Checkpoint::from_model(self, loss).save(path)
    }

    /// Loads the network of any checkpoint (saved by [`Mlp::save`] or by a
    /// training run).
    ///
    /// # Errors
    /// As [`Checkpoint::load`].
    pub fn load(path: &Path) -> Result<Mlp> {
        Checkpoint::load(path)?.model()
    }
}

fn layer_record(layer: &Dense) -> LayerRecord {
    LayerRecord {
        shape: (layer.n_in() as u64, layer.n_out() as u64),
        weight: layer.w.iter().copied().collect(),
        bias: layer.b.to_vec(),
        activation: activation_record(layer.activation),
    }
}

fn batch_norm_record(n: &crate::BatchNorm) -> BatchNormRecord {
    BatchNormRecord {
        gamma: n.gamma.to_vec(),
        beta: n.beta.to_vec(),
        running_mean: n.running_mean.to_vec(),
        running_var: n.running_var.to_vec(),
        momentum: n.momentum,
        eps: n.eps,
    }
}

fn batch_norm(r: &BatchNormRecord) -> crate::BatchNorm {
    crate::BatchNorm {
        gamma: Array1::from_vec(r.gamma.clone()),
        beta: Array1::from_vec(r.beta.clone()),
        running_mean: Array1::from_vec(r.running_mean.clone()),
        running_var: Array1::from_vec(r.running_var.clone()),
        momentum: r.momentum,
        eps: r.eps,
    }
}

/// An activation's record.
pub fn activation_record(a: Activation) -> ActivationRecord {
    match a {
        Activation::Relu => ActivationRecord::Relu,
        Activation::LeakyRelu { slope } => ActivationRecord::LeakyRelu(slope),
        Activation::Tanh => ActivationRecord::Tanh,
        Activation::Sigmoid => ActivationRecord::Sigmoid,
        Activation::Gelu => ActivationRecord::Gelu,
        Activation::Identity => ActivationRecord::Identity,
    }
}

/// The activation a record describes.
pub fn activation(a: ActivationRecord) -> Activation {
    match a {
        ActivationRecord::Relu => Activation::Relu,
        ActivationRecord::LeakyRelu(slope) => Activation::LeakyRelu { slope },
        ActivationRecord::Tanh => Activation::Tanh,
        ActivationRecord::Sigmoid => Activation::Sigmoid,
        ActivationRecord::Gelu => Activation::Gelu,
        ActivationRecord::Identity => Activation::Identity,
    }
}

fn schedule_record(s: crate::Schedule) -> record::ScheduleRecord {
    use crate::Schedule;
    use record::ScheduleRecord as R;
    match s {
        Schedule::Constant => R::Constant,
        Schedule::Step { every, factor } => R::Step {
            every: every as u64,
            factor,
        },
        Schedule::Exponential { gamma } => R::Exponential { gamma },
        Schedule::Cosine { floor } => R::Cosine { floor },
        Schedule::OneCycle => R::OneCycle,
    }
}

fn schedule(s: record::ScheduleRecord) -> crate::Schedule {
    use crate::Schedule;
    use record::ScheduleRecord as R;
    match s {
        R::Constant => Schedule::Constant,
        R::Step { every, factor } => Schedule::Step {
            every: usize::try_from(every).unwrap_or(usize::MAX),
            factor,
        },
        R::Exponential { gamma } => Schedule::Exponential { gamma },
        R::Cosine { floor } => Schedule::Cosine { floor },
        R::OneCycle => Schedule::OneCycle,
    }
}

impl record::EarlyStoppingRecord {
    /// The record of early stopping's state.
    pub fn new(e: &crate::EarlyStopping) -> Self {
        let (best_epoch, best_value) = e.best.map_or((0, 0.0), |(epoch, value)| (epoch as u64, value));
        Self {
            monitor: match e.monitor {
                crate::Monitor::Loss => record::MonitorRecord::Loss,
                crate::Monitor::Accuracy => record::MonitorRecord::Accuracy,
            },
            patience: e.patience as u64,
            min_delta: e.min_delta,
            best_epoch,
            best_value,
            waited: e.waited as u64,
        }
    }

    /// Early stopping as recorded.
    pub fn to_live(&self) -> crate::EarlyStopping {
        crate::EarlyStopping {
            monitor: match self.monitor {
                record::MonitorRecord::Loss => crate::Monitor::Loss,
                record::MonitorRecord::Accuracy => crate::Monitor::Accuracy,
            },
            patience: self.patience as usize,
            min_delta: self.min_delta,
            best: (self.best_epoch > 0).then_some((self.best_epoch as usize, self.best_value)),
            waited: self.waited as usize,
        }
    }
}

fn init_record(i: Init) -> InitRecord {
    match i {
        Init::HeNormal => InitRecord::HeNormal,
        Init::GlorotUniform => InitRecord::GlorotUniform,
        Init::GlorotNormal => InitRecord::GlorotNormal,
    }
}

fn init(i: InitRecord) -> Init {
    match i {
        InitRecord::HeNormal => Init::HeNormal,
        InitRecord::GlorotUniform => Init::GlorotUniform,
        InitRecord::GlorotNormal => Init::GlorotNormal,
    }
}

fn loss_record(l: Loss) -> LossRecord {
    match l {
        Loss::CrossEntropy => LossRecord::CrossEntropy,
        Loss::MeanSquaredError => LossRecord::MeanSquaredError,
    }
}

fn optimizer_record(o: OptimizerConfig) -> OptimizerRecord {
    match o {
        OptimizerConfig::Sgd { weight_decay } => OptimizerRecord::Sgd { weight_decay },
        OptimizerConfig::Momentum {
            momentum,
            nesterov,
            weight_decay,
        } => OptimizerRecord::Momentum {
            momentum,
            nesterov,
            weight_decay,
        },
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        } => OptimizerRecord::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        },
    }
}

fn optimizer_config(o: OptimizerRecord) -> OptimizerConfig {
    match o {
        OptimizerRecord::Sgd { weight_decay } => OptimizerConfig::Sgd { weight_decay },
        OptimizerRecord::Momentum {
            momentum,
            nesterov,
            weight_decay,
        } => OptimizerConfig::Momentum {
            momentum,
            nesterov,
            weight_decay,
        },
        OptimizerRecord::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        } => OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        },
    }
}

/// Checks that `optimizer` (built for the checkpoint's model) takes the
/// recorded state.
fn check_optimizer_state(optimizer: &mut dyn Optimizer, t: &TrainingRecord) -> Result<()> {
    optimizer.load_state(OptimizerState {
        step: t.optimizer_step,
        slots: t.optimizer_slots.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::record::{DataFileRecord, MetricsRecord};
    use super::*;
    use std::io::{self, Write};

    fn tiny_trainer(optimizer: OptimizerConfig) -> Trainer {
        let config = TrainConfig {
            sizes: vec![6, 5, 3],
            epochs: 3,
            batch_size: 4,
            learning_rate: 0.1,
            seed: 9,
            optimizer,
            ..TrainConfig::default()
        };
        Trainer::new(config, 10).unwrap()
    }

    fn sample_with(optimizer: OptimizerConfig) -> Checkpoint {
        let history = vec![EpochRecord {
            epoch: 1,
            train_loss: 1.0,
            learning_rate: 0.1,
            seconds: 0.01,
            validation: None,
            test: Some(MetricsRecord {
                loss: 1.1,
                accuracy: Some(0.5),
                r2: None,
            }),
        }];
        let data = DataRecord::Idx {
            files: vec![DataFileRecord {
                name: "train-images-idx3-ubyte".into(),
                sha256: "ab".repeat(32),
            }],
        };
        let mut c = Checkpoint::from_trainer(&tiny_trainer(optimizer), history, data);
        let t = c.training.as_mut().unwrap();
        t.epoch = 1;
        t.step = 3;
        if !matches!(optimizer, OptimizerConfig::Sgd { .. }) {
            t.optimizer_step = 3;
        }
        c
    }

    fn sample() -> Checkpoint {
        sample_with(OptimizerConfig::ADAM)
    }

    #[test]
    fn bytes_round_trip() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(&bytes[..8], b"BACKPROP");
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("x")).unwrap(), c);
        assert_eq!(c.model().unwrap(), *tiny_trainer(OptimizerConfig::ADAM).model());
        let alone = Checkpoint::from_model(&c.model().unwrap(), Loss::MeanSquaredError);
        let back = Checkpoint::from_bytes(&alone.to_bytes().unwrap(), Path::new("x")).unwrap();
        assert_eq!((back.loss(), back.train_config()), (Loss::MeanSquaredError, None));
        assert!(back.into_trainer(10).is_err(), "a model alone cannot be resumed");
    }

    /// A save that fails part-way through the write leaves the previous
    /// checkpoint intact and loadable, and no temporary file behind.
    #[test]
    fn interrupted_save_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ckpt");
        let old = sample();
        old.save(&path).unwrap();
        let old_bytes = std::fs::read(&path).unwrap();

        let mut new = sample();
        new.layers[0].weight[0] += 1.0;
        let bytes = new.to_bytes().unwrap();
        for cut in [
            0,
            1,
            CHECKPOINT_HEADER_LEN,
            bytes.len() / 2,
            bytes.len() - 1,
            bytes.len(),
        ] {
            let err = file::save_bytes(&path, &bytes, |file, bytes| {
                file.write_all(&bytes[..cut])?;
                if cut == bytes.len() {
                    // A whole, valid file: the failure comes after the write.
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "injected: disk full at sync",
                    ));
                }
                Err(io::Error::new(io::ErrorKind::StorageFull, "injected: disk full"))
            })
            .unwrap_err();
            let cause = std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(cause.contains("disk full"), "{err}: {cause}");
            assert_eq!(std::fs::read(&path).unwrap(), old_bytes, "cut at {cut}");
            assert_eq!(Checkpoint::load(&path).unwrap(), old);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("model.ckpt")], "cut at {cut}");
        }
        // A writer that "succeeds" with a truncated file is caught by the
        // proof that the file loads, before it replaces anything.
        let err = file::save_bytes(&path, &bytes, |file, bytes| file.write_all(&bytes[..bytes.len() - 3])).unwrap_err();
        assert!(
            std::error::Error::source(&err)
                .unwrap()
                .to_string()
                .contains("does not load back"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), old_bytes);
        new.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), new);
    }

    /// The file a buggy or hostile writer could produce for `c`: a correct
    /// header and checksum around contents that skip the checks.
    fn unchecked_bytes(c: &Checkpoint) -> Vec<u8> {
        let payload = crate::codec::encode(c).unwrap();
        let mut bytes = CHECKPOINT_MAGIC.to_vec();
        bytes.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    }

    /// A batch-normalised run's checkpoint round-trips; forged batch
    /// normalisations are refused naming the entry.
    #[test]
    fn forged_batch_norms_are_refused_naming_the_entry() {
        let bn = || {
            let config = TrainConfig {
                sizes: vec![6, 5, 4, 3],
                batch_size: 4,
                batch_norm: true,
                ..TrainConfig::default()
            };
            Checkpoint::from_trainer(&Trainer::new(config, 10).unwrap(), Vec::new(), DataRecord::Unknown)
        };
        let c = bn();
        assert_eq!(
            Checkpoint::from_bytes(&c.to_bytes().unwrap(), Path::new("m")).unwrap(),
            c
        );
        assert_eq!(c.batch_norm.iter().filter(|n| n.is_some()).count(), 2);
        type Edit = fn(&mut Checkpoint);
        fn n(c: &mut Checkpoint, l: usize) -> &mut BatchNormRecord {
            c.batch_norm[l].as_mut().unwrap()
        }
        let cases: Vec<(&str, &str, Edit)> = vec![
            ("batch_norm", "one per layer", |c| {
                c.batch_norm.pop();
            }),
            ("batch_norm[2]", "output layer", |c| {
                c.batch_norm[2] = c.batch_norm[1].clone()
            }),
            ("batch_norm[0]", "gamma", |c| {
                n(c, 0).gamma.pop();
            }),
            ("batch_norm[1]", "beta", |c| n(c, 1).beta[0] = f32::NAN),
            ("batch_norm[0]", "negative", |c| n(c, 0).running_var[2] = -1.0),
            ("batch_norm[0]", "momentum", |c| n(c, 0).momentum = 0.0),
            ("batch_norm[1]", "eps", |c| n(c, 1).eps = 0.0),
            ("batch_norm", "every hidden layer or none", |c| c.batch_norm[1] = None),
        ];
        for (field, words, edit) in cases {
            let mut c = bn();
            edit(&mut c);
            let err = Checkpoint::from_bytes(&unchecked_bytes(&c), Path::new("m.ckpt")).unwrap_err();
            match &err {
                NnError::InvalidCheckpoint { field: f, .. } => assert_eq!(f, field, "{err}"),
                other => panic!("{field}: expected InvalidCheckpoint, got {other:?}"),
            }
            assert!(err.to_string().contains(words), "{field}: {err}");
            assert!(c.to_bytes().is_err(), "{field}: to_bytes must refuse it too");
        }
    }

    /// Contents that decode, with a valid checksum, but do not describe a
    /// valid model or run are refused naming the field; `to_bytes` refuses
    /// to write them in the first place.
    #[test]
    fn forged_contents_are_refused_naming_the_field() {
        type Edit = fn(&mut Checkpoint);
        fn t(c: &mut Checkpoint) -> &mut TrainingRecord {
            c.training.as_mut().unwrap()
        }
        let cases: Vec<(&str, Edit)> = vec![
            ("layers[0].shape", |c| c.layers[0].shape = (0, 5)),
            ("layers[1].shape", |c| c.layers[1].shape = (4, 3)),
            ("layers[1].weight", |c| {
                c.layers[1].weight.pop();
            }),
            ("layers[0].bias", |c| c.layers[0].bias.push(0.0)),
            ("layers[0].weight[3]", |c| c.layers[0].weight[3] = f32::NAN),
            ("layers[1].bias[2]", |c| c.layers[1].bias[2] = f32::NEG_INFINITY),
            ("layers", |c| c.layers.clear()),
            ("layers[0].activation", |c| {
                c.layers[0].activation = ActivationRecord::Tanh
            }),
            ("layers[0].activation", |c| {
                c.layers[0].activation = ActivationRecord::LeakyRelu(f32::NAN)
            }),
            ("crate_version", |c| c.crate_version = "0.1.0\x1b[2J".into()),
            ("crate_version", |c| c.crate_version = "9".repeat(5000)),
            ("classes", |c| c.classes = vec!["a".into()]),
            ("classes[1]", |c| {
                c.classes = vec!["a".into(), "b\nfake line".into(), "c".into()]
            }),
            ("normalization", |c| {
                c.normalization = Some(NormalizationRecord {
                    mean: vec![0.0; 6],
                    scale: vec![0.0; 6],
                })
            }),
            ("training", |c| t(c).batch_size = 0),
            ("training", |c| t(c).learning_rate = f32::INFINITY),
            ("training", |c| {
                t(c).optimizer = OptimizerRecord::Momentum {
                    momentum: 1.5,
                    nesterov: false,
                    weight_decay: 0.0,
                }
            }),
            ("training.epoch", |c| t(c).epoch = 4),
            ("training.step", |c| t(c).step = u64::MAX),
            ("training.step", |c| t(c).optimizer_step = 0),
            ("layers[1].activation", |c| {
                c.layers[1].activation = ActivationRecord::Relu
            }),
            ("training.optimizer_slots", |c| {
                t(c).optimizer_slots[0].pop();
            }),
            ("training.optimizer_slots", |c| t(c).optimizer_slots[1][0][0] = f32::NAN),
            ("history[0].epoch", |c| c.history[0].epoch = 2),
            ("history[1].epoch", |c| c.history.push(c.history[0])),
            ("history[0].train_loss", |c| c.history[0].train_loss = f64::NAN),
            ("history[0].test.loss", |c| {
                c.history[0].test.as_mut().unwrap().loss = -1.0
            }),
            ("history[0].test.accuracy", |c| {
                c.history[0].test.as_mut().unwrap().accuracy = Some(f64::NAN)
            }),
            ("data.files[0].sha256", |c| {
                c.data = DataRecord::Idx {
                    files: vec![DataFileRecord {
                        name: "x".into(),
                        sha256: "AB".repeat(32),
                    }],
                }
            }),
            ("data.files[0].name", |c| {
                c.data = DataRecord::Idx {
                    files: vec![DataFileRecord {
                        name: "\u{7}bell".into(),
                        sha256: "ab".repeat(32),
                    }],
                }
            }),
            ("format_version", |c| c.format_version = 1),
        ];
        for (field, edit) in cases {
            let mut c = sample();
            edit(&mut c);
            let err = Checkpoint::from_bytes(&unchecked_bytes(&c), Path::new("m.ckpt")).unwrap_err();
            match &err {
                NnError::InvalidCheckpoint { field: f, path, .. } => {
                    assert_eq!(f, field, "{err}");
                    assert_eq!(path, Path::new("m.ckpt"));
                }
                other => panic!("{field}: expected InvalidCheckpoint, got {other:?}"),
            }
            assert!(err.to_string().contains("m.ckpt: invalid checkpoint"), "{err}");
            assert!(c.to_bytes().is_err(), "{field}: to_bytes must refuse it too");
        }
        // Unchanged, the same route loads, for every optimiser.
        for o in [
            OptimizerConfig::default(),
            OptimizerConfig::NESTEROV,
            OptimizerConfig::ADAMW,
        ] {
            let c = sample_with(o);
            assert_eq!(Checkpoint::from_bytes(&unchecked_bytes(&c), Path::new("m")).unwrap(), c);
        }
    }

    /// A FIFO is refused at once instead of blocking the reader forever.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let err = Checkpoint::load(&fifo).unwrap_err();
        assert!(err.to_string().contains("f"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("not a regular file"), "{cause}");
    }
}
