//! Element-wise updates of flat tensors (a parameter, its gradient and the
//! optimiser's state slots), split between threads in fixed chunks so that
//! every element is computed the same way whatever the number of threads.

use crate::ThreadPool;
use crate::pool::SharedMut;

/// Elements per task: big enough to dwarf the hand-off, small enough to
/// share a 100 000-weight layer between threads.
pub const ELEMENTWISE_CHUNK: usize = 16 * 1024;

/// The per-chunk update: `(theta, grad, slots)` of one chunk.
pub type ChunkUpdate<'a, const K: usize> = dyn Fn(&mut [f32], &[f32], [&mut [f32]; K]) + Sync + 'a;

/// Calls `f(theta, grad, slots)` on matching chunks of `theta`, `grad` and
/// every slot of `slots`, chunk `t` covering elements
/// `t * ELEMENTWISE_CHUNK..(t + 1) * ELEMENTWISE_CHUNK`, on the threads of
/// `pool`. Allocates nothing. Since the chunks are fixed and each element's
/// arithmetic is `f`'s alone, results do not depend on the thread count.
///
/// # Panics
/// If `grad` or a slot differs in length from `theta`.
#[track_caller]
pub fn zip_chunks_with<const K: usize>(
    pool: &ThreadPool,
    theta: &mut [f32],
    grad: &[f32],
    slots: [&mut [f32]; K],
    f: &ChunkUpdate<'_, K>,
) {
    let n = theta.len();
    assert_eq!(
        grad.len(),
        n,
        "zip_chunks_with: grad has {} elements, theta {n}",
        grad.len()
    );
    for slot in &slots {
        assert_eq!(
            slot.len(),
            n,
            "zip_chunks_with: a slot has {} elements, theta {n}",
            slot.len()
        );
    }
    let theta_ptr = SharedMut(theta.as_mut_ptr());
    let slot_ptrs: [SharedMut<f32>; K] = slots.map(|s| SharedMut(s.as_mut_ptr()));
    let task = |t: usize| {
        let range = t * ELEMENTWISE_CHUNK..((t + 1) * ELEMENTWISE_CHUNK).min(n);
        let len = range.len();
        // SAFETY: tasks cover disjoint ranges of `theta` and of each slot,
        // which are borrowed mutably for the whole call; every range lies
        // within `0..n`.
        let theta = unsafe { std::slice::from_raw_parts_mut(theta_ptr.get().add(range.start), len) };
        // SAFETY: as above.
        let slots = slot_ptrs.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(range.start), len) });
        f(theta, &grad[range], slots);
    };
    pool.run(n.div_ceil(ELEMENTWISE_CHUNK), &task);
}

/// Calls `f(t, chunk)` for every chunk of `out`, chunk `t` covering
/// elements `t * chunk_len..(t + 1) * chunk_len` (the last one may be
/// shorter), on the threads of `pool`. Allocates nothing. The chunks are
/// fixed by `chunk_len` alone, so a task that computes its chunk from `t`
/// gives the same result whatever the number of threads.
///
/// # Panics
/// If `chunk_len == 0` while `out` is not empty.
#[track_caller]
pub fn chunks_mut_with(pool: &ThreadPool, out: &mut [f32], chunk_len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    let n = out.len();
    if n == 0 {
        return;
    }
    assert!(chunk_len > 0, "chunks_mut_with: chunks of 0 elements");
    let out_ptr = SharedMut(out.as_mut_ptr());
    let task = |t: usize| {
        let start = t * chunk_len;
        let len = chunk_len.min(n - start);
        // SAFETY: tasks cover disjoint ranges of `out`, which is borrowed
        // mutably for the whole call; every range lies within `0..n`.
        let chunk = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(start), len) };
        f(t, chunk);
    };
    pool.run(n.div_ceil(chunk_len), &task);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_mut_with_hands_out_each_chunk_once_with_its_index() {
        for threads in [1, 2, 3] {
            for (n, chunk) in [(0, 4), (1, 4), (7, 3), (12, 4), (1000, 64)] {
                let mut out = vec![0.0f32; n];
                chunks_mut_with(&ThreadPool::new(threads), &mut out, chunk, &|t, part| {
                    assert!(part.len() <= chunk && !part.is_empty());
                    for (i, x) in part.iter_mut().enumerate() {
                        *x += (t * chunk + i + 1) as f32;
                    }
                });
                assert!(
                    out.iter().enumerate().all(|(i, &x)| x == (i + 1) as f32),
                    "{threads} threads, {n}/{chunk}"
                );
            }
        }
    }

    #[test]
    fn every_element_once_for_any_thread_count() {
        let n = 3 * ELEMENTWISE_CHUNK + 17;
        let grad: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
        for threads in [1, 2, 3] {
            let mut theta = vec![1.0f32; n];
            let mut m = vec![0.0f32; n];
            zip_chunks_with(&ThreadPool::new(threads), &mut theta, &grad, [&mut m], &|t, g, [m]| {
                for ((t, g), m) in t.iter_mut().zip(g).zip(m.iter_mut()) {
                    *m += g;
                    *t -= 0.5 * *m;
                }
            });
            for i in 0..n {
                assert_eq!(m[i], grad[i]);
                assert_eq!(theta[i], 1.0 - 0.5 * grad[i]);
            }
        }
    }
}
