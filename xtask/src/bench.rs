//! `cargo xtask bench`: times the seed recipe (or `--layers`/`--batch-size`,
//! or a recipe with `--recipe NAME`) on real data with the release binary,
//! measures this machine's sgemm as the yardstick, and times each dense
//! product of a training step (forward, BP2 and BP4 of every layer) with
//! the library's own `gemm_with`, next to OpenBLAS's sgemm at the same shapes
//! and thread count through NumPy (`xtask/scripts/gemm_yardstick.py`) when a
//! venv with numpy and threadpoolctl is found.
//!
//! Epoch times come from the CLI's own `--json` lines (training only, the
//! per-epoch test evaluation excluded); peak memory is the child process's
//! resident high-water mark as Linux reports it (`VmHWM`).

use crate::{DatasetArg, download, project_root, verify};
use anyhow::{Context, Result, ensure};
use backprop_data::KnownDataset;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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
    /// Layer sizes, input first (default: the seed recipe's 784,128,10, or
    /// the recipe's).
    #[arg(long, value_delimiter = ',')]
    pub(crate) layers: Option<Vec<usize>>,
    /// Batch size (default: the seed recipe's 64, or the recipe's).
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Train with `recipes/NAME.toml` (`--config`); its layers and batch size
    /// unless `--layers`/`--batch-size` are given, and its data set unless
    /// `--dataset` is.
    #[arg(long, value_name = "NAME")]
    pub(crate) recipe: Option<String>,
    /// A Python venv with numpy and threadpoolctl for the OpenBLAS yardstick
    /// (default: $BACKPROP_VENV, then .venv in the workspace); skipped with a
    /// note when there is none.
    #[arg(long)]
    pub(crate) venv: Option<PathBuf>,
    /// Report the wall time until the validation accuracy (the test
    /// accuracy when nothing is held out) first reaches this fraction, e.g.
    /// 0.99: training and the per-epoch evaluations, from the first epoch.
    #[arg(long, value_name = "FRACTION")]
    pub(crate) time_to_accuracy: Option<f64>,
}

/// The keys of a recipe that `bench` reads itself.
#[derive(Debug, Default, Deserialize)]
struct RecipeShape {
    layers: Option<Vec<usize>>,
    #[serde(alias = "batch-size")]
    batch_size: Option<usize>,
    verify: Option<RecipeVerify>,
}

#[derive(Debug, Default, Deserialize)]
struct RecipeVerify {
    dataset: Option<String>,
}

/// What to train: the sizes, the batch, and the recipe file if any.
#[derive(Debug)]
struct Setup {
    sizes: Vec<usize>,
    batch: usize,
    recipe: Option<PathBuf>,
    dataset: Option<DatasetArg>,
}

