//! `backprop train --save / --resume`: starting a run fresh or from a
//! checkpoint, and writing a checkpoint after every epoch.

use crate::args::TrainArgs;
use crate::data::Data;
use crate::metrics::{EpochLine, MetricsLog};
use crate::train::config_from;
use anyhow::{Context, Result, bail};
use backprop_nn::checkpoint::record::{DataRecord, EarlyStoppingRecord, EpochRecord, NormalizationRecord};
use backprop_nn::{Checkpoint, EarlyStopping, EpochStats, Evaluation, Examples, TargetShape, TrainConfig, Trainer};
use std::path::{Path, PathBuf};

/// Where and what to save after each epoch.
pub(crate) struct Saver {
    /// `None` when the run is not saved.
    path: Option<PathBuf>,
    history: Vec<EpochRecord>,
    data: DataRecord,
    classes: Vec<String>,
    normalization: Option<NormalizationRecord>,
    /// The metrics files, when the run saves or logs.
    metrics: Option<MetricsLog>,
    /// Held while the run may save to `path`.
    _lock: Option<crate::paths::SaveLock>,
    /// Examples held out of the training set for validation.
    pub(crate) validation: u64,
    /// Early stopping, when asked for.
    pub(crate) early_stopping: Option<EarlyStopping>,
    /// Where the best model goes, with its lock.
    best: Option<(PathBuf, crate::paths::SaveLock)>,
    /// The best validation loss so far, for --save-best without early
    /// stopping.
    pub(crate) best_loss: Option<f64>,
    /// The augmentation's specification (empty: none).
    pub(crate) augment: String,
}

impl Saver {
    /// Where the run saves, if it does.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Saver {
    /// Adds the epoch to the history and, when saving, appends its line to
    /// the metrics files and then writes the checkpoint (atomically,
    /// replacing the previous epoch's), and the best model too when
    /// `improved`.
    pub(crate) fn record(
        &mut self,
        trainer: &Trainer,
        stats: &EpochStats,
        (validation, test): (Option<&Evaluation>, Option<&Evaluation>),
        improved: bool,
        line: &EpochLine,
    ) -> Result<()> {
        self.history.push(EpochRecord::with(stats, validation, test));
        if let Some(metrics) = &mut self.metrics {
            metrics.append(line)?;
        }
        self.save(trainer, improved, || format!("after epoch {}", stats.epoch))
    }

    /// Writes the checkpoint of a run that has trained no epoch (`--epochs 0
    /// --save PATH`): the initial model, at epoch 0 with an empty history.
    pub(crate) fn save_untrained(&self, trainer: &Trainer) -> Result<()> {
        self.save(trainer, false, || "of the untrained model".to_owned())
    }

    /// Writes the checkpoint, when saving, and the best model when `best`.
    fn save(&self, trainer: &Trainer, best: bool, when: impl Fn() -> String) -> Result<()> {
        let checkpoint = || {
            let mut c = Checkpoint::from_trainer(trainer, self.history.clone(), self.data.clone());
            c.classes = self.classes.clone();
            c.normalization = self.normalization.clone();
            if let Some(t) = c.training.as_mut() {
                t.validation = self.validation;
                t.early_stopping = self.early_stopping.as_ref().map(EarlyStoppingRecord::new);
                t.augment.clone_from(&self.augment);
            }
            c
        };
        if let Some(path) = &self.path {
            checkpoint()
                .save(path)
                .with_context(|| format!("cannot save the checkpoint {}", when()))?;
        }
        if best && let Some((path, _)) = &self.best {
            checkpoint()
                .save(path)
                .with_context(|| format!("cannot save the best model {}", when()))?;
        }
        Ok(())
    }

    /// Where the best model is kept, if it is.
    pub(crate) fn best_path(&self) -> Option<&Path> {
        self.best.as_ref().map(|(p, _)| p.as_path())
    }
}

