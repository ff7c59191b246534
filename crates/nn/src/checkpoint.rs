//! Checkpoints: everything a training run needs to be evaluated, exported,
//! or continued exactly, in a file that is written atomically and validated
//! field by field when read.
//!
//! # File layout
//!
//! | bytes | content |
//! |---|---|
//! | 0..8   | the magic tag [`CHECKPOINT_MAGIC`], `BACKPROP` |
//! | 8..12  | the format version, `u32` little-endian ([`CHECKPOINT_FORMAT_VERSION`]) |
//! | 12..20 | the payload length in bytes, `u64` little-endian |
//! | 20..24 | the CRC-32 (IEEE) of the payload, `u32` little-endian |
//! | 24..   | the payload: a [`Checkpoint`] encoded by the codec module (bincode 2) |
//!
//! The file holds exactly the header and the payload: a declared length that
//! differs from the bytes present is reported as corrupt or truncated before
//! anything is allocated for the payload.

use crate::{Dense, EpochStats, Evaluation, Mlp, NnError, Result, TrainConfig, Trainer, codec};
use backprop_tensor::{Rng, RngState};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The first eight bytes of every checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"BACKPROP";

/// The format version this build writes, and the only one it reads.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// Header bytes before the payload: magic, version, length, CRC-32.
pub const CHECKPOINT_HEADER_LEN: usize = 24;

/// A saved training run: the network, its optimiser state and the training
/// position, with the run's history and provenance.
///
/// Built from a live [`Trainer`] by [`Checkpoint::from_trainer`], written by
/// [`Checkpoint::save`], read and validated by [`Checkpoint::load`], and turned
/// back into a network ([`Checkpoint::model`]) or a run that continues
/// bit-identically ([`Checkpoint::into_trainer`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT_VERSION`] when written; repeats the header's.
    pub format_version: u32,
    /// The version of `backprop-nn` that wrote the file.
    pub crate_version: String,
    /// Layer sizes and activations.
    pub architecture: Architecture,
    /// One entry per layer, input first.
    pub parameters: Vec<LayerParameters>,
    /// The optimiser and its state.
    pub optimizer: OptimizerState,
    /// The training configuration; `config.epochs` is the planned total.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// SGD steps taken.
    pub step: u64,
    /// The shuffle generator as it is after `epoch` epochs.
    pub shuffle_rng: RngState,
    /// Per-epoch metrics, oldest first.
    pub history: Vec<EpochRecord>,
    /// The data files trained on, with the SHA-256 of their content.
    pub dataset: Vec<DatasetFile>,
}

/// The shape of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Layer sizes, input first: `[784, 128, 10]`.
    pub sizes: Vec<usize>,
    /// One activation per layer (`sizes.len() - 1` of them): ReLU for hidden
    /// layers, softmax for the output.
    pub activations: Vec<Activation>,
}

impl Architecture {
    /// The architecture of an [`Mlp`] with these sizes: ReLU hidden layers
    /// and a softmax output.
    pub fn mlp(sizes: &[usize]) -> Self {
        let n_layers = sizes.len().saturating_sub(1);
        Self {
            sizes: sizes.to_vec(),
            activations: (0..n_layers)
                .map(|l| {
                    if l + 1 == n_layers {
                        Activation::Softmax
                    } else {
                        Activation::Relu
                    }
                })
                .collect(),
        }
    }
}

/// A layer's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Activation {
    /// `max(0, z)`.
    Relu,
    /// The output layer: the stored parameters produce logits, and softmax
    /// turns them into probabilities (fused with the loss in training).
    Softmax,
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activation::Relu => "relu",
            Activation::Softmax => "softmax",
        })
    }
}

/// One layer's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerParameters {
    /// `(n_in, n_out)`.
    pub shape: (usize, usize),
    /// `W`, `n_in * n_out` values in row-major order: `weight[i * n_out + j]`
    /// connects input `i` to output `j`.
    pub weight: Vec<f32>,
    /// `b`, `n_out` values.
    pub bias: Vec<f32>,
}

impl LayerParameters {
    /// The parameters of `layer`, copied.
    pub fn from_dense(layer: &Dense) -> Self {
        Self {
            shape: layer.w.dim(),
            weight: layer.w.iter().copied().collect(),
            bias: layer.b.to_vec(),
        }
    }
}

/// The optimiser and the state it carries between steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OptimizerState {
    /// Plain SGD: no state beyond the step size.
    Sgd {
        /// `eta`.
        learning_rate: f32,
    },
}

