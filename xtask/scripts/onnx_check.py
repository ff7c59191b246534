#!/usr/bin/env python3
"""Run a model exported by `backprop export --format onnx` in onnxruntime and in
onnx.reference.ReferenceEvaluator, and compare with backprop's own predictions.

Usage:
  onnx_check.py MODEL.onnx DATA_DIR PREDICTIONS.txt [--torch MODEL-torch.npz]
  onnx_check.py MODEL.onnx TABLE.csv PREDICT.jsonl [--torch MODEL-torch.npz]

With DATA_DIR (IDX files), the inputs are the test images as pixels / 255 and
PREDICTIONS.txt is `backprop eval MODEL --data DATA_DIR --predictions FILE`: the
predicted class of every test image, one per line. With TABLE.csv, the inputs
are the columns the ONNX metadata names ("features") and PREDICT.jsonl is
`backprop predict MODEL --csv TABLE.csv --json`; classes are compared, and the
outputs (probabilities or values) within a tolerance.

The model is first checked with onnx.checker (full check, with shape
inference). A classifier's prediction is the argmax of its "logits" output, as
`backprop eval` takes it.

--torch NPZ also checks `backprop export --layout torch` weights: loaded into an
nn.Sequential of torch.nn.Linear (activations as in the ONNX graph) when torch
is installed, else computed with NumPy as x @ W.T + b.

Exits non-zero when any prediction differs. Needs numpy, onnx, onnxruntime
(requirements.txt); torch is optional.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import onnx.reference
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npz_predict import read_idx  # noqa: E402

ACTIVATIONS = {"Relu", "LeakyRelu", "Tanh", "Sigmoid", "Gelu"}


def load_inputs(model, data, predictions):
    """(x, labels or None, expected classes or None, expected outputs or None)."""
    if os.path.isdir(data):
        images = read_idx(data, "t10k-images-idx3-ubyte")
        labels = read_idx(data, "t10k-labels-idx1-ubyte").astype(np.int64)
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        expected = np.loadtxt(predictions, dtype=np.int64, ndmin=1)
        return x, labels, expected, None
    meta = {p.key: p.value for p in model.metadata_props}
    if "features" not in meta:
        sys.exit(f"{data}: a CSV needs a model trained on a CSV table (metadata 'features')")
    import csv

    with open(data, newline="") as f:
        rows = list(csv.DictReader(f, skipinitialspace=True))
    features = json.loads(meta["features"])
    x = np.array([[float(r[c].strip()) for c in features] for r in rows], dtype=np.float32)
    with open(predictions) as f:
        predicted = [json.loads(line) for line in f if line.strip()]
    outputs = np.array([p["outputs"] for p in predicted], dtype=np.float64)
    classes = predicted[0].get("predicted") is not None
    expected = np.array([p["predicted"] for p in predicted], dtype=np.int64) if classes else None
    return x, None, expected, outputs


def graph_layers(model):
    """Per Gemm: (weight name, bias name, activation op or None, its alpha)."""
    nodes = list(model.graph.node)
    layers = []
    for i, node in enumerate(nodes):
        if node.op_type != "Gemm":
            continue
        following = nodes[i + 1] if i + 1 < len(nodes) else None
        act, alpha = None, None
        if following is not None and following.op_type in ACTIVATIONS and following.input[0] == node.output[0]:
            act = following.op_type
            for a in following.attribute:
                if a.name == "alpha":
                    alpha = a.f
        layers.append((node.input[1], node.input[2], act, alpha))
    return layers


def standardise(model, x):
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    if "normalization.mean" in init:
        return (x - init["normalization.mean"]) / init["normalization.scale"]
    return x


def numpy_activation(act, alpha, z):
    if act is None:
        return z
    if act == "Relu":
        return np.maximum(z, 0)
    if act == "LeakyRelu":
        return np.where(z >= 0, z, np.float32(alpha) * z)
    if act == "Tanh":
        return np.tanh(z)
    if act == "Sigmoid":
        return 1 / (1 + np.exp(-z))
    if act == "Gelu":
        c = np.float32(np.sqrt(2 / np.pi))
        return 0.5 * z * (1 + np.tanh(c * (z + np.float32(0.044715) * z**3)))
    raise ValueError(act)


def torch_outputs(model, npz, x):
    """The network's last outputs (logits or values) from the torch-layout weights."""
    weights = np.load(npz)
    layers = graph_layers(model)
    names = sorted(weights.files, key=lambda n: (int(n.split(".")[0]), n))
    expected = sorted(
        [f"{2 * i}.weight" for i in range(len(layers))] + [f"{2 * i}.bias" for i in range(len(layers))],
        key=lambda n: (int(n.split(".")[0]), n),
    )
    if names != expected:
        sys.exit(f"{npz}: tensors {names}, expected {expected}")
    x = standardise(model, x)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        h = x
        for i, (_, _, act, alpha) in enumerate(layers):
            w, b = weights[f"{2 * i}.weight"], weights[f"{2 * i}.bias"]
            h = numpy_activation(act, alpha, h @ w.T + b)
        return h, "NumPy x @ W.T + b (torch is not installed)"
    modules = []
    for i, (_, _, act, alpha) in enumerate(layers):
        n_out, n_in = weights[f"{2 * i}.weight"].shape
        modules.append(torch.nn.Linear(n_in, n_out))
        modules.append(
            {
                None: torch.nn.Identity(),
                "Relu": torch.nn.ReLU(),
                "LeakyRelu": torch.nn.LeakyReLU(alpha if alpha is not None else 0.01),
                "Tanh": torch.nn.Tanh(),
                "Sigmoid": torch.nn.Sigmoid(),
                "Gelu": torch.nn.GELU(approximate="tanh"),
            }[act]
        )
    net = torch.nn.Sequential(*modules[:-1] if layers[-1][2] is None else modules)
    net.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files}, strict=True)
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x))).numpy(), f"torch {torch.__version__} nn.Sequential"


