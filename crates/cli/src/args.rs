//! The command line as parsed by clap: no I/O and no validation beyond what
//! clap does per flag; commands turn these into library configurations.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Train and use multilayer perceptrons on MNIST-style data, with
/// backpropagation written out from scratch.
#[derive(Debug, Parser)]
#[command(name = "backprop", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Train a network with mini-batch SGD, evaluating on the test set after
    /// every epoch.
    Train(TrainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Directory holding the four IDX files (gzip or raw).
    #[arg(long, default_value = "datasets/mnist")]
    pub(crate) data: PathBuf,

    /// Layer sizes from input to output, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    pub(crate) layers: Vec<usize>,

    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub(crate) epochs: usize,

    /// Examples per mini-batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) batch_size: u64,

    /// SGD learning rate.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) lr: f32,

    /// Seed for weight initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,

    /// Print one JSON object per epoch instead of text lines.
    #[arg(long)]
    pub(crate) json: bool,
}