/// What one epoch measured, as kept in the history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean training loss seen during the epoch.
    pub train_loss: f64,
    /// Mean loss on the test set after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch, a fraction in `[0, 1]`.
    pub test_accuracy: f64,
    /// Seconds spent training (evaluation excluded).
    pub seconds: f64,
}

impl EpochRecord {
    /// The record of an epoch from its training statistics and the test
    /// evaluation that followed it.
    pub fn new(stats: &EpochStats, eval: &Evaluation) -> Self {
        Self {
            epoch: stats.epoch,
            train_loss: stats.train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            seconds: stats.seconds,
        }
    }
}

/// A data file a run was trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFile {
    /// The standard name (`train-images-idx3-ubyte`), whatever the spelling
    /// or compression on disk.
    pub name: String,
    /// SHA-256 of the decompressed content, 64 lowercase hex digits
    /// ([`backprop_data::content_sha256`]).
    pub sha256: String,
}

impl DatasetFile {
    /// The four standard files of the data directory `dir`
    /// ([`backprop_data::FILES`]), each found by [`backprop_data::find_file`]
    /// and hashed.
    ///
    /// # Errors
    /// [`NnError::Data`]: a missing file, or one that cannot be read.
    pub fn hash_dir(dir: &Path) -> Result<Vec<DatasetFile>> {
        backprop_data::FILES
            .iter()
            .map(|&name| {
                let path =
                    backprop_data::find_file(dir, name).ok_or_else(|| backprop_data::DataError::MissingFile {
                        dir: dir.to_path_buf(),
                        name: name.to_owned(),
                        tried: backprop_data::candidates(dir, name),
                    })?;
                Ok(DatasetFile {
                    name: name.to_owned(),
                    sha256: backprop_data::content_sha256(&path)?,
                })
            })
            .collect()
    }
}

/// A field that failed validation, before the path is known.
struct Invalid {
    field: String,
    reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// A checkpoint of `trainer` as it stands (between epochs), with the
    /// run's metrics so far and the files it trains on.
    pub fn from_trainer(trainer: &Trainer, history: Vec<EpochRecord>, dataset: Vec<DatasetFile>) -> Self {
        let model = trainer.model();
        let config = trainer.config().clone();
        Self {
            format_version: CHECKPOINT_FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            architecture: Architecture::mlp(&model.sizes()),
            parameters: model.layers().iter().map(LayerParameters::from_dense).collect(),
            optimizer: OptimizerState::Sgd {
                learning_rate: config.learning_rate,
            },
            epoch: trainer.epoch(),
            step: trainer.step(),
            shuffle_rng: trainer.shuffle_rng().state(),
            history,
            dataset,
            config,
        }
    }

