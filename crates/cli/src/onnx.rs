//! A checkpoint as an ONNX model, for `backprop export --format onnx`.
//!
//! The graph, in the order the nodes run:
//!
//! - input `input`: float `[batch, n_in]`, the batch dimension symbolic
//!   (IDX images as pixels scaled to `[0, 1]`, CSV rows as their raw
//!   features);
//! - for a model trained with `--standardize`, `Sub` of
//!   `normalization.mean` and `Div` by `normalization.scale`, as
//!   `(x - mean) / scale`;
//! - per layer `i`, `Gemm(x, layers.{i}.weight, layers.{i}.bias)` with the
//!   `(n_in, n_out)` weights and the `(n_out,)` bias as initializers (the
//!   same bytes as the checkpoint's), then the layer's activation: `Relu`,
//!   `LeakyRelu` (its `alpha` the slope), `Tanh`, `Sigmoid`, `Gelu` with
//!   `approximate = "tanh"` (opset 20), or nothing for the identity;
//! - outputs: for a cross-entropy model `probabilities` (`Softmax`,
//!   `axis = 1`) and `logits`; for an MSE model `output`.
//!
//! The opset is 13 (ONNX 1.8, IR version 7, run by any onnxruntime since
//! 1.7) unless a layer uses GELU, whose single-node form needs opset 20
//! (IR version 9; onnxruntime 1.17 or later, and `onnx.reference`).
//! `metadata_props` hold the loss, the class names (a JSON array of strings;
//! the class indices as strings when the checkpoint names none), what the
//! input is, and for a model trained on a CSV table its feature columns (a
//! JSON array, in input order) and target column.
//!
//! The file is encoded with `prost` and hand-written messages for the part
//! of `onnx.proto` written here ([`proto`]), field numbers as in ONNX 1.23's
//! `onnx/onnx.proto` (proto2: every scalar is `optional`, so values are
//! written even when they equal the default, and `dims` is not packed). The
//! alternatives weighed: `onnx-protobuf` (0.2) generates every ONNX
//! message for the `protobuf` crate 3 (MPL-2.0, no stated rust-version, one
//! maintainer), and generating code with `prost-build` needs `protoc` at
//! build time. `prost` 0.14 (tokio's, rust-version 1.85) with its derive
//! adds two crates to `Cargo.lock`, `prost` and `prost-derive` (its `bytes`,
//! `itertools`, `syn` and `anyhow` were here already), and the messages
//! below are about 150 lines.

use anyhow::{Result, bail};
use backprop_nn::Checkpoint;
use backprop_nn::checkpoint::record::{ActivationRecord, DataRecord, LossRecord};
use prost::Message as _;

/// The subset of `onnx.proto` this module writes (and the tests read).
pub(crate) mod proto {
    /// `TensorProto.DataType.FLOAT`, and `TypeProto.Tensor.elem_type` FLOAT.
    pub(crate) const FLOAT: i32 = 1;
    /// `AttributeProto.AttributeType.FLOAT`.
    pub(crate) const ATTRIBUTE_FLOAT: i32 = 1;
    /// `AttributeProto.AttributeType.INT`.
    pub(crate) const ATTRIBUTE_INT: i32 = 2;
    /// `AttributeProto.AttributeType.STRING`.
    pub(crate) const ATTRIBUTE_STRING: i32 = 3;