def report(name, got, expected, labels):
    agree = int(np.sum(got == expected))
    line = f"{name}: {agree} of {len(expected)} predictions equal backprop's"
    if labels is not None:
        line += f", accuracy {np.mean(got == labels):.4f}"
    print(line)
    return agree == len(expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("predictions")
    parser.add_argument("--torch", metavar="NPZ")
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    meta = {p.key: p.value for p in model.metadata_props}
    ops = [n.op_type for n in model.graph.node]
    outputs = [o.name for o in model.graph.output]
    print(f"{args.model}: onnx.checker ok; IR {model.ir_version}, opset {opset}, "
          f"producer {model.producer_name} {model.producer_version}")
    print(f"  nodes {' '.join(ops)}; outputs {', '.join(outputs)}; loss {meta.get('loss')}")
    print(f"  onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")

    x, labels, expected, expected_outputs = load_inputs(model, args.data, args.predictions)
    classify = "logits" in outputs
    key = "logits" if classify else "output"

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    got_ort = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    reference = onnx.reference.ReferenceEvaluator(model)
    got_ref = dict(zip(reference.output_names, reference.run(None, {"input": x})))

    ok = True
    for name in outputs:
        diff = float(np.max(np.abs(got_ort[name].astype(np.float64) - got_ref[name])))
        print(f"  max |onnxruntime - reference| on {name}: {diff:.3g}")
    if classify:
        for runtime, got in (("onnxruntime", got_ort), ("onnx.reference", got_ref)):
            ok &= report(runtime, got["logits"].argmax(axis=1), expected, labels)
            agree = int(np.sum(got["probabilities"].argmax(axis=1) == expected))
            print(f"  argmax of its probabilities: {agree} of {len(expected)}")
    if expected_outputs is not None:
        name = "probabilities" if classify else "output"
        for runtime, got in (("onnxruntime", got_ort), ("onnx.reference", got_ref)):
            diff = np.abs(got[name] - expected_outputs)
            worst = float(np.max(diff / (1 + np.abs(expected_outputs))))
            print(f"{runtime}: {name} against backprop predict: max abs diff {float(np.max(diff)):.3g}, "
                  f"max relative {worst:.3g}")
            ok &= worst <= 1e-4
    if args.torch:
        out, how = torch_outputs(model, args.torch, x)
        if classify:
            ok &= report(f"--layout torch ({how})", out.argmax(axis=1), expected, labels)
        if expected_outputs is not None and not classify:
            worst = float(np.max(np.abs(out - expected_outputs) / (1 + np.abs(expected_outputs))))
            print(f"--layout torch ({how}): output max relative diff {worst:.3g}")
            ok &= worst <= 1e-4
        diff = float(np.max(np.abs(out - got_ort[key])))
        print(f"  max |torch layout - onnxruntime| on {key}: {diff:.3g}")
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
