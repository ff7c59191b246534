//! Validation of every field of a decoded checkpoint, so that whatever
//! loads describes a model (and a run) that can be used as it is: shapes
//! that chain, finite numbers, ranges kept, text safe to print.

use super::record::{ActivationRecord, DataFileRecord, DataRecord, MetricsRecord, OptimizerRecord};
use super::{CHECKPOINT_FORMAT_VERSION, Checkpoint, check_optimizer_state};
use crate::{MAX_EPOCHS, MAX_PARAMETERS, NnError};
use std::path::Path;

/// The most layers a network may have.
pub(crate) const MAX_LAYERS: usize = 1024;
/// The longest text field (names, versions), in bytes.
const MAX_TEXT: usize = 4096;

/// A field that failed validation, before the path is known.
pub(super) struct Invalid {
    field: String,
    reason: String,
}

impl Invalid {
    pub(super) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(super) fn at(self, path: &Path) -> NnError {
        NnError::InvalidCheckpoint {
            path: path.to_path_buf(),
            field: self.field,
            reason: self.reason,
        }
    }
}

type Check = std::result::Result<(), Invalid>;

/// A text field must be short and printable: no control characters (which
/// `inspect` would send to the terminal raw).
fn text(field: &str, value: &str, allow_empty: bool) -> Check {
    if value.is_empty() && !allow_empty {
        return Err(Invalid::new(field, "empty"));
    }
    if value.len() > MAX_TEXT {
        return Err(Invalid::new(
            field,
            format!("{} bytes, more than {MAX_TEXT}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Invalid::new(field, format!("contains the control character {c:?}")));
    }
    Ok(())
}

fn metrics(field: String, m: &MetricsRecord) -> Check {
    if !(m.loss.is_finite() && m.loss >= 0.0) {
        return Err(Invalid::new(
            format!("{field}.loss"),
            format!("{} is not a finite loss >= 0", m.loss),
        ));
    }
    if let Some(a) = m.accuracy
        && !(0.0..=1.0).contains(&a)
    {
        return Err(Invalid::new(
            format!("{field}.accuracy"),
            format!("{a} is not in [0, 1]"),
        ));
    }
    if let Some(r2) = m.r2
        && !(r2.is_finite() && r2 <= 1.0)
    {
        return Err(Invalid::new(
            format!("{field}.r2"),
            format!("{r2} is not a finite number <= 1"),
        ));
    }
    Ok(())
}

fn file(field: String, f: &DataFileRecord) -> Check {
    text(&format!("{field}.name"), &f.name, false)?;
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if f.sha256.len() != 64 || !f.sha256.bytes().all(hex) {
        return Err(Invalid::new(
            format!("{field}.sha256"),
            format!(
                "expected 64 lowercase hex digits, found {:?}",
                f.sha256.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// Every consistency check on the contents.
    pub(super) fn check(&self) -> Check {
        if self.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(Invalid::new(
                "format_version",
                format!(
                    "{}, but this build writes {CHECKPOINT_FORMAT_VERSION}",
                    self.format_version
                ),
            ));
        }
        text("crate_version", &self.crate_version, false)?;
        if self.crate_version.len() > 64 {
            return Err(Invalid::new(
                "crate_version",
                format!("{} bytes, more than 64", self.crate_version.len()),
            ));
        }
        self.check_layers()?;
        self.check_batch_norm()?;
        let sizes = self.sizes();
        let (n_in, n_out) = (sizes[0], sizes[sizes.len() - 1]);
        if !self.classes.is_empty() {
            if !self.loss().is_classification() || self.classes.len() != n_out {
                return Err(Invalid::new(
                    "classes",
                    format!(
                        "{} names for a {} model of {n_out} outputs",
                        self.classes.len(),
                        self.loss()
                    ),
                ));
            }
            for (i, name) in self.classes.iter().enumerate() {
                text(&format!("classes[{i}]"), name, false)?;
            }
        }
        if let Some(norm) = &self.normalization {
            if norm.mean.len() != n_in || norm.scale.len() != n_in {
                return Err(Invalid::new(
                    "normalization",
                    format!(
                        "{} means and {} scales for {n_in} inputs",
                        norm.mean.len(),
                        norm.scale.len()
                    ),
                ));
            }
            if !norm.mean.iter().all(|m| m.is_finite()) || !norm.scale.iter().all(|s| s.is_finite() && *s > 0.0) {
                return Err(Invalid::new(
                    "normalization",
                    "means must be finite, scales finite and positive",
                ));
            }
        }
        self.check_training()?;
        self.check_history()?;
        match &self.data {
            DataRecord::Unknown => {}
            DataRecord::Idx { files } => {
                if files.len() > 16 {
                    return Err(Invalid::new(
                        "data.files",
                        format!("{} files, more than 16", files.len()),
                    ));
                }
                for (i, f) in files.iter().enumerate() {
                    file(format!("data.files[{i}]"), f)?;
                }
            }
            DataRecord::Csv {
                train,
                test,
                target,
                features,
            } => {
                file("data.train".into(), train)?;
                if let Some(test) = test {
                    file("data.test".into(), test)?;
                }
                text("data.target", target, false)?;
                if features.len() != n_in {
                    return Err(Invalid::new(
                        "data.features",
                        format!("{} feature columns for {n_in} inputs", features.len()),
                    ));
                }
                for (i, f) in features.iter().enumerate() {
                    text(&format!("data.features[{i}]"), f, false)?;
                }
            }
        }
        Ok(())
    }

    fn check_layers(&self) -> Check {
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(Invalid::new(
                "layers",
                format!("{} layers; a network has 1 to {MAX_LAYERS}", self.layers.len()),
            ));
        }
        let mut n_parameters = 0u64;
        for (l, p) in self.layers.iter().enumerate() {
            let (n_in, n_out) = p.shape;
            if n_in == 0 || n_out == 0 {
                return Err(Invalid::new(
                    format!("layers[{l}].shape"),
                    format!("{:?} has a zero size", p.shape),
                ));
            }
            if l > 0 && self.layers[l - 1].shape.1 != n_in {
                return Err(Invalid::new(
                    format!("layers[{l}].shape"),
                    format!(
                        "takes {n_in} inputs but layer {} gives {}",
                        l - 1,
                        self.layers[l - 1].shape.1
                    ),
                ));
            }
            let n_weights = n_in.checked_mul(n_out);
            if n_weights != Some(p.weight.len() as u64) {
                return Err(Invalid::new(
                    format!("layers[{l}].weight"),
                    format!("expected {n_in} x {n_out} values, found {}", p.weight.len()),
                ));
            }
            if p.bias.len() as u64 != n_out {
                return Err(Invalid::new(
                    format!("layers[{l}].bias"),
                    format!("expected {n_out} values, found {}", p.bias.len()),
                ));
            }
            n_parameters += p.weight.len() as u64 + p.bias.len() as u64;
            for (name, values) in [("weight", &p.weight), ("bias", &p.bias)] {
                if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                    return Err(Invalid::new(
                        format!("layers[{l}].{name}[{i}]"),
                        format!("{} is not a finite number", values[i]),
                    ));
                }
            }
            if let ActivationRecord::LeakyRelu(slope) = p.activation
                && !slope.is_finite()
            {
                return Err(Invalid::new(
                    format!("layers[{l}].activation"),
                    format!("slope {slope} is not finite"),
                ));
            }
        }
        if n_parameters > MAX_PARAMETERS as u64 {
            return Err(Invalid::new(
                "layers",
                format!("{n_parameters} parameters, more than {MAX_PARAMETERS}"),
            ));
        }
        Ok(())
    }

    fn check_batch_norm(&self) -> Check {
        if self.batch_norm.is_empty() {
            return Ok(());
        }
        if self.batch_norm.len() != self.layers.len() {
            return Err(Invalid::new(
                "batch_norm",
                format!(
                    "{} entries for {} layers; one per layer, or none",
                    self.batch_norm.len(),
                    self.layers.len()
                ),
            ));
        }
        let last = self.layers.len() - 1;
        for (l, norm) in self.batch_norm.iter().enumerate() {
            let Some(norm) = norm else { continue };
            if l == last {
                return Err(Invalid::new(
                    format!("batch_norm[{l}]"),
                    "the output layer cannot be batch-normalised",
                ));
            }
            let n_out = self.layers[l].shape.1 as usize;
            super::batch_norm(norm)
                .validate(n_out)
                .map_err(|e| Invalid::new(format!("batch_norm[{l}]"), e.to_string()))?;
        }
        if self.training.is_some() && self.batch_norm[..last].iter().any(Option::is_none) {
            return Err(Invalid::new(
                "batch_norm",
                "a training run normalises every hidden layer or none",
            ));
        }
        Ok(())
    }

    fn check_training(&self) -> Check {
        let Some(t) = &self.training else { return Ok(()) };
        let config = self.train_config().expect("training is present");
        config.validate().map_err(|e| Invalid::new("training", e.to_string()))?;
        let (hidden, output) = self.layers.split_at(self.layers.len() - 1);
        if output[0].activation != ActivationRecord::Identity {
            return Err(Invalid::new(
                format!("layers[{}].activation", hidden.len()),
                format!(
                    "{:?}, but a trained network's output layer is the identity",
                    output[0].activation
                ),
            ));
        }
        if let Some(l) = hidden.iter().position(|l| l.activation != t.activation) {
            return Err(Invalid::new(
                format!("layers[{l}].activation"),
                format!(
                    "{:?} differs from the run's hidden activation {:?}",
                    hidden[l].activation, t.activation
                ),
            ));
        }
        if t.epoch > t.epochs || t.epochs > MAX_EPOCHS as u64 {
            return Err(Invalid::new(
                "training.epoch",
                format!("{} epochs done of {} planned (at most {MAX_EPOCHS})", t.epoch, t.epochs),
            ));
        }
        // An epoch has at most u32::MAX examples, so at most as many steps;
        // an optimiser with state counts every step (plain SGD none).
        let optimizer_steps = match t.optimizer {
            OptimizerRecord::Sgd { .. } => 0,
            _ => t.step,
        };
        if t.step > t.epoch.saturating_mul(u64::from(u32::MAX)) || t.optimizer_step != optimizer_steps {
            return Err(Invalid::new(
                "training.step",
                format!(
                    "{} steps (optimiser {}) cannot follow {} epochs",
                    t.step, t.optimizer_step, t.epoch
                ),
            ));
        }
        if t.validation > u64::from(u32::MAX) {
            return Err(Invalid::new(
                "training.validation",
                format!("{} examples held out", t.validation),
            ));
        }
        text("training.augment", &t.augment, true)?;
        if let Some(e) = &t.early_stopping {
            let ok = e.patience >= 1
                && e.min_delta.is_finite()
                && e.min_delta >= 0.0
                && e.best_epoch <= t.epoch
                && e.best_value.is_finite()
                && e.waited <= t.epoch;
            if !ok {
                return Err(Invalid::new(
                    "training.early_stopping",
                    "patience at least 1, min_delta finite and >= 0, best epoch and waiting within the epochs done",
                ));
            }
        }
        let model = self.model().map_err(|e| Invalid::new("layers", e.to_string()))?;
        let mut optimizer = config
            .optimizer
            .build(&model, config.learning_rate)
            .map_err(|e| Invalid::new("training.optimizer", e.to_string()))?;
        check_optimizer_state(optimizer.as_mut(), t)
            .map_err(|e| Invalid::new("training.optimizer_slots", e.to_string()))
    }

    fn check_history(&self) -> Check {
        let mut previous = 0;
        let done = self.epoch() as u64;
        for (i, record) in self.history.iter().enumerate() {
            if record.epoch <= previous || (self.training.is_some() && record.epoch > done) {
                return Err(Invalid::new(
                    format!("history[{i}].epoch"),
                    format!(
                        "{} is out of order: epochs must increase, after {previous}, up to {done}",
                        record.epoch
                    ),
                ));
            }
            previous = record.epoch;
            if !(record.train_loss.is_finite() && record.train_loss >= 0.0) {
                return Err(Invalid::new(
                    format!("history[{i}].train_loss"),
                    format!("{} is not a finite loss >= 0", record.train_loss),
                ));
            }
            if !(record.seconds.is_finite() && record.seconds >= 0.0) {
                return Err(Invalid::new(
                    format!("history[{i}].seconds"),
                    format!("{} is not a duration", record.seconds),
                ));
            }
            if !(record.learning_rate.is_finite() && record.learning_rate >= 0.0) {
                return Err(Invalid::new(
                    format!("history[{i}].learning_rate"),
                    format!("{} is not a learning rate", record.learning_rate),
                ));
            }
            if let Some(m) = &record.validation {
                metrics(format!("history[{i}].validation"), m)?;
            }
            if let Some(m) = &record.test {
                metrics(format!("history[{i}].test"), m)?;
            }
        }
        Ok(())
    }
}
