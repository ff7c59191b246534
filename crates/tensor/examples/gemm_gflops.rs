//! Best-of-N GFLOP/s of `gemm_with` at the wide network's training shapes,
//! interleaved with matrixmultiply's at the same shapes (a yardstick that a
//! loaded machine slows as much).
//!
//! `cargo run --release -p backprop-tensor --example gemm_gflops -- [threads] [filter]`
//!
//! With a filter, only the shapes whose name contains it (`128x1024x10`
//! for the output layer's forward).

use backprop_tensor::{Rng, ThreadPool, gemm_with};
use ndarray::Array2;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(1, |t| t.parse().expect("threads"));
    let filter = std::env::args().nth(2).unwrap_or_default();
    let pool = ThreadPool::new(threads);
    pool.pin_caller();
    let mut rng = Rng::seed_from_u64(1);
    let shapes = [
        ("forward 128x784x1024", 128, 784, 1024, false),
        ("forward/BP2 128x1024x1024", 128, 1024, 1024, false),
        ("BP4 1024x128x1024 (A^T)", 1024, 128, 1024, true),
        ("BP4 784x128x1024 (A^T)", 784, 128, 1024, true),
        ("forward 128x1024x10", 128, 1024, 10, false),
        ("BP2 128x10x1024", 128, 10, 1024, false),
        ("BP4 1024x128x10 (A^T)", 1024, 128, 10, true),
        ("seed A1*W2 64x128x10", 64, 128, 10, false),
        ("seed A1^T*delta2 128x64x10 (A^T)", 128, 64, 10, true),
    ];
    for (name, m, k, n, ta) in shapes {
        if !name.contains(&filter) {
            continue;
        }
        let mut dense = |r: usize, c: usize| Array2::from_shape_simple_fn((r, c), || rng.normal() as f32);
        let a = if ta { dense(k, m) } else { dense(m, k) };
        let av = if ta { a.t() } else { a.view() };
        let b = dense(k, n);
        let mut c = Array2::<f32>::zeros((m, n));
        let flop = 2.0 * (m * n * k) as f64;
        let reps = ((2e8 / flop) as usize).max(1);
        let (mut ours, mut mm) = (f64::MAX, f64::MAX);
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..reps {
                gemm_with(&pool, 1.0, av, b.view(), 0.0, &mut c.view_mut());
            }
            ours = ours.min(t.elapsed().as_secs_f64() / reps as f64);
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: live views of shapes (m, k), (k, n), (m, n).
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        av.as_ptr(),
                        av.strides()[0],
                        av.strides()[1],
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
            }
            mm = mm.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        println!(
            "{name:34} {threads} thr: ours {:7.1} GFLOP/s  matrixmultiply(1 thr) {:7.1} GFLOP/s",
            flop / ours / 1e9,
            flop / mm / 1e9
        );
    }
}
