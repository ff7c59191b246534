//! `backprop export --format onnx` and `--layout torch`, run as a user
//! would: the ONNX file decodes (with the CLI's own prost messages) into the
//! graph described in `crates/cli/src/onnx.rs`, holds the checkpoint's exact
//! weight bits, and, run by a small interpreter of its operators here, gives
//! the model's outputs; the torch layout holds the transposed weights under
//! `nn.Sequential`'s names, and `x @ W.T + b` gives `backprop eval`'s
//! predictions. `xtask/scripts/onnx_check.py` runs the same files in
//! onnxruntime and `onnx.reference`.

mod common;

// The CLI is a binary, so its messages are compiled in here from source.
#[allow(dead_code, unreachable_pub)]
#[path = "../src/onnx.rs"]
mod onnx;

use backprop_nn::checkpoint::record::NormalizationRecord;
use backprop_nn::{Activation, Checkpoint, Dense, Init, Loss, Mlp};
use backprop_tensor::Rng;
use backprop_tests::Synthetic;
use common::{assert_fails_cleanly, assert_ok, backprop, path};
use onnx::proto::{DimensionValue, GraphProto, ModelProto, TensorProto};
use prost::Message as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A row-major matrix.
#[derive(Clone, Debug)]
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(file: &Path) -> ModelProto {
    ModelProto::decode(std::fs::read(file).unwrap().as_slice()).expect("a valid ModelProto")
}

fn graph(model: &ModelProto) -> &GraphProto {
    model.graph.as_ref().expect("a graph")
}

fn op_types(model: &ModelProto) -> Vec<&str> {
    graph(model)
        .node
        .iter()
        .map(|n| n.op_type.as_deref().unwrap())
        .collect()
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> &'a TensorProto {
    graph(model)
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no initializer {name}"))
}

fn metadata(model: &ModelProto) -> HashMap<&str, &str> {
    model
        .metadata_props
        .iter()
        .map(|e| (e.key.as_deref().unwrap(), e.value.as_deref().unwrap()))
        .collect()
}

/// (name, shape) of a graph input or output, a symbolic dimension as -1.
fn signature(values: &[onnx::proto::ValueInfoProto]) -> Vec<(String, Vec<i64>)> {
    values
        .iter()
        .map(|v| {
            let tensor = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
            assert_eq!(tensor.elem_type, Some(onnx::proto::FLOAT));
            let dims = tensor
                .shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| match d.value.as_ref().unwrap() {
                    DimensionValue::DimValue(v) => *v,
                    DimensionValue::DimParam(p) => {
                        assert_eq!(p, "batch");
                        -1
                    }
                })
                .collect();
            (v.name.clone().unwrap(), dims)
        })
        .collect()
}

