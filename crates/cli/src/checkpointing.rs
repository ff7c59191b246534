//! `backprop train --save / --resume`: starting a run fresh or from a
//! checkpoint, and writing a checkpoint after every epoch.

use crate::args::TrainArgs;
use anyhow::{Context, Result, bail};
use backprop_data::TrainTest;
use backprop_nn::{Checkpoint, DatasetFile, EpochRecord, EpochStats, Evaluation, TrainConfig, Trainer};
use std::path::{Path, PathBuf};

/// Where and what to save after each epoch.
pub(crate) struct Saver {
    /// `None` when the run is not saved.
    path: Option<PathBuf>,
    history: Vec<EpochRecord>,
    dataset: Vec<DatasetFile>,
}

impl Saver {
    /// Adds the epoch to the history and, when saving, writes the
    /// checkpoint (atomically, replacing the previous epoch's).
    pub(crate) fn record(&mut self, trainer: &Trainer, stats: &EpochStats, eval: &Evaluation) -> Result<()> {
        self.history.push(EpochRecord::new(stats, eval));
        if let Some(path) = &self.path {
            Checkpoint::from_trainer(trainer, self.history.clone(), self.dataset.clone())
                .save(path)
                .with_context(|| format!("cannot save the checkpoint after epoch {}", stats.epoch))?;
        }
        Ok(())
    }
}

/// The trainer for `args`: a fresh run, or the run of `--resume` continued;
/// with the [`Saver`] that records it.
pub(crate) fn start(args: &TrainArgs, data: &TrainTest) -> Result<(Trainer, Saver)> {
    let save_path = args.save.clone().or_else(|| args.resume.clone());
    if let Some(path) = &args.save {
        check_writable_dir(path)?;
    }
    let dataset = if save_path.is_some() {
        hash_data(&args.data)?
    } else {
        Vec::new()
    };
    let Some(resume) = &args.resume else {
        let config = TrainConfig::try_from(args)?;
        config
            .check_data(&data.train)
            .with_context(|| format!("--layers {:?} do not fit {}", config.sizes, args.data.display()))?;
        let trainer = Trainer::new(config, data.train.len())?;
        let saver = Saver {
            path: save_path,
            history: Vec::new(),
            dataset,
        };
        return Ok((trainer, saver));
    };
    let checkpoint = Checkpoint::load(resume).context("cannot resume")?;
    check_flags(args, &checkpoint, resume)?;
    check_dataset(&checkpoint.dataset, &dataset, &args.data, resume)?;
    let done = checkpoint.epoch;
    let epochs = args.epochs.unwrap_or(checkpoint.config.epochs);
    if epochs < done {
        bail!(
            "--epochs {epochs}: {} has already trained {done} epochs; give at least {done}",
            resume.display()
        );
    }
    checkpoint
        .config
        .check_data(&data.train)
        .with_context(|| format!("{} does not fit the data in {}", resume.display(), args.data.display()))?;
    let history = checkpoint.history.clone();
    let mut trainer = checkpoint
        .into_trainer(data.train.len())
        .with_context(|| format!("cannot resume {}", resume.display()))?;
    trainer.set_epochs(epochs);
    if !args.json {
        eprintln!("resuming {} after epoch {done} of {epochs}", resume.display());
        if trainer.is_done() {
            eprintln!("nothing to train: give --epochs N with N > {done} to continue");
        }
    }
    let saver = Saver {
        path: save_path,
        history,
        dataset,
    };
    Ok((trainer, saver))
}

/// The SHA-256 of the four data files, for the checkpoint (about 0.1 s for
/// MNIST's 55 MB of decompressed content).
fn hash_data(dir: &Path) -> Result<Vec<DatasetFile>> {
    DatasetFile::hash_dir(dir).with_context(|| format!("cannot hash the data in {}", dir.display()))
}

/// Refuses flags that would change the meaning of a resumed run.
fn check_flags(args: &TrainArgs, checkpoint: &Checkpoint, resume: &Path) -> Result<()> {
    let config = &checkpoint.config;
    let refuse = |flag: &str, given: String, saved: String| {
        anyhow::anyhow!(
            "{flag} {given} differs from the {saved} that {} was trained with; a resumed run keeps its \
             settings (only --epochs may change): drop {flag}, or start a new run without --resume",
            resume.display()
        )
    };
    let list = |sizes: &[usize]| sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    if let Some(layers) = &args.layers
        && *layers != config.sizes
    {
        return Err(refuse("--layers", list(layers), list(&config.sizes)));
    }
    if let Some(batch) = args.batch_size
        && usize::try_from(batch).ok() != Some(config.batch_size)
    {
        return Err(refuse("--batch-size", batch.to_string(), config.batch_size.to_string()));
    }
    if let Some(lr) = args.lr
        && lr.to_bits() != config.learning_rate.to_bits()
    {
        return Err(refuse("--lr", lr.to_string(), config.learning_rate.to_string()));
    }
    if let Some(seed) = args.seed
        && seed != config.seed
    {
        return Err(refuse("--seed", seed.to_string(), config.seed.to_string()));
    }
    Ok(())
}

/// Refuses to continue a run on other data than it was trained on.
fn check_dataset(saved: &[DatasetFile], current: &[DatasetFile], dir: &Path, resume: &Path) -> Result<()> {
    if saved.is_empty() {
        eprintln!(
            "warning: {} records no dataset hashes; cannot check that {} holds the same data",
            resume.display(),
            dir.display()
        );
        return Ok(());
    }
    for file in saved {
        match current.iter().find(|f| f.name == file.name) {
            Some(now) if now.sha256 == file.sha256 => {}
            Some(now) => bail!(
                "the data in {} differs from the data {} was trained on: {} has SHA-256 {}, the checkpoint \
                 records {}; resume with the same --data",
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
