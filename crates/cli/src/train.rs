//! `backprop train`: load the data, train epoch by epoch, report each epoch.

use crate::data::{Data, Standardize, is_csv};
use crate::metrics::EpochLine;
use crate::{args::TrainArgs, checkpointing, progress};
use anyhow::{Context, Result, bail};
use backprop_nn::{Examples, Loss, Metrics, OptimizerConfig, Subset, TrainConfig, evaluate_in};
use std::time::Instant;

/// The configuration the flags ask for; `sizes` fills in `--layers` when it
/// is not given.
pub(crate) fn config_from(args: &TrainArgs, sizes: Option<Vec<usize>>) -> Result<TrainConfig> {
    let default = TrainConfig::default();
    let name = args.optimizer.as_deref().unwrap_or("sgd");
    let mut optimizer = OptimizerConfig::from_name(name).context("unknown --optimizer")?;
    let given = |flag: &str, value: Option<f32>| -> Result<()> {
        if value.is_some() {
            bail!("{flag} does not apply to --optimizer {name}");
        }
        Ok(())
    };
    match &mut optimizer {
        OptimizerConfig::Sgd { weight_decay } => {
            given("--momentum", args.momentum)?;
            given("--beta1", args.beta1)?;
            given("--beta2", args.beta2)?;
            given("--eps", args.eps)?;
            *weight_decay = args.weight_decay.unwrap_or(*weight_decay);
        }
        OptimizerConfig::Momentum {
            momentum, weight_decay, ..
        } => {
            given("--beta1", args.beta1)?;
            given("--beta2", args.beta2)?;
            given("--eps", args.eps)?;
            *momentum = args.momentum.unwrap_or(*momentum);
            *weight_decay = args.weight_decay.unwrap_or(*weight_decay);
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => {
            given("--momentum", args.momentum)?;
            *beta1 = args.beta1.unwrap_or(*beta1);
            *beta2 = args.beta2.unwrap_or(*beta2);
            *eps = args.eps.unwrap_or(*eps);
            *weight_decay = args.weight_decay.unwrap_or(*weight_decay);
        }
        _ => bail!("--optimizer {name} has no flags here"),
    }
    let config = TrainConfig {
        sizes: args.layers.clone().or(sizes).unwrap_or(default.sizes),
        activation: args.activation.unwrap_or(default.activation),
        init: args.init,
        loss: args.loss.unwrap_or(default.loss),
        optimizer,
        learning_rate: args.lr.unwrap_or(default.learning_rate),
        epochs: args.epochs.unwrap_or(default.epochs),
        batch_size: match args.batch_size {
            Some(b) => usize::try_from(b).context("--batch-size is too large")?,
            None => default.batch_size,
        },
        seed: args.seed.unwrap_or(default.seed),
        schedule: args.schedule.unwrap_or(default.schedule),
        warmup_steps: args.warmup.unwrap_or(default.warmup_steps),
        dropout: args.dropout.clone().unwrap_or(default.dropout),
        label_smoothing: args.label_smoothing.unwrap_or(default.label_smoothing),
        clip_norm: args.clip_norm,
        max_norm: args.max_norm,
        batch_norm: args.batch_norm,
    };
    config.validate()?;
    Ok(config)
}

/// The loss the flags ask for (before a checkpoint may say otherwise).
pub(crate) fn loss_of(args: &TrainArgs) -> Loss {
    args.loss.unwrap_or_default()
}

/// The target column and test file of a resumed CSV run: the recorded ones;
/// flags may repeat them but not change them.
fn resumed_csv(args: &TrainArgs, c: &backprop_nn::Checkpoint) -> Result<(Option<String>, Option<std::path::PathBuf>)> {
    let backprop_nn::checkpoint::record::DataRecord::Csv { target, test, .. } = &c.data else {
        return Ok((args.target.clone(), args.test.clone()));
    };
    let resume = args.resume.as_deref().unwrap_or(std::path::Path::new("")).display();
    if let Some(given) = &args.target
        && given != target
    {
        bail!(
            "--target {given} differs from the column {target:?} that {resume} was trained to predict; drop --target"
        );
    }
    if args.standardize {
        bail!("--standardize cannot be given with --resume: {resume} keeps the standardisation it was trained with");
    }
    let test = match (&args.test, test) {
        (Some(given), _) => Some(given.clone()),
        (None, Some(recorded)) => Some(std::path::PathBuf::from(&recorded.name)),
        (None, None) => None,
    };
    Ok((Some(target.clone()), test))
}

/// The schedule (after the learning rate) and the regularisers (at the
/// end) of a run, as the banner prints them; empty for the defaults.
pub(crate) fn toolkit_text(c: &TrainConfig) -> (String, String) {
    let mut schedule = String::new();
    if c.schedule != backprop_nn::Schedule::Constant {
        schedule += &format!(" ({} schedule)", c.schedule);
    }
    if c.warmup_steps > 0 {
        schedule += &format!(" after {} warmup steps", c.warmup_steps);
    }
    let mut extras = Vec::new();
    if c.dropout_rates().iter().any(|&p| p > 0.0) {
        extras.push(format!("dropout {:?}", c.dropout_rates()));
    }
    if c.label_smoothing > 0.0 {
        extras.push(format!("label smoothing {}", c.label_smoothing));
    }
    if let Some(n) = c.clip_norm {
        extras.push(format!("gradients clipped to norm {n}"));
    }
    if let Some(n) = c.max_norm {
        extras.push(format!("max-norm {n}"));
    }
    if c.batch_norm {
        extras.push("batch norm".to_owned());
    }
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!(", {}", extras.join(", "))
    };
    (schedule, extras)
}