    /// `ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ModelProto {
        #[prost(int64, optional, tag = "1")]
        pub(crate) ir_version: Option<i64>,
        #[prost(message, repeated, tag = "8")]
        pub(crate) opset_import: Vec<OperatorSetIdProto>,
        #[prost(string, optional, tag = "2")]
        pub(crate) producer_name: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub(crate) producer_version: Option<String>,
        #[prost(string, optional, tag = "6")]
        pub(crate) doc_string: Option<String>,
        #[prost(message, optional, tag = "7")]
        pub(crate) graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "14")]
        pub(crate) metadata_props: Vec<StringStringEntryProto>,
    }

    /// `OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct OperatorSetIdProto {
        #[prost(string, optional, tag = "1")]
        pub(crate) domain: Option<String>,
        #[prost(int64, optional, tag = "2")]
        pub(crate) version: Option<i64>,
    }

    /// `StringStringEntryProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct StringStringEntryProto {
        #[prost(string, optional, tag = "1")]
        pub(crate) key: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub(crate) value: Option<String>,
    }

    /// `GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub(crate) node: Vec<NodeProto>,
        #[prost(string, optional, tag = "2")]
        pub(crate) name: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub(crate) initializer: Vec<TensorProto>,
        #[prost(string, optional, tag = "10")]
        pub(crate) doc_string: Option<String>,
        #[prost(message, repeated, tag = "11")]
        pub(crate) input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub(crate) output: Vec<ValueInfoProto>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub(crate) input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub(crate) output: Vec<String>,
        #[prost(string, optional, tag = "3")]
        pub(crate) name: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub(crate) op_type: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub(crate) attribute: Vec<AttributeProto>,
    }

    /// `AttributeProto`, scalar values only.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct AttributeProto {
        #[prost(string, optional, tag = "1")]
        pub(crate) name: Option<String>,
        #[prost(int32, optional, tag = "20")]
        pub(crate) r#type: Option<i32>,
        #[prost(float, optional, tag = "2")]
        pub(crate) f: Option<f32>,
        #[prost(int64, optional, tag = "3")]
        pub(crate) i: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub(crate) s: Option<Vec<u8>>,
    }

    /// `TensorProto`, its values as `raw_data` (little-endian).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct TensorProto {
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub(crate) dims: Vec<i64>,
        #[prost(int32, optional, tag = "2")]
        pub(crate) data_type: Option<i32>,
        #[prost(string, optional, tag = "8")]
        pub(crate) name: Option<String>,
        #[prost(bytes = "vec", optional, tag = "9")]
        pub(crate) raw_data: Option<Vec<u8>>,
    }

    /// `ValueInfoProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ValueInfoProto {
        #[prost(string, optional, tag = "1")]
        pub(crate) name: Option<String>,
        #[prost(message, optional, tag = "2")]
        pub(crate) r#type: Option<TypeProto>,
    }

    /// `TypeProto`, tensors only (`tensor_type` is a member of the `value`
    /// oneof, encoded like an optional field).
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub(crate) tensor_type: Option<TypeProtoTensor>,
    }

    /// `TypeProto.Tensor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct TypeProtoTensor {
        #[prost(int32, optional, tag = "1")]
        pub(crate) elem_type: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub(crate) shape: Option<TensorShapeProto>,
    }

    /// `TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub(crate) dim: Vec<Dimension>,
    }

    /// `TensorShapeProto.Dimension`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Dimension {
        #[prost(oneof = "DimensionValue", tags = "1, 2")]
        pub(crate) value: Option<DimensionValue>,
    }

    /// `TensorShapeProto.Dimension.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum DimensionValue {
        /// A fixed size.
        #[prost(int64, tag = "1")]
        DimValue(i64),
        /// A named, symbolic size.
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

use proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};

/// The opset of a graph without GELU.
pub(crate) const OPSET: i64 = 13;
/// The IR version that goes with [`OPSET`].
pub(crate) const IR_VERSION: i64 = 7;
/// The opset of a graph with GELU: the first with a `Gelu` operator.
pub(crate) const OPSET_GELU: i64 = 20;
/// The IR version that goes with [`OPSET_GELU`].
pub(crate) const IR_VERSION_GELU: i64 = 9;
/// The symbolic batch dimension of the input and outputs.
pub(crate) const BATCH: &str = "batch";

/// The encoded ONNX model of `checkpoint`.
pub(crate) fn model_bytes(checkpoint: &Checkpoint) -> Result<Vec<u8>> {
    let model = model(checkpoint)?;
    // Protocol buffers stop at 2 GiB; larger ONNX models keep their weights
    // in external files, which this export does not write. (A network that
    // trains here, at most 2^28 parameters, stays under 1.1 GiB.)
    if model.encoded_len() > i32::MAX as usize {
        bail!("the model is over 2 GiB, more than one ONNX file can hold");
    }
    Ok(model.encode_to_vec())
}

