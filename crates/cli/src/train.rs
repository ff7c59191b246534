//! `backprop train`: load the data, train epoch by epoch, report each epoch.

use crate::data::{Data, is_csv};
use crate::metrics::EpochLine;
use crate::{args::TrainArgs, checkpointing, progress};
use anyhow::{Context, Result, bail};
use backprop_nn::{Loss, OptimizerConfig, TrainConfig, evaluate_in};
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
    };
    config.validate()?;
    Ok(config)
}

/// The loss the flags ask for (before a checkpoint may say otherwise).
pub(crate) fn loss_of(args: &TrainArgs) -> Loss {
    args.loss.unwrap_or_default()
}

pub(crate) fn run(mut args: TrainArgs) -> Result<()> {
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
    // kind of target, hold-out seed and standardisation.
    let (classes, seed, standardize) = match &args.resume {
        Some(path) => {
            let c = backprop_nn::Checkpoint::load(path).context("cannot resume")?;
            let seed = c.train_config().map_or(0, |t| t.seed);
            (c.loss().is_classification(), seed, c.normalization.is_some())
        }
        None => (
            loss_of(&args).is_classification(),
            args.seed.unwrap_or(TrainConfig::default().seed),
            args.standardize,
        ),
    };
    let data = Data::load(
        &args.data,
        args.target.as_deref(),
        args.test.as_deref(),
        classes,
        standardize,
        seed,
    )?;
    let (mut trainer, mut saver) = checkpointing::start(&args, &data)?;
    trainer.set_threads(usize::from(args.threads));
    // The CLI owns its main thread: keep it off the workers' cores.
    trainer.pool().pin_caller();
    let (train, test) = (data.train(), data.test());
    if !args.json {
        let c = trainer.config();
        eprintln!(
            "training {:?} ({}, {}, {}) on {} examples ({} test), {}, learning rate {}, batch {}, seed {}",
            c.sizes,
            c.activation,
            c.resolved_init(),
            c.loss,
            train.len(),
            test.len(),
            c.optimizer,
            c.learning_rate,
            c.batch_size,
            c.seed
        );
    }
    let start = Instant::now();
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
        let line = EpochLine::new(&stats, &eval, eval_start.elapsed().as_secs_f64());
        report(&line, trainer.config().epochs, args.json)?;
        saver.record(&trainer, &stats, &eval, &line)?;
    }
    if trainer.epoch() == 0 {
        // --epochs 0 --save: the initial model, untrained.
        saver.save_untrained(&trainer)?;
    }
    if !args.json {
        eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

fn report(line: &EpochLine, epochs: usize, json: bool) -> Result<()> {
    if json {
        let line = EpochLine {
            epochs: Some(epochs),
            ..line.clone()
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
        let measure = match (line.test_accuracy, line.test_mse, line.test_r2) {
            (Some(a), _, _) => format!("test loss {:.4}  test accuracy {:6.2}%", line.test_loss, 100.0 * a),
            (_, Some(mse), Some(r2)) => format!("test mse {mse:.4}  test R² {r2:.4}"),
            _ => String::new(),
        };
        println!(
            "epoch {:>3}/{}  train loss {:.4}  {measure}  {:.2} s",
            line.epoch, epochs, line.train_loss, line.seconds
        );
    }
    Ok(())
}
