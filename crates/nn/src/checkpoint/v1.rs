//! Format 1, as written by backprop 0.1.0 before format 2: its record types,
//! frozen, and their conversion to the current format. A format-1 file held a run of
//! the seed's kind only: ReLU hidden layers, He initialisation, a softmax
//! cross-entropy output, plain SGD, IDX data.

use super::record::{
    ActivationRecord, DataFileRecord, DataRecord, EpochRecord, InitRecord, LayerRecord, LossRecord, MetricsRecord,
    OptimizerRecord, TrainingRecord,
};
use super::{CHECKPOINT_FORMAT_VERSION, Checkpoint};
use backprop_tensor::RngState;
use serde::Deserialize;

/// The format-1 payload, field for field.
#[derive(Deserialize)]
pub(super) struct CheckpointV1 {
    format_version: u32,
    crate_version: String,
    architecture: ArchitectureV1,
    #[serde(deserialize_with = "super::bounded::layers")]
    parameters: Vec<LayerV1>,
    optimizer: OptimizerV1,
    config: ConfigV1,
    epoch: usize,
    step: u64,
    shuffle_rng: RngState,
    #[serde(deserialize_with = "super::bounded::history")]
    history: Vec<EpochV1>,
    #[serde(deserialize_with = "super::bounded::columns")]
    dataset: Vec<FileV1>,
}

#[derive(Deserialize)]
struct ArchitectureV1 {
    #[allow(dead_code)]
    #[serde(deserialize_with = "super::bounded::sizes")]
    sizes: Vec<usize>,
    #[serde(deserialize_with = "super::bounded::layers")]
    activations: Vec<ActivationV1>,
}

#[derive(Deserialize, PartialEq)]
enum ActivationV1 {
    Relu,
    Softmax,
}

#[derive(Deserialize)]
struct LayerV1 {
    shape: (usize, usize),
    weight: Vec<f32>,
    bias: Vec<f32>,
}

#[derive(Deserialize)]
enum OptimizerV1 {
    Sgd { learning_rate: f32 },
}

#[derive(Deserialize)]
struct ConfigV1 {
    #[allow(dead_code)]
    #[serde(deserialize_with = "super::bounded::sizes")]
    sizes: Vec<usize>,
    epochs: usize,
    batch_size: usize,
    learning_rate: f32,
    seed: u64,
}

#[derive(Deserialize)]
struct EpochV1 {
    epoch: usize,
    train_loss: f64,
    test_loss: f64,
    test_accuracy: f64,
    seconds: f64,
}

#[derive(Deserialize)]
struct FileV1 {
    name: String,
    sha256: String,
}

impl CheckpointV1 {
    /// The same run in the current format, with the format-1 version field (for the
    /// header check); or the field that format 1 itself refused, and why.
    pub(super) fn into_current(self) -> Result<(u32, Checkpoint), (&'static str, String)> {
        let n_layers = self.parameters.len();
        let OptimizerV1::Sgd { learning_rate } = self.optimizer;
        if learning_rate.to_bits() != self.config.learning_rate.to_bits() {
            return Err((
                "optimizer.learning_rate",
                format!(
                    "{learning_rate} differs from config.learning_rate {}",
                    self.config.learning_rate
                ),
            ));
        }
        let seed_kind = n_layers >= 1
            && self.architecture.activations.len() == n_layers
            && self.architecture.activations[..n_layers - 1]
                .iter()
                .all(|a| *a == ActivationV1::Relu)
            && self.architecture.activations[n_layers - 1] == ActivationV1::Softmax;
        if !seed_kind {
            return Err((
                "architecture.activations",
                "format 1 holds ReLU hidden layers and a softmax output only".into(),
            ));
        }
        let layers = self
            .parameters
            .into_iter()
            .enumerate()
            .map(|(l, p)| LayerRecord {
                shape: (p.shape.0 as u64, p.shape.1 as u64),
                weight: p.weight,
                bias: p.bias,
                // The softmax output of format 1 is an identity layer whose
                // logits feed the cross-entropy.
                activation: if l + 1 < n_layers {
                    ActivationRecord::Relu
                } else {
                    ActivationRecord::Identity
                },
            })
            .collect();
        let training = TrainingRecord {
            activation: ActivationRecord::Relu,
            init: InitRecord::HeNormal,
            optimizer: OptimizerRecord::Sgd { weight_decay: 0.0 },
            learning_rate,
            epochs: self.config.epochs as u64,
            batch_size: self.config.batch_size as u64,
            seed: self.config.seed,
            epoch: self.epoch as u64,
            step: self.step,
            shuffle_rng: self.shuffle_rng,
            optimizer_step: 0,
            optimizer_slots: Vec::new(),
            schedule: super::record::ScheduleRecord::Constant,
            warmup_steps: 0,
            dropout: Vec::new(),
            // Format 1 had no dropout: the stream a fresh run of the same
            // seed would use, never drawn from.
            dropout_rng: backprop_tensor::Rng::seed_from_u64(self.config.seed ^ crate::train::DROPOUT_STREAM).state(),
            label_smoothing: 0.0,
            clip_norm: None,
            max_norm: None,
            validation: 0,
            early_stopping: None,
            augment: String::new(),
        };
        let history = self
            .history
            .into_iter()
            .map(|e| EpochRecord {
                epoch: e.epoch as u64,
                train_loss: e.train_loss,
                learning_rate,
                seconds: e.seconds,
                validation: None,
                test: Some(MetricsRecord {
                    loss: e.test_loss,
                    accuracy: Some(e.test_accuracy),
                    r2: None,
                }),
            })
            .collect();
        let files: Vec<DataFileRecord> = self
            .dataset
            .into_iter()
            .map(|f| DataFileRecord {
                name: f.name,
                sha256: f.sha256,
            })
            .collect();
        let checkpoint = Checkpoint {
            format_version: CHECKPOINT_FORMAT_VERSION,
            crate_version: self.crate_version,
            layers,
            loss: LossRecord::CrossEntropy,
            classes: Vec::new(),
            normalization: None,
            training: Some(training),
            history,
            data: if files.is_empty() {
                DataRecord::Unknown
            } else {
                DataRecord::Idx { files }
            },
            batch_norm: Vec::new(),
        };
        Ok((self.format_version, checkpoint))
    }
}