/// The ONNX model of `checkpoint` (see the module documentation).
pub(crate) fn model(checkpoint: &Checkpoint) -> Result<ModelProto> {
    let (Some(first), Some(last)) = (checkpoint.layers.first(), checkpoint.layers.last()) else {
        bail!("the checkpoint has no layers");
    };
    let n_in = first.shape.0 as i64;
    let n_out = last.shape.1 as i64;
    let mut graph = GraphProto {
        name: Some("backprop_mlp".into()),
        doc_string: Some(format!(
            "A multilayer perceptron exported by backprop {}: {}.",
            env!("CARGO_PKG_VERSION"),
            checkpoint
                .sizes()
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("-")
        )),
        input: vec![value_info("input", n_in)],
        ..GraphProto::default()
    };
    let mut x = "input".to_owned();

    if let Some(n) = &checkpoint.normalization {
        if n.mean.len() as i64 != n_in || n.scale.len() as i64 != n_in {
            bail!("the checkpoint's standardisation does not match its {n_in} inputs");
        }
        graph.initializer.push(tensor("normalization.mean", &[n_in], &n.mean));
        graph.initializer.push(tensor("normalization.scale", &[n_in], &n.scale));
        graph.node.push(node(
            "Sub",
            "normalization.sub",
            &[&x, "normalization.mean"],
            "centred",
            vec![],
        ));
        graph.node.push(node(
            "Div",
            "normalization.div",
            &["centred", "normalization.scale"],
            "standardized",
            vec![],
        ));
        x = "standardized".into();
    }

    let classify = matches!(checkpoint.loss, LossRecord::CrossEntropy);
    let mut uses_gelu = false;
    let n_layers = checkpoint.layers.len();
    for (i, layer) in checkpoint.layers.iter().enumerate() {
        let (rows, cols) = (layer.shape.0 as i64, layer.shape.1 as i64);
        if layer.weight.len() as i64 != rows * cols || layer.bias.len() as i64 != cols {
            bail!("layer {i}'s parameters do not match its shape {rows}x{cols}");
        }
        let (w, b) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        graph.initializer.push(tensor(&w, &[rows, cols], &layer.weight));
        graph.initializer.push(tensor(&b, &[cols], &layer.bias));
        let is_last = i + 1 == n_layers;
        let out = match (is_last, classify) {
            (true, true) => "logits".to_owned(),
            (true, false) => "output".to_owned(),
            (false, _) => format!("layers.{i}.output"),
        };
        let activation = match layer.activation {
            ActivationRecord::Identity => None,
            ActivationRecord::Relu => Some(("Relu", vec![])),
            ActivationRecord::LeakyRelu(slope) => Some(("LeakyRelu", vec![float_attribute("alpha", slope)])),
            ActivationRecord::Tanh => Some(("Tanh", vec![])),
            ActivationRecord::Sigmoid => Some(("Sigmoid", vec![])),
            ActivationRecord::Gelu => {
                uses_gelu = true;
                Some(("Gelu", vec![string_attribute("approximate", "tanh")]))
            }
        };
        let z = if activation.is_some() {
            format!("layers.{i}.z")
        } else {
            out.clone()
        };
        graph
            .node
            .push(node("Gemm", &format!("layers.{i}.gemm"), &[&x, &w, &b], &z, vec![]));
        if let Some((op, attributes)) = activation {
            let name = format!("layers.{i}.{}", op.to_lowercase());
            graph.node.push(node(op, &name, &[&z], &out, attributes));
        }
        x = out;
    }

    if classify {
        graph.node.push(node(
            "Softmax",
            "softmax",
            &["logits"],
            "probabilities",
            vec![int_attribute("axis", 1)],
        ));
        graph.output = vec![value_info("probabilities", n_out), value_info("logits", n_out)];
    } else {
        graph.output = vec![value_info("output", n_out)];
    }

    let (opset, ir_version) = if uses_gelu {
        (OPSET_GELU, IR_VERSION_GELU)
    } else {
        (OPSET, IR_VERSION)
    };
    let classes: Vec<String> = if !classify {
        Vec::new()
    } else if checkpoint.classes.is_empty() {
        (0..n_out).map(|c| c.to_string()).collect()
    } else {
        checkpoint.classes.clone()
    };
    let mut metadata = vec![entry("loss", if classify { "cross-entropy" } else { "mse" })];
    if classify {
        metadata.push(entry("classes", &serde_json::to_string(&classes)?));
    }
    match &checkpoint.data {
        DataRecord::Idx { .. } => {
            metadata.push(entry("input", "IDX images: each pixel / 255, row by row"));
        }
        DataRecord::Csv { features, target, .. } => {
            metadata.push(entry("input", "CSV rows: the columns of \"features\", in order"));
            metadata.push(entry("features", &serde_json::to_string(features)?));
            metadata.push(entry("target", target));
        }
        DataRecord::Unknown => {}
    }
    Ok(ModelProto {
        ir_version: Some(ir_version),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("backprop".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: None,
        graph: Some(graph),
        metadata_props: metadata,
    })
}

/// A float initializer holding `data`'s bytes, little-endian.
fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(proto::FLOAT),
        name: Some(name.into()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
    }
}

/// A float tensor value `[batch, width]`.
fn value_info(name: &str, width: i64) -> ValueInfoProto {
    let dim = |value| Dimension { value: Some(value) };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(proto::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(DimensionValue::DimParam(BATCH.into())),
                        dim(DimensionValue::DimValue(width)),
                    ],
                }),
            }),
        }),
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.into()],
        name: Some(name.into()),
        op_type: Some(op.into()),
        attribute,
    }
}

fn float_attribute(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(proto::ATTRIBUTE_FLOAT),
        f: Some(f),
        ..AttributeProto::default()
    }
}

fn int_attribute(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(proto::ATTRIBUTE_INT),
        i: Some(i),
        ..AttributeProto::default()
    }
}

fn string_attribute(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(proto::ATTRIBUTE_STRING),
        s: Some(s.as_bytes().to_vec()),
        ..AttributeProto::default()
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}
