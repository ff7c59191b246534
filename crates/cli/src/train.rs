//! `backprop train`: load the data, train epoch by epoch, report each epoch.

use crate::{args::TrainArgs, progress};
use anyhow::{Context, Result};
use backprop_nn::{EpochStats, Evaluation, TrainConfig, Trainer, evaluate};
use serde::Serialize;
use std::time::Instant;

impl TryFrom<&TrainArgs> for TrainConfig {
    type Error = anyhow::Error;

    fn try_from(args: &TrainArgs) -> Result<Self> {
        let config = TrainConfig {
            sizes: args.layers.clone(),
            epochs: args.epochs,
            batch_size: usize::try_from(args.batch_size).context("--batch-size is too large")?,
            learning_rate: args.lr,
            seed: args.seed,
        };
        config.validate()?;
        Ok(config)
    }
}

/// One epoch's report, as printed with `--json`.
#[derive(Serialize)]
struct EpochReport {
    epoch: usize,
    epochs: usize,
    train_loss: f64,
    test_loss: f64,
    test_accuracy: f64,
    seconds: f64,
    eval_seconds: f64,
}

pub(crate) fn run(args: TrainArgs) -> Result<()> {
    let config = TrainConfig::try_from(&args)?;
    let data = backprop_data::load_dir(&args.data)?;
    config
        .check_data(&data.train)
        .with_context(|| format!("--layers {:?} do not fit {}", config.sizes, args.data.display()))?;
    let mut trainer = Trainer::new(config, data.train.len())?;
    if !args.json {
        eprintln!(
            "training {:?} on {} examples ({} test), batch {}, lr {}, seed {}",
            trainer.config().sizes,
            data.train.len(),
            data.test.len(),
            trainer.config().batch_size,
            trainer.config().learning_rate,
            trainer.config().seed
        );
    }
    let start = Instant::now();
    while !trainer.is_done() {
        let label = format!("epoch {}/{}", trainer.epoch() + 1, trainer.config().epochs);
        let bar = progress::bar(0, &label);
        let stats = trainer.train_epoch(&data.train, |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
        })?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let eval_start = Instant::now();
        let eval = evaluate(trainer.model(), &data.test)?;
        report(
            &stats,
            &eval,
            eval_start.elapsed().as_secs_f64(),
            trainer.config().epochs,
            args.json,
        )?;
    }
    if !args.json {
        eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

fn report(stats: &EpochStats, eval: &Evaluation, eval_seconds: f64, epochs: usize, json: bool) -> Result<()> {
    if json {
        let line = EpochReport {
            epoch: stats.epoch,
            epochs,
            train_loss: stats.train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            seconds: stats.seconds,
            eval_seconds,
        };
        println!("{}", serde_json::to_string(&line)?);
    } else {
        println!(
            "epoch {:>3}/{}  train loss {:.4}  test loss {:.4}  test accuracy {:6.2}%  {:.2} s",
            stats.epoch,
            epochs,
            stats.train_loss,
            eval.loss,
            100.0 * eval.accuracy,
            stats.seconds
        );
    }
    Ok(())
}
