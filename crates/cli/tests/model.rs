//! Using a trained model: `backprop eval`, `predict` and `export`, run as a
//! user would on checkpoints that `backprop train --save` wrote.

mod common;

use backprop_data::{DIGIT_FRAME, DIGIT_PIXELS, preprocess_digit};
use backprop_tensor::Rng;
use backprop_tests::{Synthetic, images_idx, labels_idx};
use common::{assert_fails_cleanly, assert_ok, backprop, path};
use image::{GrayImage, ImageFormat, imageops};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Trains on `data` with `--save`, returning the checkpoint's path and the
/// last epoch's JSON report.
fn train(dir: &Path, data: &Path, layers: &str, epochs: &str) -> (PathBuf, serde_json::Value) {
    let model = dir.join("model.ckpt");
    let out = backprop(&[
        "train",
        "--data",
        path(data),
        "--layers",
        layers,
        "--epochs",
        epochs,
        "--lr",
        "0.1",
        "--save",
        path(&model),
        "--json",
    ]);
    assert_ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("one line per epoch");
    (model, serde_json::from_str(last).unwrap())
}

/// A synthetic 8x8 problem and a small model trained on it.
fn synthetic_model() -> (tempfile::TempDir, PathBuf, PathBuf, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Synthetic::default().write_dir(&data, true);
    let (model, report) = train(dir.path(), &data, "64,32,10", "3");
    (dir, data, model, report)
}

#[test]
fn eval_reports_what_training_reported() {
    let (dir, data, model, trained) = synthetic_model();
    let predictions = dir.path().join("predictions.txt");
    let out = backprop(&[
        "eval",
        path(&model),
        "--data",
        path(&data),
        "--json",
        "--predictions",
        path(&predictions),
    ]);
    assert_ok(&out);
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["accuracy"], trained["test_accuracy"], "{eval}");
    assert_eq!(eval["loss"], trained["test_loss"], "{eval}");
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!(
        (0.5..=1.0).contains(&accuracy),
        "accuracy {accuracy} is not a trained fraction"
    );

    let (_, test) = Synthetic::default().generate();
    let predicted: Vec<usize> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(predicted.len(), test.labels.len());
    let confusion: Vec<Vec<usize>> = serde_json::from_value(eval["confusion"].clone()).unwrap();
    let mut expected = vec![vec![0usize; 10]; 10];
    for (&label, &p) in test.labels.iter().zip(&predicted) {
        expected[usize::from(label)][p] += 1;
    }
    assert_eq!(confusion, expected);
    let correct = (0..10).map(|c| confusion[c][c]).sum::<usize>();
    assert_eq!(eval["correct"], correct);
    assert!((accuracy - correct as f64 / 200.0).abs() < 1e-12);

    let per_class = eval["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 10);
    for (c, s) in per_class.iter().enumerate() {
        let support: usize = confusion[c].iter().sum();
        let as_c: usize = confusion.iter().map(|r| r[c]).sum();
        assert_eq!(s["support"], support);
        if as_c > 0 {
            let precision = s["precision"].as_f64().unwrap();
            assert!((precision - confusion[c][c] as f64 / as_c as f64).abs() < 1e-12);
        } else {
            assert!(s["precision"].is_null());
        }
        let recall = s["recall"].as_f64().unwrap();
        assert!((recall - confusion[c][c] as f64 / support as f64).abs() < 1e-12);
    }

    let wrong = eval["confidently_wrong"].as_array().unwrap();
    assert_eq!(wrong.len(), (200 - correct).min(10), "{eval}");
    let mut last = f64::INFINITY;
    for w in wrong {
        let index = w["index"].as_u64().unwrap() as usize;
        assert_eq!(w["label"], test.labels[index]);
        assert_eq!(w["predicted"], predicted[index]);
        assert_ne!(w["label"], w["predicted"]);
        let p = w["probability"].as_f64().unwrap();
        assert!(p <= last && p > 0.0 && p <= 1.0, "sorted by probability: {wrong:?}");
        last = p;
    }

    let text = backprop(&["eval", path(&model), "--data", path(&data)]);
    assert_ok(&text);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("accuracy {:.2}%", 100.0 * accuracy)), "{text}");
    assert!(
        text.contains("confusion matrix") && text.contains("precision"),
        "{text}"
    );
}