pub(crate) fn run(mut args: TrainArgs) -> Result<()> {
    if let Some(recipe) = args.config.clone() {
        crate::recipe::apply(&recipe, &mut args)?;
    }
    if args.epochs == Some(0) && args.save.is_none() && args.resume.is_none() {
        bail!(
            "--epochs 0 trains nothing: give at least 1, or --save PATH to write the untrained model as a \
             checkpoint at epoch 0"
        );
    }
    if args.resume.is_none() {
        // Bad flags fail before the data loads (a CSV's widths are not known
        // yet: placeholders stand in for them).
        let placeholder = is_csv(&args.data).then(|| vec![1, 2]);
        config_from(&args, placeholder)?;
    }
    args.data = crate::datasets::resolve(&args.named, &args.data)?;
    // A resumed run reads its data as it was read at the start: the same
    // kind of target, hold-out seed, target column, test file and
    // standardisation (the stored one, never recomputed).
    let resumed = args
        .resume
        .as_deref()
        .map(|path| backprop_nn::Checkpoint::load(path).context("cannot resume"))
        .transpose()?;
    let data = match &resumed {
        Some(c) => {
            let seed = c.train_config().map_or(0, |t| t.seed);
            let (target, test) = resumed_csv(&args, c)?;
            let standardize = match &c.normalization {
                Some(n) => Standardize::Use(n.clone()),
                None => Standardize::No,
            };
            Data::load(
                &args.data,
                target.as_deref(),
                test.as_deref(),
                c.loss().is_classification(),
                standardize,
                seed,
            )?
        }
        None => Data::load(
            &args.data,
            args.target.as_deref(),
            args.test.as_deref(),
            loss_of(&args).is_classification(),
            if args.standardize {
                Standardize::Fit
            } else {
                Standardize::No
            },
            args.seed.unwrap_or(TrainConfig::default().seed),
        )?,
    };
    // On-the-fly augmentation of the training images: the flag's, or the
    // resumed run's recorded one, drawn from the run's seed.
    let augment = match &resumed {
        Some(c) => c.training.as_ref().map(|t| t.augment.clone()).unwrap_or_default(),
        None => args.augment.clone().unwrap_or_default(),
    };
    let augmented = match (&data, augment.is_empty()) {
        (_, true) => None,
        (Data::Idx(d), false) => {
            let spec = backprop_data::Augment::parse(&augment).context("--augment")?;
            let seed = match &resumed {
                Some(c) => c.train_config().map_or(0, |t| t.seed),
                None => args.seed.unwrap_or(TrainConfig::default().seed),
            };
            Some(backprop_data::Augmented::new(d.train.clone(), spec, seed)?)
        }
        (Data::Csv(_), false) => bail!("--augment distorts images; {} is a CSV table", args.data.display()),
    };
    let full: &dyn Examples = match &augmented {
        Some(a) => a,
        None => data.train(),
    };
    // The validation split and early stopping: recorded by a resumed run,
    // from the flags for a new one.
    let (validation, early_stopping, seed) = match &resumed {
        Some(c) => {
            let t = c.training.as_ref();
            (
                t.map_or(0, |t| t.validation),
                t.and_then(|t| t.early_stopping.map(|e| e.to_live())),
                c.train_config().map_or(0, |t| t.seed),
            )
        }
        None => {
            let n = validation_count(args.validation, full.len())?;
            if n == 0 && args.early_stopping.is_some() {
                bail!("--early-stopping watches a validation metric: give --validation too");
            }
            let early = args
                .early_stopping
                .map(|m| backprop_nn::EarlyStopping::new(m, args.patience.unwrap_or(5), args.min_delta.unwrap_or(0.0)));
            if early
                .as_ref()
                .is_some_and(|e| e.patience == 0 || e.min_delta.is_nan() || e.min_delta < 0.0)
            {
                bail!("--patience must be at least 1 and --min-delta a number >= 0");
            }
            (n, early, args.seed.unwrap_or(TrainConfig::default().seed))
        }
    };
    let split = (validation > 0).then(|| backprop_nn::split_validation(full.len(), validation as usize, seed));
    let (train_part, validation_part) = match split {
        // The validation images are never augmented: they stand for data
        // the model will meet.
        Some((t, v)) => (Some(Subset::new(full, t)), Some(Subset::new(data.train(), v))),
        None => (None, None),
    };
    let train: &dyn Examples = match &train_part {
        Some(t) => t,
        None => full,
    };
    let (mut trainer, mut saver) = checkpointing::start(&args, &data, train, validation, early_stopping)?;
    saver.augment = augmented.as_ref().map(|a| a.augment().to_string()).unwrap_or_default();
    trainer.set_threads(usize::from(args.threads));
    // The CLI owns its main thread: keep it off the workers' cores.
    trainer.pool().pin_caller();
    let test = data.test();
    if !args.json {
        let c = trainer.config();
        let held_out = if validation > 0 {
            format!(", {validation} held out for validation")
        } else {
            String::new()
        };
        eprintln!(
            "training {:?} ({}, {}, {}) on {} examples{held_out} ({} test), {}, learning rate {}{}, batch {}, seed {}{}",
            c.sizes,
            c.activation,
            c.resolved_init(),
            c.loss,
            train.len(),
            test.len(),
            c.optimizer,
            c.learning_rate,
            toolkit_text(c).0,
            c.batch_size,
            c.seed,
            toolkit_text(c).1,
        );
    }
    if !args.json && !saver.augment.is_empty() {
        eprintln!("augmenting the training images every epoch: {}", saver.augment);
    }
    if let Some(e) = &saver.early_stopping
        && e.waited >= e.patience
    {
        eprintln!("early stopping had stopped this run: nothing to train");
        return Ok(());
    }
    let start = Instant::now();
    let every_epoch_test = validation_part.is_none() || args.test_every_epoch;
    while !trainer.is_done() {
        let label = format!("epoch {}/{}", trainer.epoch() + 1, trainer.config().epochs);
        let mut bar = progress::EpochBar::new(&label, trainer.config().batch_size, train.len());
        let stats = trainer
            .train_epoch(train, |done, total, loss| {
                if let Some(bar) = &mut bar {
                    bar.update(done, total, loss);
                }
            })
            .map_err(|e| {
                let kept = match (saver.path(), trainer.epoch()) {
                    (Some(path), 0) => format!("; nothing was saved to {}", path.display()),
                    (Some(path), done) => format!("; {} keeps epoch {done}", path.display()),
                    (None, _) => String::new(),
                };
                anyhow::anyhow!("{e}{kept}")
            })?;
        if let Some(bar) = bar {
            bar.finish();
        }
        let eval_start = Instant::now();
        let val_eval = match &validation_part {
            Some(v) => Some(evaluate_in(trainer.pool(), trainer.model(), v, |_, _, _| {})?),
            None => None,
        };
        let test_eval = if every_epoch_test {
            Some(evaluate_in(trainer.pool(), trainer.model(), test, |_, _, _| {})?)
        } else {
            None
        };
        if let Some(watched) = val_eval.as_ref().or(test_eval.as_ref())
            && let (Some(accuracy), backprop_nn::TargetShape::Classes(n)) = (watched.accuracy(), test.target_shape())
            && accuracy <= 1.2 / n as f64
        {
            eprintln!(
                "warning: epoch {}: accuracy {:.2}% is at chance for {n} classes; training has not \
                 learned (or has diverged): try a lower --lr",
                stats.epoch,
                100.0 * accuracy
            );
        }
        let line = EpochLine::new(
            &stats,
            val_eval.as_ref(),
            test_eval.as_ref(),
            eval_start.elapsed().as_secs_f64(),
        );
        report(&line, trainer.config().epochs, args.json)?;
        // Early stopping (or, for --save-best alone, validation loss) decides
        // what is best.
        let verdict = match (&mut saver.early_stopping, &val_eval) {
            (Some(e), Some(v)) => e.monitor.value(v).map(|value| e.update(stats.epoch, value)),
            _ => None,
        };
        let improved = match (verdict, &val_eval) {
            (Some(v), _) => v == backprop_nn::Verdict::Improved,
            (None, Some(v)) => saver.best_loss.is_none_or(|best| v.loss < best),
            (None, None) => false,
        };
        if improved && let Some(v) = &val_eval {
            saver.best_loss = Some(v.loss);
        }
        saver.record(
            &trainer,
            &stats,
            (val_eval.as_ref(), test_eval.as_ref()),
            improved,
            &line,
        )?;
        if verdict == Some(backprop_nn::Verdict::Stop) {
            if let Some((best, _)) = saver.early_stopping.and_then(|e| e.best) {
                eprintln!(
                    "early stopping after epoch {}: no improvement since epoch {best}",
                    stats.epoch
                );
            }
            break;
        }
    }
    if trainer.epoch() == 0 {
        // --epochs 0 --save: the initial model, untrained.
        saver.save_untrained(&trainer)?;
    }
    if !args.json {
        eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    }
    if !every_epoch_test && trainer.epoch() > 0 {
        final_test(&args, &saver, &trainer, test)?;
    }
    Ok(())
}

