#!/usr/bin/env python3
"""A ReLU MLP trained with PyTorch or JAX, timed per epoch: the other side
of `cargo xtask compare`, which runs it in rounds alternating with
`backprop train` (BENCHMARKS.md).

    framework_baseline.py torch DATA_DIR [--layers 784,128,10] [--batch-size 64]
                          [--lr 0.5] [--epochs 4] [--threads 2]
    framework_baseline.py jax   DATA_DIR ...

The network and recipe are the ones `backprop train` runs with the same
flags: He-normal weights, zero biases, ReLU hidden layers, softmax
cross-entropy averaged over the batch, plain SGD, a fresh permutation of the
training set every epoch, float32 throughout. Each framework is written the
way its users write it:

- torch: `nn.Sequential` of `nn.Linear`, `F.cross_entropy`, `optim.SGD`,
  batches sliced from a permuted tensor (no DataLoader);
  `torch.set_num_threads(THREADS)`.
- jax: the whole epoch in one `jax.jit`: the permuted gather and a
  `lax.scan` of `jax.grad` steps over the batches. A scan needs equal
  batches, so the last partial batch is dropped (32 of 60,000 images at
  batch 64, 96 at 128): a small advantage to JAX. XLA's compile falls in
  the first epoch: compare the later ones. `--threads 1` sets XLA_FLAGS for
  a single-threaded Eigen before JAX loads; otherwise XLA uses every CPU.

`--threads 1` also keeps the process on one CPU (sched_setaffinity), for
both frameworks, so that no helper thread borrows the other core.

Prints one JSON object per epoch (training seconds, evaluation excluded;
test accuracy), then the peak resident memory.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npz_predict import read_idx  # noqa: E402  (the IDX reader beside this script)


def load(data_dir):
    def images(base):
        return read_idx(data_dir, base).reshape(-1, 784).astype(np.float32) / 255

    return (
        images("train-images-idx3-ubyte"),
        read_idx(data_dir, "train-labels-idx1-ubyte").astype(np.int32),
        images("t10k-images-idx3-ubyte"),
        read_idx(data_dir, "t10k-labels-idx1-ubyte").astype(np.int32),
    )


def he_normal(rng, sizes):
    return [
        ((rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32), np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:])
    ]


def report(epoch, seconds, accuracy):
    print(json.dumps({"epoch": epoch, "seconds": seconds, "test_accuracy": accuracy}), flush=True)


def run_torch(args, data, params):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    layers = []
    for k, (w, b) in enumerate(params):
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if k < len(params) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    y_train = y_train.long()
    n = x_train.shape[0]
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(n)
        xs, ys = x_train[order], y_train[order]
        for i in range(0, n, args.batch_size):
            loss = F.cross_entropy(model(xs[i : i + args.batch_size]), ys[i : i + args.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
        report(epoch, seconds, accuracy)


def run_jax(args, data, params):
    if args.threads == 1:
        os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    import jax
    import jax.numpy as jnp

    def forward(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def loss(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
    steps = x_train.shape[0] // args.batch_size
    used = steps * args.batch_size

    @jax.jit
    def epoch_step(params, order):
        xs = x_train[order[:used]].reshape(steps, args.batch_size, -1)
        ys = y_train[order[:used]].reshape(steps, args.batch_size)

        def step(params, batch):
            grads = jax.grad(loss)(params, *batch)
            return jax.tree_util.tree_map(lambda p, g: p - args.lr * g, params, grads), None

        params, _ = jax.lax.scan(step, params, (xs, ys))
        return params

    @jax.jit
    def accuracy(params):
        return jnp.mean(jnp.argmax(forward(params, x_test), axis=1) == y_test)

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    key = jax.random.PRNGKey(args.seed)
    for epoch in range(1, args.epochs + 1):
        key, sub = jax.random.split(key)
        start = time.perf_counter()
        params = epoch_step(params, jax.random.permutation(sub, x_train.shape[0]))
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        report(epoch, seconds, float(accuracy(params)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("framework", choices=["torch", "jax"])
    parser.add_argument("data_dir")
    parser.add_argument("--layers", default="784,128,10")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    sizes = [int(s) for s in args.layers.split(",")]
    if len(sizes) < 2 or sizes[0] != 784 or min(sizes) < 1:
        sys.exit(f"--layers: expected sizes above 0 starting at 784 (MNIST's pixels), got {args.layers}")
    if args.threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    data = load(args.data_dir)
    params = he_normal(np.random.default_rng(args.seed), sizes)
    {"torch": run_torch, "jax": run_jax}[args.framework](args, data, params)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