#[test]
fn eval_refuses_data_the_model_does_not_fit() {
    let (dir, _, model, _) = synthetic_model();
    let other = dir.path().join("big");
    Synthetic {
        side: 10,
        ..Synthetic::default()
    }
    .write_dir(&other, false);
    let out = backprop(&["eval", path(&model), "--data", path(&other)]);
    assert_fails_cleanly(&out, &["does not fit", "64 input features", "has 100"]);
    let out = backprop(&["eval", path(&dir.path().join("nope.ckpt")), "--data", path(&other)]);
    assert_fails_cleanly(&out, &["nope.ckpt"]);
}

/// `(name, shape, little-endian bytes)` of every `.npy` in an `.npz`.
fn read_npz(file: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().strip_suffix(".npy").unwrap().to_owned();
            let mut npy = Vec::new();
            entry.read_to_end(&mut npy).unwrap();
            assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
            let len = usize::from(u16::from_le_bytes([npy[8], npy[9]]));
            let header = std::str::from_utf8(&npy[10..10 + len]).unwrap();
            assert!(header.contains("'descr': '<f4', 'fortran_order': False"), "{header}");
            let dims = &header[header.find("'shape': (").unwrap() + 10..header.find(')').unwrap()];
            let shape = dims
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| d.parse().unwrap())
                .collect();
            (name, shape, npy[10 + len..].to_vec())
        })
        .collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn export_writes_npz_and_safetensors_that_reproduce_the_predictions() {
    let (dir, data, model, _) = synthetic_model();
    let predictions = dir.path().join("predictions.txt");
    assert_ok(&backprop(&[
        "eval",
        path(&model),
        "--data",
        path(&data),
        "--predictions",
        path(&predictions),
    ]));
    let npz = dir.path().join("out/model.npz");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let st = dir.path().join("out/model.safetensors");
    assert_ok(&backprop(&["export", path(&model), "--format", "npz", path(&npz)]));
    assert_ok(&backprop(&[
        "export",
        path(&model),
        "--format",
        "safetensors",
        path(&st),
    ]));
    let names: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

    let npz = read_npz(&npz);
    let expected = [
        ("layers.0.weight", vec![64, 32]),
        ("layers.0.bias", vec![32]),
        ("layers.1.weight", vec![32, 10]),
        ("layers.1.bias", vec![10]),
    ];
    let got: Vec<_> = npz.iter().map(|(n, s, _)| (n.as_str(), s.clone())).collect();
    assert_eq!(got, expected);
    let bytes = std::fs::read(&st).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names().len(), 4);
    for (name, shape, data) in &npz {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32);
        assert_eq!(view.shape(), shape.as_slice());
        assert_eq!(view.data(), data.as_slice(), "{name}: same bytes in both formats");
        assert_eq!(data.len(), 4 * shape.iter().product::<usize>());
    }

    // x @ W + b, relu between layers, argmax: the README's NumPy recipe, in
    // Rust, gives eval's predictions.
    let layers: Vec<(Vec<f32>, Vec<f32>, usize)> = npz
        .chunks(2)
        .map(|l| (floats(&l[0].2), floats(&l[1].2), l[0].1[1]))
        .collect();
    let (_, test) = Synthetic::default().generate();
    let want: Vec<usize> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for (i, image) in test.pixels.chunks(64).enumerate() {
        let mut x: Vec<f32> = image.iter().map(|&p| f32::from(p) / 255.0).collect();
        for (l, (w, b, n_out)) in layers.iter().enumerate() {
            let mut z = b.clone();
            for (k, &xk) in x.iter().enumerate() {
                for j in 0..*n_out {
                    z[j] += xk * w[k * n_out + j];
                }
            }
            if l + 1 < layers.len() {
                z.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            x = z;
        }
        let argmax = (0..x.len()).fold(0, |best, j| if x[j] > x[best] { j } else { best });
        assert_eq!(argmax, want[i], "test image {i}");
    }

    let out = backprop(&["export", path(&model), path(&dir.path().join("m"))]);
    assert_fails_cleanly(&out, &["--format"]);
    let out = backprop(&[
        "export",
        path(&model),
        "--format",
        "npz",
        path(&dir.path().join("missing/m.npz")),
    ]);
    assert_fails_cleanly(&out, &["missing"]);
}

