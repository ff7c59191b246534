//! `cargo xtask verify`: the end-to-end check. Ensures the data, builds the
//! release CLI, trains the seed recipe and saves the model, reloads it with
//! `backprop eval`, and checks that the reloaded accuracy equals the one
//! training reported and reaches the data set's threshold.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use backprop_data::KnownDataset;
use clap::Args;
use serde::Deserialize;

use crate::{DatasetArg, cargo, download, project_root};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Which data set.
    #[arg(long, value_enum, default_value = "mnist")]
    pub(crate) dataset: DatasetArg,

    /// Where to get the data if it is missing, as for `download --from`.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) from: Option<String>,

    /// Check a shipped recipe (`recipes/NAME.toml`) instead of the seed
    /// recipe: train it on the data set its `[verify]` table names and
    /// require the test accuracy that table claims. Long: minutes.
    #[arg(long, value_name = "NAME")]
    pub(crate) recipe: Option<String>,
}

/// A recipe's `[verify]` table: what it claims.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    /// `mnist` or `fashion-mnist`.
    dataset: String,
    /// The least test accuracy (a fraction) the recipe reaches.
    min_test_accuracy: f64,
}

/// The `[verify]` table of `recipes/NAME.toml`.
fn claim(path: &Path) -> Result<Claim> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    let verify = table
        .get("verify")
        .with_context(|| format!("{} has no [verify] table saying what it reaches", path.display()))?;
    verify
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: [verify]: {}", path.display(), e.message()))
}

/// `verify --recipe NAME`: trains the recipe and checks its claim.
fn run_recipe(name: &str, from: Option<&str>) -> Result<()> {
    let root = project_root();
    let path = root.join("recipes").join(format!("{name}.toml"));
    let claim = claim(&path)?;
    let dataset = match claim.dataset.as_str() {
        "mnist" => KnownDataset::Mnist,
        "fashion-mnist" => KnownDataset::FashionMnist,
        other => bail!(
            "{}: [verify] dataset {other:?}: expected mnist or fashion-mnist",
            path.display()
        ),
    };
    eprintln!("== data: {dataset}");
    let data = download::ensure(dataset, from)?;
    eprintln!("== build: backprop (release)");
    let backprop = build_cli(&root)?;
    let scratch = tempfile::tempdir().context("creating a temporary directory for the model")?;
    let ckpt = scratch.path().join("model.ckpt");
    eprintln!("== train: recipes/{name}.toml");
    let start = std::time::Instant::now();
    let output = Command::new(&backprop)
        .current_dir(&root)
        .arg("train")
        .arg("--config")
        .arg(&path)
        .arg("--data")
        .arg(&data)
        .arg("--save")
        .arg(&ckpt)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .context("running backprop train")?;
    ensure!(
        output.status.success(),
        "backprop train --config {} failed ({})",
        path.display(),
        output.status
    );
    let seconds = start.elapsed().as_secs_f64();
    // The test accuracy: the final line's (`final_test`, after a validation
    // split), else the last epoch's.
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let accuracy = lines
        .iter()
        .rev()
        .find_map(|l| l["test_accuracy"].as_f64())
        .context("backprop train printed no test accuracy")?;
    let epochs = lines.iter().filter(|l| l.get("epoch").is_some()).count();
    println!(
        "verify recipe {name} on {dataset}: {}",
        if accuracy >= claim.min_test_accuracy {
            "PASS"
        } else {
            "FAIL"
        }
    );
    println!(
        "  test accuracy   {:.2}% (claimed at least {:.2}%)",
        100.0 * accuracy,
        100.0 * claim.min_test_accuracy
    );
    println!("  epochs          {epochs}, {seconds:.0} s in all");
    ensure!(
        accuracy >= claim.min_test_accuracy,
        "recipes/{name}.toml reached {:.2}%, below the {:.2}% it claims",
        100.0 * accuracy,
        100.0 * claim.min_test_accuracy
    );
    Ok(())
}

/// The seed recipe, as flags of `backprop train`.
const RECIPE: [&str; 11] = [
    "--layers",
    "784,128,10",
    "--epochs",
    "10",
    "--batch-size",
    "64",
    "--lr",
    "0.5",
    "--seed",
    "42",
    "--json",
];

/// The epochs the recipe trains for.
const EPOCHS: usize = 10;

/// The lowest test accuracy (a fraction) the recipe must reach.
fn threshold(dataset: KnownDataset) -> f64 {
    match dataset {
        KnownDataset::Mnist => 0.970,
        KnownDataset::FashionMnist => 0.850,
    }
}

/// One line of `backprop train --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct EpochLine {
    epoch: usize,
    train_loss: f64,
    test_loss: f64,
    test_accuracy: f64,
    seconds: f64,
}

