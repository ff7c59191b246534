"""OpenBLAS sgemm GFLOP/s through NumPy float32 matmul, the yardstick of
`cargo xtask bench`: best of N timings per shape, on a set number of threads.

    python gemm_yardstick.py --threads 1 128x784x1024 1024x128x1024t ...

A shape is MxKxN (C = A B with A of M x K); a trailing `t` makes A the
transpose of a K x M array, as BP4's A^T. Prints one line per shape:
`MxKxN[t] GFLOPS`. Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
so OpenBLAS picks its own kernel for the CPU.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("shapes", nargs="+")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=args.threads):
        for shape in args.shapes:
            transposed = shape.endswith("t")
            m, k, n = (int(x) for x in shape.rstrip("t").split("x"))
            a = rng.standard_normal((k, m) if transposed else (m, k), dtype=np.float32)
            a = a.T if transposed else a
            b = rng.standard_normal((k, n), dtype=np.float32)
            c = np.empty((m, n), dtype=np.float32)
            flop = 2.0 * m * n * k
            reps = max(1, int(2e8 / flop))
            best = float("inf")
            for _ in range(args.rounds):
                start = time.perf_counter()
                for _ in range(reps):
                    np.matmul(a, b, out=c)
                best = min(best, (time.perf_counter() - start) / reps)
            print(f"{shape} {flop / best / 1e9:.1f}", flush=True)


if __name__ == "__main__":
    main()