#[test]
fn predict_names_a_bad_image_file_and_fails() {
    let (dir, data, model, _) = synthetic_model();
    // The 8x8 model cannot take image files, so a 784-input model is needed
    // for the decoding checks; an untrained one is enough.
    let data28 = dir.path().join("data28");
    Synthetic {
        side: 28,
        n_train: 64,
        n_test: 16,
        ..Synthetic::default()
    }
    .write_dir(&data28, false);
    let model28_dir = dir.path().join("m28");
    std::fs::create_dir(&model28_dir).unwrap();
    let (model28, _) = train(&model28_dir, &data28, "784,10", "1");

    let garbage = dir.path().join("digit.png");
    std::fs::write(&garbage, b"this is not a picture").unwrap();
    let out = backprop(&["predict", path(&model28), path(&garbage)]);
    assert_fails_cleanly(&out, &["digit.png", "cannot decode"]);

    let blank = dir.path().join("blank.pgm");
    GrayImage::from_pixel(40, 30, image::Luma([250])).save(&blank).unwrap();
    let out = backprop(&["predict", path(&model28), path(&blank)]);
    assert_fails_cleanly(&out, &["blank.pgm", "no ink"]);

    let out = backprop(&["predict", path(&model28), path(&dir.path().join("absent.png"))]);
    assert_fails_cleanly(&out, &["absent.png"]);

    let out = backprop(&["predict", path(&model), path(&blank)]);
    assert_fails_cleanly(&out, &["takes 64 inputs", "784"]);

    let out = backprop(&["predict", path(&model), "--index", "200", "--data", path(&data)]);
    assert_fails_cleanly(&out, &["--index 200", "below 200"]);

    let out = backprop(&["predict", path(&model)]);
    assert_fails_cleanly(&out, &["nothing to predict"]);

    let out = backprop(&["predict", path(&model), "--index", "3", "--data", path(&data), "--json"]);
    assert_ok(&out);
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, test) = Synthetic::default().generate();
    assert_eq!(p["index"], 3);
    assert_eq!(p["label"], test.labels[3]);
    let top = p["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["class"], p["predicted"]);
    let probs: Vec<f64> = top.iter().map(|t| t["probability"].as_f64().unwrap()).collect();
    assert!(probs[0] >= probs[1] && probs[1] >= probs[2] && probs.iter().sum::<f64>() <= 1.0 + 1e-9);
}

#[test]
fn predict_quiet_drops_the_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    Synthetic::default().write_dir(&data, true);
    let model = dir.path().join("m.ckpt");
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(&data),
        "--layers",
        "64,8,10",
        "--epochs",
        "1",
        "--save",
        path(&model),
    ]));
    let args = ["predict", path(&model), "--index", "3", "--data", path(&data)];
    let loud = backprop(&args);
    assert_ok(&loud);
    let loud = String::from_utf8(loud.stdout).unwrap();
    assert!(loud.contains("+---"), "{loud}");
    for flag in ["--quiet", "--no-render"] {
        let out = backprop(&[&args[..], &[flag]].concat());
        assert_ok(&out);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(text.lines().next(), loud.lines().next());
    }
}

// ---------------------------------------------------------------------------
// Digits the test draws itself.
//
// Synthetic's classes are random speckle over the whole frame: cropping to
// the ink and rescaling (what `predict` must do to a picture) destroys them,
// so they cannot show that redrawn digits keep their class. Instead: a tiny
// procedural font of thick seven-segment strokes, with jittered endpoints,
// slant and thickness, drawn at random sizes and positions and brought into
// MNIST's form by `preprocess_digit`, as MNIST was made from larger scans.

