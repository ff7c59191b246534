//! Fixtures for the workspace's tests: small synthetic datasets written as
//! real IDX files, so tests exercise the same loading path as MNIST without
//! any network or large files.
#![deny(missing_docs)]

use backprop_nn::checkpoint::record::EpochRecord;
use backprop_tensor::Rng;
use flate2::{Compression, write::GzEncoder};
use std::io::Write;
use std::path::Path;

/// The four standard file names, without `.gz`.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// A synthetic classification problem: `n_classes` prototype images of
/// `side x side` pixels, each example a prototype with pixel noise; by
/// default about three quarters of the pixels are exactly zero (like MNIST).
#[derive(Clone, Debug)]
pub struct Synthetic {
    /// Image height and width.
    pub side: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Training examples.
    pub n_train: usize,
    /// Test examples.
    pub n_test: usize,
    /// Seeds the prototypes and the noise.
    pub seed: u64,
    /// Probability that a prototype pixel has ink: 0.25 by default (sparse
    /// like MNIST), 1.0 for dense images.
    pub ink: f64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self {
            side: 8,
            n_classes: 10,
            n_train: 600,
            n_test: 200,
            seed: 1,
            ink: 0.25,
        }
    }
}

/// Images and labels of one split, row-major `u8` pixels.
#[derive(Clone, Debug)]
pub struct Split {
    /// `n * side * side` pixels.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<u8>,
}

impl Synthetic {
    /// Generates the train and test splits.
    pub fn generate(&self) -> (Split, Split) {
        let mut rng = Rng::seed_from_u64(self.seed);
        let n_pixels = self.side * self.side;
        let prototypes: Vec<Vec<u8>> = (0..self.n_classes)
            .map(|_| {
                (0..n_pixels)
                    .map(|_| {
                        if rng.below(4) == 0 {
                            128 + rng.below(128) as u8
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut split = |n: usize| {
            let mut pixels = Vec::with_capacity(n * n_pixels);
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                let class = rng.below(self.n_classes as u64) as usize;
                labels.push(class as u8);
                for &p in &prototypes[class] {
                    let noisy = if p == 0 {
                        0
                    } else {
                        (i32::from(p) + rng.below(61) as i32 - 30).clamp(1, 255) as u8
                    };
                    pixels.push(noisy);
                }
            }
            Split { pixels, labels }
        };
        let train = split(self.n_train);
        let test = split(self.n_test);
        (train, test)
    }

    /// Writes the four IDX files into `dir` (gzip-compressed when `gzip`).
    ///
    /// # Panics
    /// On I/O errors: this is test code.
    pub fn write_dir(&self, dir: &Path, gzip: bool) {
        let (train, test) = self.generate();
        std::fs::create_dir_all(dir).expect("create fixture dir");
        let side = self.side as u32;
        let files = [
            images_idx(&train.pixels, side, side),
            labels_idx(&train.labels),
            images_idx(&test.pixels, side, side),
            labels_idx(&test.labels),
        ];
        for (name, bytes) in FILES.iter().zip(files) {
            if gzip {
                let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
                enc.write_all(&bytes).expect("gzip");
                std::fs::write(dir.join(format!("{name}.gz")), enc.finish().expect("gzip")).expect("write fixture");
            } else {
                std::fs::write(dir.join(name), bytes).expect("write fixture");
            }
        }
    }
}

/// The bytes of an IDX images file (magic 2051).
pub fn images_idx(pixels: &[u8], rows: u32, cols: u32) -> Vec<u8> {
    let n = (pixels.len() / (rows * cols) as usize) as u32;
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [2051u32, n, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// The bytes of an IDX labels file (magic 2049).
pub fn labels_idx(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&2049u32.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Every weight and bias of `model`, layer by layer, as little-endian bytes:
/// what "bit-identical weights" compares.
pub fn weight_bytes(model: &backprop_nn::Mlp) -> Vec<u8> {
    let norms = model.norms().iter().flatten().flat_map(|n| {
        n.gamma
            .iter()
            .chain(&n.beta)
            .chain(&n.running_mean)
            .chain(&n.running_var)
    });
    model
        .layers()
        .iter()
        .flat_map(|l| l.w.iter().chain(&l.b))
        .chain(norms)
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

/// The history record of an epoch from its statistics and the test
/// evaluation that followed it.
pub fn epoch_record(stats: &backprop_nn::EpochStats, eval: &backprop_nn::Evaluation) -> EpochRecord {
    EpochRecord::from_epoch(stats, eval)
}