    /// The network, as an [`Mlp`].
    ///
    /// # Errors
    /// [`NnError::BadParameters`] if the parameters do not form a network
    /// (impossible for a checkpoint returned by [`Checkpoint::load`]).
    pub fn model(&self) -> Result<Mlp> {
        let layers = self
            .parameters
            .iter()
            .enumerate()
            .map(|(l, p)| {
                let w = Array2::from_shape_vec(p.shape, p.weight.clone()).map_err(|e| NnError::BadParameters {
                    layer: l,
                    reason: format!("weight of shape {:?} from {} values: {e}", p.shape, p.weight.len()),
                })?;
                Ok(Dense {
                    w,
                    b: Array1::from_vec(p.bias.clone()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Mlp::from_layers(layers)
    }

    /// A [`Trainer`] that continues this run exactly where it stopped: the
    /// same weights, optimiser state, step count and shuffle sequence, so
    /// that training on the same `n_train` examples gives bit-identical
    /// weights to a run that never stopped. Call [`Trainer::set_epochs`] to
    /// extend it.
    ///
    /// # Errors
    /// An invalid configuration or parameters (impossible for a checkpoint
    /// returned by [`Checkpoint::load`]).
    pub fn into_trainer(self, n_train: usize) -> Result<Trainer> {
        let model = self.model()?;
        let OptimizerState::Sgd { learning_rate } = self.optimizer;
        if learning_rate.to_bits() != self.config.learning_rate.to_bits() {
            return Err(NnError::InvalidConfig {
                field: "learning rate",
                reason: format!(
                    "the optimiser has {learning_rate} but the configuration says {}",
                    self.config.learning_rate
                ),
            });
        }
        Trainer::resume(
            self.config,
            model,
            Rng::from_state(self.shuffle_rng),
            self.epoch,
            self.step,
            n_train,
        )
    }

    /// Number of trainable scalars.
    pub fn n_parameters(&self) -> usize {
        self.parameters.iter().map(|p| p.weight.len() + p.bias.len()).sum()
    }

    /// SHA-256, as 64 lowercase hex digits, of every parameter's
    /// little-endian bytes in order (layer 0's weight row-major, its bias,
    /// layer 1's weight, ...): equal hashes mean bit-identical networks.
    pub fn parameters_sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for p in &self.parameters {
            for x in p.weight.iter().chain(&p.bias) {
                hasher.update(x.to_le_bytes());
            }
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The complete file: header and payload.
    ///
    /// # Errors
    /// [`NnError::InvalidCheckpoint`] (with the path `<memory>`) when the
    /// checkpoint does not pass the checks [`Checkpoint::load`] makes, so
    /// that nothing unreadable is ever written.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let memory = Path::new("<memory>");
        self.check().map_err(|e| e.at(memory))?;
        let payload = codec::encode(self).map_err(|reason| NnError::InvalidCheckpoint {
            path: memory.to_path_buf(),
            field: "payload".into(),
            reason,
        })?;
        let mut bytes = Vec::with_capacity(CHECKPOINT_HEADER_LEN + payload.len());
        bytes.extend_from_slice(&CHECKPOINT_MAGIC);
        bytes.extend_from_slice(&self.format_version.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        Ok(bytes)
    }

    /// Reads a checkpoint from its bytes, with every check of
    /// [`Checkpoint::load`]; `path` is only used in error messages.
    ///
    /// # Errors
    /// As [`Checkpoint::load`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let head = &bytes[..bytes.len().min(CHECKPOINT_HEADER_LEN)];
        let header = Header::parse(head, bytes.len() as u64, path)?;
        Self::decode_payload(&bytes[CHECKPOINT_HEADER_LEN..], &header, path)
    }

    /// Writes the checkpoint to `path` atomically: to a temporary file in the
    /// same directory, flushed and synced, then renamed over `path` (and the
    /// directory synced, on Unix). If anything fails, `path` keeps its
    /// previous content and the temporary file is removed.
    ///
    /// # Errors
    /// [`NnError::Io`] naming the file; [`NnError::InvalidCheckpoint`] as for
    /// [`Checkpoint::to_bytes`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes, |file, bytes| file.write_all(bytes))
    }

    /// Reads and validates the checkpoint at `path`. Never panics, and never
    /// allocates more than a small multiple of the file's actual size.
    ///
    /// # Errors
    /// [`NnError::Io`] if the file cannot be read;
    /// [`NnError::NotACheckpoint`] if it does not start with the magic tag;
    /// [`NnError::CheckpointVersion`] for another format version;
    /// [`NnError::CorruptCheckpoint`] for a truncated file, a length or
    /// checksum mismatch, or a payload that does not decode;
    /// [`NnError::InvalidCheckpoint`] for contents that do not describe a
    /// valid run (shapes against the architecture, non-finite parameters,
    /// inconsistent fields).
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let io_err = |source| NnError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut head = [0u8; CHECKPOINT_HEADER_LEN];
        let n = read_up_to(&mut file, &mut head).map_err(io_err)?;
        let header = Header::parse(&head[..n], file_len, path)?;
        // `parse` checked the declared length against the file's size and the
        // codec's limit, so this allocation is bounded by real bytes on disk.
        let len = header.payload_len as usize;
        let mut payload = Vec::with_capacity(len);
        file.take(len as u64 + 1).read_to_end(&mut payload).map_err(io_err)?;
        if payload.len() != len {
            return Err(NnError::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!(
                    "the file changed while it was read: expected {len} payload bytes, read {}",
                    payload.len()
                ),
            });
        }
        Self::decode_payload(&payload, &header, path)
    }

    fn decode_payload(payload: &[u8], header: &Header, path: &Path) -> Result<Checkpoint> {
        let corrupt = |reason: String| NnError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let crc = crc32fast::hash(payload);
        if crc != header.crc {
            return Err(corrupt(format!(
                "checksum mismatch: the header says CRC-32 {:08x}, the payload's is {crc:08x}",
                header.crc
            )));
        }
        let checkpoint: Checkpoint =
            codec::decode(payload).map_err(|e| corrupt(format!("the payload does not decode: {e}")))?;
        if checkpoint.format_version != header.version {
            return Err(invalid(
                "format_version",
                format!(
                    "the payload says {} but the header says {}",
                    checkpoint.format_version, header.version
                ),
            )
            .at(path));
        }
        checkpoint.check().map_err(|e| e.at(path))?;
        Ok(checkpoint)
    }

    /// Every consistency check on the decoded contents.
    fn check(&self) -> std::result::Result<(), Invalid> {
        if self.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(invalid(
                "format_version",
                format!(
                    "{}, but this build writes and reads {CHECKPOINT_FORMAT_VERSION}",
                    self.format_version
                ),
            ));
        }
        let sizes = &self.architecture.sizes;
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(invalid(
                "architecture.sizes",
                format!("need at least two sizes, all positive; found {sizes:?}"),
            ));
        }
        let n_layers = sizes.len() - 1;
        let expected = Architecture::mlp(sizes).activations;
        if self.architecture.activations != expected {
            return Err(invalid(
                "architecture.activations",
                format!(
                    "expected {:?} (ReLU hidden layers, softmax output), found {:?}",
                    expected, self.architecture.activations
                ),
            ));
        }
        if self.config.sizes != *sizes {
            return Err(invalid(
                "config.sizes",
                format!("{:?} differ from the architecture's {sizes:?}", self.config.sizes),
            ));
        }
        self.config.validate().map_err(|e| invalid("config", e.to_string()))?;
        if self.parameters.len() != n_layers {
            return Err(invalid(
                "parameters",
                format!(
                    "{} layers for an architecture of {n_layers} ({sizes:?})",
                    self.parameters.len()
                ),
            ));
        }
        for (l, p) in self.parameters.iter().enumerate() {
            let shape = (sizes[l], sizes[l + 1]);
            if p.shape != shape {
                return Err(invalid(
                    format!("parameters[{l}].shape"),
                    format!("expected {shape:?} from the architecture, found {:?}", p.shape),
                ));
            }
            let n_weights = shape.0.checked_mul(shape.1);
            if n_weights != Some(p.weight.len()) {
                return Err(invalid(
                    format!("parameters[{l}].weight"),
                    format!("expected {} x {} values, found {}", shape.0, shape.1, p.weight.len()),
                ));
            }
            if p.bias.len() != shape.1 {
                return Err(invalid(
                    format!("parameters[{l}].bias"),
                    format!("expected {} values, found {}", shape.1, p.bias.len()),
                ));
            }
            for (name, values) in [("weight", &p.weight), ("bias", &p.bias)] {
                if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                    return Err(invalid(
                        format!("parameters[{l}].{name}[{i}]"),
                        format!("{} is not a finite number", values[i]),
                    ));
                }
            }
        }
        let OptimizerState::Sgd { learning_rate } = self.optimizer;
        if learning_rate.to_bits() != self.config.learning_rate.to_bits() {
            return Err(invalid(
                "optimizer.learning_rate",
                format!(
                    "{learning_rate} differs from config.learning_rate {}",
                    self.config.learning_rate
                ),
            ));
        }
        if self.epoch > self.config.epochs {
            return Err(invalid(
                "epoch",
                format!(
                    "{} epochs done but config.epochs plans {}",
                    self.epoch, self.config.epochs
                ),
            ));
        }
        let mut previous = 0;
        for (i, record) in self.history.iter().enumerate() {
            if record.epoch <= previous || record.epoch > self.epoch {
                return Err(invalid(
                    format!("history[{i}].epoch"),
                    format!(
                        "{} is out of order: epochs must increase, after {previous}, up to {}",
                        record.epoch, self.epoch
                    ),
                ));
            }
            previous = record.epoch;
        }
        for (i, file) in self.dataset.iter().enumerate() {
            if file.name.is_empty() {
                return Err(invalid(format!("dataset[{i}].name"), "empty"));
            }
            let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            if file.sha256.len() != 64 || !file.sha256.bytes().all(hex) {
                return Err(invalid(
                    format!("dataset[{i}].sha256"),
                    format!("expected 64 lowercase hex digits, found {:?}", file.sha256),
                ));
            }
        }
        Ok(())
    }
}