/// Runs the graph on `input` with the meaning ONNX gives each operator it
/// uses, in node order (which must therefore be topological): every value
/// the graph computed, by name.
fn interpret(model: &ModelProto, input: Matrix) -> HashMap<String, Matrix> {
    let graph = graph(model);
    let mut values: HashMap<String, Matrix> = HashMap::new();
    for t in &graph.initializer {
        assert_eq!(t.data_type, Some(onnx::proto::FLOAT));
        let data = floats(t.raw_data.as_ref().unwrap());
        let (rows, cols) = match t.dims[..] {
            [n] => (1, n as usize),
            [r, c] => (r as usize, c as usize),
            _ => panic!("unexpected dims {:?}", t.dims),
        };
        assert_eq!(rows * cols, data.len());
        values.insert(t.name.clone().unwrap(), Matrix { rows, cols, data });
    }
    values.insert("input".into(), input);
    for node in &graph.node {
        let arg = |k: usize| values[&node.input[k]].clone();
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name.as_deref() == Some(name));
        let map = |f: &dyn Fn(f32) -> f32| {
            let mut x = arg(0);
            x.data.iter_mut().for_each(|v| *v = f(*v));
            x
        };
        // A row-vector second operand broadcasts over the rows.
        let zip = |f: &dyn Fn(f32, f32) -> f32| {
            let (mut a, b) = (arg(0), arg(1));
            assert_eq!((b.rows, b.cols), (1, a.cols));
            for row in a.data.chunks_mut(a.cols) {
                row.iter_mut().zip(&b.data).for_each(|(x, y)| *x = f(*x, *y));
            }
            a
        };
        let out = match node.op_type.as_deref().unwrap() {
            "Sub" => zip(&|x, y| x - y),
            "Div" => zip(&|x, y| x / y),
            "Gemm" => {
                assert!(node.attribute.is_empty(), "plain Gemm: alpha = beta = 1, no transposes");
                let (a, b, c) = (arg(0), arg(1), arg(2));
                assert_eq!((a.cols, c.rows, c.cols), (b.rows, 1, b.cols));
                let mut data = Vec::with_capacity(a.rows * b.cols);
                for i in 0..a.rows {
                    for j in 0..b.cols {
                        let dot: f64 = (0..a.cols)
                            .map(|k| f64::from(a.data[i * a.cols + k]) * f64::from(b.data[k * b.cols + j]))
                            .sum();
                        data.push((dot + f64::from(c.data[j])) as f32);
                    }
                }
                Matrix {
                    rows: a.rows,
                    cols: b.cols,
                    data,
                }
            }
            "Relu" => map(&|z| z.max(0.0)),
            "LeakyRelu" => {
                let alpha = attribute("alpha").unwrap().f.unwrap();
                map(&|z| if z >= 0.0 { z } else { alpha * z })
            }
            "Tanh" => map(&f32::tanh),
            "Sigmoid" => map(&|z| 1.0 / (1.0 + (-z).exp())),
            "Gelu" => {
                assert_eq!(attribute("approximate").unwrap().s.as_deref(), Some(&b"tanh"[..]));
                let c = (2.0 / std::f32::consts::PI).sqrt();
                map(&|z| 0.5 * z * (1.0 + (c * (z + 0.044_715 * z * z * z)).tanh()))
            }
            "Softmax" => {
                assert_eq!(attribute("axis").unwrap().i, Some(1));
                let mut x = arg(0);
                for row in x.data.chunks_mut(x.cols) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    row.iter_mut().for_each(|v| *v = (*v - max).exp());
                    let sum: f32 = row.iter().sum();
                    row.iter_mut().for_each(|v| *v /= sum);
                }
                x
            }
            op => panic!("unexpected operator {op}"),
        };
        assert_eq!(node.output.len(), 1);
        assert!(
            values.insert(node.output[0].clone(), out).is_none(),
            "{} written twice",
            node.output[0]
        );
    }
    values
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "value {i}: {g} against {w}"
        );
    }
}