/// The test set measured once, at the end, on the best model when one was
/// kept, else the final one; clearly labelled.
fn final_test(
    args: &TrainArgs,
    saver: &checkpointing::Saver,
    trainer: &backprop_nn::Trainer,
    test: &dyn Examples,
) -> Result<()> {
    let (model, which) = match saver.best_path() {
        Some(path) if path.exists() => {
            let best = backprop_nn::Checkpoint::load(path)?;
            let epoch = best.epoch();
            (best.model()?, format!("best model (epoch {epoch}, {})", path.display()))
        }
        _ => (
            trainer.model().clone(),
            format!("final model (epoch {})", trainer.epoch()),
        ),
    };
    let eval = evaluate_in(trainer.pool(), &model, test, |_, _, _| {})?;
    if args.json {
        let line = serde_json::json!({
            "final_test": which,
            "test_loss": eval.loss,
            "test_accuracy": eval.accuracy(),
            "test_r2": eval.r2(),
            "n": eval.n,
        });
        println!("{line}");
    } else {
        let measure = match eval.metrics {
            Metrics::Classification { accuracy, correct } => {
                format!(
                    "accuracy {:.2}% ({correct} of {}), loss {:.4}",
                    100.0 * accuracy,
                    eval.n,
                    eval.loss
                )
            }
            Metrics::Regression { mse, r2 } => format!("mse {mse:.4}, R² {r2:.4}"),
        };
        println!("test set, {which}: {measure}");
    }
    Ok(())
}