/// The trainer for `args` on the training source `train` (the training set,
/// less any validation split of `validation` examples): a fresh run, or the
/// run of `--resume` continued; with the [`Saver`] that records it.
pub(crate) fn start(
    args: &TrainArgs,
    data: &Data,
    train: &dyn Examples,
    validation: u64,
    early_stopping: Option<EarlyStopping>,
) -> Result<(Trainer, Saver)> {
    let save_path = args.save.clone().or_else(|| args.resume.clone());
    let mut inputs = crate::paths::data_files(&args.data);
    inputs.extend(args.test.clone());
    if let Some(path) = &args.save {
        check_writable_dir(path)?;
        crate::paths::refuse_overwriting_inputs("--save", path, &inputs)?;
    }
    let log_base = args.log.clone().or_else(|| save_path.clone());
    if let Some(base) = &log_base {
        check_writable_dir(base)?;
        let (jsonl, csv) = crate::metrics::paths(base);
        crate::paths::refuse_overwriting_inputs("--log", &jsonl, &inputs)?;
        crate::paths::refuse_overwriting_inputs("--log", &csv, &inputs)?;
    }
    let lock = save_path.as_deref().map(crate::paths::SaveLock::take).transpose()?;
    let best = match &args.save_best {
        Some(path) => {
            check_writable_dir(path)?;
            if validation == 0 {
                bail!("--save-best keeps the best model by validation metric: give --validation too");
            }
            crate::paths::refuse_overwriting_inputs("--save-best", path, &inputs)?;
            if save_path.as_deref().is_some_and(|p| crate::paths::same_file(p, path)) {
                bail!(
                    "--save-best {} is the file the run saves to; choose another",
                    path.display()
                );
            }
            Some((path.clone(), crate::paths::SaveLock::take(path)?))
        }
        None => None,
    };
    let record = if save_path.is_some() {
        data.record(&args.data)?
    } else {
        DataRecord::Unknown
    };
    let (classes, normalization) = match data {
        Data::Csv(d) => (d.classes.clone(), d.normalization.clone()),
        Data::Idx(_) => (crate::data::idx_class_names(&record, None), None),
    };
    let Some(resume) = &args.resume else {
        // CSV data picks the input and output widths when --layers is not given.
        let sizes = matches!(data, Data::Csv(_)).then(|| {
            let n_out = match train.target_shape() {
                TargetShape::Classes(n) | TargetShape::Values(n) => n,
            };
            vec![train.n_features(), 64, n_out]
        });
        let config = config_from(args, sizes)?;
        config
            .check_data(train)
            .with_context(|| format!("--layers {:?} do not fit {}", config.sizes, args.data.display()))?;
        let regression = !config.loss.is_classification();
        let trainer = Trainer::new(config, train.len())?;
        let metrics = log_base
            .as_deref()
            .map(|base| MetricsLog::start(base, regression, &[], None))
            .transpose()?;
        let saver = Saver {
            path: save_path,
            history: Vec::new(),
            data: record,
            classes,
            normalization,
            metrics,
            _lock: lock,
            validation,
            early_stopping,
            best,
            best_loss: None,
            augment: String::new(),
        };
        return Ok((trainer, saver));
    };
    let checkpoint = Checkpoint::load(resume).context("cannot resume")?;
    let Some(config) = checkpoint.train_config() else {
        bail!(
            "{} holds a model without its training run; it cannot be resumed",
            resume.display()
        );
    };
    check_flags(args, &config, resume)?;
    if save_path.is_some() {
        check_dataset(&checkpoint.data, &record, &args.data, resume)?;
    }
    let done = checkpoint.epoch();
    let epochs = args.epochs.unwrap_or(config.epochs);
    if epochs > backprop_nn::MAX_EPOCHS {
        bail!("--epochs {epochs}: at most {} epochs", backprop_nn::MAX_EPOCHS);
    }
    if epochs < done {
        bail!(
            "--epochs {epochs}: {} has already trained {done} epochs; give at least {done}",
            resume.display()
        );
    }
    config
        .check_data(train)
        .with_context(|| format!("{} does not fit the data in {}", resume.display(), args.data.display()))?;
    let history = checkpoint.history.clone();
    let (classes, normalization) = (checkpoint.classes.clone(), checkpoint.normalization.clone());
    let mut trainer = checkpoint
        .into_trainer(train.len())
        .with_context(|| format!("cannot resume {}", resume.display()))?;
    trainer.set_epochs(epochs);
    if !args.json {
        eprintln!("resuming {} after epoch {done} of {epochs}", resume.display());
        if trainer.is_done() {
            eprintln!("nothing to train: give --epochs N with N > {done} to continue");
        }
    }
    let regression = !config.loss.is_classification();
    let metrics = log_base
        .as_deref()
        .map(|base| {
            // The run logged to --log, or beside the checkpoint resumed.
            let source = args.log.as_deref().unwrap_or(resume);
            MetricsLog::start(base, regression, &history, Some(source))
        })
        .transpose()?;
    let saver = Saver {
        path: save_path,
        history,
        data: record,
        classes,
        normalization,
        metrics,
        _lock: lock,
        validation,
        early_stopping,
        best,
        best_loss: None,
        augment: String::new(),
    };
    Ok((trainer, saver))
}