/// Deterministic inputs spread over [-2, 2).
fn inputs(rows: usize, cols: usize) -> Matrix {
    let data = (0..rows * cols)
        .map(|i| ((i * 7919 + 13) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    Matrix { rows, cols, data }
}

/// A checkpoint of a random network of `activations` (the last is the
/// output layer's), with non-zero biases.
fn checkpoint(sizes: &[usize], activations: &[Activation], loss: Loss) -> Checkpoint {
    let mut rng = Rng::seed_from_u64(7);
    let layers = sizes
        .windows(2)
        .zip(activations)
        .map(|(p, &f)| Dense::with(p[0], p[1], f, Init::GlorotUniform, &mut rng))
        .collect();
    let mut checkpoint = Checkpoint::from_model(&Mlp::from_layers(layers).unwrap(), loss);
    for (l, layer) in checkpoint.layers.iter_mut().enumerate() {
        for (j, b) in layer.bias.iter_mut().enumerate() {
            *b = ((l * 31 + j) as f32 * 0.37).sin() * 0.5;
        }
    }
    checkpoint
}

fn export(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["export", path(model)];
    args.extend_from_slice(extra);
    args.push(path(out));
    assert_ok(&backprop(&args));
}

#[test]
fn a_classifier_with_standardisation_exports_its_whole_graph() {
    let dir = tempfile::tempdir().unwrap();
    let activations = [
        Activation::LeakyRelu { slope: 0.1 },
        Activation::Sigmoid,
        Activation::Identity,
    ];
    let mut ckpt = checkpoint(&[5, 7, 6, 4], &activations, Loss::CrossEntropy);
    ckpt.classes = ["setosa", "versicolor", "virginica", "other \"quoted\""]
        .map(String::from)
        .to_vec();
    ckpt.normalization = Some(NormalizationRecord {
        mean: vec![0.5, -1.0, 0.0, 2.0, 0.25],
        scale: vec![2.0, 0.5, 1.0, 3.0, 1.5],
    });
    let model = dir.path().join("m.ckpt");
    ckpt.save(&model).unwrap();
    let out = dir.path().join("m.onnx");
    export(&model, &out, &[]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary left");

    let onnx = decode(&out);
    assert_eq!(onnx.ir_version, Some(7));
    assert_eq!(onnx.opset_import.len(), 1);
    assert_eq!(onnx.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(onnx.opset_import[0].version, Some(13));
    assert_eq!(onnx.producer_name.as_deref(), Some("backprop"));
    assert_eq!(onnx.producer_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let meta = metadata(&onnx);
    assert_eq!(meta["loss"], "cross-entropy");
    let classes: Vec<String> = serde_json::from_str(meta["classes"]).unwrap();
    assert_eq!(classes, ckpt.classes);
    assert_eq!(
        op_types(&onnx),
        ["Sub", "Div", "Gemm", "LeakyRelu", "Gemm", "Sigmoid", "Gemm", "Softmax"]
    );
    let g = graph(&onnx);
    assert_eq!(signature(&g.input), [("input".to_owned(), vec![-1, 5])]);
    assert_eq!(
        signature(&g.output),
        [
            ("probabilities".to_owned(), vec![-1, 4]),
            ("logits".to_owned(), vec![-1, 4])
        ]
    );
    let names: Vec<_> = g.initializer.iter().map(|t| t.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "normalization.mean",
            "normalization.scale",
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.2.weight",
            "layers.2.bias"
        ]
    );
    for (i, layer) in ckpt.layers.iter().enumerate() {
        let w = initializer(&onnx, &format!("layers.{i}.weight"));
        assert_eq!(w.dims, [layer.shape.0 as i64, layer.shape.1 as i64]);
        assert_eq!(
            w.raw_data.as_deref(),
            Some(le_bytes(&layer.weight).as_slice()),
            "exact bits"
        );
        let b = initializer(&onnx, &format!("layers.{i}.bias"));
        assert_eq!(b.dims, [layer.shape.1 as i64]);
        assert_eq!(b.raw_data.as_deref(), Some(le_bytes(&layer.bias).as_slice()));
    }
    let alpha = &g.node[3].attribute[0];
    assert_eq!((alpha.name.as_deref(), alpha.f), (Some("alpha"), Some(0.1)));

    // The graph computes what the model does: standardise, then the layers.
    let x = inputs(9, 5);
    let values = interpret(&onnx, x.clone());
    let n = ckpt.normalization.as_ref().unwrap();
    let mut standardized = x.data.clone();
    for row in standardized.chunks_mut(5) {
        for ((v, m), s) in row.iter_mut().zip(&n.mean).zip(&n.scale) {
            *v = (*v - m) / s;
        }
    }
    assert_eq!(values["standardized"].data, standardized, "(x - mean) / scale exactly");
    let mlp = ckpt.model().unwrap();
    let standardized = ndarray::Array2::from_shape_vec((9, 5), standardized).unwrap();
    let logits = mlp.predict_outputs(standardized.view());
    assert_close(&values["logits"].data, logits.as_slice().unwrap(), 1e-5);
    let proba = mlp.predict_proba(standardized.view());
    assert_close(&values["probabilities"].data, proba.as_slice().unwrap(), 1e-5);
}

#[test]
fn gelu_and_tanh_regression_uses_opset_20_and_outputs_output() {
    let dir = tempfile::tempdir().unwrap();
    let activations = [Activation::Gelu, Activation::Tanh, Activation::Tanh];
    let ckpt = checkpoint(&[3, 8, 8, 2], &activations, Loss::MeanSquaredError);
    let model = dir.path().join("r.ckpt");
    ckpt.save(&model).unwrap();
    // --format wins over the extension.
    let out = dir.path().join("r.bin");
    export(&model, &out, &["--format", "onnx"]);

    let onnx = decode(&out);
    assert_eq!((onnx.ir_version, onnx.opset_import[0].version), (Some(9), Some(20)));
    assert_eq!(op_types(&onnx), ["Gemm", "Gelu", "Gemm", "Tanh", "Gemm", "Tanh"]);
    let g = graph(&onnx);
    assert_eq!(signature(&g.output), [("output".to_owned(), vec![-1, 2])]);
    assert_eq!(g.node.last().unwrap().output, ["output"]);
    let meta = metadata(&onnx);
    assert_eq!(meta["loss"], "mse");
    assert!(!meta.contains_key("classes"));

    let x = inputs(11, 3);
    let values = interpret(&onnx, x.clone());
    let want = ckpt
        .model()
        .unwrap()
        .predict_outputs(ndarray::Array2::from_shape_vec((11, 3), x.data).unwrap().view());
    assert_close(&values["output"].data, want.as_slice().unwrap(), 1e-5);
}

/// Trains the default (ReLU) recipe on a synthetic 8x8 problem: the data
/// directory and the checkpoint.
fn synthetic_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    Synthetic::default().write_dir(&data, true);
    let model = dir.join("model.ckpt");
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(&data),
        "--layers",
        "64,32,16,10",
        "--epochs",
        "3",
        "--lr",
        "0.1",
        "--save",
        path(&model),
    ]));
    (data, model)
}

