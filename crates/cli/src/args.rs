//! The command line as parsed by clap: no I/O and no validation beyond what
//! clap does per flag; commands turn these into library configurations.

use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Train a network (any activation, loss and optimiser) on IDX images or
    /// a CSV table, evaluating on the test set after
    /// every epoch.
    Train(Box<TrainArgs>),
    /// Show what a checkpoint holds: format, architecture, parameter count
    /// and hash, training configuration and position, metrics history,
    /// dataset hashes.
    Inspect(InspectArgs),
    /// Measure a checkpoint on the test set: accuracy, mean loss, confusion
    /// matrix, per-class precision and recall, and the most confidently
    /// wrong test images.
    Eval(EvalArgs),
    /// Classify image files (PNG, JPEG, PGM), brought into MNIST's form
    /// first, or test images by index.
    Predict(PredictArgs),
    /// Write a checkpoint's weights for NumPy (.npz), the safetensors
    /// ecosystem or PyTorch, or the whole model as an ONNX graph (.onnx).
    Export(ExportArgs),
    /// Draw the loss and accuracy (or R²) per epoch, from a checkpoint's
    /// history or a metrics JSONL file, as SVG or PNG.
    Plot(PlotArgs),
    /// Serve a page on which to draw a digit and watch the network answer,
    /// with a JSON API (`POST /api/predict`, `GET /api/model`); loopback
    /// only unless --host says otherwise.
    Serve(ServeArgs),
    /// Check backpropagation's gradients against central differences in
    /// f64 on a small random network and batch; exits non-zero when a
    /// layer's largest relative error exceeds the tolerance.
    Gradcheck(GradcheckArgs),
}

