#!/usr/bin/env python3
"""The seed recipe in vectorised NumPy, timed per epoch: the yardstick for BENCHMARKS.md.

Usage: numpy_baseline.py DATA_DIR [EPOCHS]

784-128-10 ReLU MLP, He-normal init, softmax cross-entropy, plain SGD (lr 0.5,
batch 64, a fresh permutation each epoch), float32 throughout, as the textbook
section describes. Prints one JSON object per epoch with the training seconds
(evaluation excluded) and the test accuracy, then the peak resident memory.
Run it next to `cargo xtask bench` on the same machine: these machines are
noisy, so compare side by side.
"""

import json
import resource
import sys
import time

import numpy as np

from npz_predict import read_idx  # the IDX reader beside this script


def main():
    data_dir = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    x_train = read_idx(data_dir, "train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255
    y_train = np.eye(10, dtype=np.float32)[read_idx(data_dir, "train-labels-idx1-ubyte")]
    x_test = read_idx(data_dir, "t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255
    y_test = read_idx(data_dir, "t10k-labels-idx1-ubyte")

    rng = np.random.default_rng(0)
    sizes = [784, 128, 10]
    params = [
        ((rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32), np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    lr, batch = np.float32(0.5), 64
    shuffle = np.random.default_rng(42)
    n = x_train.shape[0]
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = shuffle.permutation(n)
        xs, ys = x_train[order], y_train[order]
        for i in range(0, n, batch):
            x, y = xs[i : i + batch], ys[i : i + batch]
            acts, pres = [x], []
            for k, (w, b) in enumerate(params):
                z = acts[-1] @ w + b
                pres.append(z)
                if k == len(params) - 1:
                    z = z - z.max(axis=1, keepdims=True)
                    e = np.exp(z)
                    acts.append(e / e.sum(axis=1, keepdims=True))
                else:
                    acts.append(np.maximum(z, 0))
            delta = (acts[-1] - y) / x.shape[0]
            grads = []
            for k in reversed(range(len(params))):
                grads.append((acts[k].T @ delta, delta.sum(axis=0)))
                if k > 0:
                    delta = (delta @ params[k][0].T) * (pres[k - 1] > 0)
            for k, (dw, db) in enumerate(reversed(grads)):
                w, b = params[k]
                params[k] = (w - lr * dw, b - lr * db)
        seconds = time.perf_counter() - start
        a = x_test
        for k, (w, b) in enumerate(params):
            a = a @ w + b
            if k < len(params) - 1:
                a = np.maximum(a, 0)
        accuracy = float((a.argmax(axis=1) == y_test).mean())
        print(json.dumps({"epoch": epoch, "seconds": seconds, "test_accuracy": accuracy}), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