fn eval_predictions(dir: &Path, data: &Path, model: &Path) -> Vec<usize> {
    let predictions = dir.join("predictions.txt");
    assert_ok(&backprop(&[
        "eval",
        path(model),
        "--data",
        path(data),
        "--predictions",
        path(&predictions),
    ]));
    std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
}

#[test]
fn trained_model_exports_to_onnx_and_torch_layouts_that_predict_like_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = synthetic_model(dir.path());
    let want = eval_predictions(dir.path(), &data, &model);
    let (_, test) = Synthetic::default().generate();
    let x: Vec<f32> = test.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let n = test.labels.len();

    // ONNX, the format from the extension (in any case).
    let out = dir.path().join("model.ONNX");
    export(&model, &out, &[]);
    let onnx = decode(&out);
    assert_eq!(op_types(&onnx), ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"]);
    let meta = metadata(&onnx);
    let classes: Vec<String> = serde_json::from_str(meta["classes"]).unwrap();
    assert_eq!(classes, (0..10).map(|c| c.to_string()).collect::<Vec<_>>());
    assert!(meta["input"].contains("/ 255"), "{meta:?}");
    assert!(!meta.contains_key("features"));
    let values = interpret(
        &onnx,
        Matrix {
            rows: n,
            cols: 64,
            data: x.clone(),
        },
    );
    let predicted: Vec<usize> = values["probabilities"].data.chunks(10).map(argmax).collect();
    assert_eq!(predicted, want, "the ONNX graph predicts what eval does");

    // The native and torch layouts, both formats.
    let native = dir.path().join("native.npz");
    export(&model, &native, &[]);
    let torch_npz = dir.path().join("torch.npz");
    export(&model, &torch_npz, &["--layout", "torch"]);
    let torch_st = dir.path().join("torch.safetensors");
    export(&model, &torch_st, &["--layout", "torch"]);
    let native = read_npz(&native);
    let torch = read_npz(&torch_npz);
    let got: Vec<_> = torch.iter().map(|(n, s, _)| (n.as_str(), s.clone())).collect();
    assert_eq!(
        got,
        [
            ("0.weight", vec![32, 64]),
            ("0.bias", vec![32]),
            ("2.weight", vec![16, 32]),
            ("2.bias", vec![16]),
            ("4.weight", vec![10, 16]),
            ("4.bias", vec![10]),
        ]
    );
    let bytes = std::fs::read(&torch_st).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names().len(), 6);
    for (name, shape, data) in &torch {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.shape(), shape.as_slice());
        assert_eq!(floats(view.data()), *data, "{name}: same values in both formats");
    }
    for (l, (native, torch)) in native.chunks(2).zip(torch.chunks(2)).enumerate() {
        let (w, wt) = (&native[0], &torch[0]);
        assert_eq!(w.0, format!("layers.{l}.weight"));
        let (n_in, n_out) = (w.1[0], w.1[1]);
        assert_eq!(wt.1, [n_out, n_in]);
        for i in 0..n_in {
            for j in 0..n_out {
                assert_eq!(w.2[i * n_out + j].to_bits(), wt.2[j * n_in + i].to_bits());
            }
        }
        assert_eq!(native[1].2, torch[1].2, "biases unchanged");
    }

    // x @ W.T + b, ReLU between layers, as nn.Sequential(Linear, ReLU, ...)
    // computes it: eval's predictions.
    let mut h = x;
    let mut width = 64;
    for (l, layer) in torch.chunks(2).enumerate() {
        let (w, b) = (&layer[0].2, &layer[1].2);
        let n_out = layer[0].1[0];
        let mut z = Vec::with_capacity(n * n_out);
        for row in h.chunks(width) {
            for j in 0..n_out {
                let dot: f32 = row.iter().zip(&w[j * width..(j + 1) * width]).map(|(a, b)| a * b).sum();
                let v = dot + b[j];
                z.push(if l + 1 < torch.len() / 2 { v.max(0.0) } else { v });
            }
        }
        (h, width) = (z, n_out);
    }
    let predicted: Vec<usize> = h.chunks(10).map(argmax).collect();
    assert_eq!(predicted, want, "x @ W.T + b predicts what eval does");
}

