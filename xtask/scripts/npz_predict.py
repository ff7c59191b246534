#!/usr/bin/env python3
"""Predict the MNIST test set with weights exported by `backprop export --format npz`.

Usage: npz_predict.py MODEL.npz DATA_DIR [PREDICTIONS_OUT]

Reads t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) from DATA_DIR
with gzip + NumPy only, runs x @ W + b layer by layer (ReLU between layers),
prints the accuracy and writes the predicted class of every test image, one per
line, to PREDICTIONS_OUT (default: predictions-numpy.txt). Compare with
`backprop eval MODEL --data DATA_DIR --predictions FILE`.
"""

import gzip
import os
import sys

import numpy as np


def read_idx(data_dir, base):
    for name in (base, base + ".gz", base.replace("-idx", ".idx"), base.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            ndim = raw[3]
            dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit(f"{data_dir}: no file {base}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model, data_dir = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) == 4 else "predictions-numpy.txt"
    images = read_idx(data_dir, "t10k-images-idx3-ubyte")
    labels = read_idx(data_dir, "t10k-labels-idx1-ubyte")

    # The README's recipe.
    w = np.load(model)
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    n = len(w.files) // 2
    for i in range(n):
        x = x @ w[f"layers.{i}.weight"] + w[f"layers.{i}.bias"]
        x = np.maximum(x, 0) if i < n - 1 else x
    predicted = x.argmax(axis=1)

    print(f"accuracy {np.mean(predicted == labels):.4f} ({int(np.sum(predicted == labels))} of {len(labels)})")
    np.savetxt(out, predicted, fmt="%d")


if __name__ == "__main__":
    main()