impl Invalid {
    fn at(self, path: &Path) -> NnError {
        NnError::InvalidCheckpoint {
            path: path.to_path_buf(),
            field: self.field,
            reason: self.reason,
        }
    }
}

/// The fixed-size header, checked against the file's size.
struct Header {
    version: u32,
    payload_len: u64,
    crc: u32,
}

impl Header {
    /// Parses the first `min(24, total_len)` bytes of a file of `total_len`
    /// bytes.
    fn parse(head: &[u8], total_len: u64, path: &Path) -> Result<Header> {
        let corrupt = |reason: String| NnError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let truncated_header = || {
            corrupt(format!(
                "truncated: the file has {total_len} bytes, fewer than the {CHECKPOINT_HEADER_LEN}-byte header"
            ))
        };
        let magic = &CHECKPOINT_MAGIC[..];
        if head.is_empty() {
            return Err(NotACheckpoint::at(path, "the file is empty".into()));
        }
        if head.len() < magic.len() {
            if magic.starts_with(head) {
                return Err(truncated_header());
            }
            return Err(NotACheckpoint::at(path, describe_start(head)));
        }
        if &head[..8] != magic {
            return Err(NotACheckpoint::at(path, describe_start(head)));
        }
        if head.len() < 12 {
            return Err(truncated_header());
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != CHECKPOINT_FORMAT_VERSION {
            return Err(NnError::CheckpointVersion {
                path: path.to_path_buf(),
                found: version,
                supported: CHECKPOINT_FORMAT_VERSION,
            });
        }
        if head.len() < CHECKPOINT_HEADER_LEN {
            return Err(truncated_header());
        }
        let payload_len = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(head[20..24].try_into().expect("4 bytes"));
        let Some(present) = total_len.checked_sub(CHECKPOINT_HEADER_LEN as u64) else {
            return Err(truncated_header());
        };
        if payload_len != present {
            return Err(corrupt(format!(
                "the header declares a payload of {payload_len} bytes, but the file holds {present} after the header"
            )));
        }
        if payload_len > codec::MAX_PAYLOAD as u64 {
            return Err(corrupt(format!(
                "a payload of {payload_len} bytes exceeds the {}-byte limit",
                codec::MAX_PAYLOAD
            )));
        }
        Ok(Header {
            version,
            payload_len,
            crc,
        })
    }
}

/// Builds [`NnError::NotACheckpoint`].
struct NotACheckpoint;

impl NotACheckpoint {
    fn at(path: &Path, reason: String) -> NnError {
        NnError::NotACheckpoint {
            path: path.to_path_buf(),
            reason,
        }
    }
}

/// What a file starts with, for the "not a checkpoint" message.
fn describe_start(head: &[u8]) -> String {
    let shown = &head[..head.len().min(8)];
    let text: String = shown
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!(
        "it starts with {text:?} ({}), not {:?}",
        shown.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        String::from_utf8_lossy(&CHECKPOINT_MAGIC)
    )
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `bytes` to `path` atomically, through `write` (the real writer is
/// `write_all`; tests inject one that fails part-way).
fn write_atomic(path: &Path, bytes: &[u8], write: impl FnOnce(&mut File, &[u8]) -> io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| NnError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "a checkpoint path must name a file"),
    })?;
    let (tmp_path, mut file) = create_temp(&dir, name)?;
    let result = (|| {
        write(&mut file, bytes)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp_path, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(NnError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    #[cfg(unix)]
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| NnError::Io { path: dir, source })?;
    Ok(())
}

/// Creates a new temporary file `.NAME.tmp-PID-N` in `dir`.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp_path = dir.join(tmp_name);
        match File::options().write(true).create_new(true).open(&tmp_path) {
            Ok(file) => return Ok((tmp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(NnError::Io { path: tmp_path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_trainer() -> Trainer {
        let config = TrainConfig {
            sizes: vec![6, 5, 3],
            epochs: 3,
            batch_size: 4,
            learning_rate: 0.1,
            seed: 9,
        };
        Trainer::new(config, 10).unwrap()
    }

    fn sample() -> Checkpoint {
        let history = vec![EpochRecord {
            epoch: 1,
            train_loss: 1.0,
            test_loss: 1.1,
            test_accuracy: 0.5,
            seconds: 0.01,
        }];
        let dataset = vec![DatasetFile {
            name: "train-images-idx3-ubyte".into(),
            sha256: "ab".repeat(32),
        }];
        let mut c = Checkpoint::from_trainer(&tiny_trainer(), history, dataset);
        c.epoch = 1;
        c
    }

    #[test]
    fn bytes_round_trip() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(&bytes[..8], b"BACKPROP");
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("x")).unwrap(), c);
        assert_eq!(c.model().unwrap(), *tiny_trainer().model());
    }

    /// A save that fails part-way through the write leaves the previous
    /// checkpoint intact and loadable, and no temporary file behind.
    #[test]
    fn interrupted_save_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ckpt");
        let old = sample();
        old.save(&path).unwrap();
        let old_bytes = std::fs::read(&path).unwrap();

        let mut new = sample();
        new.epoch = 2;
        new.parameters[0].weight[0] += 1.0;
        let bytes = new.to_bytes().unwrap();
        for cut in [0, 1, CHECKPOINT_HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
            let err = write_atomic(&path, &bytes, |file, bytes| {
                file.write_all(&bytes[..cut])?;
                Err(io::Error::new(io::ErrorKind::StorageFull, "injected: disk full"))
            })
            .unwrap_err();
            let cause = std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(cause.contains("disk full"), "{err}: {cause}");
            assert_eq!(std::fs::read(&path).unwrap(), old_bytes, "cut at {cut}");
            assert_eq!(Checkpoint::load(&path).unwrap(), old);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("model.ckpt")], "cut at {cut}");
        }
        new.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), new);
    }

    /// The file a buggy or hostile writer could produce for `c`: a correct
    /// header and checksum around contents that skip the checks.
    fn unchecked_bytes(c: &Checkpoint) -> Vec<u8> {
        let payload = codec::encode(c).unwrap();
        let mut bytes = CHECKPOINT_MAGIC.to_vec();
        bytes.extend_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    }

    /// Contents that decode but disagree with themselves are refused, naming
    /// the field; `to_bytes` refuses to write them in the first place.
    #[test]
    fn inconsistent_contents_are_refused_naming_the_field() {
        type Edit = fn(&mut Checkpoint);
        let cases: Vec<(&str, Edit)> = vec![
            ("parameters[0].shape", |c| c.parameters[0].shape = (5, 6)),
            ("parameters[1].shape", |c| c.parameters[1].shape = (usize::MAX, 3)),
            ("parameters[1].weight", |c| {
                c.parameters[1].weight.pop();
            }),
            ("parameters[0].bias", |c| c.parameters[0].bias.push(0.0)),
            ("parameters[0].weight[3]", |c| c.parameters[0].weight[3] = f32::NAN),
            ("parameters[1].bias[2]", |c| c.parameters[1].bias[2] = f32::NEG_INFINITY),
            ("parameters", |c| {
                c.parameters.pop();
            }),
            ("architecture.sizes", |c| c.architecture.sizes[1] = 0),
            ("architecture.activations", |c| {
                c.architecture.activations[0] = Activation::Softmax
            }),
            ("architecture.activations", |c| {
                c.architecture.activations.push(Activation::Relu)
            }),
            ("config.sizes", |c| c.config.sizes = vec![6, 4, 3]),
            ("config", |c| c.config.batch_size = 0),
            ("optimizer.learning_rate", |c| {
                c.optimizer = OptimizerState::Sgd { learning_rate: 0.2 };
            }),
            ("epoch", |c| c.epoch = 4),
            ("history[0].epoch", |c| c.history[0].epoch = 2),
            ("history[1].epoch", |c| c.history.push(c.history[0])),
            ("dataset[0].sha256", |c| c.dataset[0].sha256 = "AB".repeat(32)),
            ("dataset[0].sha256", |c| {
                c.dataset[0].sha256.pop();
            }),
            ("dataset[0].name", |c| c.dataset[0].name.clear()),
            ("format_version", |c| c.format_version = 2),
        ];
        for (field, edit) in cases {
            let mut c = sample();
            edit(&mut c);
            let err = Checkpoint::from_bytes(&unchecked_bytes(&c), Path::new("m.ckpt")).unwrap_err();
            match &err {
                NnError::InvalidCheckpoint { field: f, path, .. } => {
                    assert_eq!(f, field, "{err}");
                    assert_eq!(path, Path::new("m.ckpt"));
                }
                other => panic!("{field}: expected InvalidCheckpoint, got {other:?}"),
            }
            assert!(err.to_string().contains("m.ckpt: invalid checkpoint"), "{err}");
            assert!(c.to_bytes().is_err(), "{field}: to_bytes must refuse it too");
        }
        // Unchanged, the same route loads.
        assert_eq!(
            Checkpoint::from_bytes(&unchecked_bytes(&sample()), Path::new("m")).unwrap(),
            sample()
        );
    }

    #[test]
    fn nothing_invalid_is_written() {
        let mut c = sample();
        c.parameters[1].bias[0] = f32::NAN;
        let err = c.to_bytes().unwrap_err();
        assert!(err.to_string().contains("parameters[1].bias[0]"), "{err}");
    }
}