/// The entries of an `.npz` of `<f4` arrays: (name, shape, values), in
/// archive order.
fn read_npz(file: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().strip_suffix(".npy").unwrap().to_owned();
            let mut npy = Vec::new();
            entry.read_to_end(&mut npy).unwrap();
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
            (name, shape, floats(&npy[10 + len..]))
        })
        .collect()
}

#[test]
fn an_unknown_extension_asks_for_format_and_onnx_refuses_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(&[2, 3], &[Activation::Identity], Loss::CrossEntropy);
    let model = dir.path().join("m.ckpt");
    ckpt.save(&model).unwrap();
    for name in ["m.pt", "weights", "m.npz.tmp"] {
        let out = backprop(&["export", path(&model), path(&dir.path().join(name))]);
        assert_fails_cleanly(&out, &[name, "--format npz, safetensors or onnx"]);
    }
    let out = backprop(&[
        "export",
        path(&model),
        "--layout",
        "torch",
        path(&dir.path().join("m.onnx")),
    ]);
    assert_fails_cleanly(&out, &["--layout", "ONNX"]);
    let out = backprop(&["export", path(&model), "--format", "tflite", "m.tflite"]);
    assert_fails_cleanly(&out, &["tflite", "onnx"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written");

    // A one-layer model: the Gemm writes the logits directly.
    export(&model, &dir.path().join("m.onnx"), &[]);
    assert_eq!(op_types(&decode(&dir.path().join("m.onnx"))), ["Gemm", "Softmax"]);
}

#[test]
fn a_standardised_csv_model_names_its_features_and_predicts_like_predict_csv() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.csv");
    let mut text = String::from("u,label,v,w\n");
    for i in 0..120 {
        let class = i % 3;
        let u = class as f32 * 10.0 + (i as f32 * 0.7).sin();
        let v = (i as f32 * 1.3).cos() * 100.0 + 500.0;
        let w = class as f32 - (i as f32 * 0.2).sin();
        text.push_str(&format!("{u},c{class},{v},{w}\n"));
    }
    std::fs::write(&table, text).unwrap();
    let model = dir.path().join("t.ckpt");
    assert_ok(&backprop(&[
        "train",
        "--data",
        path(&table),
        "--target",
        "label",
        "--standardize",
        "--activation",
        "gelu",
        "--layers",
        "3,8,3",
        "--epochs",
        "5",
        "--lr",
        "0.1",
        "--save",
        path(&model),
    ]));
    let out = dir.path().join("t.onnx");
    export(&model, &out, &[]);
    let onnx = decode(&out);
    assert_eq!(op_types(&onnx), ["Sub", "Div", "Gemm", "Gelu", "Gemm", "Softmax"]);
    let meta = metadata(&onnx);
    assert_eq!(meta["features"], r#"["u","v","w"]"#);
    assert_eq!(meta["target"], "label");
    assert_eq!(meta["classes"], r#"["c0","c1","c2"]"#);

    let predicted = backprop(&["predict", path(&model), "--csv", path(&table), "--json"]);
    assert_ok(&predicted);
    let want: Vec<f32> = String::from_utf8(predicted.stdout)
        .unwrap()
        .lines()
        .flat_map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            let outputs: Vec<f32> = serde_json::from_value(row["outputs"].clone()).unwrap();
            outputs
        })
        .collect();
    let x: Vec<f32> = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            [cells[0], cells[2], cells[3]].map(|c| c.parse::<f32>().unwrap())
        })
        .collect();
    let values = interpret(
        &onnx,
        Matrix {
            rows: 120,
            cols: 3,
            data: x,
        },
    );
    assert_close(&values["probabilities"].data, &want, 1e-5);
}