/// Where `--data` points by default.
pub(crate) const DEFAULT_DATA: &str = "datasets/mnist";

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// A recipe: a TOML file of these flags (long names as keys, e.g.
    /// `layers = [784, 800, 10]`, `dropout = [0.5]`, `schedule = "cosine"`);
    /// flags given here override it. `recipes/` holds the shipped ones.
    #[arg(long, value_name = "FILE.toml")]
    pub(crate) config: Option<PathBuf>,

    /// Directory holding the four IDX files (gzip or raw), or a CSV file
    /// (with --target).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub(crate) data: PathBuf,

    #[command(flatten)]
    pub(crate) named: DatasetArgs,

    /// The CSV column to predict (required for CSV data). With
    /// --loss cross-entropy its values are class labels (any strings), with
    /// --loss mse numbers.
    #[arg(long, value_name = "COLUMN")]
    pub(crate) target: Option<String>,

    /// A CSV test file with the same columns; without it, a seeded 20% of
    /// the rows of --data is held out as the test set.
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) test: Option<PathBuf>,

    /// Standardise CSV features (zero mean, unit variance on the training
    /// rows); the means and scales are stored in the checkpoint and applied
    /// by eval and predict.
    #[arg(long)]
    pub(crate) standardize: bool,

    /// Hidden-layer activation: relu, leaky-relu (or leaky-relu:SLOPE), tanh, sigmoid,
    /// gelu, identity [default: relu].
    #[arg(long, value_parser = parse_from_str::<backprop_nn::Activation>)]
    pub(crate) activation: Option<backprop_nn::Activation>,

    /// Weight initialisation: he, glorot, glorot-normal [default: he for the
    /// ReLU family and GELU, glorot for tanh, sigmoid and identity].
    #[arg(long, value_parser = parse_from_str::<backprop_nn::Init>)]
    pub(crate) init: Option<backprop_nn::Init>,

    /// Loss: cross-entropy (classes) or mse (regression; reports MSE and R²)
    /// [default: cross-entropy].
    #[arg(long, value_parser = parse_from_str::<backprop_nn::Loss>)]
    pub(crate) loss: Option<backprop_nn::Loss>,

    /// Optimiser: sgd, momentum, nesterov, adam, adamw [default: sgd].
    #[arg(long, value_parser = ["sgd", "momentum", "nesterov", "adam", "adamw"])]
    pub(crate) optimizer: Option<String>,

    /// Momentum factor for momentum and nesterov [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) momentum: Option<f32>,

    /// Adam's first-moment decay [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) beta1: Option<f32>,

    /// Adam's second-moment decay [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) beta2: Option<f32>,

    /// Adam's epsilon [default: 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) eps: Option<f32>,

    /// Weight decay: L2 added to the gradient (sgd, momentum, nesterov,
    /// adam), decoupled for adamw [default: 0, adamw 0.01].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) weight_decay: Option<f32>,

    /// Learning-rate schedule, computed per step: constant, step:EVERY:FACTOR
    /// (decay every EVERY epochs), exponential:GAMMA (per epoch), cosine
    /// (or cosine:FLOOR, the final fraction of the rate), one-cycle
    /// [default: constant].
    #[arg(long, value_parser = parse_from_str::<backprop_nn::Schedule>)]
    pub(crate) schedule: Option<backprop_nn::Schedule>,

    /// Steps of linear warmup before the schedule [default: 0].
    #[arg(long, value_name = "STEPS")]
    pub(crate) warmup: Option<u64>,

    /// Inverted dropout on hidden layers: one rate for all, or one per hidden
    /// layer, comma-separated (e.g. 0.2,0.5) [default: none].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub(crate) dropout: Option<Vec<f32>>,

    /// Label smoothing for cross-entropy, in [0, 1) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) label_smoothing: Option<f32>,

    /// Clip gradients to this global norm [default: off].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) clip_norm: Option<f32>,

    /// Max-norm constraint on every unit's incoming weights [default: off].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) max_norm: Option<f32>,

    /// Batch normalisation on every hidden layer (Ioffe and Szegedy 2015;
    /// PyTorch's momentum 0.1 and eps 1e-5): batch statistics in training,
    /// running averages in evaluation.
    #[arg(long)]
    pub(crate) batch_norm: bool,

    /// Hold out N examples of the training set (or a fraction, e.g. 0.1),
    /// chosen by the seed, as a validation set measured every epoch; the
    /// test set is then measured once, at the end (or every epoch with
    /// --test-every-epoch).
    #[arg(long, value_name = "N|FRACTION")]
    pub(crate) validation: Option<f64>,

    /// Measure the test set after every epoch even with --validation.
    #[arg(long)]
    pub(crate) test_every_epoch: bool,

    /// On-the-fly augmentation of image data, drawn per epoch and example
    /// from the seed: `digits`, `fashion`, or keys such as
    /// `shift=2,rotate=12,scale=0.1,shear=10,elastic=34:4,thickness=1,hflip`.
    #[arg(long, value_name = "SPEC")]
    pub(crate) augment: Option<String>,

    /// Stop when the validation metric (loss or accuracy) has not improved
    /// by more than --min-delta for --patience epochs. Needs --validation.
    #[arg(long, value_name = "METRIC", value_parser = parse_from_str::<backprop_nn::Monitor>)]
    pub(crate) early_stopping: Option<backprop_nn::Monitor>,

    /// Epochs without improvement before early stopping [default: 5].
    #[arg(long, value_name = "EPOCHS")]
    pub(crate) patience: Option<usize>,

    /// The least change of the validation metric that counts as an
    /// improvement [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) min_delta: Option<f64>,

    /// Also keep the best model by validation metric (--early-stopping's, or
    /// loss) in PATH, a complete checkpoint written atomically whenever the
    /// metric improves. Needs --validation.
    #[arg(long, value_name = "PATH")]
    pub(crate) save_best: Option<PathBuf>,

    // --layers, --batch-size, --lr and --seed are options so that a resumed
    // run can tell a flag given from a default: the defaults are applied in
    // `TrainConfig::try_from`, and a resumed run refuses a differing value.
    /// Layer sizes from input to output, comma-separated [default: 784,128,10].
    #[arg(long, value_delimiter = ',')]
    pub(crate) layers: Option<Vec<usize>>,

    /// Passes over the training set, in total [default: 10; with --resume,
    /// the checkpoint's, which --epochs may extend].
    #[arg(long)]
    pub(crate) epochs: Option<usize>,

    /// Examples per mini-batch [default: 64].
    #[arg(long, value_parser = parse_batch_size)]
    pub(crate) batch_size: Option<u64>,

    /// Learning rate [default: 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr: Option<f32>,

    /// Seed for weight initialisation and shuffling [default: 42].
    #[arg(long)]
    pub(crate) seed: Option<u64>,

    /// Write a checkpoint to PATH after every epoch (atomically: an
    /// interrupted run keeps the last completed epoch).
    #[arg(long, value_name = "PATH")]
    pub(crate) save: Option<PathBuf>,

    /// Append every epoch's metrics to PATH.metrics.jsonl and
    /// PATH.metrics.csv [default: the --save (or --resume) path, so
    /// model.ckpt.metrics.jsonl].
    #[arg(long, value_name = "PATH")]
    pub(crate) log: Option<PathBuf>,

    /// Continue the run saved in the checkpoint PATH exactly where it stopped
    /// (bit-identical to an uninterrupted run), saving back to PATH after
    /// every epoch unless --save names another file. --layers, --batch-size,
    /// --lr and --seed may only repeat the checkpoint's values, and --data
    /// must hold the same files (checked by SHA-256).
    #[arg(long, value_name = "PATH")]
    pub(crate) resume: Option<PathBuf>,

    /// Print one JSON object per epoch instead of text lines.
    #[arg(long)]
    pub(crate) json: bool,

    /// Threads for the matrix products, the SGD update and evaluation; 0
    /// means one per CPU. The trained weights are bit-identical for any value.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub(crate) threads: u16,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The checkpoint file (written by `backprop train --save`).
    pub(crate) model: PathBuf,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The checkpoint file (written by `backprop train --save`).
    pub(crate) model: PathBuf,

    /// Directory holding the four IDX files (the test set is evaluated), or
    /// a CSV file with the columns the model was trained on.
    #[arg(long, default_value = "datasets/mnist")]
    pub(crate) data: PathBuf,

    #[command(flatten)]
    pub(crate) named: DatasetArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also write the predicted class of every test image to FILE, one per
    /// line, in test-set order.
    #[arg(long, value_name = "FILE")]
    pub(crate) predictions: Option<PathBuf>,

    /// Evaluate even when --data holds other IDX files than the model was
    /// trained on (by SHA-256), such as a compatible test set of another
    /// data set.
    #[arg(long)]
    pub(crate) allow_other_data: bool,

    /// How many of the most confidently wrong test images to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) wrong: usize,

    /// Also draw the confusion matrix as a heatmap to FILE (.png or .svg),
    /// with counts in the cells and class names on the axes.
    #[arg(long, value_name = "FILE")]
    pub(crate) confusion: Option<PathBuf>,

    /// Also draw the most confidently wrong test images to FILE (.png or
    /// .svg), each captioned with its true and predicted class and the
    /// probability given (IDX image data only).
    #[arg(long, value_name = "FILE")]
    pub(crate) gallery: Option<PathBuf>,

    /// How many images --gallery shows.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=400))]
    pub(crate) gallery_size: u16,
}

