//! `backprop`: the command-line face of the workspace. Glue only: flags are
//! parsed and validated here, and everything else is a library call.

mod args;
mod checkpointing;
mod data;
mod datasets;
mod eval;
mod export;
mod gradcheck;
mod inspect;
mod metrics;
mod onnx;
mod paths;
mod plot;
mod predict;
mod progress;
mod recipe;
mod serve;
mod train;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<()> {
    match cli.command {
        args::Command::Train(args) => train::run(*args),
        args::Command::Inspect(args) => inspect::run(args),
        args::Command::Eval(args) => eval::run(args),
        args::Command::Predict(args) => predict::run(args),
        args::Command::Export(args) => export::run(args),
        args::Command::Plot(args) => plot::run(args),
        args::Command::Serve(args) => serve::run(args),
        args::Command::Gradcheck(args) => gradcheck::run(&args),
    }
}