fn setup(args: &BenchArgs, root: &Path) -> Result<Setup> {
    let (mut shape, recipe) = match &args.recipe {
        None => (RecipeShape::default(), None),
        Some(name) => {
            let path = root.join("recipes").join(format!("{name}.toml"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let shape: RecipeShape = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            (shape, Some(path))
        }
    };
    let dataset = match shape.verify.take().and_then(|v| v.dataset) {
        None => None,
        Some(name) => Some(
            <DatasetArg as clap::ValueEnum>::from_str(&name, true)
                .map_err(|e| anyhow::anyhow!("recipe data set {name:?}: {e}"))?,
        ),
    };
    let sizes = args.layers.clone().or(shape.layers).unwrap_or_else(|| SIZES.to_vec());
    let batch = args.batch_size.or(shape.batch_size).unwrap_or(BATCH);
    ensure!(
        sizes.len() >= 2 && sizes.iter().all(|&s| s > 0),
        "--layers needs two or more sizes above 0"
    );
    ensure!(batch > 0, "--batch-size must be at least 1");
    Ok(Setup {
        sizes,
        batch,
        recipe,
        dataset,
    })
}

/// One epoch line of `backprop train --json`.
#[derive(Debug, Deserialize)]
struct EpochLine {
    seconds: f64,
    #[serde(default)]
    eval_seconds: f64,
    /// Absent on the epochs of a recipe that holds out validation images.
    #[serde(default)]
    test_accuracy: f64,
    /// Present when validation images are held out.
    #[serde(default)]
    validation_accuracy: Option<f64>,
}

/// How long a run took to first reach an accuracy.
#[derive(Debug, Serialize, PartialEq)]
struct TimeToAccuracy {
    /// The accuracy asked for, a fraction.
    target: f64,
    /// Which split it was measured on: "validation" or "test".
    split: &'static str,
    /// The first epoch at or above it (counted from 1), if any.
    epoch: Option<usize>,
    /// Seconds of training and evaluation until the end of that epoch.
    seconds: Option<f64>,
}

/// The first epoch whose validation (else test) accuracy reaches `target`,
/// and the training plus evaluation seconds spent until its end.
fn time_to_accuracy(epochs: &[EpochLine], target: f64) -> TimeToAccuracy {
    let held_out = epochs.iter().any(|e| e.validation_accuracy.is_some());
    let mut elapsed = 0.0;
    let mut reached = None;
    for (i, e) in epochs.iter().enumerate() {
        elapsed += e.seconds + e.eval_seconds;
        let accuracy = if held_out {
            e.validation_accuracy.unwrap_or(0.0)
        } else {
            e.test_accuracy
        };
        if accuracy >= target {
            reached = Some((i + 1, elapsed));
            break;
        }
    }
    TimeToAccuracy {
        target,
        split: if held_out { "validation" } else { "test" },
        epoch: reached.map(|r| r.0),
        seconds: reached.map(|r| r.1),
    }
}

/// Everything `bench` measures.
#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    layers: Vec<usize>,
    batch_size: usize,
    recipe: Option<String>,
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
    /// Every dense product of a training step, with `gemm_with` and OpenBLAS.
    products: Vec<Product>,
    /// Seconds an epoch's steps spend in those products at their measured
    /// rates.
    products_epoch_s: f64,
    /// The median epoch over `products_epoch_s`: what the rest of a step
    /// (element-wise passes, the optimiser, the data) adds.
    epoch_over_products: f64,
    /// With `--time-to-accuracy`.
    time_to_accuracy: Option<TimeToAccuracy>,
}

/// One dense product of a training step, timed in-process with the library's
/// `gemm_with` and, when a venv is found, with OpenBLAS through NumPy.
#[derive(Debug, Serialize)]
struct Product {
    /// "forward 1", "BP2 2", "BP4 1": the product and its layer (from 1).
    name: String,
    m: usize,
    k: usize,
    n: usize,
    /// A is a transposed (stride) view, as in BP4.
    transposed_a: bool,
    /// B is `W^T` with `W` as stored, as in BP2 (`gemm_transposed_b_with`).
    transposed_b: bool,
    /// The library's GFLOP/s, median over the rounds.
    gflops: f64,
    /// OpenBLAS's GFLOP/s, median over the same rounds.
    openblas_gflops: Option<f64>,
    /// The median of each round's ratio, library over OpenBLAS.
    ratio: Option<f64>,
}

impl Product {
    fn flop(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }

    /// `MxKxN`, then `t` for a transposed A or `T` for a transposed B, as
    /// `gemm_yardstick.py` reads it.
    fn shape(&self) -> String {
        let (m, k, n) = (self.m, self.k, self.n);
        let tail = match (self.transposed_a, self.transposed_b) {
            (true, _) => "t",
            (_, true) => "T",
            _ => "",
        };
        format!("{m}x{k}x{n}{tail}")
    }
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    ensure!(args.epochs > 0, "--epochs must be at least 1");
    if let Some(t) = args.time_to_accuracy {
        ensure!(
            t > 0.0 && t <= 1.0,
            "--time-to-accuracy is a fraction in (0, 1], got {t}"
        );
    }
    let root = project_root();
    let setup = setup(args, &root)?;
    // A data set given on the command line wins over the recipe's.
    let from_command_line = std::env::args().any(|a| a == "--dataset" || a.starts_with("--dataset="));
    let dataset = KnownDataset::from(match setup.dataset {
        Some(d) if !from_command_line => d,
        _ => args.dataset,
    });
    let data = download::ensure(dataset, args.from.as_deref())?;
    let backprop = verify::build_cli(&root)?;
    eprintln!(
        "== train: {:?}, batch {}{}, {} epochs, threads {}",
        setup.sizes,
        setup.batch,
        setup
            .recipe
            .as_ref()
            .map_or(String::new(), |r| format!(", {}", r.display())),
        args.epochs,
        args.threads
    );
    let (epochs, peak_rss_mb) = train(&backprop, &root, &data, args, &setup)?;
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    eprintln!("== dense products of a step, gemm_with on {threads} threads");
    let mut products = step_products(&setup.sizes, setup.batch);
    compare_products(&root, args.venv.as_deref(), threads, &mut products);
    eprintln!("== sgemm yardstick (matrixmultiply, one thread)");
    let sgemm_gflops_1024 = sgemm_gflops(1024, 1024, 1024);
    let (sgemm_gflops_training, sgemm_epoch_floor_s) = training_shapes_sgemm(60_000);

    let mut seconds: Vec<f64> = epochs.iter().map(|e| e.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mut eval: Vec<f64> = epochs.iter().map(|e| e.eval_seconds).collect();
    eval.sort_by(f64::total_cmp);
    let median_epoch_s = median(&seconds);
    let n_train = 60_000.0;
    let products_epoch_s = products_epoch_seconds(&products, 60_000_usize.div_ceil(setup.batch));
    let report = Report {
        dataset: dataset.to_string(),
        layers: setup.sizes.clone(),
        batch_size: setup.batch,
        recipe: args.recipe.clone(),
        threads: args.threads,
        epochs: epochs.len(),
        median_epoch_s,
        min_epoch_s: seconds[0],
        max_epoch_s: seconds[seconds.len() - 1],
        examples_per_s: n_train / median_epoch_s,
        effective_gflops: flop_per_example(&setup.sizes) as f64 * n_train / median_epoch_s / 1e9,
        eval_s: median(&eval),
        peak_rss_mb,
        final_test_accuracy: epochs.last().map_or(0.0, |e| e.test_accuracy),
        sgemm_gflops_1024,
        sgemm_gflops_training,
        sgemm_epoch_floor_s,
        products,
        products_epoch_s,
        epoch_over_products: median_epoch_s / products_epoch_s,
        time_to_accuracy: args.time_to_accuracy.map(|t| time_to_accuracy(&epochs, t)),
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
fn train(backprop: &Path, root: &Path, data: &Path, args: &BenchArgs, setup: &Setup) -> Result<(Vec<EpochLine>, f64)> {
    let sizes = setup.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    let mut command = Command::new(backprop);
    command.current_dir(root).arg("train").arg("--data").arg(data);
    match &setup.recipe {
        // The recipe's own optimiser, schedule and the rest; flags override.
        Some(recipe) => command.arg("--config").arg(recipe),
        None => command.args(["--lr", "0.5", "--seed", "42"]),
    };
    let mut child = command
        .args(["--layers", &sizes, "--batch-size", &setup.batch.to_string(), "--json"])
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

/// The dense products of a training step of `sizes` at batch `batch`:
/// forward `(B, n_in) x (n_in, n_out)` and BP4 `A^T (n_in, B) x delta (B,
/// n_out)` for every layer, BP2 `delta (B, n_out) x W^T (n_out, n_in)` for
/// every layer but the first, with `W` as stored.
fn step_products(sizes: &[usize], batch: usize) -> Vec<Product> {
    let mut products = Vec::new();
    for (l, pair) in sizes.windows(2).enumerate() {
        let (n_in, n_out) = (pair[0], pair[1]);
        let mut shapes = vec![("forward", batch, n_in, n_out, false, false)];
        if l > 0 {
            shapes.push(("BP2", batch, n_out, n_in, false, true));
        }
        shapes.push(("BP4", n_in, batch, n_out, true, false));
        for (what, m, k, n, transposed_a, transposed_b) in shapes {
            products.push(Product {
                name: format!("{what} {}", l + 1),
                m,
                k,
                n,
                transposed_a,
                transposed_b,
                gflops: 0.0,
                openblas_gflops: None,
                ratio: None,
            });
        }
    }
    products
}

/// Rounds of the side-by-side product timing. Each round times every
/// product once with `gemm_with` and once with OpenBLAS, so that both see
/// the same minutes of a noisy machine; the report gives the medians.
const PRODUCT_ROUNDS: usize = 5;

/// The pause before each side's timing. Both libraries' idle workers spin
/// for a while before they sleep (OpenBLAS's for about 2^28 cycles, ours for
/// 2 ms), and spinning threads on the other side's cores slowed whichever
/// side came next by up to half.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// Times each product with the library on `threads` threads, as the CLI runs
/// them (the caller pinned to the CPU the workers leave free), alternating
/// with OpenBLAS when a venv is found: `PRODUCT_ROUNDS` rounds, each product
/// once per round on each side.
fn compare_products(root: &Path, venv: Option<&Path>, threads: usize, products: &mut [Product]) {
    // Started first: pinning this thread below would pin a child started
    // after it.
    let mut openblas = Openblas::start(root, venv, threads);
    let pool = backprop_tensor::ThreadPool::new(threads);
    pool.pin_caller();
    let mut ours = vec![Vec::new(); products.len()];
    let mut theirs = vec![Vec::new(); products.len()];
    for _ in 0..PRODUCT_ROUNDS {
        for (i, p) in products.iter().enumerate() {
            std::thread::sleep(SETTLE);
            ours[i].push(p.flop() / product_seconds(&pool, p) / 1e9);
            if let Some(blas) = openblas.as_mut() {
                std::thread::sleep(SETTLE);
                match blas.gflops(&p.shape()) {
                    Some(g) => theirs[i].push(g),
                    None => openblas = None,
                }
            }
        }
    }
    for (i, p) in products.iter_mut().enumerate() {
        p.gflops = median_of(&ours[i]);
        if theirs[i].len() == PRODUCT_ROUNDS {
            p.openblas_gflops = Some(median_of(&theirs[i]));
            let ratios: Vec<f64> = ours[i].iter().zip(&theirs[i]).map(|(o, t)| o / t).collect();
            p.ratio = Some(median_of(&ratios));
        }
    }
}

/// Seconds per call of the library's product at `p`'s shape: one call to
/// wake the workers, then the best of three timings of 3 to 10,000 calls,
/// as `gemm_yardstick.py` times OpenBLAS. `gemm_with`, or
/// `gemm_transposed_b_with` with `W` as stored for BP2, as the trainer calls
/// them.
fn product_seconds(pool: &backprop_tensor::ThreadPool, p: &Product) -> f64 {
    use ndarray::{Array2, ShapeBuilder};
    let (m, k, n) = (p.m, p.k, p.n);
    let a = Array2::from_shape_fn((m, k).set_f(p.transposed_a), |(i, q)| {
        ((i * 7 + q * 3) % 17) as f32 / 17.0 - 0.5
    });
    let b_dim = if p.transposed_b { (n, k) } else { (k, n) };
    let b = Array2::from_shape_fn(b_dim, |(q, j)| ((q * 5 + j) % 13) as f32 / 13.0 - 0.5);
    let mut scratch = Array2::<f32>::zeros(if p.transposed_b { (k, n) } else { (0, 0) });
    let mut c = Array2::<f32>::zeros((m, n));
    let mut call = || {
        if p.transposed_b {
            let scratch = &mut scratch.view_mut();
            backprop_tensor::gemm_transposed_b_with(pool, 1.0, a.view(), b.view(), scratch, 0.0, &mut c.view_mut());
        } else {
            backprop_tensor::gemm_with(pool, 1.0, a.view(), b.view(), 0.0, &mut c.view_mut());
        }
    };
    call();
    let reps = (2e8 / p.flop()).clamp(3.0, 10_000.0) as usize;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..reps {
            call();
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    std::hint::black_box(&c);
    best
}

/// Seconds `steps` training steps spend in `products` at their measured
/// rates.
fn products_epoch_seconds(products: &[Product], steps: usize) -> f64 {
    let step: f64 = products.iter().map(|p| p.flop() / (p.gflops * 1e9)).sum();
    step * steps as f64
}

/// The median of values in any order.
pub(crate) fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median(&sorted)
}

/// The venv's Python: `--venv`, else `$BACKPROP_VENV`, else `.venv` in the
/// workspace; `None` when none has one.
fn venv_python(root: &Path, venv: Option<&Path>) -> Option<PathBuf> {
    let venv = match venv {
        Some(v) => v.to_path_buf(),
        None => std::env::var_os("BACKPROP_VENV").map_or_else(|| root.join(".venv"), PathBuf::from),
    };
    let python = venv.join("bin").join("python");
    python.exists().then_some(python)
}

/// OpenBLAS's sgemm through the venv's NumPy: `gemm_yardstick.py --serve`
/// in a child process, which times each shape it is sent.
struct Openblas {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Openblas {
    /// Starts the child on `threads` threads, or says why not.
    fn start(root: &Path, venv: Option<&Path>, threads: usize) -> Option<Self> {
        let Some(python) = venv_python(root, venv) else {
            eprintln!(
                "   note: no venv (--venv, $BACKPROP_VENV or .venv) with numpy and threadpoolctl: \
                 OpenBLAS yardstick skipped (python3 -m venv .venv && .venv/bin/pip install numpy threadpoolctl)"
            );
            return None;
        };
        eprintln!(
            "== OpenBLAS yardstick: NumPy float32 matmul on {threads} threads ({}), alternating",
            python.display()
        );
        let spawned = Command::new(&python)
            .arg(root.join("xtask/scripts/gemm_yardstick.py"))
            .args(["--threads", &threads.to_string(), "--rounds", "3", "--serve"])
            // Let OpenBLAS pick its own kernel for this CPU.
            .env_remove("OPENBLAS_CORETYPE")
            .env_remove("OPENBLAS_L2_SIZE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Ok(mut child) => {
                let stdin = child.stdin.take()?;
                let stdout = BufReader::new(child.stdout.take()?);
                Some(Self { child, stdin, stdout })
            }
            Err(e) => {
                eprintln!(
                    "   note: could not run {}: {e}: OpenBLAS yardstick skipped",
                    python.display()
                );
                None
            }
        }
    }

    /// OpenBLAS's GFLOP/s at `shape` (`gemm_yardstick.py`'s notation), or
    /// `None` (with a note) when the child has failed.
    fn gflops(&mut self, shape: &str) -> Option<f64> {
        let mut line = String::new();
        let answered = writeln!(self.stdin, "{shape}")
            .and_then(|()| self.stdin.flush())
            .and_then(|()| self.stdout.read_line(&mut line));
        let mut fields = line.split_whitespace();
        match (answered, fields.next(), fields.next().and_then(|g| g.parse().ok())) {
            (Ok(_), Some(s), Some(g)) if s == shape => Some(g),
            _ => {
                eprintln!("   note: the OpenBLAS yardstick stopped answering (at {shape}): skipped");
                None
            }
        }
    }
}

impl Drop for Openblas {
    fn drop(&mut self) {
        // The child waits for more shapes until it is ended.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    if let Some(t) = &r.time_to_accuracy {
        match (t.epoch, t.seconds) {
            (Some(epoch), Some(seconds)) => println!(
                "time to accuracy   {seconds:.1} s to {:.2}% {} accuracy (epoch {epoch})",
                100.0 * t.target,
                t.split
            ),
            _ => println!(
                "time to accuracy   {:.2}% {} accuracy not reached in {} epochs",
                100.0 * t.target,
                t.split,
                r.epochs
            ),
        }
    }
    println!(
        "sgemm 1024^3       {:.1} GFLOP/s (matrixmultiply, one thread)",
        r.sgemm_gflops_1024
    );
    println!(
        "sgemm step shapes  {:.1} GFLOP/s, {:.3} s per epoch of dense products alone",
        r.sgemm_gflops_training, r.sgemm_epoch_floor_s
    );
    println!(
        "dense products of a step (gemm_with; OpenBLAS through NumPy, same threads; \
         medians of {PRODUCT_ROUNDS} alternating rounds)"
    );
    println!(
        "  {:<11} {:>16} {:>10} {:>10} {:>7}",
        "product", "m x k x n", "GFLOP/s", "OpenBLAS", "ratio"
    );
    for p in &r.products {
        let transposed = match (p.transposed_a, p.transposed_b) {
            (true, _) => " A^T",
            (_, true) => " B^T",
            _ => "",
        };
        let shape = format!("{}x{}x{}{transposed}", p.m, p.k, p.n);
        let (blas, ratio) = match (p.openblas_gflops, p.ratio) {
            (Some(b), Some(r)) => (format!("{b:.1}"), format!("{r:.2}")),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "  {:<11} {:>16} {:>10.1} {:>10} {:>7}",
            p.name, shape, p.gflops, blas, ratio
        );
    }
    println!(
        "epoch / products   {:.2}x: the median epoch over {:.3} s, an epoch of these products \
         at these rates (on images, training runs layer 1's two products sparse instead)",
        r.epoch_over_products, r.products_epoch_s
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
    fn time_to_accuracy_counts_training_and_evaluation_until_the_first_epoch_at_the_target() {
        let line = |seconds, validation_accuracy| EpochLine {
            seconds,
            eval_seconds: 0.5,
            test_accuracy: 0.0,
            validation_accuracy,
        };
        let epochs = [line(2.0, Some(0.9)), line(3.0, Some(0.95)), line(4.0, Some(0.99))];
        let t = time_to_accuracy(&epochs, 0.95);
        assert_eq!((t.split, t.epoch, t.seconds), ("validation", Some(2), Some(6.0)));
        assert_eq!(time_to_accuracy(&epochs, 0.995).epoch, None);
        let test_only = [EpochLine {
            seconds: 1.0,
            eval_seconds: 0.0,
            test_accuracy: 0.97,
            validation_accuracy: None,
        }];
        let t = time_to_accuracy(&test_only, 0.9);
        assert_eq!((t.split, t.epoch, t.seconds), ("test", Some(1), Some(1.0)));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert_eq!(median_of(&[9.0, 1.0, 4.0, 2.0]), 3.0);
    }

    #[test]
    fn step_products_name_each_product_in_the_yardstick_notation() {
        let products = step_products(&[784, 1024, 10], 128);
        let shapes: Vec<(&str, String)> = products.iter().map(|p| (p.name.as_str(), p.shape())).collect();
        assert_eq!(
            shapes,
            [
                ("forward 1", "128x784x1024".to_owned()),
                ("BP4 1", "784x128x1024t".to_owned()),
                ("forward 2", "128x1024x10".to_owned()),
                ("BP2 2", "128x10x1024T".to_owned()),
                ("BP4 2", "1024x128x10t".to_owned()),
            ]
        );
    }

    #[test]
    fn an_epoch_of_products_adds_each_products_time_per_step() {
        let mut products = step_products(&[784, 128, 10], 64);
        for p in &mut products {
            p.gflops = 10.0;
        }
        let step = flop_per_example(&[784, 128, 10]) as f64 * 64.0 / 10e9;
        let epoch = products_epoch_seconds(&products, 938);
        assert!(
            (epoch - 938.0 * step).abs() < 1e-12 * epoch,
            "{epoch} against {}",
            938.0 * step
        );
    }

    /// A venv whose `python` runs `script` (a shell script) instead.
    fn fake_venv(script: &str) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let venv = tempfile::tempdir().unwrap();
        std::fs::create_dir(venv.path().join("bin")).unwrap();
        let python = venv.path().join("bin/python");
        std::fs::write(&python, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        venv
    }

    #[test]
    fn the_yardstick_child_answers_shape_by_shape_and_a_dead_one_is_skipped() {
        let root = project_root();
        // Answers each shape with its count of characters.
        let echo = fake_venv(r#"while read s; do echo "$s ${#s}.0"; done"#);
        let mut openblas = Openblas::start(&root, Some(echo.path()), 2).expect("the child starts");
        assert_eq!(openblas.gflops("128x784x1024"), Some(12.0));
        assert_eq!(openblas.gflops("1024x128x10t"), Some(12.0));
        assert_eq!(openblas.gflops("64x10x128T"), Some(10.0));
        drop(openblas);
        // One that exits at once, and one that answers for another shape.
        for script in ["exit 1", r#"while read s; do echo "1x1x1 5.0"; done"#] {
            let venv = fake_venv(script);
            let mut openblas = Openblas::start(&root, Some(venv.path()), 1).expect("the child starts");
            assert_eq!(openblas.gflops("128x784x1024"), None, "{script}");
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(Openblas::start(&root, Some(empty.path()), 1).is_none());
    }
}
