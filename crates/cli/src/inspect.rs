//! `backprop inspect MODEL`: what a checkpoint holds, without the weights.

use crate::args::InspectArgs;
use anyhow::Result;
use backprop_nn::{Architecture, Checkpoint, DatasetFile, EpochRecord, OptimizerState, TrainConfig};
use serde::Serialize;

/// The `--json` object.
#[derive(Serialize)]
struct Report<'a> {
    path: String,
    format_version: u32,
    crate_version: &'a str,
    architecture: &'a Architecture,
    n_parameters: usize,
    /// SHA-256 of the parameters' little-endian bytes, layer by layer:
    /// equal hashes mean bit-identical networks.
    parameters_sha256: String,
    optimizer: &'a OptimizerState,
    config: &'a TrainConfig,
    epoch: usize,
    step: u64,
    history: &'a [EpochRecord],
    dataset: &'a [DatasetFile],
}

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let checkpoint = Checkpoint::load(&args.model)?;
    let c = &checkpoint;
    let report = Report {
        path: args.model.display().to_string(),
        format_version: c.format_version,
        crate_version: &c.crate_version,
        architecture: &c.architecture,
        n_parameters: c.n_parameters(),
        parameters_sha256: c.parameters_sha256(),
        optimizer: &c.optimizer,
        config: &c.config,
        epoch: c.epoch,
        step: c.step,
        history: &c.history,
        dataset: &c.dataset,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

fn text(r: &Report<'_>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let sizes = r
        .architecture
        .sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("-");
    let activations = r
        .architecture
        .activations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let optimizer = match r.optimizer {
        OptimizerState::Sgd { learning_rate } => format!("SGD, learning rate {learning_rate}"),
        other => format!("{other:?}"),
    };
    let c = r.config;
    let _ = writeln!(out, "checkpoint      {}", r.path);
    let _ = writeln!(
        out,
        "format version  {} (written by backprop-nn {})",
        r.format_version, r.crate_version
    );
    let _ = writeln!(out, "architecture    {sizes} ({activations})");
    let _ = writeln!(
        out,
        "parameters      {} (SHA-256 {})",
        r.n_parameters, r.parameters_sha256
    );
    let _ = writeln!(out, "optimizer       {optimizer}");
    let _ = writeln!(
        out,
        "training        batch size {}, learning rate {}, seed {}",
        c.batch_size, c.learning_rate, c.seed
    );
    let _ = writeln!(
        out,
        "progress        epoch {} of {}, step {}",
        r.epoch, c.epochs, r.step
    );
    if r.history.is_empty() {
        let _ = writeln!(out, "history         (none)");
    } else {
        let _ = writeln!(
            out,
            "history         epoch  train loss  test loss  test accuracy  seconds"
        );
        for h in r.history {
            let _ = writeln!(
                out,
                "                {:>5}  {:>10.4}  {:>9.4}  {:>12.2}%  {:>7.2}",
                h.epoch,
                h.train_loss,
                h.test_loss,
                100.0 * h.test_accuracy,
                h.seconds
            );
        }
    }
    if r.dataset.is_empty() {
        let _ = writeln!(out, "dataset         (not recorded)");
    } else {
        let _ = writeln!(out, "dataset         SHA-256 of the decompressed content");
        for f in r.dataset {
            let _ = writeln!(out, "                {:<26} {}", f.name, f.sha256);
        }
    }
    out
}
