//! `backprop train`: load the data, train epoch by epoch, report each epoch.

use crate::data::{Data, Standardize, is_csv};
use crate::{args::TrainArgs, checkpointing, progress};
use anyhow::{Context, Result, bail};
use backprop_nn::{EpochStats, Evaluation, Loss, Metrics, OptimizerConfig, TrainConfig, evaluate_in};
use serde::Serialize;
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
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!(", {}", extras.join(", "))
    };
    (schedule, extras)
}

/// One epoch's report, as printed with `--json`.
#[derive(Serialize)]
struct EpochReport {
    epoch: usize,
    epochs: usize,
    train_loss: f64,
    test_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_mse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_r2: Option<f64>,
    learning_rate: f32,
    seconds: f64,
    eval_seconds: f64,
}

pub(crate) fn run(args: TrainArgs) -> Result<()> {
    if args.resume.is_none() {
        // Bad flags fail before the data loads (a CSV's widths are not known
        // yet: placeholders stand in for them).
        let placeholder = is_csv(&args.data).then(|| vec![1, 2]);
        config_from(&args, placeholder)?;
    }
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
    let (mut trainer, mut saver) = checkpointing::start(&args, &data)?;
    trainer.set_threads(usize::from(args.threads));
    // The CLI owns its main thread: keep it off the workers' cores.
    trainer.pool().pin_caller();
    let (train, test) = (data.train(), data.test());
    if !args.json {
        let c = trainer.config();
        eprintln!(
            "training {:?} ({}, {}, {}) on {} examples ({} test), {}, learning rate {}{}, batch {}, seed {}{}",
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
    let start = Instant::now();
    while !trainer.is_done() {
        let label = format!("epoch {}/{}", trainer.epoch() + 1, trainer.config().epochs);
        let bar = progress::bar(0, &label);
        let stats = trainer
            .train_epoch(train, |done, total, _loss| {
                if let Some(bar) = &bar {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
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
            bar.finish_and_clear();
        }
        let eval_start = Instant::now();
        let eval = evaluate_in(trainer.pool(), trainer.model(), test, |_, _, _| {})?;
        if let (Some(accuracy), backprop_nn::TargetShape::Classes(n)) = (eval.accuracy(), test.target_shape())
            && accuracy <= 1.2 / n as f64
        {
            eprintln!(
                "warning: epoch {}: test accuracy {:.2}% is at chance for {n} classes; training has not \
                 learned (or has diverged): try a lower --lr",
                stats.epoch,
                100.0 * accuracy
            );
        }
        report(
            &stats,
            &eval,
            eval_start.elapsed().as_secs_f64(),
            trainer.config().epochs,
            args.json,
        )?;
        saver.record(&trainer, &stats, &eval)?;
    }
    if !args.json {
        eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

fn report(stats: &EpochStats, eval: &Evaluation, eval_seconds: f64, epochs: usize, json: bool) -> Result<()> {
    let (accuracy, mse, r2) = match eval.metrics {
        Metrics::Classification { accuracy, .. } => (Some(accuracy), None, None),
        Metrics::Regression { mse, r2 } => (None, Some(mse), Some(r2)),
    };
    if json {
        let line = EpochReport {
            epoch: stats.epoch,
            epochs,
            train_loss: stats.train_loss,
            test_loss: eval.loss,
            test_accuracy: accuracy,
            test_mse: mse,
            test_r2: r2,
            learning_rate: stats.learning_rate,
            seconds: stats.seconds,
            eval_seconds,
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
        let measure = match (accuracy, mse, r2) {
            (Some(a), _, _) => format!("test loss {:.4}  test accuracy {:6.2}%", eval.loss, 100.0 * a),
            (_, Some(mse), Some(r2)) => format!("test mse {mse:.4}  test R² {r2:.4}"),
            _ => String::new(),
        };
        println!(
            "epoch {:>3}/{}  train loss {:.4}  {measure}  {:.2} s",
            stats.epoch, epochs, stats.train_loss, stats.seconds
        );
    }
    Ok(())
}
