//! Helpers for the `backprop serve` tests: MNIST-like synthetic digits,
//! a trained model, the server started as a user would, PNGs of digits.
// Each test binary uses only some of these.
#![allow(dead_code)]

use backprop_data::{DIGIT_FRAME, DIGIT_PIXELS, preprocess_digit};
use backprop_tensor::Rng;
use image::{GrayImage, ImageFormat, Luma};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Training and test images in the data set of [`write_digits`].
pub(crate) const N_TRAIN: usize = 1000;
/// Test images.
pub(crate) const N_TEST: usize = 100;

/// One stroke: a segment from `(x0, y0)` to `(x1, y1)` in a 28x28 frame.
type Stroke = [f64; 4];

/// Ink of a pen of radius 1.3 along `strokes`, bright on black.
fn rasterize(strokes: &[Stroke]) -> Vec<u8> {
    let mut img = vec![0u8; DIGIT_PIXELS];
    for (i, px) in img.iter_mut().enumerate() {
        let (x, y) = ((i % DIGIT_FRAME) as f64 + 0.5, (i / DIGIT_FRAME) as f64 + 0.5);
        let mut ink: f64 = 0.0;
        for &[x0, y0, x1, y1] in strokes {
            let (dx, dy) = (x1 - x0, y1 - y0);
            let t = (((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy).max(1e-9)).clamp(0.0, 1.0);
            let d = ((x - x0 - t * dx).powi(2) + (y - y0 - t * dy).powi(2)).sqrt();
            ink = ink.max((1.8 - d).clamp(0.0, 1.0));
        }
        *px = (255.0 * ink).round() as u8;
    }
    img
}

/// MNIST-like digits: ten classes, each a shape of three strokes, every
/// example the shape with its ends moved a little, brought into MNIST's form
/// (20-pixel box, centred by mass) by `preprocess_digit`. Labels are shifted
/// by `shift` (mod 10), so a model trained with another shift answers
/// differently. Writes the four IDX files into `dir`.
pub(crate) fn write_digits(dir: &Path, shift: u8) {
    let mut rng = Rng::seed_from_u64(7);
    let shapes: Vec<Vec<Stroke>> = (0..10)
        .map(|_| {
            (0..3)
                .map(|_| std::array::from_fn(|_| 4.0 + 20.0 * rng.uniform_f64()))
                .collect()
        })
        .collect();
    let mut split = |n: usize| {
        let mut pixels = Vec::with_capacity(n * DIGIT_PIXELS);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let class = rng.below(10) as usize;
            let strokes: Vec<Stroke> = shapes[class]
                .iter()
                .map(|s| s.map(|v| v + 3.0 * (rng.uniform_f64() - 0.5)))
                .collect();
            let digit = preprocess_digit(DIGIT_FRAME, DIGIT_FRAME, &rasterize(&strokes)).expect("ink");
            pixels.extend_from_slice(&digit.pixels);
            labels.push((class as u8 + shift) % 10);
        }
        (pixels, labels)
    };
    let (train_x, train_y) = split(N_TRAIN);
    let (test_x, test_y) = split(N_TEST);
    std::fs::create_dir_all(dir).expect("create data dir");
    let files = [
        backprop_tests::images_idx(&train_x, 28, 28),
        backprop_tests::labels_idx(&train_y),
        backprop_tests::images_idx(&test_x, 28, 28),
        backprop_tests::labels_idx(&test_y),
    ];
    for (name, bytes) in backprop_tests::FILES.iter().zip(files) {
        std::fs::write(dir.join(name), bytes).expect("write IDX");
    }
}

/// Runs the `backprop` binary built for these tests.
pub(crate) fn backprop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("run backprop")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Trains a 784-64-10 model on `data` and saves it at `out`.
pub(crate) fn train(data: &Path, out: &Path) {
    let out = backprop(&[
        "train",
        "--data",
        s(data),
        "--layers",
        "784,64,10",
        "--epochs",
        "6",
        "--lr",
        "0.1",
        "--save",
        s(out),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The class `backprop predict MODEL --index i --data DIR` gives.
pub(crate) fn predict_index(model: &Path, data: &Path, index: usize) -> usize {
    let out = backprop(&[
        "predict",
        s(model),
        "--index",
        &index.to_string(),
        "--data",
        s(data),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["predicted"].as_u64().expect("predicted") as usize
}

/// Test image `index` of the data set in `dir` (IDX files, gzip or raw).
pub(crate) fn test_image(dir: &Path, index: usize) -> Vec<u8> {
    let data = backprop_data::load_dir(dir).expect("load the data set");
    data.test.image(index).to_vec()
}

/// A 28x28 image scaled up `scale` times (nearest neighbour).
pub(crate) fn upscale(pixels: &[u8], scale: u32) -> GrayImage {
    let side = DIGIT_FRAME as u32 * scale;
    GrayImage::from_fn(side, side, |x, y| {
        Luma([pixels[(y / scale) as usize * DIGIT_FRAME + (x / scale) as usize]])
    })
}

/// The PNG encoding of `img`.
pub(crate) fn png(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .expect("encode PNG");
    out
}

/// A running `backprop serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// The checkpoint it serves.
    pub(crate) model: String,
    /// `http://127.0.0.1:PORT/`.
    pub(crate) url: String,
    /// The server's stderr, read on a thread.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `backprop serve MODEL --port 0 EXTRA...` and waits for the URL.
    pub(crate) fn start(model: &Path, extra: &[&str]) -> Server {
        Self::start_binary(Path::new(env!("CARGO_BIN_EXE_backprop")), model, extra)
    }

    /// The same with another build of the binary.
    pub(crate) fn start_binary(binary: &Path, model: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(binary)
            .args(["serve", s(model), "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start backprop serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the URL");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no URL printed: {line:?}, stderr: {}", stderr.lock().unwrap())
            })
            .to_owned();
        Server {
            child,
            url,
            stderr,
            model: s(model).to_owned(),
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the server is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns 4xx and 5xx answers instead of errors.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(status, JSON body)` of a POST to `/api/predict` with `query`.
pub(crate) fn post(
    agent: &ureq::Agent,
    url: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let response = agent
        .post(format!("{url}api/predict{query}"))
        .header("Content-Type", content_type)
        .send(body)
        .expect("POST /api/predict");
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().expect("read body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, json)
}
