//! The served model: a checkpoint loaded, checked for what the page needs
//! (a classifier of 28x28 images), and summarised for `GET /api/model`.

use anyhow::{Context, Result, bail};
use backprop_data::DIGIT_PIXELS;
use backprop_nn::{Checkpoint, Mlp};
use ndarray::ArrayView2;
use serde::Serialize;
use std::path::Path;

/// A model ready to answer, with what the page shows about it.
pub(crate) struct Served {
    /// The network.
    pub(crate) model: Mlp,
    /// One name per output class: the checkpoint's, else `0`, `1`, ...
    pub(crate) classes: Vec<String>,
    /// What `GET /api/model` returns.
    pub(crate) summary: Summary,
}

/// One epoch of the training history.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EpochPoint {
    pub(crate) epoch: u64,
    pub(crate) train_loss: f64,
    pub(crate) test_loss: Option<f64>,
    pub(crate) test_accuracy: Option<f64>,
}

/// The model as `GET /api/model` describes it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Summary {
    /// The checkpoint file.
    pub(crate) path: String,
    /// Counts loads: 1 for the first, one more for each `--watch` reload.
    pub(crate) generation: u64,
    /// Layer sizes, inputs first.
    pub(crate) layers: Vec<usize>,
    /// `784-128-10`.
    pub(crate) architecture: String,
    /// Each layer's activation.
    pub(crate) activations: Vec<String>,
    /// Weights and biases.
    pub(crate) parameters: usize,
    /// SHA-256 of the parameters, as `backprop inspect` shows it.
    pub(crate) parameters_sha256: String,
    /// The training loss.
    pub(crate) loss: String,
    /// Class names, one per output.
    pub(crate) classes: Vec<String>,
    /// Epochs trained.
    pub(crate) epoch: usize,
    /// The last epoch's test accuracy, a fraction in [0, 1].
    pub(crate) test_accuracy: Option<f64>,
    /// Per-epoch metrics, for the training curves.
    pub(crate) history: Vec<EpochPoint>,
}

impl Served {
    /// Loads and checks the checkpoint at `path` (`Checkpoint::load`
    /// validates the whole file, CRC included, before anything is used).
    pub(crate) fn load(path: &Path, generation: u64) -> Result<Served> {
        let checkpoint = Checkpoint::load(path)?;
        let model = checkpoint
            .model()
            .with_context(|| format!("{}: cannot build the network", path.display()))?;
        let sizes = model.sizes();
        let architecture = crate::eval::sizes_text(&sizes);
        if !checkpoint.loss().is_classification() {
            bail!(
                "{} was trained with --loss {}, a regression; serve needs a classifier",
                path.display(),
                checkpoint.loss()
            );
        }
        if model.n_inputs() != DIGIT_PIXELS {
            bail!(
                "{} (layers {architecture}) takes {} inputs, but the page sends 28x28 = {DIGIT_PIXELS} \
                 pixels as in MNIST; use a model trained on 28x28 images",
                path.display(),
                model.n_inputs()
            );
        }
        let n_classes = model.n_outputs();
        let classes = if checkpoint.classes.len() == n_classes {
            checkpoint.classes.clone()
        } else {
            (0..n_classes).map(|c| c.to_string()).collect()
        };
        let history: Vec<EpochPoint> = checkpoint
            .history
            .iter()
            .map(|e| EpochPoint {
                epoch: e.epoch,
                train_loss: e.train_loss,
                test_loss: e.test.as_ref().map(|t| t.loss),
                test_accuracy: e.test.as_ref().and_then(|t| t.accuracy),
            })
            .collect();
        let summary = Summary {
            path: path.display().to_string(),
            generation,
            architecture,
            activations: model.activations().iter().map(ToString::to_string).collect(),
            parameters: checkpoint.n_parameters(),
            parameters_sha256: checkpoint.parameters_sha256(),
            loss: checkpoint.loss().to_string(),
            classes: classes.clone(),
            epoch: checkpoint.epoch(),
            test_accuracy: history.iter().rev().find_map(|e| e.test_accuracy),
            history,
            layers: sizes,
        };
        Ok(Served {
            model,
            classes,
            summary,
        })
    }

    /// Class probabilities of one 28x28 image (bytes, ink bright), as
    /// `backprop predict` computes them: pixels scaled to [0, 1], then
    /// `Mlp::predict_proba`.
    pub(crate) fn probabilities(&self, pixels: &[u8; DIGIT_PIXELS]) -> Result<Vec<f32>> {
        let x: Vec<f32> = pixels.iter().map(|&p| backprop_data::pixel_to_f32(p)).collect();
        let view = ArrayView2::from_shape((1, DIGIT_PIXELS), &x)?;
        let p = self.model.predict_proba(view);
        let p: Vec<f32> = p.iter().copied().collect();
        if !p.iter().all(|v| v.is_finite()) {
            bail!(backprop_nn::NnError::NonFiniteOutput { example: 0 });
        }
        Ok(p)
    }
}
