"""OpenBLAS sgemm GFLOP/s through NumPy float32 matmul, the yardstick of
`cargo xtask bench`: best of N timings per shape, on a set number of threads.

    python gemm_yardstick.py --threads 1 128x784x1024 1024x128x1024t ...
    python gemm_yardstick.py --threads 2 --rounds 3 --serve

A shape is MxKxN (C = A B with A of M x K); a trailing `t` makes A the
transpose of a K x M array, as BP4's A^T, and a trailing `T` makes B the
transpose of an N x K array, as BP2's W^T. Prints one line per shape:
`SHAPE GFLOPS`. With `--serve` it reads one shape per line from standard
input and answers each at once, so that `cargo xtask bench` can alternate
its own timings with these in one run. Run it with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset so OpenBLAS picks its own kernel for the CPU.
"""

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits


def operands(shape, rng):
    transposed_a, transposed_b = shape.endswith("t"), shape.endswith("T")
    m, k, n = (int(x) for x in shape.rstrip("tT").split("x"))
    a = rng.standard_normal((k, m) if transposed_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if transposed_b else (k, n), dtype=np.float32)
    return (m, k, n, a.T if transposed_a else a, b.T if transposed_b else b, np.empty((m, n), dtype=np.float32))


def gflops(m, k, n, a, b, c, rounds):
    flop = 2.0 * m * n * k
    # As `cargo xtask bench` times its own: one call to wake the threads,
    # then the best of `rounds` timings of 3 to 10,000 calls.
    reps = min(10_000, max(3, int(2e8 / flop)))
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - start) / reps)
    return flop / best / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--serve", action="store_true", help="read shapes from standard input")
    parser.add_argument("shapes", nargs="*")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cache = {}
    shapes = (line.strip() for line in sys.stdin) if args.serve else iter(args.shapes)
    with threadpool_limits(limits=args.threads):
        for shape in shapes:
            if shape not in cache:
                cache[shape] = operands(shape, rng)
            print(f"{shape} {gflops(*cache[shape], args.rounds):.1f}", flush=True)


if __name__ == "__main__":
    main()
