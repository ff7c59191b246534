//! Recipes: `backprop train --config recipes/NAME.toml`, a training
//! configuration in a file. Every key is a `train` flag's long name (with
//! `_` or `-`), and a flag given on the command line overrides the file. An
//! unknown key is an error naming it, so a typo never silently trains
//! something else. A `[verify]` table (the data set and the test accuracy
//! the recipe reaches) is read by `cargo xtask verify --recipe NAME`, not by
//! `train`.

use crate::args::TrainArgs;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A recipe file's keys, each an optional `train` flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Recipe {
    data: Option<PathBuf>,
    dataset: Option<String>,
    layers: Option<Vec<usize>>,
    epochs: Option<usize>,
    batch_size: Option<u64>,
    lr: Option<f32>,
    seed: Option<u64>,
    activation: Option<String>,
    init: Option<String>,
    loss: Option<String>,
    optimizer: Option<String>,
    momentum: Option<f32>,
    beta1: Option<f32>,
    beta2: Option<f32>,
    eps: Option<f32>,
    weight_decay: Option<f32>,
    schedule: Option<String>,
    warmup: Option<u64>,
    dropout: Option<Vec<f32>>,
    label_smoothing: Option<f32>,
    clip_norm: Option<f32>,
    max_norm: Option<f32>,
    batch_norm: Option<bool>,
    validation: Option<f64>,
    test_every_epoch: Option<bool>,
    early_stopping: Option<String>,
    patience: Option<usize>,
    min_delta: Option<f64>,
    augment: Option<String>,
    /// Read by `cargo xtask verify --recipe`.
    #[allow(dead_code)]
    verify: Option<toml::Table>,
}

/// Fills every flag of `args` that was not given from the recipe at `path`.
///
/// # Errors
/// A file that cannot be read, is not TOML, has an unknown key, or a value
/// of the wrong kind; each names the file and the key.
pub(crate) fn apply(path: &Path, args: &mut TrainArgs) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the recipe {}", path.display()))?;
    let recipe: Recipe = toml::from_str(&normalise_keys(&text))
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
        .with_context(|| format!("the recipe {} is not valid", path.display()))?;
    fn parsed<T: FromStr<Err = String>>(path: &Path, key: &str, value: Option<String>) -> Result<Option<T>> {
        value
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| anyhow::anyhow!("{}: {key}: {e}", path.display()))
            })
            .transpose()
    }
    macro_rules! fill {
        ($($field:ident),*) => {
            $(if args.$field.is_none() {
                args.$field = recipe.$field.clone();
            })*
        };
    }
    fill!(
        layers,
        epochs,
        batch_size,
        lr,
        seed,
        momentum,
        beta1,
        beta2,
        eps,
        weight_decay,
        warmup,
        dropout,
        label_smoothing,
        clip_norm,
        max_norm,
        validation,
        patience,
        min_delta
    );
    if args.activation.is_none() {
        args.activation = parsed(path, "activation", recipe.activation.clone())?;
    }
    if args.init.is_none() {
        args.init = parsed(path, "init", recipe.init.clone())?;
    }
    if args.loss.is_none() {
        args.loss = parsed(path, "loss", recipe.loss.clone())?;
    }
    if args.schedule.is_none() {
        args.schedule = parsed(path, "schedule", recipe.schedule.clone())?;
    }
    if args.early_stopping.is_none() {
        args.early_stopping = parsed(path, "early-stopping", recipe.early_stopping.clone())?;
    }
    if args.augment.is_none() {
        args.augment = recipe.augment.clone();
    }
    if args.optimizer.is_none()
        && let Some(o) = &recipe.optimizer
    {
        if backprop_nn::OptimizerConfig::from_name(o).is_none() {
            bail!(
                "{}: optimizer: unknown optimiser {o:?}; expected sgd, momentum, nesterov, adam or adamw",
                path.display()
            );
        }
        args.optimizer = Some(o.clone());
    }
    if recipe.test_every_epoch == Some(true) {
        args.test_every_epoch = true;
    }
    if recipe.batch_norm == Some(true) {
        args.batch_norm = true;
    }
    // Where the data is: the recipe's, unless the command line names some.
    let data_given = args.data != Path::new(crate::args::DEFAULT_DATA) || args.named.dataset.is_some();
    if !data_given {
        if let Some(name) = &recipe.dataset {
            args.named.dataset = Some(
                name.parse()
                    .map_err(|e: String| anyhow::anyhow!("{}: dataset: {e}", path.display()))?,
            );
        } else if let Some(data) = &recipe.data {
            args.data = data.clone();
        }
    }
    Ok(())
}

/// TOML keys with `_` spelled `-`, so both spellings of a flag work.
fn normalise_keys(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((key, value)) if !key.trim_start().starts_with('#') && !key.contains('"') => {
                format!("{}={value}", key.replace('_', "-"))
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn train_args(extra: &[&str]) -> TrainArgs {
        let mut argv = vec!["backprop", "train"];
        argv.extend_from_slice(extra);
        match crate::args::Cli::try_parse_from(argv).unwrap().command {
            crate::args::Command::Train(args) => *args,
            _ => unreachable!(),
        }
    }

    /// Every shipped recipe parses, fills the flags, and builds a valid
    /// configuration.
    #[test]
    fn the_shipped_recipes_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let mut args = train_args(&[]);
                apply(&path, &mut args).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                crate::train::config_from(&args, None).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                if let Some(spec) = &args.augment {
                    backprop_data::Augment::parse(spec).unwrap();
                }
                n += 1;
            }
        }
        assert!(n >= 3, "seed, mnist-best and fashion-best");
        let mut fashion = train_args(&[]);
        apply(&dir.join("fashion-best.toml"), &mut fashion).unwrap();
        assert!(fashion.batch_norm, "batch-norm = true reaches the flag");
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "layers = [4, 3, 2]\nepochs = 7\nbatch_size = 5\ndropout = [0.5]\nschedule = \"cosine:0.1\"\n",
        )
        .unwrap();
        let mut args = train_args(&["--epochs", "2"]);
        apply(&path, &mut args).unwrap();
        assert_eq!(
            (args.epochs, args.batch_size),
            (Some(2), Some(5)),
            "the flag wins; batch_size spelled with _"
        );
        assert_eq!(args.layers, Some(vec![4, 3, 2]));
        assert_eq!(args.schedule, Some(backprop_nn::Schedule::Cosine { floor: 0.1 }));
        std::fs::write(&path, "layers = [4, 2]\nlearning-rate = 0.1\n").unwrap();
        let err = format!("{:#}", apply(&path, &mut train_args(&[])).unwrap_err());
        assert!(err.contains("r.toml") && err.contains("learning-rate"), "{err}");
        std::fs::write(&path, "activation = \"softplus\"\n").unwrap();
        let err = format!("{:#}", apply(&path, &mut train_args(&[])).unwrap_err());
        assert!(err.contains("activation") && err.contains("softplus"), "{err}");
    }
}
