//! `cargo xtask`: project automation for the backprop workspace, in the
//! style of rust-analyzer's xtask: one small binary, one file per command.
//!
//! - `cargo xtask download [--dataset mnist|fashion-mnist] [--from SOURCE]`
//!   fills `datasets/<name>/` with verified data;
//! - `cargo xtask verify [--dataset ...]` trains the seed recipe with the
//!   release binary, reloads the saved model and checks its accuracy;
//! - `cargo xtask bench [--epochs N] [--threads T] [--json]` times it;
//! - `cargo xtask compare [--layers ...] [--rounds N]` times the same
//!   network in backprop, PyTorch and JAX, in alternating rounds;
//! - `cargo xtask fontdigits [--out DIR] [--fonts DIR...]` renders the ten
//!   digits from the machine's fonts;
//! - `cargo xtask robustness MODEL [--digits DIR] [--json]` reports a
//!   model's accuracy on them.
//!
//! Paths are taken from the workspace root, so every command works from any
//! directory inside the workspace.

mod bench;
mod compare;
mod download;
mod fontdigits;
mod progress;
mod robustness;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backprop_data::KnownDataset;
use clap::{Parser, Subcommand, ValueEnum};

/// Project automation for backprop.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch a data set into `datasets/<name>/`, checking the SHA-256 of each
    /// file's decompressed content.
    Download(download::DownloadArgs),
    /// Train the seed recipe (784-128-10, SGD lr 0.5, batch 64, 10 epochs,
    /// seed 42) with the release binary, save and reload the model, and check
    /// its test accuracy against the data set's threshold.
    Verify(verify::VerifyArgs),
    /// Time the seed recipe on real data with the release binary (median,
    /// min and max epoch time, throughput, evaluation time, peak memory),
    /// with this machine's sgemm speed as the yardstick.
    Bench(bench::BenchArgs),
    /// Train the same network and recipe (SGD, the seed recipe's by default)
    /// with backprop, PyTorch and JAX in alternating rounds, and report each
    /// one's median epoch and its per-round ratio to backprop's.
    Compare(compare::CompareArgs),
    /// Render the ten digits from every usable TrueType/OpenType font under
    /// /usr/share/fonts at several heights, stroke weights and slants, as
    /// dark-on-light PNGs with a manifest.csv.
    Fontdigits(fontdigits::FontDigitsArgs),
    /// Report a model's accuracy on font digits (rendered first unless
    /// --digits names them), overall, per class and per height, weight and
    /// slant, with the release binary's `predict`.
    Robustness(robustness::RobustnessArgs),
}

/// A data set on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
}

impl From<DatasetArg> for KnownDataset {
    fn from(arg: DatasetArg) -> KnownDataset {
        match arg {
            DatasetArg::Mnist => KnownDataset::Mnist,
            DatasetArg::FashionMnist => KnownDataset::FashionMnist,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Download(args) => download::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Fontdigits(args) => fontdigits::run(&args),
        Command::Robustness(args) => robustness::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this package's directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The cargo that runs us (`$CARGO`), or `cargo` from `PATH`.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_root_holds_the_workspace() {
        Cli::command().debug_assert();
        assert!(project_root().join("Cargo.toml").is_file());
        assert!(project_root().join("crates/cli").is_dir());
    }

    #[test]
    fn dataset_flag_takes_both_names() {
        let cli = Cli::try_parse_from(["xtask", "verify", "--dataset", "fashion-mnist"]).unwrap();
        let Command::Verify(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(KnownDataset::from(args.dataset), KnownDataset::FashionMnist);
        let cli = Cli::try_parse_from(["xtask", "download", "--from", "/x"]).unwrap();
        let Command::Download(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!((args.dataset, args.from.as_deref()), (DatasetArg::Mnist, Some("/x")));
        assert!(Cli::try_parse_from(["xtask", "verify", "--dataset", "emnist"]).is_err());
    }

    #[test]
    fn font_commands_take_their_flags() {
        let cli = Cli::try_parse_from(["xtask", "fontdigits", "--out", "d", "--fonts", "/a", "/b"]).unwrap();
        let Command::Fontdigits(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.out, Some(PathBuf::from("d")));
        assert_eq!(args.fonts, [PathBuf::from("/a"), PathBuf::from("/b")]);
        let cli = Cli::try_parse_from(["xtask", "robustness", "m.ckpt", "--digits", "d", "--json"]).unwrap();
        let Command::Robustness(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.model, PathBuf::from("m.ckpt"));
        assert_eq!(args.digits, Some(PathBuf::from("d")));
        assert!(args.json && args.fonts.is_empty());
        assert!(Cli::try_parse_from(["xtask", "robustness"]).is_err());
    }
}