/// Segments of a seven-segment digit in a unit box 0.6 wide and 1 high.
const SEGMENTS: [[f32; 4]; 7] = [
    [0.0, 0.0, 0.6, 0.0], // a: top
    [0.6, 0.0, 0.6, 0.5], // b: upper right
    [0.6, 0.5, 0.6, 1.0], // c: lower right
    [0.0, 1.0, 0.6, 1.0], // d: bottom
    [0.0, 0.5, 0.0, 1.0], // e: lower left
    [0.0, 0.0, 0.0, 0.5], // f: upper left
    [0.0, 0.5, 0.6, 0.5], // g: middle
];

/// Which segments (a..g as bits 0..6) each digit lights.
const DIGITS: [u8; 10] = [
    0b011_1111, // 0: abcdef
    0b000_0110, // 1: bc
    0b101_1011, // 2: abdeg
    0b100_1111, // 3: abcdg
    0b110_0110, // 4: bcfg
    0b110_1101, // 5: acdfg
    0b111_1101, // 6: acdefg
    0b000_0111, // 7: abc
    0b111_1111, // 8: all
    0b110_1111, // 9: abcdfg
];

/// Side of the canvas glyphs are drawn in before preprocessing.
const CANVAS: usize = 48;

fn distance_to_segment(px: f32, py: f32, [x0, y0, x1, y1]: [f32; 4]) -> f32 {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((px - x0 - t * dx).powi(2) + (py - y0 - t * dy).powi(2)).sqrt()
}

/// `digit` drawn bright on black into a CANVAS x CANVAS image, antialiased,
/// with random size, position, slant, stroke width and endpoint jitter.
fn draw_glyph(digit: usize, rng: &mut Rng) -> Vec<u8> {
    let mut unit = |span: f32| (rng.below(1001) as f32 / 1000.0 - 0.5) * span;
    let height = 22.0 + unit(16.0).abs() * 2.0;
    let slant = unit(0.3);
    let thickness = height * (0.15 + unit(0.06));
    let (ox, oy) = (
        4.0 + unit(8.0).abs() * 2.0,
        4.0 + (CANVAS as f32 - 8.0 - height) * (0.5 + unit(1.0)),
    );
    let segments: Vec<[f32; 4]> = (0..7)
        .filter(|s| (DIGITS[digit] >> s) & 1 == 1)
        .map(|s| {
            let [x0, y0, x1, y1] = SEGMENTS[s];
            let mut p = [x0 + unit(0.08), y0 + unit(0.08), x1 + unit(0.08), y1 + unit(0.08)];
            for (x, y) in [(0, 1), (2, 3)] {
                p[x] = ox + (p[x] + slant * (1.0 - p[y])) * height;
                p[y] = oy + p[y] * height;
            }
            p
        })
        .collect();
    let mut img = vec![0u8; CANVAS * CANVAS];
    for y in 0..CANVAS {
        for x in 0..CANVAS {
            let d = segments
                .iter()
                .map(|&s| distance_to_segment(x as f32 + 0.5, y as f32 + 0.5, s))
                .fold(f32::INFINITY, f32::min);
            let ink = (thickness / 2.0 - d + 0.5).clamp(0.0, 1.0);
            img[y * CANVAS + x] = (ink * 255.0).round() as u8;
        }
    }
    img
}

/// `n` glyph digits in MNIST's form: (pixels, labels).
fn glyph_split(n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::with_capacity(n * DIGIT_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let digit = i % 10;
        let glyph = draw_glyph(digit, rng);
        pixels.extend_from_slice(&preprocess_digit(CANVAS, CANVAS, &glyph).unwrap().pixels);
        labels.push(digit as u8);
    }
    (pixels, labels)
}