/// The number of examples `--validation` holds out of `n`: a count, or a
/// fraction below 1.
fn validation_count(flag: Option<f64>, n: usize) -> Result<u64> {
    let Some(v) = flag else { return Ok(0) };
    let count = if v > 0.0 && v < 1.0 {
        (v * n as f64).round() as u64
    } else if v >= 1.0 && v.fract() == 0.0 {
        v as u64
    } else {
        bail!("--validation {v}: give a number of examples (e.g. 5000) or a fraction in (0, 1) (e.g. 0.1)");
    };
    if count == 0 || count as usize >= n {
        bail!("--validation {v} holds out {count} of the {n} training examples; keep at least one on each side");
    }
    Ok(count)
}

fn report(line: &EpochLine, epochs: usize, json: bool) -> Result<()> {
    if json {
        let line = EpochLine {
            epochs: Some(epochs),
            ..line.clone()
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
        let split = |name: &str, loss: Option<f64>, accuracy: Option<f64>, mse: Option<f64>, r2: Option<f64>| match (
            loss, accuracy, mse, r2,
        ) {
            (Some(loss), Some(a), _, _) => Some(format!("{name} loss {loss:.4}  {name} accuracy {:6.2}%", 100.0 * a)),
            (Some(_), _, Some(mse), Some(r2)) => Some(format!("{name} mse {mse:.4}  {name} R² {r2:.4}")),
            _ => None,
        };
        let measures: Vec<String> = [
            split(
                "validation",
                line.validation_loss,
                line.validation_accuracy,
                line.validation_mse,
                line.validation_r2,
            ),
            split("test", line.test_loss, line.test_accuracy, line.test_mse, line.test_r2),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!(
            "epoch {:>3}/{}  train loss {:.4}  {}  {:.2} s",
            line.epoch,
            epochs,
            line.train_loss,
            measures.join("  "),
            line.seconds
        );
    }
    Ok(())
}