/// Refuses flags that would change the meaning of a resumed run.
fn check_flags(args: &TrainArgs, saved: &TrainConfig, resume: &Path) -> Result<()> {
    let refuse = |flag: &str, given: String, was: String| {
        anyhow::anyhow!(
            "{flag} {given} differs from the {was} that {} was trained with; a resumed run keeps its \
             settings (only --epochs may change): drop {flag}, or start a new run without --resume",
            resume.display()
        )
    };
    let list = |sizes: &[usize]| sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    if let Some(layers) = &args.layers
        && *layers != saved.sizes
    {
        return Err(refuse("--layers", list(layers), list(&saved.sizes)));
    }
    if let Some(batch) = args.batch_size
        && usize::try_from(batch).ok() != Some(saved.batch_size)
    {
        return Err(refuse("--batch-size", batch.to_string(), saved.batch_size.to_string()));
    }
    if let Some(lr) = args.lr
        && lr.to_bits() != saved.learning_rate.to_bits()
    {
        return Err(refuse("--lr", lr.to_string(), saved.learning_rate.to_string()));
    }
    if let Some(seed) = args.seed
        && seed != saved.seed
    {
        return Err(refuse("--seed", seed.to_string(), saved.seed.to_string()));
    }
    if let Some(a) = args.activation
        && a != saved.activation
    {
        return Err(refuse("--activation", a.to_string(), saved.activation.to_string()));
    }
    if let Some(l) = args.loss
        && l != saved.loss
    {
        return Err(refuse("--loss", l.to_string(), saved.loss.to_string()));
    }
    if let Some(o) = &args.optimizer
        && o != saved.optimizer.name()
    {
        return Err(refuse("--optimizer", o.clone(), saved.optimizer.name().to_owned()));
    }
    let tuned = [
        ("--init", args.init.is_some()),
        ("--momentum", args.momentum.is_some()),
        ("--beta1", args.beta1.is_some()),
        ("--beta2", args.beta2.is_some()),
        ("--eps", args.eps.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--warmup", args.warmup.is_some()),
        ("--dropout", args.dropout.is_some()),
        ("--label-smoothing", args.label_smoothing.is_some()),
        ("--clip-norm", args.clip_norm.is_some()),
        ("--max-norm", args.max_norm.is_some()),
        ("--batch-norm", args.batch_norm),
        ("--validation", args.validation.is_some()),
        ("--early-stopping", args.early_stopping.is_some()),
        ("--patience", args.patience.is_some()),
        ("--min-delta", args.min_delta.is_some()),
        ("--augment", args.augment.is_some()),
    ];
    if let Some((flag, _)) = tuned.iter().find(|(_, given)| *given) {
        bail!(
            "{flag} cannot be given with --resume: {} keeps the settings it was trained with",
            resume.display()
        );
    }
    Ok(())
}

/// Refuses to continue a run on other data than it was trained on.
fn check_dataset(saved: &DataRecord, current: &DataRecord, dir: &Path, resume: &Path) -> Result<()> {
    match (saved, current) {
        (DataRecord::Unknown, _) => {
            eprintln!(
                "warning: {} records no dataset hashes; cannot check that {} holds the same data",
                resume.display(),
                dir.display()
            );
            Ok(())
        }
        (DataRecord::Idx { files: saved }, DataRecord::Idx { files: current }) => {
            for file in saved {
                match current.iter().find(|f| f.name == file.name) {
                    Some(now) if now.sha256 == file.sha256 => {}
                    Some(now) => bail!(
                        "the data in {} differs from the data {} was trained on: {} has SHA-256 {}, the \
                         checkpoint records {}; resume with the same --data",
                        dir.display(),
                        resume.display(),
                        file.name,
                        now.sha256,
                        file.sha256
                    ),
                    None => bail!(
                        "{} was trained on a file {} that {} does not have",
                        resume.display(),
                        file.name,
                        dir.display()
                    ),
                }
            }
            Ok(())
        }
        (
            DataRecord::Csv {
                train: a,
                test: a_test,
                target: a_target,
                features: a_features,
            },
            DataRecord::Csv {
                train: b,
                test: b_test,
                target: b_target,
                features: b_features,
            },
        ) if a.sha256 == b.sha256
            && a_test.as_ref().map(|t| &t.sha256) == b_test.as_ref().map(|t| &t.sha256)
            && (a_target, a_features) == (b_target, b_features) =>
        {
            Ok(())
        }
        _ => bail!(
            "the data in {} differs from the data {} was trained on; resume with the same --data",
            dir.display(),
            resume.display()
        ),
    }
}

/// Fails now, not after an epoch of training, when `--save PATH` names a
/// file in a directory that does not exist (or is not a directory).
fn check_writable_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot save to {}: {} is not a directory",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}