/// The output of `backprop eval --json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
struct EvalLine {
    accuracy: f64,
}

pub(crate) fn run(args: &VerifyArgs) -> Result<()> {
    if let Some(name) = &args.recipe {
        return run_recipe(name, args.from.as_deref());
    }
    let dataset = KnownDataset::from(args.dataset);
    let root = project_root();
    eprintln!("== data: {dataset}");
    let data = download::ensure(dataset, args.from.as_deref())?;

    eprintln!("== build: backprop (release)");
    let backprop = build_cli(&root)?;

    let scratch = tempfile::tempdir().context("creating a temporary directory for the model")?;
    let ckpt = scratch.path().join("model.ckpt");
    eprintln!("== train: 784-128-10, SGD lr 0.5, batch 64, {EPOCHS} epochs, seed 42");
    let epochs = train(&backprop, &root, &data, &ckpt)?;
    eprintln!("== eval: reloading {}", ckpt.display());
    let reloaded = eval(&backprop, &root, &data, &ckpt)?;

    let summary = Summary::new(dataset, &epochs, reloaded)?;
    println!("{summary}");
    summary.check()
}

/// Builds the CLI in release mode and returns the path of its binary, as
/// cargo reports it (so a custom target directory is honoured).
pub(crate) fn build_cli(root: &Path) -> Result<PathBuf> {
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "backprop-cli",
            "--bin",
            "backprop",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    ensure!(
        output.status.success(),
        "cargo build --release -p backprop-cli failed ({})",
        output.status
    );
    executable_from_messages(&String::from_utf8_lossy(&output.stdout))
        .context("cargo build did not report the `backprop` executable")
}

/// The `backprop` executable named in cargo's JSON messages.
fn executable_from_messages(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "backprop")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// Runs the recipe, echoing each epoch, and returns the epochs' JSON lines.
fn train(backprop: &Path, root: &Path, data: &Path, ckpt: &Path) -> Result<Vec<EpochLine>> {
    let mut child = Command::new(backprop)
        .current_dir(root)
        .arg("train")
        .arg("--data")
        .arg(data)
        .args(RECIPE)
        .arg("--save")
        .arg(ckpt)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", backprop.display()))?;
    let stdout = child.stdout.take().context("capturing the output of backprop train")?;
    let mut epochs = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the output of backprop train")?;
        match parse_epoch(&line)? {
            Some(epoch) => {
                eprintln!(
                    "  epoch {:>2}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.2} s",
                    epoch.epoch,
                    epoch.train_loss,
                    epoch.test_loss,
                    100.0 * epoch.test_accuracy,
                    epoch.seconds
                );
                epochs.push(epoch);
            }
            None if line.trim().is_empty() => {}
            None => eprintln!("  {line}"),
        }
    }
    let status = child.wait().context("waiting for backprop train")?;
    ensure!(status.success(), "backprop train failed ({status})");
    ensure!(
        epochs.len() == EPOCHS,
        "backprop train reported {} epochs, expected {EPOCHS}",
        epochs.len()
    );
    ensure!(ckpt.is_file(), "backprop train did not save {}", ckpt.display());
    Ok(epochs)
}

/// An epoch from a line of `backprop train --json`; `None` for a line that
/// is not a JSON object with an `epoch` field; an error for one that has it
/// but lacks the other fields.
fn parse_epoch(line: &str) -> Result<Option<EpochLine>> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return Ok(None);
    };
    if value.get("epoch").is_none() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .with_context(|| format!("backprop train printed an epoch line without the expected fields: {line}"))
}

/// Evaluates the saved model and returns its test accuracy.
fn eval(backprop: &Path, root: &Path, data: &Path, ckpt: &Path) -> Result<f64> {
    let output = Command::new(backprop)
        .current_dir(root)
        .arg("eval")
        .arg(ckpt)
        .arg("--data")
        .arg(data)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} eval", backprop.display()))?;
    ensure!(output.status.success(), "backprop eval failed ({})", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_eval(&stdout)
}

/// The accuracy in the last JSON object of `backprop eval --json`'s output.
fn parse_eval(stdout: &str) -> Result<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("backprop eval printed nothing")?;
    let eval: EvalLine = serde_json::from_str(line)
        .with_context(|| format!("backprop eval printed no JSON object with `accuracy`: {line}"))?;
    Ok(eval.accuracy)
}

/// What verify found.
#[derive(Debug, PartialEq)]
struct Summary {
    dataset: KnownDataset,
    accuracy: f64,
    reloaded: f64,
    threshold: f64,
    train_seconds: f64,
    median_epoch_seconds: f64,
}

