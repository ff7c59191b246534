//! `cargo xtask bench`: times the seed recipe on real data with the release
//! binary, and measures this machine's sgemm as the yardstick.
//!
//! Epoch times come from the CLI's own `--json` lines (training only, the
//! per-epoch test evaluation excluded); peak memory is the child process's
//! resident high-water mark as Linux reports it (`VmHWM`).

use crate::{DatasetArg, download, project_root, verify};
use anyhow::{Context, Result, ensure};
use backprop_data::KnownDataset;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The seed recipe's layer sizes.
const SIZES: [usize; 3] = [784, 128, 10];
/// The seed recipe's batch size.
const BATCH: usize = 64;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Data set to train on.
    #[arg(long, value_enum, default_value = "mnist")]
    pub(crate) dataset: DatasetArg,
    /// Where to fetch the data from if it is not in datasets/ yet.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Epochs to time (the median is over these).
    #[arg(long, default_value_t = 6)]
    pub(crate) epochs: usize,
    /// Threads for training (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One epoch line of `backprop train --json`.
#[derive(Debug, Deserialize)]
struct EpochLine {
    seconds: f64,
    eval_seconds: f64,
    test_accuracy: f64,
}

/// Everything `bench` measures.
#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    threads: usize,
    epochs: usize,
    median_epoch_s: f64,
    min_epoch_s: f64,
    max_epoch_s: f64,
    examples_per_s: f64,
    /// Dense FLOP of an epoch's products divided by the median epoch time.
    effective_gflops: f64,
    eval_s: f64,
    peak_rss_mb: f64,
    final_test_accuracy: f64,
    /// matrixmultiply's sgemm on one thread, 1024 x 1024 x 1024.
    sgemm_gflops_1024: f64,
    /// matrixmultiply's sgemm on one thread at the five training-step shapes.
    sgemm_gflops_training: f64,
    /// Seconds per epoch those five products alone take with matrixmultiply.
    sgemm_epoch_floor_s: f64,
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    ensure!(args.epochs > 0, "--epochs must be at least 1");
    let dataset = KnownDataset::from(args.dataset);
    let root = project_root();
    let data = download::ensure(dataset, args.from.as_deref())?;
    let backprop = verify::build_cli(&root)?;
    eprintln!(
        "== train: {SIZES:?}, batch {BATCH}, {} epochs, threads {}",
        args.epochs, args.threads
    );
    let (epochs, peak_rss_mb) = train(&backprop, &root, &data, args)?;
    eprintln!("== sgemm yardstick (matrixmultiply, one thread)");
    let sgemm_gflops_1024 = sgemm_gflops(1024, 1024, 1024);
    let (sgemm_gflops_training, sgemm_epoch_floor_s) = training_shapes_sgemm(60_000);

    let mut seconds: Vec<f64> = epochs.iter().map(|e| e.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mut eval: Vec<f64> = epochs.iter().map(|e| e.eval_seconds).collect();
    eval.sort_by(f64::total_cmp);
    let median_epoch_s = median(&seconds);
    let n_train = 60_000.0;
    let report = Report {
        dataset: dataset.to_string(),
        threads: args.threads,
        epochs: epochs.len(),
        median_epoch_s,
        min_epoch_s: seconds[0],
        max_epoch_s: seconds[seconds.len() - 1],
        examples_per_s: n_train / median_epoch_s,
        effective_gflops: flop_per_example(&SIZES) as f64 * n_train / median_epoch_s / 1e9,
        eval_s: median(&eval),
        peak_rss_mb,
        final_test_accuracy: epochs.last().map_or(0.0, |e| e.test_accuracy),
        sgemm_gflops_1024,
        sgemm_gflops_training,
        sgemm_epoch_floor_s,
    };
    print_table(&report);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Dense FLOP per example of one training step: forward `2 n_in n_out` per
/// layer, BP4 the same again, and BP2 for every layer but the first.
fn flop_per_example(sizes: &[usize]) -> u64 {
    let products: Vec<u64> = sizes.windows(2).map(|p| 2 * (p[0] * p[1]) as u64).collect();
    2 * products.iter().sum::<u64>() + products[1..].iter().sum::<u64>()
}

/// Runs the CLI, returning its epoch lines and peak resident memory in MB.
fn train(backprop: &Path, root: &Path, data: &Path, args: &BenchArgs) -> Result<(Vec<EpochLine>, f64)> {
    let sizes = SIZES.map(|s| s.to_string()).join(",");
    let mut child = Command::new(backprop)
        .current_dir(root)
        .arg("train")
        .arg("--data")
        .arg(data)
        .args([
            "--layers",
            &sizes,
            "--batch-size",
            &BATCH.to_string(),
            "--lr",
            "0.5",
            "--seed",
            "42",
            "--json",
        ])
        .args([
            "--epochs",
            &args.epochs.to_string(),
            "--threads",
            &args.threads.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", backprop.display()))?;
    let stdout = child.stdout.take().context("no stdout from backprop train")?;
    let mut epochs = Vec::new();
    let mut peak_rss_mb = 0.0f64;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading backprop train's output")?;
        peak_rss_mb = peak_rss_mb.max(high_water_rss_mb(child.id()).unwrap_or(f64::NAN));
        let epoch: EpochLine = serde_json::from_str(&line).with_context(|| format!("unexpected line: {line}"))?;
        eprintln!(
            "   epoch {:>2}: {:.3} s train, {:.1} ms eval",
            epochs.len() + 1,
            epoch.seconds,
            epoch.eval_seconds * 1e3
        );
        epochs.push(epoch);
    }
    let status = child.wait().context("waiting for backprop train")?;
    ensure!(status.success(), "backprop train failed ({status})");
    ensure!(
        epochs.len() == args.epochs,
        "expected {} epoch lines, got {}",
        args.epochs,
        epochs.len()
    );
    Ok((epochs, peak_rss_mb))
}

/// The process's resident-memory high-water mark so far (`VmHWM` in
/// `/proc/PID/status`), in MB. Read after each epoch line: it never falls,
/// and nothing but the exit follows the last line. (`getrusage` would count
/// other children too, such as `cargo build`.)
fn high_water_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Best-of-several GFLOP/s of matrixmultiply's sgemm at `(m, k) x (k, n)`.
fn sgemm_gflops(m: usize, k: usize, n: usize) -> f64 {
    let seconds = sgemm_seconds(m, k, n);
    2.0 * (m * k * n) as f64 / seconds / 1e9
}

fn sgemm_seconds(m: usize, k: usize, n: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let reps = (2e8 / (2.0 * (m * k * n) as f64)).clamp(3.0, 10_000.0) as usize;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            // SAFETY: the buffers have exactly the row-major shapes passed.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    std::hint::black_box(&c);
    best
}

/// matrixmultiply at the five products of a seed-recipe training step:
/// `X W1`, `X^T delta1`, `A1 W2`, `A1^T delta2`, `delta2 W2^T`. Returns the
/// GFLOP/s over all five and the seconds per epoch of `n_train` examples.
fn training_shapes_sgemm(n_train: usize) -> (f64, f64) {
    let (b, i, h, o) = (BATCH, SIZES[0], SIZES[1], SIZES[2]);
    let shapes = [(b, i, h), (i, b, h), (b, h, o), (h, b, o), (b, o, h)];
    let seconds: f64 = shapes.iter().map(|&(m, k, n)| sgemm_seconds(m, k, n)).sum();
    let flop: usize = shapes.iter().map(|&(m, k, n)| 2 * m * k * n).sum();
    let steps = n_train.div_ceil(b) as f64;
    (flop as f64 / seconds / 1e9, seconds * steps)
}

fn print_table(r: &Report) {
    println!("dataset            {}", r.dataset);
    println!(
        "threads            {}",
        if r.threads == 0 {
            "all CPUs".to_string()
        } else {
            r.threads.to_string()
        }
    );
    println!(
        "epoch time         median {:.3} s, min {:.3} s, max {:.3} s ({} epochs)",
        r.median_epoch_s, r.min_epoch_s, r.max_epoch_s, r.epochs
    );
    println!(
        "throughput         {:.0} examples/s, {:.1} effective GFLOP/s",
        r.examples_per_s, r.effective_gflops
    );
    println!("evaluation         {:.1} ms for the test set", r.eval_s * 1e3);
    println!("peak memory        {:.1} MB resident", r.peak_rss_mb);
    println!(
        "test accuracy      {:.2}% after the last epoch",
        100.0 * r.final_test_accuracy
    );
    println!(
        "sgemm 1024^3       {:.1} GFLOP/s (matrixmultiply, one thread)",
        r.sgemm_gflops_1024
    );
    println!(
        "sgemm step shapes  {:.1} GFLOP/s, {:.3} s per epoch of dense products alone",
        r.sgemm_gflops_training, r.sgemm_epoch_floor_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_matches_the_seed_recipe() {
        // 2 * (784 * 128 + 128 * 10) forward, the same for BP4, 2 * 128 * 10 for BP2.
        assert_eq!(flop_per_example(&SIZES), 409_088);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
