//! `cargo xtask compare`: the same network and recipe trained by `backprop
//! train` and by PyTorch and JAX (`xtask/scripts/framework_baseline.py`), in
//! alternating rounds, so that every framework sees the same minutes of a
//! noisy machine. Reports each one's median epoch over the rounds and its
//! median per-round ratio to backprop's.

use crate::bench::median_of;
use crate::{DatasetArg, download, project_root, verify};
use anyhow::{Context, Result, ensure};
use backprop_data::KnownDataset;
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Data set to train on.
    #[arg(long, value_enum, default_value = "mnist")]
    dataset: DatasetArg,
    /// Where to fetch the data from if it is not in datasets/ yet.
    #[arg(long)]
    from: Option<String>,
    /// Layer sizes, input first (the seed recipe's by default).
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    layers: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// SGD's learning rate.
    #[arg(long, default_value_t = 0.5)]
    lr: f32,
    /// Threads for every framework.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed epochs per run; each run trains one more first, as a warm-up
    /// (JAX compiles there, backprop compresses the images).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Rounds; each runs every framework once, in the same order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A Python venv with torch (default: `--venv`); skipped with a note when
    /// it has none.
    #[arg(long)]
    torch_venv: Option<PathBuf>,
    /// A Python venv with jax (default: `--venv`); skipped with a note when
    /// it has none.
    #[arg(long)]
    jax_venv: Option<PathBuf>,
    /// A venv with both (default: $BACKPROP_VENV, then .venv in the
    /// workspace).
    #[arg(long)]
    venv: Option<PathBuf>,
}

/// An epoch line of `backprop train --json` or of `framework_baseline.py`.
#[derive(Debug, Deserialize)]
struct Epoch {
    seconds: f64,
    #[serde(default)]
    test_accuracy: Option<f64>,
}

/// A contender: how to run one training.
struct Framework {
    name: &'static str,
    command: Command,
}

/// One framework's runs: per round, the median timed epoch and the last
/// test accuracy.
struct Runs {
    name: &'static str,
    medians: Vec<f64>,
    accuracy: Option<f64>,
}

pub(crate) fn run(args: &CompareArgs) -> Result<()> {
    ensure!(args.epochs > 0, "--epochs must be at least 1");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(
        args.layers.len() >= 2 && args.layers.iter().all(|&s| s > 0),
        "--layers needs two or more sizes above 0"
    );
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    ensure!(args.threads > 0, "--threads must be at least 1");
    let root = project_root();
    let data = download::ensure(KnownDataset::from(args.dataset), args.from.as_deref())?;
    let backprop = verify::build_cli(&root)?;
    let layers = args.layers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    let epochs = (args.epochs + 1).to_string();
    let (batch, lr, threads) = (
        args.batch_size.to_string(),
        args.lr.to_string(),
        args.threads.to_string(),
    );

    // The network and recipe, in the flags both `backprop train` and
    // `framework_baseline.py` take.
    let recipe = [
        "--layers",
        &layers,
        "--batch-size",
        &batch,
        "--lr",
        &lr,
        "--epochs",
        &epochs,
        "--threads",
        &threads,
    ];

    let mut contenders = Vec::new();
    let mut command = Command::new(&backprop);
    command
        .arg("train")
        .arg("--data")
        .arg(&data)
        .args(recipe)
        .args(["--seed", "42", "--json"]);
    contenders.push(Framework {
        name: "backprop",
        command,
    });
    let default_venv = args
        .venv
        .clone()
        .or_else(|| std::env::var_os("BACKPROP_VENV").map(PathBuf::from));
    let default_venv = default_venv.unwrap_or_else(|| root.join(".venv"));
    for (name, venv) in [("torch", &args.torch_venv), ("jax", &args.jax_venv)] {
        let venv = venv.as_ref().unwrap_or(&default_venv);
        let Some(python) = python_with(venv, name) else {
            eprintln!(
                "   note: {} has no Python with {name}: {name} skipped (--{name}-venv, --venv)",
                venv.display()
            );
            continue;
        };
        let mut command = Command::new(python);
        command
            .arg(root.join("xtask/scripts/framework_baseline.py"))
            .arg(name)
            .arg(&data)
            .args(recipe);
        contenders.push(Framework { name, command });
    }

    eprintln!(
        "== {} rounds of {} epochs (and one to warm up): [{layers}], batch {batch}, SGD lr {lr}, {threads} threads",
        args.rounds, args.epochs
    );
    let mut runs: Vec<Runs> = contenders
        .iter()
        .map(|f| Runs {
            name: f.name,
            medians: Vec::new(),
            accuracy: None,
        })
        .collect();
    for round in 1..=args.rounds {
        for (framework, runs) in contenders.iter_mut().zip(&mut runs) {
            let epochs =
                train(&mut framework.command).with_context(|| format!("{} in round {round}", framework.name))?;
            ensure!(
                epochs.len() == args.epochs + 1,
                "{}: {} epoch lines, expected {}",
                framework.name,
                epochs.len(),
                args.epochs + 1
            );
            let timed: Vec<f64> = epochs[1..].iter().map(|e| e.seconds).collect();
            runs.medians.push(median_of(&timed));
            runs.accuracy = epochs.last().and_then(|e| e.test_accuracy);
            eprintln!("   round {round}: {:<8} {:.3} s", framework.name, median_of(&timed));
        }
    }
    print!("{}", table(&runs));
    Ok(())
}

