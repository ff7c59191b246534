//! `backprop train`: load the data, train epoch by epoch, report each epoch.

use crate::{args::TrainArgs, checkpointing, progress};
use anyhow::{Context, Result};
use backprop_nn::{EpochStats, Evaluation, TrainConfig, evaluate_in};
use serde::Serialize;
use std::time::Instant;

impl TryFrom<&TrainArgs> for TrainConfig {
    type Error = anyhow::Error;

    fn try_from(args: &TrainArgs) -> Result<Self> {
        let default = TrainConfig::default();
        let config = TrainConfig {
            sizes: args.layers.clone().unwrap_or(default.sizes),
            epochs: args.epochs.unwrap_or(default.epochs),
            batch_size: match args.batch_size {
                Some(b) => usize::try_from(b).context("--batch-size is too large")?,
                None => default.batch_size,
            },
            learning_rate: args.lr.unwrap_or(default.learning_rate),
            seed: args.seed.unwrap_or(default.seed),
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
    if args.resume.is_none() {
        TrainConfig::try_from(&args)?; // bad flags fail before the data loads
    }
    let data = backprop_data::load_dir(&args.data)?;
    let (mut trainer, mut saver) = checkpointing::start(&args, &data)?;
    trainer.set_threads(usize::from(args.threads));
    // The CLI owns its main thread: keep it off the workers' cores.
    trainer.pool().pin_caller();
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
        let eval = evaluate_in(trainer.pool(), trainer.model(), &data.test, |_, _, _| {})?;
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
