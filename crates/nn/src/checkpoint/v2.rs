//! Format 2, as written before batch normalisation (format 3): the payload
//! was today's checkpoint without its last field, `batch_norm`. Every
//! record inside it is unchanged, so the conversion only adds an empty list.

use super::record::{DataRecord, EpochRecord, LayerRecord, LossRecord, NormalizationRecord, TrainingRecord};
use super::{CHECKPOINT_FORMAT_VERSION, Checkpoint};
use serde::Deserialize;

/// The format-2 payload, field for field.
#[derive(Deserialize)]
pub(super) struct CheckpointV2 {
    format_version: u32,
    crate_version: String,
    #[serde(deserialize_with = "super::bounded::layers")]
    layers: Vec<LayerRecord>,
    loss: LossRecord,
    #[serde(deserialize_with = "super::bounded::classes")]
    classes: Vec<String>,
    normalization: Option<NormalizationRecord>,
    training: Option<TrainingRecord>,
    #[serde(deserialize_with = "super::bounded::history")]
    history: Vec<EpochRecord>,
    data: DataRecord,
}

impl CheckpointV2 {
    /// The payload's own version, and the same checkpoint in today's format.
    pub(super) fn into_current(self) -> (u32, Checkpoint) {
        let checkpoint = Checkpoint {
            format_version: CHECKPOINT_FORMAT_VERSION,
            crate_version: self.crate_version,
            layers: self.layers,
            loss: self.loss,
            classes: self.classes,
            normalization: self.normalization,
            training: self.training,
            history: self.history,
            data: self.data,
            batch_norm: Vec::new(),
        };
        (self.format_version, checkpoint)
    }
}
