//! `backprop`: the command-line face of the workspace. Glue only: flags are
//! parsed and validated here, and everything else is a library call.

mod args;
mod progress;
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
        args::Command::Train(args) => train::run(args),
    }
}