#[derive(Debug, Args)]
pub(crate) struct PlotArgs {
    /// A checkpoint (its per-epoch history) or a metrics JSONL file (one
    /// JSON object per epoch with any of the keys `train --json` prints:
    /// epoch, train_loss, test_loss, test_accuracy, test_mse, test_r2,
    /// validation_loss, validation_accuracy, validation_r2).
    pub(crate) input: PathBuf,

    /// The picture to write: FILE.svg or FILE.png.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub(crate) out: PathBuf,

    /// Width in pixels.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=8000))]
    pub(crate) width: u32,

    /// Height in pixels.
    #[arg(long, default_value_t = 420, value_parser = clap::value_parser!(u32).range(100..=8000))]
    pub(crate) height: u32,
}

#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// The checkpoint file (written by `backprop train --save`); its network
    /// must take 28x28 = 784 inputs for image files.
    pub(crate) model: PathBuf,

    /// Image files (PNG, JPEG, PGM/PNM), each holding one digit in any size,
    /// dark on light or light on dark. Pictures over 50 megapixels, or files
    /// over 400 MB, are refused before they are decoded.
    pub(crate) images: Vec<PathBuf>,

    /// Predict every row of a CSV file instead (a model trained on CSV; the
    /// file needs the feature columns, others are ignored).
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) csv: Option<PathBuf>,

    /// Predict test image N of --data instead (repeatable).
    #[arg(long, value_name = "N")]
    pub(crate) index: Vec<usize>,

    /// Directory holding the four IDX files, for --index.
    #[arg(long, default_value = "datasets/mnist")]
    pub(crate) data: PathBuf,

    #[command(flatten)]
    pub(crate) named: DatasetArgs,

    /// Print one JSON object per image instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print only the predictions, without the 28x28 rendering of what the
    /// network saw.
    #[arg(long, visible_alias = "no-render")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Layouts (npz and safetensors):
  native  layers.{i}.weight (n_in, n_out) and layers.{i}.bias (n_out,):
          layer i is x @ W + b
  torch   {2i}.weight (n_out, n_in) and {2i}.bias (n_out,): the state_dict
          of nn.Sequential(Linear, activation, Linear, ..., Linear), whose
          Linear modules sit at indices 0, 2, 4, ...; layer i is
          x @ W.T + b, as torch.nn.Linear computes it
Neither holds the mean and scale of a --standardize model; ONNX does.