impl Summary {
    fn new(dataset: KnownDataset, epochs: &[EpochLine], reloaded: f64) -> Result<Summary> {
        let Some(last) = epochs.last() else {
            bail!("training reported no epoch");
        };
        let mut seconds: Vec<f64> = epochs.iter().map(|e| e.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let mid = seconds.len() / 2;
        let median = if seconds.len().is_multiple_of(2) {
            (seconds[mid - 1] + seconds[mid]) / 2.0
        } else {
            seconds[mid]
        };
        Ok(Summary {
            dataset,
            accuracy: last.test_accuracy,
            reloaded,
            threshold: threshold(dataset),
            train_seconds: seconds.iter().sum(),
            median_epoch_seconds: median,
        })
    }

    fn passed(&self) -> bool {
        self.reloaded == self.accuracy && self.accuracy >= self.threshold
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.reloaded == self.accuracy,
            "the reloaded model's accuracy {} differs from the {} training reported",
            self.reloaded,
            self.accuracy
        );
        ensure!(
            self.accuracy >= self.threshold,
            "test accuracy {:.2}% is below the threshold {:.2}% for {}",
            100.0 * self.accuracy,
            100.0 * self.threshold,
            self.dataset
        );
        Ok(())
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let same = if self.reloaded == self.accuracy {
            "identical"
        } else {
            "DIFFERENT"
        };
        writeln!(f, "verify {}: {verdict}", self.dataset)?;
        writeln!(
            f,
            "  test accuracy   {:.2}% (threshold {:.2}%)",
            100.0 * self.accuracy,
            100.0 * self.threshold
        )?;
        writeln!(f, "  reloaded model  {:.2}% ({same})", 100.0 * self.reloaded)?;
        write!(
            f,
            "  train time      {:.2} s for {EPOCHS} epochs (median epoch {:.2} s)",
            self.train_seconds, self.median_epoch_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, test_accuracy: f64, seconds: f64) -> EpochLine {
        EpochLine {
            epoch,
            train_loss: 0.1,
            test_loss: 0.1,
            test_accuracy,
            seconds,
        }
    }

    #[test]
    fn epoch_lines_are_parsed_and_other_lines_skipped() {
        let line = r#"{"epoch":3,"train_loss":0.25,"test_loss":0.3,"test_accuracy":0.9712,"seconds":0.61}"#;
        assert_eq!(parse_epoch(line).unwrap(), Some(epoch3()));
        assert_eq!(parse_epoch("saved model.ckpt").unwrap(), None);
        assert_eq!(parse_epoch(r#"{"saved":"m.ckpt"}"#).unwrap(), None);
        let err = parse_epoch(r#"{"epoch":3,"train_loss":0.25}"#).unwrap_err();
        assert!(format!("{err:#}").contains("missing field `test_loss`"), "{err:#}");

        fn epoch3() -> EpochLine {
            EpochLine {
                epoch: 3,
                train_loss: 0.25,
                test_loss: 0.3,
                test_accuracy: 0.9712,
                seconds: 0.61,
            }
        }
    }

    #[test]
    fn eval_output_gives_the_accuracy_exactly() {
        assert_eq!(parse_eval("{\"accuracy\":0.9791,\"loss\":0.07}\n").unwrap(), 0.9791);
        assert!(parse_eval("").is_err());
        assert!(parse_eval("accuracy 97.91%\n").is_err());
    }

    #[test]
    fn summary_checks_threshold_and_reload() {
        let epochs: Vec<EpochLine> = (1..=10).map(|e| epoch(e, 0.9 + e as f64 / 1000.0, e as f64)).collect();
        let pass = Summary::new(KnownDataset::FashionMnist, &epochs, 0.91).unwrap();
        assert_eq!((pass.accuracy, pass.threshold), (0.91, 0.85));
        assert_eq!((pass.train_seconds, pass.median_epoch_seconds), (55.0, 5.5));
        assert!(pass.check().is_ok() && pass.to_string().contains("PASS"), "{pass}");

        let low = Summary::new(KnownDataset::Mnist, &epochs, 0.91).unwrap();
        let err = low.check().unwrap_err().to_string();
        assert!(err.contains("below the threshold 97.00%"), "{err}");
        assert!(low.to_string().contains("FAIL"));

        let differs = Summary::new(KnownDataset::FashionMnist, &epochs, 0.9101).unwrap();
        assert!(differs.check().unwrap_err().to_string().contains("differs"));
        assert!(Summary::new(KnownDataset::Mnist, &[], 0.9).is_err());
    }

    #[test]
    fn the_executable_is_found_in_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"backprop_nn"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"backprop"},"executable":"/t/release/backprop"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable_from_messages(messages),
            Some(PathBuf::from("/t/release/backprop"))
        );
        assert_eq!(executable_from_messages("{}"), None);
    }
}
