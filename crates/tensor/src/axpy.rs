//! `y <- y + alpha * x` over flat slices: the update of every parameter
//! tensor (E6), split between threads in fixed chunks.

use crate::ThreadPool;
use crate::pool::SharedMut;

/// Elements per task: big enough to dwarf the hand-off, small enough to
/// share a 100 000-weight layer between threads.
const CHUNK: usize = 16 * 1024;

/// `y[i] <- y[i] + alpha * x[i]` for every `i`, on the threads of `pool`.
/// Each element is computed the same way whatever the number of threads.
///
/// # Panics
/// If `x` and `y` differ in length.
#[track_caller]
pub fn axpy_with(pool: &ThreadPool, alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: x has {} elements, y has {}", x.len(), y.len());
    let n = y.len();
    let y_ptr = SharedMut(y.as_mut_ptr());
    let task = |t: usize| {
        let range = t * CHUNK..((t + 1) * CHUNK).min(n);
        // SAFETY: tasks cover disjoint ranges of `y`, which is borrowed
        // mutably for the whole call.
        let y = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(range.start), range.len()) };
        for (y, &x) in y.iter_mut().zip(&x[range]) {
            *y += alpha * x;
        }
    };
    pool.run(n.div_ceil(CHUNK), &task);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_loop_for_any_thread_count() {
        let x: Vec<f32> = (0..50_000).map(|i| (i as f32).sin()).collect();
        let y0: Vec<f32> = (0..50_000).map(|i| (i as f32).cos()).collect();
        let want: Vec<f32> = y0.iter().zip(&x).map(|(y, x)| y + -0.3 * x).collect();
        for threads in [1, 2, 3] {
            let mut y = y0.clone();
            axpy_with(&ThreadPool::new(threads), -0.3, &x, &mut y);
            assert_eq!(y, want);
        }
    }
}