ONNX (--format onnx): input \"input\" float [batch, n_in]; the
standardisation of a --standardize model (Sub, Div), then per layer Gemm and
its activation; outputs \"probabilities\" (Softmax) and \"logits\" for a
cross-entropy model, \"output\" for an MSE model. Opset 13, or 20 (Gelu)
when a layer uses GELU. Image inputs are pixels scaled to [0, 1].")]
pub(crate) struct ExportArgs {
    /// The checkpoint file (written by `backprop train --save`).
    pub(crate) model: PathBuf,

    /// The file format to write [default: from OUT's extension: .npz,
    /// .safetensors or .onnx].
    #[arg(long, value_enum)]
    pub(crate) format: Option<ExportFormat>,

    /// How .npz and .safetensors name and lay out the weights (see below).
    #[arg(long, value_enum, default_value_t = ExportLayout::Native)]
    pub(crate) layout: ExportLayout,

    /// The file to write (replaced atomically).
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct GradcheckArgs {
    /// Layer sizes from input to output, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,5,3")]
    pub(crate) layers: Vec<usize>,

    /// Hidden-layer activation: relu, leaky-relu (or leaky-relu:SLOPE), tanh,
    /// sigmoid, gelu, identity.
    #[arg(long, default_value = "relu", value_parser = parse_from_str::<backprop_nn::Activation>)]
    pub(crate) activation: backprop_nn::Activation,

    /// Loss: cross-entropy or mse.
    #[arg(long, default_value = "cross-entropy", value_parser = parse_from_str::<backprop_nn::Loss>)]
    pub(crate) loss: backprop_nn::Loss,

    /// Examples in the random batch.
    #[arg(long, default_value_t = 8, value_parser = parse_batch_size)]
    pub(crate) batch: u64,

    /// Seed of the weights, inputs and targets.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,

    /// Batch normalisation on every hidden layer (random scale, shift and
    /// running averages).
    #[arg(long)]
    pub(crate) batch_norm: bool,

    /// With --batch-norm: check the evaluation-mode pass (running averages)
    /// instead of the training-mode one (batch statistics).
    #[arg(long, requires = "batch_norm")]
    pub(crate) eval_mode: bool,

    /// The largest relative error accepted.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub(crate) tolerance: f64,
}

/// `--dataset NAME [--data-dir DIR]`: a known data set by name, instead of
/// `--data`.
#[derive(Debug, Args)]
pub(crate) struct DatasetArgs {
    /// A known data set, mnist or fashion-mnist, instead of --data: read from
    /// the data directory, downloaded and verified (SHA-256) on first use
    /// ($BACKPROP_DATA_MIRROR, a directory or URL, is tried first).
    #[arg(long, value_name = "NAME", conflicts_with = "data", value_parser = parse_from_str::<backprop_data::KnownDataset>)]
    pub(crate) dataset: Option<backprop_data::KnownDataset>,

    /// Where --dataset keeps data sets, one folder each [default:
    /// $BACKPROP_DATA_DIR, else the workspace's datasets/ when run inside the
    /// backprop workspace, else the platform's data directory, such as
    /// ~/.local/share/backprop].
    #[arg(long, value_name = "DIR", requires = "dataset")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// What `backprop export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// NumPy's zip of .npy arrays, for `np.load`.
    Npz,
    /// The safetensors format (Hugging Face).
    Safetensors,
    /// An ONNX model: the whole network, runnable by onnxruntime.
    Onnx,
}

/// How `backprop export` names and lays out weights in .npz and .safetensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportLayout {
    /// `layers.{i}.weight` (n_in, n_out), `layers.{i}.bias`.
    Native,
    /// PyTorch's `nn.Sequential` of `Linear`: `{2i}.weight` (n_out, n_in),
    /// `{2i}.bias`.
    Torch,
}

/// Parses `--batch-size`: a whole number, at least 1.
fn parse_batch_size(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: expected a whole number of examples, at least 1")),
    }
}

/// Parses a value through its `FromStr`, for clap.
fn parse_from_str<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The checkpoint file (written by `backprop train --save`): a
    /// classifier taking 28x28 = 784 inputs.
    pub(crate) model: PathBuf,

    /// Address to listen on. Anything but a loopback address makes the page
    /// and the API reachable from other machines (a warning says so).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,

    /// Port to listen on; 0 picks a free one (the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,

    /// Open the page in the default browser once the server listens.
    #[arg(long)]
    pub(crate) open: bool,

    /// Reload the checkpoint when its file changes (polled twice a second);
    /// a file that fails to load leaves the served model as it was.
    #[arg(long)]
    pub(crate) watch: bool,
}