/// `python` in `venv` if it imports `module`.
fn python_with(venv: &Path, module: &str) -> Option<PathBuf> {
    let python = venv.join("bin").join("python");
    let imports = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    matches!(imports, Ok(s) if s.success()).then_some(python)
}

/// Runs one training and returns its epoch lines.
fn train(command: &mut Command) -> Result<Vec<Epoch>> {
    let output = command.stderr(Stdio::inherit()).output().context("starting it")?;
    ensure!(output.status.success(), "it failed ({})", output.status);
    epoch_lines(&String::from_utf8_lossy(&output.stdout))
}

/// The epoch objects among a run's output lines.
fn epoch_lines(stdout: &str) -> Result<Vec<Epoch>> {
    stdout
        .lines()
        .filter(|line| line.starts_with("{\"epoch\""))
        .map(|line| serde_json::from_str(line).with_context(|| format!("unexpected line: {line}")))
        .collect()
}

/// The report: per framework its median epoch over the rounds, their range,
/// and the median of its per-round time over backprop's (the first runs).
fn table(runs: &[Runs]) -> String {
    let mut out = format!(
        "{:<10} {:>13} {:>17} {:>13} {:>9}\n",
        "framework", "median epoch", "rounds' range", "x backprop", "accuracy"
    );
    let note = "x backprop: the median over the rounds of each round's epoch over backprop's \
                (above 1: slower than backprop); accuracy: the last run's, on the test set\n";
    let base = &runs[0].medians;
    for r in runs {
        let ratios: Vec<f64> = r.medians.iter().zip(base).map(|(t, b)| t / b).collect();
        let (lo, hi) = r
            .medians
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        let accuracy = r.accuracy.map_or("-".to_owned(), |a| format!("{:.2}%", 100.0 * a));
        out += &format!(
            "{:<10} {:>11.3} s {:>8.3}-{:.3} s {:>12.2}x {:>9}\n",
            r.name,
            median_of(&r.medians),
            lo,
            hi,
            median_of(&ratios),
            accuracy
        );
    }
    out + note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_lines_are_read_from_both_kinds_of_output() {
        let backprop = "{\"epoch\":1,\"epochs\":2,\"train_loss\":0.3,\"test_accuracy\":0.96,\"seconds\":0.2,\"eval_seconds\":0.01}\n\
                        {\"epoch\":2,\"epochs\":2,\"train_loss\":0.1,\"test_accuracy\":0.97,\"seconds\":0.15,\"eval_seconds\":0.01}\n";
        let python = "{\"epoch\": 1, \"seconds\": 0.5, \"test_accuracy\": 0.95}\n{\"peak_rss_mb\": 1300.0}\n";
        let b = epoch_lines(backprop).unwrap();
        assert_eq!(b.iter().map(|e| e.seconds).collect::<Vec<_>>(), [0.2, 0.15]);
        assert_eq!(b[1].test_accuracy, Some(0.97));
        let p = epoch_lines(python).unwrap();
        assert_eq!((p.len(), p[0].seconds), (1, 0.5));
        assert!(
            epoch_lines("{\"epoch\": 1}\n").is_err(),
            "an epoch line without seconds"
        );
    }

    #[test]
    fn the_table_gives_medians_ranges_and_per_round_ratios() {
        let runs = [
            Runs {
                name: "backprop",
                medians: vec![1.0, 2.0, 1.0],
                accuracy: Some(0.9788),
            },
            Runs {
                name: "jax",
                // Slower by 1.5x, 1.5x and 3x in the three rounds.
                medians: vec![1.5, 3.0, 3.0],
                accuracy: None,
            },
        ];
        let table = table(&runs);
        let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[1],
            ["backprop", "1.000", "s", "1.000-2.000", "s", "1.00x", "97.88%"]
        );
        assert_eq!(lines[2], ["jax", "3.000", "s", "1.500-3.000", "s", "1.50x", "-"]);
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_runs() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: CompareArgs,
        }
        for (flags, expected) in [
            (&["--epochs", "0"][..], "--epochs must be at least 1"),
            (&["--rounds", "0"], "--rounds must be at least 1"),
            (&["--layers", "784"], "--layers needs two or more sizes above 0"),
            (&["--layers", "784,0,10"], "--layers needs two or more sizes above 0"),
            (&["--batch-size", "0"], "--batch-size must be at least 1"),
            (&["--threads", "0"], "--threads must be at least 1"),
        ] {
            let cli = Cli::try_parse_from(std::iter::once("compare").chain(flags.iter().copied())).unwrap();
            let err = run(&cli.args).expect_err(expected);
            assert_eq!(err.to_string(), expected, "{flags:?}");
        }
    }

    #[test]
    fn a_venv_without_the_module_is_skipped() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(python_with(empty.path(), "torch"), None);
    }
}