fn write_glyph_dir(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::seed_from_u64(7);
    let (train_x, train_y) = glyph_split(2000, &mut rng);
    let (test_x, test_y) = glyph_split(100, &mut rng);
    std::fs::create_dir_all(dir).unwrap();
    let side = DIGIT_FRAME as u32;
    let files = [
        ("train-images-idx3-ubyte", images_idx(&train_x, side, side)),
        ("train-labels-idx1-ubyte", labels_idx(&train_y)),
        ("t10k-images-idx3-ubyte", images_idx(&test_x, side, side)),
        ("t10k-labels-idx1-ubyte", labels_idx(&test_y)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (test_x, test_y)
}

/// A 28x28 test image redrawn: enlarged `scale` times (bilinear), placed at
/// `(x, y)` on a `w x h` canvas, dark on light when `inverted`.
fn redraw(pixels: &[u8], scale: u32, (w, h): (u32, u32), (x, y): (i64, i64), inverted: bool) -> GrayImage {
    let side = DIGIT_FRAME as u32;
    let small = GrayImage::from_raw(side, side, pixels.to_vec()).unwrap();
    let big = imageops::resize(&small, side * scale, side * scale, imageops::FilterType::Triangle);
    let mut canvas = GrayImage::new(w, h);
    imageops::overlay(&mut canvas, &big, x, y);
    if inverted {
        imageops::invert(&mut canvas);
    }
    canvas
}

fn predicted(json_lines: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(json_lines)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["predicted"]
                .as_u64()
                .unwrap() as usize
        })
        .collect()
}

/// How a test image is redrawn: scale, canvas size, position, dark on
/// light, file format and extension.
#[derive(Clone, Copy)]
struct Variant(u32, (u32, u32), (i64, i64), bool, ImageFormat, &'static str);

#[test]
fn predict_gives_redrawn_digits_the_class_of_the_test_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("glyphs");
    let (test_x, test_y) = write_glyph_dir(&data);
    let (model, trained) = train(dir.path(), &data, "784,64,10", "4");
    let accuracy = trained["test_accuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.9,
        "the glyph model must have learnt the digits: {trained}"
    );

    let n = 30;
    let indices: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut args = vec!["predict", path(&model), "--data", path(&data), "--json"];
    for i in &indices {
        args.extend(["--index", i]);
    }
    let out = backprop(&args);
    assert_ok(&out);
    let reference = predicted(&out.stdout);
    assert_eq!(reference.len(), n);
    let right = reference
        .iter()
        .zip(&test_y)
        .filter(|(p, y)| **p == usize::from(**y))
        .count();
    assert!(right >= n * 9 / 10, "{right} of {n} right");

    // Each test image in four redrawings: light on dark and dark on light,
    // off-centre, from the original size up to 6x, as PNG, PGM and JPEG.
    let variants = [
        Variant(4, (200, 150), (10, 30), false, ImageFormat::Png, "png"),
        Variant(6, (300, 240), (120, 5), true, ImageFormat::Pnm, "pgm"),
        Variant(1, (64, 40), (33, 9), true, ImageFormat::Png, "png"),
        Variant(3, (120, 100), (30, 2), true, ImageFormat::Jpeg, "jpg"),
    ];
    let mut files = Vec::new();
    for i in 0..n {
        for (v, &Variant(scale, size, at, inverted, format, ext)) in variants.iter().enumerate() {
            let file = dir.path().join(format!("digit{i}-{v}.{ext}"));
            redraw(
                &test_x[i * DIGIT_PIXELS..(i + 1) * DIGIT_PIXELS],
                scale,
                size,
                at,
                inverted,
            )
            .save_with_format(&file, format)
            .unwrap();
            files.push(file);
        }
    }
    let mut args = vec!["predict".to_owned(), path(&model).to_owned(), "--json".to_owned()];
    args.extend(files.iter().map(|f| path(f).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = backprop(&args);
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    for (k, line) in lines.iter().enumerate() {
        let (i, v) = (k / variants.len(), k % variants.len());
        assert_eq!(line["file"], path(&files[k]));
        assert_eq!(line["inverted"], variants[v].3, "{line}");
        assert_eq!(
            line["predicted"].as_u64().unwrap() as usize,
            reference[i],
            "test image {i} redrawn as {}: {line}",
            files[k].display()
        );
    }

    // The text form shows what the network saw.
    let out = backprop(&["predict", path(&model), path(&files[1])]);
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(light background: inverted)"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('|')).count(),
        DIGIT_FRAME,
        "{text}"
    );
    assert!(text.contains('@'), "{text}");
}
